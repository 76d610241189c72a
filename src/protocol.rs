//! The wire between the host plugin and the client (`dokku-image push`, docs/protocol.md):
//! the commands the client runs on the host, the line `image:layers` prints, and the refusal of
//! a slim archive the client matches to retry with the whole one. Both sides use this module
//! and nothing else for it; change the wire here and in docs/protocol.md.

use serde::{Deserialize, Serialize};

/// `image:layers APP`: which layers the host holds, as one [`Answer`] line on stdout.
pub const LAYERS: &str = "image:layers";
/// `image:load APP IMAGE [USER_NAME [USER_EMAIL]]`: the archive on stdin.
pub const LOAD: &str = "image:load";

/// `image:layers`'s one line of JSON, as the plugin prints it and the client reads it:
/// `{"store":"classic","chains":[…],"blobs":[],"version":"…"}` or
/// `{"store":"containerd","chains":[],"blobs":[…],"version":"…"}`.
/// Field order and names are the contract between the two.
#[derive(Debug, Serialize, Deserialize)]
pub struct Answer {
    /// [`CLASSIC`] or [`CONTAINERD`].
    pub store: String,
    #[serde(default)]
    pub chains: Vec<String>,
    #[serde(default)]
    pub blobs: Vec<String>,
    /// The plugin's version (older plugins leave it out); the client says when it differs
    /// from its own.
    #[serde(default)]
    pub version: Option<String>,
}

/// [`Answer::store`] of a host whose engine keeps layers by ChainID.
pub const CLASSIC: &str = "classic";
/// [`Answer::store`] of a host whose engine uses containerd's image store.
pub const CONTAINERD: &str = "containerd";

/// How `image:load`'s refusal of a slim archive starts; clients match it anywhere in a line
/// of the host's stderr (older clients too: keep it as it is).
const REFUSAL: &str = "the archive leaves out layers this host does not hold: ";

/// `image:load`'s refusal of a slim archive that leaves out layers the host does not hold
/// (short digests).
pub fn refusal(missing: &[String]) -> String {
    format!("{REFUSAL}{}; nothing was loaded", missing.join(", "))
}

/// Whether a line of the host's stderr carries [`refusal`].
pub fn is_refusal(line: &str) -> bool {
    line.contains(REFUSAL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_recognised_through_dokkus_prefix() {
        let line = refusal(&["3f4a1c0e9b2d".into(), "77c0d1a2b3e4".into()]);
        assert_eq!(
            line,
            "the archive leaves out layers this host does not hold: 3f4a1c0e9b2d, 77c0d1a2b3e4; nothing was loaded"
        );
        assert!(is_refusal(&format!(" !     {line}\n")));
        assert!(!is_refusal(
            " !     the archive is not a docker image save\n"
        ));
    }
}
