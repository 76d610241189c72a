//! `dokku-image`, the plugin's client for CI machines: push a local image to a Dokku host's
//! `image:load`, sending only the layers the host lacks. Used by `src/bin/dokku-image.rs`;
//! it uses the library, never the plugin's subcommands.
//!
//! | file | job |
//! | --- | --- |
//! | `args.rs` | the command line, DEST, usage errors |
//! | `transport.rs` | the remote shell command line and the quoting of the remote command |
//! | `held.rs` | `image:layers`'s answer; what may be left out on each store |
//! | `filter.rs` | the tar filter that leaves layers out |
//! | `legacy.rs` | which layer a legacy archive's directory holds, from its v1 ID |
//! | `meter.rs` | bytes sent and the progress lines |
//! | `send.rs` | one archive: save, filter, zstd, the remote `image:load` |
//! | `push.rs` | the flow: inspect, ask, send, fall back |

pub mod args;
pub mod filter;
pub mod held;
pub mod legacy;
pub mod meter;
pub mod push;
pub mod send;
pub mod transport;

use crate::client::args::Request;
use crate::output::exit_on_error;

/// The whole program: parse, run, exit with the host's status.
pub fn main() -> ! {
    let result =
        args::parse(std::env::args_os().skip(1).collect()).and_then(|request| match request {
            Request::Help => {
                println!("{}", args::help());
                Ok(0)
            }
            Request::Push(push) => push::run(&push),
        });
    match result {
        Ok(0) => exit_on_error(Ok(())),
        Ok(code) => std::process::exit(code),
        Err(err) => exit_on_error(Err(err)),
    }
}
