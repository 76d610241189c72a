//! `image:from`.
fn main() {
    dokku_image::commands::main("image:from")
}
