//! The `post-delete` trigger.
fn main() {
    let args = std::env::args().skip(1).collect();
    dokku_image::host::exit_on_error(dokku_image::lifecycle::post_delete(args));
}
