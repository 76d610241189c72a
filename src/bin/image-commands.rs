//! The plugin's `commands` entry: `dokku help` lines, and core's `git:from-image`/`git:load-image`
//! on hosts whose git plugin lacks them; exit 10 for anything that is not ours.
use dokku_image::{host, subcommands};

/// Whether the core git plugin answers `git:NAME` itself (then the command is not ours).
fn core_has(subcommand: &str) -> bool {
    std::env::var_os("PLUGIN_ENABLED_PATH").is_some_and(|enabled| {
        std::path::Path::new(&enabled)
            .join("git/subcommands")
            .join(subcommand)
            .exists()
    })
}

fn main() {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    match argv.first().and_then(|a| a.to_str()) {
        Some("help") => print!("{}", subcommands::help::help_lines()),
        Some("image:help") => print!("{}", subcommands::help::usage_page()),
        Some("git:from-image") if !core_has("from-image") => {
            host::exit_on_error(subcommands::from::run(argv, "git:from-image"))
        }
        Some("git:load-image") if !core_has("load-image") => {
            host::exit_on_error(subcommands::load::run(argv, "git:load-image"))
        }
        _ => std::process::exit(host::EXIT_NOT_IMPLEMENTED),
    }
}
