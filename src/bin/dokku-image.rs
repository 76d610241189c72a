//! `dokku-image`: the client that pushes an image to a Dokku host (src/client/).
fn main() -> std::process::ExitCode {
    dokku_image::client::main()
}
