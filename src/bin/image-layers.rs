//! `image:layers`.
fn main() {
    dokku_image::commands::main("image:layers")
}
