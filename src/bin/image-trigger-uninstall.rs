//! The `uninstall` trigger.
fn main() {
    dokku_image::commands::main("uninstall")
}
