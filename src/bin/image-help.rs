//! `image:help` and `dokku image` (subcommands/default).
fn main() {
    print!("{}", dokku_image::subcommands::help::usage_page());
}
