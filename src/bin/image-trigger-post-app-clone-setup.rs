//! The `post-app-clone-setup` trigger.
fn main() {
    dokku_image::commands::main("post-app-clone-setup")
}
