//! The `uninstall` trigger.
fn main() -> std::process::ExitCode {
    dokku_image::command_table::main("uninstall")
}
