//! The `report` trigger.
fn main() {
    dokku_image::commands::main("report")
}
