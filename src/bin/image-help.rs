//! `image:help`, and `dokku image` (subcommands/default).
fn main() {
    dokku_image::commands::main("image:help")
}
