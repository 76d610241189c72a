//! `image:layers APP`: one line of JSON saying which layers the host holds by its store's
//! rule (docs/slim.md), so a client can send an archive without them:
//! `{"store":"classic","chains":[…],"blobs":[],"version":"0.1.0"}` or
//! `{"store":"containerd","chains":[],"blobs":[…],"version":"0.1.0","delta":1}` (the plugin's
//! version, and the recipe format it takes). A client that greets on stdin may then ask which
//! chunks of its layers the app's kept content holds (docs/delta.md).

use std::ffi::OsString;

use crate::args;
use crate::command::Command;
use crate::content;
use crate::docker::Docker;
use crate::host::Host;
use crate::layers::{self, HeldLayers};
use crate::output::Status;
use crate::trigger;

fn line(held: &HeldLayers) -> anyhow::Result<String> {
    Ok(serde_json::to_string(&held.answer())?)
}

pub fn run(command: &Command, argv: Vec<OsString>) -> anyhow::Result<Status> {
    let (app, _) = args::parse_for_app(argv, command)?;
    trigger::ensure_app(&app)?;
    let host = Host::from_env();
    let docker = Docker::for_app(&host, &app);
    let held = layers::held(&host, &docker, docker.store()?)?;
    println!("{}", line(&held)?);
    content::serve_queries(&host, &app)?;
    Ok(Status::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;
    use crate::docker::Store;
    use crate::version::VERSION;

    #[test]
    fn one_line_in_the_shape_the_client_reads() {
        let a = Digest::from_hex(&"a".repeat(64)).unwrap();
        let b = Digest::from_hex(&"b".repeat(64)).unwrap();
        let held = HeldLayers {
            store: Store::Classic,
            chains: [b.clone(), a.clone()].into_iter().collect(),
            blobs: Default::default(),
        };
        assert_eq!(
            line(&held).unwrap(),
            format!(
                r#"{{"store":"classic","chains":["{a}","{b}"],"blobs":[],"version":"{VERSION}","delta":2}}"#
            )
        );
        let held = HeldLayers {
            store: Store::Containerd,
            chains: Default::default(),
            blobs: [a.clone()].into_iter().collect(),
        };
        assert_eq!(
            line(&held).unwrap(),
            format!(
                r#"{{"store":"containerd","chains":[],"blobs":["{a}"],"version":"{VERSION}","delta":2}}"#
            )
        );
    }
}
