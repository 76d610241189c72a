//! `image:rollback`.
fn main() {
    dokku_image::commands::main("image:rollback")
}
