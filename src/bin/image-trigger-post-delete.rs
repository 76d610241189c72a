//! The `post-delete` trigger.
fn main() {
    dokku_image::commands::main("post-delete")
}
