//! A legacy archive (engines up to 24) in the OCI form a containerd-store host would make of
//! it (docs/engines.md §3): loading a legacy archive, containerd writes a Docker schema 2
//! manifest of the config and the uncompressed `layer.tar`s, and the image's ID is that
//! manifest's digest. Sent as an OCI layout naming that very manifest, the image gets the same
//! ID, and its layer blobs (digest = diff ID) are ones the host notes, so the next push may
//! leave them out.
//!
//! The filter renames each `<v1id>/layer.tar` to `blobs/sha256/<diff ID>` and `<hex>.json` to
//! `blobs/sha256/<hex>`, drops `VERSION`, `json`, `repositories` and the directories, and at
//! the end writes what [`metadata`] makes of the legacy `manifest.json`.

use std::collections::HashMap;

use crate::archive::ManifestItem;
use crate::digest::Digest;
use crate::reference::Reference;

/// The media types containerd gives a legacy image's manifest, config and layers.
const MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// What the legacy archive's entries told, by their names there.
#[derive(Debug, Default)]
pub struct Seen {
    /// `<v1id>/layer.tar` → its diff ID and size.
    pub layers: HashMap<String, (Digest, u64)>,
    /// `<hex>.json` → its size.
    pub configs: HashMap<String, u64>,
}

/// The config named `<hex>.json` at the archive's top, as a digest.
pub fn config_digest(name: &str) -> Option<Digest> {
    Digest::from_hex(name.strip_suffix(".json")?)
}

/// The entries that end the OCI form: each image's manifest as a blob, `index.json`,
/// `manifest.json` and `oci-layout`. None when the legacy `manifest.json` names something the
/// archive did not hold (then the archive is sent as it was).
pub fn metadata(manifest_json: &[u8], seen: &Seen) -> Option<Vec<(String, Vec<u8>)>> {
    let items: Vec<ManifestItem> = serde_json::from_slice(manifest_json).ok()?;
    let mut blobs = Vec::new();
    let mut descriptors = Vec::new();
    let mut docker_items = Vec::new();
    for item in &items {
        let config = config_digest(&item.config)?;
        let config_size = *seen.configs.get(&item.config)?;
        let layers: Vec<&(Digest, u64)> = item
            .layers
            .iter()
            .map(|name| seen.layers.get(name))
            .collect::<Option<_>>()?;
        let manifest = schema2(&config, config_size, &layers);
        let digest = Digest::of(manifest.as_bytes());
        let tags = item.repo_tags.clone().unwrap_or_default();
        let named: Vec<Option<&String>> = if tags.is_empty() {
            vec![None]
        } else {
            tags.iter().map(Some).collect()
        };
        for tag in named {
            let annotations = tag
                .and_then(|tag| Reference::parse(tag).ok())
                .map(|reference| reference.name_annotations())
                .unwrap_or_default();
            descriptors.push(serde_json::json!({
                "mediaType": MANIFEST,
                "digest": digest.to_string(),
                "size": manifest.len(),
                "annotations": annotations,
            }));
        }
        docker_items.push(serde_json::json!({
            "Config": config.blob_path(),
            "RepoTags": tags,
            "Layers": layers.iter().map(|(diff_id, _)| diff_id.blob_path()).collect::<Vec<_>>(),
        }));
        blobs.push((digest.blob_path(), manifest.into_bytes()));
    }
    blobs.sort();
    blobs.dedup();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": descriptors,
    });
    blobs.push(("index.json".into(), index.to_string().into_bytes()));
    blobs.push((
        "manifest.json".into(),
        serde_json::Value::from(docker_items)
            .to_string()
            .into_bytes(),
    ));
    blobs.push((
        "oci-layout".into(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    ));
    Some(blobs)
}

/// The manifest containerd writes for a legacy image: compact, keys in this order.
fn schema2(config: &Digest, config_size: u64, layers: &[&(Digest, u64)]) -> String {
    let layers: Vec<String> = layers
        .iter()
        .map(|(diff_id, size)| {
            format!(r#"{{"mediaType":"{LAYER}","digest":"{diff_id}","size":{size}}}"#)
        })
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{MANIFEST}","config":{{"mediaType":"{CONFIG}","digest":"{config}","size":{config_size}}},"layers":[{}]}}"#,
        layers.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_is_the_one_containerd_writes_and_the_index_names_it() {
        let (config, a, b) = (Digest::of(b"c"), Digest::of(b"a"), Digest::of(b"b"));
        let seen = Seen {
            layers: HashMap::from([
                ("v1/layer.tar".to_string(), (a.clone(), 10)),
                ("v2/layer.tar".to_string(), (b.clone(), 20)),
            ]),
            configs: HashMap::from([(format!("{}.json", config.hex()), 30)]),
        };
        let legacy = format!(
            r#"[{{"Config":"{}.json","RepoTags":["app:1"],"Layers":["v1/layer.tar","v2/layer.tar"]}}]"#,
            config.hex()
        );
        let entries = metadata(legacy.as_bytes(), &seen).unwrap();
        let expected = format!(
            r#"{{"schemaVersion":2,"mediaType":"{MANIFEST}","config":{{"mediaType":"{CONFIG}","digest":"{config}","size":30}},"layers":[{{"mediaType":"{LAYER}","digest":"{a}","size":10}},{{"mediaType":"{LAYER}","digest":"{b}","size":20}}]}}"#
        );
        let manifest = Digest::of(expected.as_bytes());
        assert_eq!(entries[0], (manifest.blob_path(), expected.into_bytes()));
        let index: serde_json::Value = serde_json::from_slice(&entries[1].1).unwrap();
        assert_eq!(index["manifests"][0]["digest"], manifest.to_string());
        assert_eq!(
            index["manifests"][0]["annotations"]["io.containerd.image.name"],
            "docker.io/library/app:1"
        );
        let docker: serde_json::Value = serde_json::from_slice(&entries[2].1).unwrap();
        assert_eq!(docker[0]["Config"], config.blob_path());
        assert_eq!(docker[0]["Layers"][1], b.blob_path());
        assert_eq!(entries[3].0, "oci-layout");
        // a layer the archive did not show: no OCI form
        let missing = legacy.replace("v2/layer.tar", "v3/layer.tar");
        assert!(metadata(missing.as_bytes(), &seen).is_none());
    }
}
