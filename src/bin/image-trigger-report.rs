//! The `report` trigger.
fn main() {
    let args = std::env::args().skip(1).collect();
    dokku_image::host::exit_on_error(dokku_image::subcommands::report::trigger(args));
}
