//! The plugin's `commands` file (help, fallbacks, exit 10 for the rest).
fn main() {
    dokku_image::commands::main("commands")
}
