//! The `post-app-rename-setup` trigger.
fn main() -> std::process::ExitCode {
    dokku_image::command_table::main("post-app-rename-setup")
}
