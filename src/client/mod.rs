//! `dokku-image`, the plugin's client for CI machines: push a local image to a Dokku host's
//! `image:load`, sending only the layers the host lacks. Used by `src/bin/dokku-image.rs`;
//! it uses the library, never the plugin's subcommands.
//!
//! | file | job |
//! | --- | --- |
//! | `args.rs` | the command line, DEST, usage errors |
//! | `docker_cli.rs` | `docker dokku push`: the docker CLI plugin's metadata, arguments and socket |
//! | `transport.rs` | the remote shell command line and the quoting of the remote command |
//! | `held.rs` | `image:layers`'s answer; what may be left out on each store |
//! | `filter.rs` | the tar filter that leaves layers out |
//! | `legacy.rs` | which layer a legacy archive's directory holds, from its v1 ID |
//! | `to_oci.rs` | a legacy archive in the OCI form a containerd host would make of it |
//! | `meter.rs` | bytes sent and the progress lines |
//! | `send.rs` | one archive: save, filter, zstd, the remote `image:load` |
//! | `registry.rs` | the loopback registry a containerd-store engine pushes to |
//! | `engine.rs` | a push through that engine: learn the manifests, push the rest into the archive |
//! | `push.rs` | the flow: inspect, ask, send, fall back |

pub mod args;
pub mod docker_cli;
pub mod engine;
pub mod filter;
pub mod held;
pub mod legacy;
pub mod meter;
pub mod push;
pub mod registry;
pub mod send;
pub mod to_oci;
pub mod transport;

use std::ffi::OsString;

use crate::client::args::Request;
use crate::client::docker_cli::Invocation;
use crate::docker::Docker;
use crate::output::{self, exit_on_error};
use crate::version;

/// The whole program: parse, run, exit with the host's status. Run as `docker-dokku` by the
/// docker CLI, it answers the CLI's metadata question and takes its arguments after the CLI's
/// global options.
pub fn main() -> ! {
    let mut argv: Vec<OsString> = std::env::args_os().collect();
    let program = if argv.is_empty() {
        OsString::new()
    } else {
        argv.remove(0)
    };
    if argv.len() == 1 && argv[0] == docker_cli::METADATA_COMMAND {
        println!("{}", docker_cli::metadata());
        exit_on_error(Ok(()));
    }
    let (docker, argv) = match Invocation::detect(&program, &argv) {
        Some(invocation) => {
            docker_cli::stop_when_the_cli_asks();
            (invocation.docker(), invocation.args)
        }
        None => (Docker::local(), argv),
    };
    let result = args::parse(argv).and_then(|request| match request {
        Request::Help => {
            println!("{}", args::help());
            Ok(0)
        }
        Request::Version => {
            println!("dokku-image {}", version::describe());
            Ok(0)
        }
        Request::InstallDockerPlugin => {
            let path = docker_cli::install()?;
            output::note(format!(
                "Installed {}: docker dokku push IMAGE DEST APP",
                path.display()
            ));
            Ok(0)
        }
        Request::Push(push) => push::run(&push, &docker),
    });
    match result {
        Ok(0) => exit_on_error(Ok(())),
        Ok(code) => std::process::exit(code),
        Err(err) => exit_on_error(Err(err)),
    }
}
