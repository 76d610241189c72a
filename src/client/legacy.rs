//! Which layer a legacy archive's `<v1id>/layer.tar` holds, without hashing it. Engines up to
//! 24 name a layer's directory by its v1 ID, a digest the saving engine computes from the
//! directory's `json` (which comes before `layer.tar`: a directory's files are in name order)
//! with the layer's ChainID and its parent's v1 ID put in (docs/slim.md, "The client's
//! filter, and legacy archives"). Recomputing that digest for each of the image's ChainIDs
//! proves which layer the directory holds; when none gives the v1 ID back, the filter hashes
//! the layer as before.

use std::collections::BTreeMap;

use serde_json::value::RawValue;

use crate::digest::Digest;

/// The position, among the image's ChainIDs (bottom first), of the layer in the legacy
/// directory `v1id` whose `json` is `json`.
pub fn layer_of(v1id: &str, json: &[u8], chains: &[Digest]) -> Option<usize> {
    let mut fields: BTreeMap<String, Box<RawValue>> = serde_json::from_slice(json).ok()?;
    fields.remove("id");
    // The engine writes `parent` (the v1 ID below, as bare hex) and `os` into `json` after it
    // has computed the ID, over what the image's own config held: try with and without each.
    let parent = fields.remove("parent").map(|raw| raw.get().to_string());
    let os = fields.remove("os").map(|raw| raw.get().to_string());
    let mut parents = vec![None];
    if let Some(raw) = &parent {
        parents.push(Some(raw.clone()));
        if let Ok(hex) = serde_json::from_str::<String>(raw) {
            if let Some(digest) = Digest::from_hex(&hex) {
                parents.push(Some(format!("\"{digest}\"")));
            }
        }
    }
    let oses = match &os {
        Some(raw) => vec![None, Some(raw.clone())],
        None => vec![None],
    };
    let rest: Vec<(String, String)> = fields
        .into_iter()
        .map(|(key, raw)| (key, raw.get().to_string()))
        .collect();
    chains.iter().position(|chain| {
        parents.iter().any(|parent| {
            oses.iter().any(|os| {
                let mut all = rest.clone();
                all.push(("layer_id".to_string(), format!("\"{chain}\"")));
                all.extend(parent.iter().map(|raw| ("parent".to_string(), raw.clone())));
                all.extend(os.iter().map(|raw| ("os".to_string(), raw.clone())));
                Digest::of(go_map_json(all).as_bytes()).hex() == v1id
            })
        })
    })
}

/// What Go's json.Marshal makes of a map of raw values: keys sorted bytewise, no spaces.
fn go_map_json(mut fields: Vec<(String, String)>) -> String {
    fields.sort();
    let members: Vec<String> = fields
        .iter()
        .map(|(key, raw)| format!("{}:{raw}", serde_json::Value::from(key.as_str())))
        .collect();
    format!("{{{}}}", members.join(","))
}

/// A legacy archive's two directories, as Engine 20.10 saved them.
#[cfg(test)]
pub mod fixture {
    use crate::digest::Digest;

    // Saved by Engine 20.10 from `FROM scratch`, `COPY f1 /f1`, `COPY f2 /f2`.
    pub const BOTTOM: &str = "82e7f7945a1b5738829275d4ca55ee43823afdb1781f717303eea89ef7c93529";
    pub const BOTTOM_JSON: &str = r#"{"id":"82e7f7945a1b5738829275d4ca55ee43823afdb1781f717303eea89ef7c93529","created":"1970-01-01T00:00:00Z","container_config":{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,"Cmd":null,"Image":"","Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":null},"os":"linux"}"#;
    pub const TOP: &str = "68abee74d8924a4b9e895e5bc5d26a04136e279034aa7e0e13e23d1597a266a0";
    pub const TOP_JSON: &str = r#"{"id":"68abee74d8924a4b9e895e5bc5d26a04136e279034aa7e0e13e23d1597a266a0","parent":"82e7f7945a1b5738829275d4ca55ee43823afdb1781f717303eea89ef7c93529","created":"2026-12-02T20:44:26.77391428Z","container_config":{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,"Cmd":null,"Image":"","Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":null},"config":{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":null,"Image":"","Volumes":null,"WorkingDir":"/","Entrypoint":null,"OnBuild":null,"Labels":null},"architecture":"amd64","os":"linux"}"#;

    pub fn diff_ids() -> Vec<Digest> {
        vec![
            Digest::parse(
                "sha256:522869d73a37d72511c92688227fb1bfe3fea5915a86fb610f4bee2c6f1366f7",
            )
            .unwrap(),
            Digest::parse(
                "sha256:f8f275d3e69e3fddee85f0fbe964a62f1258607e027bf2e841194985243ad54b",
            )
            .unwrap(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::fixture::*;
    use super::*;
    use crate::digest::chain_ids;

    fn chains() -> Vec<Digest> {
        chain_ids(&diff_ids())
    }

    #[test]
    fn an_engines_own_directories_give_their_layers() {
        assert_eq!(layer_of(BOTTOM, BOTTOM_JSON.as_bytes(), &chains()), Some(0));
        assert_eq!(layer_of(TOP, TOP_JSON.as_bytes(), &chains()), Some(1));
    }

    #[test]
    fn anything_else_gives_none() {
        // another image's chains, a json changed by one byte, a name that is not its digest
        assert_eq!(layer_of(TOP, TOP_JSON.as_bytes(), &chains()[..1]), None);
        let changed = TOP_JSON.replace("amd64", "arm64");
        assert_eq!(layer_of(TOP, changed.as_bytes(), &chains()), None);
        assert_eq!(layer_of(BOTTOM, TOP_JSON.as_bytes(), &chains()), None);
        assert_eq!(layer_of(TOP, b"not json", &chains()), None);
        assert_eq!(layer_of(TOP, b"[]", &chains()), None);
    }
}
