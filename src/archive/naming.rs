//! The held-back metadata rewritten so that the engine loads the chosen image under IMAGE only
//! (docs/tags.md). A classic engine names an image by the `RepoTags` of its `manifest.json`
//! item. The containerd store, when the archive has an `oci-layout`, names the images of
//! `index.json` by their descriptors' `io.containerd.image.name` annotation (else
//! `org.opencontainers.image.ref.name`) and ignores `manifest.json`; without one it turns
//! `manifest.json`'s `RepoTags` into such names. Only names and the lists change: every kept
//! item and descriptor points at the same digests, so the image gets the ID a full load gives.

use anyhow::{anyhow, Context, Result};
use serde_json::{Map, Value};

use super::catalog::config_id;
use super::contents::Choice;
use super::header;

/// `manifest.json` with the chosen image's item only, tagged IMAGE only.
pub(super) fn manifest_json(data: &[u8], choice: &Choice) -> Result<Vec<u8>> {
    let items: Vec<Map<String, Value>> =
        serde_json::from_slice(data).context("manifest.json cannot be rewritten")?;
    let mut item = items
        .into_iter()
        .find(|item| {
            item.get("Config")
                .and_then(Value::as_str)
                .and_then(config_id)
                .is_some_and(|config| config == choice.image.config)
        })
        .ok_or_else(|| anyhow!("manifest.json lists no item for the chosen image"))?;
    item.insert(
        "RepoTags".to_string(),
        Value::from(vec![choice.name.normalized()]),
    );
    Ok(serde_json::to_vec(&[item])?)
}

/// `index.json` with the descriptor the chosen image's ID comes from only (none when the index
/// names it nowhere), named IMAGE only.
pub(super) fn index_json(data: &[u8], choice: &Choice) -> Result<Vec<u8>> {
    let mut index: Map<String, Value> = serde_json::from_slice(data)
        .map_err(|e| anyhow!("index.json is not a valid OCI image index: {e}"))?;
    let target = choice.image.targets.first().map(|digest| digest.as_str());
    let descriptor = index
        .get("manifests")
        .and_then(Value::as_array)
        .and_then(|descriptors| {
            descriptors
                .iter()
                .find(|d| target.is_some() && d.get("digest").and_then(Value::as_str) == target)
        })
        .and_then(Value::as_object)
        .cloned();
    let kept: Vec<Value> = descriptor
        .map(|mut descriptor| {
            let mut annotations = match descriptor.remove("annotations") {
                Some(Value::Object(annotations)) => annotations,
                _ => Map::new(),
            };
            annotations.extend(choice.name.name_annotations());
            descriptor.insert("annotations".to_string(), Value::Object(annotations));
            Value::Object(descriptor)
        })
        .into_iter()
        .collect();
    index.insert("manifests".to_string(), Value::Array(kept));
    Ok(serde_json::to_vec(&index)?)
}

/// A tar entry of a regular file: a plain ustar header, the data, the padding.
pub(super) fn entry(name: &str, data: &[u8]) -> Result<Vec<u8>> {
    let mut out = entry_header(name, data.len() as u64)?;
    out.extend_from_slice(data);
    out.resize(out.len() + header::padding(data.len() as u64) as usize, 0);
    Ok(out)
}

/// The plain ustar header of a regular file of `size` bytes.
pub(super) fn entry_header(name: &str, size: u64) -> Result<Vec<u8>> {
    let mut header = tar::Header::new_ustar();
    header
        .set_path(name)
        .with_context(|| format!("cannot name a tar entry {name}"))?;
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    Ok(header.as_bytes().to_vec())
}
