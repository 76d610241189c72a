//! `image:rollback`.
fn main() -> std::process::ExitCode {
    dokku_image::command_table::main("image:rollback")
}
