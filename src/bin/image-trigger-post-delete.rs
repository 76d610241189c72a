//! The `post-delete` trigger.
fn main() -> std::process::ExitCode {
    dokku_image::command_table::main("post-delete")
}
