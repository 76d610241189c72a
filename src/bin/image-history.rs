//! `image:history`.
fn main() {
    dokku_image::commands::main("image:history")
}
