//! The plugin's `commands` file (help, fallbacks, exit 10 for the rest).
fn main() -> std::process::ExitCode {
    dokku_image::command_table::main("commands")
}
