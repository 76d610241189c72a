//! `image:client`.
fn main() {
    dokku_image::commands::main("image:client")
}
