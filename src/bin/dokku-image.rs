//! `dokku-image`: the plugin's one program, serving every name it is run under (each
//! subcommand, trigger and `commands` links to it), and the client under any other name.
fn main() -> std::process::ExitCode {
    dokku_image::command_table::main()
}
