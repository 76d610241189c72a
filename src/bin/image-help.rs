//! `image:help`, and `dokku image` (subcommands/default).
fn main() -> std::process::ExitCode {
    dokku_image::command_table::main("image:help")
}
