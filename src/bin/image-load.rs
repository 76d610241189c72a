fn main() {
    let argv = std::env::args_os().skip(1).collect();
    dokku_image::host::exit_on_error(dokku_image::subcommands::load::run(argv, "image:load"));
}
