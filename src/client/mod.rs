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
//! | `layers_session.rs` | the `image:layers` session, kept open for chunk queries |
//! | `recipes.rs` | a changed layer as a recipe or whole (docs/delta.md) |
//! | `streamed.rs` | a recipe written as its layer streams, its chunks asked in batches |
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
pub mod layers_session;
pub mod legacy;
pub mod meter;
pub mod push;
pub mod recipes;
pub mod registry;
pub mod send;
pub mod streamed;
pub mod to_oci;
pub mod transport;

use std::ffi::{OsStr, OsString};
use std::process::ExitCode;

use crate::client::args::Request;
use crate::client::docker_cli::Invocation;
use crate::docker::Docker;
use crate::output::{self, Status};
use crate::version;

/// The client's main: runs it and gives the host's status (or 1 and the error).
pub fn main() -> ExitCode {
    let mut argv: Vec<OsString> = std::env::args_os().collect();
    let program = if argv.is_empty() {
        OsString::new()
    } else {
        argv.remove(0)
    };
    output::finish(run(&program, argv))
}

/// The whole program: parse, run, the host's status. Run as `docker-dokku` by the docker CLI,
/// it answers the CLI's metadata question and takes its arguments after the CLI's global
/// options.
fn run(program: &OsStr, argv: Vec<OsString>) -> anyhow::Result<Status> {
    if argv.len() == 1 && argv[0] == docker_cli::METADATA_COMMAND {
        println!("{}", docker_cli::metadata());
        return Ok(Status::SUCCESS);
    }
    let (docker, argv) = match Invocation::detect(program, &argv) {
        Some(invocation) => {
            docker_cli::stop_when_the_cli_asks();
            (invocation.docker(), invocation.args)
        }
        None => (Docker::local(), argv),
    };
    match args::parse(argv)? {
        Request::Help => println!("{}", args::help()),
        Request::Version => println!("dokku-image {}", version::describe()),
        Request::InstallDockerPlugin => {
            let path = docker_cli::install()?;
            output::note(format!(
                "Installed {}: docker dokku push IMAGE DEST APP",
                path.display()
            ));
        }
        Request::Push(push) => return push::run(&push, &docker),
    }
    Ok(Status::SUCCESS)
}
