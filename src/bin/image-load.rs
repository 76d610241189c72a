//! `image:load`.
fn main() {
    dokku_image::commands::main("image:load")
}
