//! The `post-app-rename-setup` trigger.
fn main() {
    dokku_image::commands::main("post-app-rename-setup")
}
