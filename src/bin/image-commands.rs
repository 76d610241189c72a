//! The plugin's `commands` entry: `dokku help` lines; exit 10 for anything that is not ours.
fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match argv.first().map(String::as_str) {
        Some("help") => print!("{}", dokku_image::subcommands::help::help_lines()),
        Some("image:help") => print!("{}", dokku_image::subcommands::help::usage_page()),
        _ => std::process::exit(dokku_image::host::EXIT_NOT_IMPLEMENTED),
    }
}
