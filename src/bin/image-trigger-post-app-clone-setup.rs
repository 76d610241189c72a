//! The `post-app-clone-setup` trigger.
fn main() -> std::process::ExitCode {
    dokku_image::command_table::main("post-app-clone-setup")
}
