//! `image:set`.
fn main() {
    dokku_image::commands::main("image:set")
}
