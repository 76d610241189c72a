//! `image:report`.
fn main() {
    dokku_image::commands::main("image:report")
}
