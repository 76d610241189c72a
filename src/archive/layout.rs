//! The OCI and `docker image save` documents an archive holds, as serde reads them:
//! `manifest.json`'s items, `index.json` and index blobs, descriptors and their platforms, and
//! the small blobs told apart as a manifest, an index or an image config.

use std::collections::HashMap;

use serde::Deserialize;

use super::contents::ImageConfig;
use crate::digest::Digest;

/// One item of `manifest.json`.
#[derive(Deserialize)]
pub(crate) struct ManifestItem {
    #[serde(rename = "Config")]
    pub(crate) config: String,
    #[serde(rename = "RepoTags", default)]
    pub(crate) repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    pub(crate) layers: Vec<String>,
}

/// `index.json`, or an index blob.
#[derive(Deserialize)]
pub(crate) struct OciIndex {
    #[serde(default)]
    pub(crate) manifests: Vec<Descriptor>,
}

/// An OCI descriptor: what an index or a manifest names, by digest.
#[derive(Deserialize, Clone, Debug)]
pub(crate) struct Descriptor {
    #[serde(default, rename = "mediaType")]
    pub(crate) media_type: String,
    pub(crate) digest: String,
    #[serde(default)]
    pub(crate) size: u64,
    #[serde(default)]
    pub(crate) annotations: HashMap<String, String>,
    #[serde(default)]
    pub(crate) platform: Option<Platform>,
}

/// A small blob understood as an OCI image manifest, an index, or an image config.
#[derive(Debug)]
pub(super) enum BlobDoc {
    Manifest { config: String, layers: Vec<String> },
    Index { manifests: Vec<Descriptor> },
    Config(ImageConfig),
}

/// The fields that tell a manifest, an index and a config apart: a manifest's `config` is a
/// descriptor, an index has `manifests`, a config has `rootfs`.
#[derive(Deserialize)]
struct RawBlobDoc {
    config: Option<serde_json::Value>,
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    rootfs: Option<RootFs>,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    created: Option<String>,
}

#[derive(Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

impl BlobDoc {
    pub(super) fn parse(data: &[u8]) -> Option<BlobDoc> {
        if data.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return None;
        }
        let raw: RawBlobDoc = serde_json::from_slice(data).ok()?;
        if let Some(rootfs) = raw.rootfs {
            let diff_ids = rootfs
                .diff_ids
                .iter()
                .map(|d| Digest::parse(d))
                .collect::<Option<_>>()?;
            return Some(BlobDoc::Config(ImageConfig {
                platform: format!("{}/{}", raw.os, raw.architecture),
                created: raw.created,
                diff_ids,
                content: Digest::of(data),
            }));
        }
        let config_digest = raw
            .config
            .as_ref()
            .and_then(|config| config.get("digest")?.as_str().map(str::to_string));
        match (config_digest, raw.manifests) {
            (Some(config), None) => Some(BlobDoc::Manifest {
                config,
                layers: raw.layers.into_iter().map(|l| l.digest).collect(),
            }),
            (None, Some(manifests)) => Some(BlobDoc::Index { manifests }),
            _ => None,
        }
    }
}

/// An OCI platform: `os`, `architecture`, `variant`.
#[derive(Deserialize, Clone, Debug)]
pub(crate) struct Platform {
    #[serde(default)]
    pub(crate) architecture: String,
    #[serde(default)]
    pub(crate) os: String,
    pub(crate) variant: Option<String>,
}

/// `os/architecture[/variant]`, as docker writes platforms.
impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        match &self.variant {
            Some(variant) => write!(f, "/{variant}"),
            None => Ok(()),
        }
    }
}
