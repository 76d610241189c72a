//! `image:load`.
fn main() -> std::process::ExitCode {
    dokku_image::command_table::main("image:load")
}
