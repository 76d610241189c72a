//! What an archive holds, as [`super::forward`] learns it and its check sees it: the images,
//! what a slim archive leaves out of each, and the one image and name chosen to load. Data
//! only: it reads nothing.

use anyhow::{anyhow, Result};

use super::input::Compression;
use super::recipes::RebuiltLayer;
use crate::digest::Digest;
use crate::reference::Reference;

/// The archive's layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `docker image save` output: `manifest.json`, with or without an OCI `index.json` beside it.
    DockerSave,
    /// An OCI image layout with `index.json` only.
    OciLayout,
}

/// One image the archive holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedImage {
    /// The config digest, which is the image ID on Docker's classic store.
    pub config: Digest,
    /// The image's names as written in the archive (`alpine:latest`, `docker.io/library/app:1`).
    pub tags: Vec<String>,
    /// The digests `index.json` names the image by, outermost first: the manifest or index its
    /// descriptor points at, then (through nested indexes) the image manifest chosen for this
    /// host. The containerd store takes the first for the image's ID. Empty without an
    /// `index.json` entry for the image.
    pub targets: Vec<Digest>,
    /// What the archive's copy of the image's config says, when it was small enough to read.
    pub facts: Option<ImageConfig>,
    /// The layer blobs of the image manifest `targets` ends at, bottom first, whether the
    /// archive holds them or not. Empty without one.
    pub blobs: Vec<Digest>,
    /// The layers the image names that the archive leaves out (a slim archive, sent on the
    /// understanding that the host holds them).
    pub left_out: LeftOut,
}

/// What a slim archive leaves out of one image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeftOut {
    /// Layers `manifest.json` names without the archive holding them.
    pub layers: Vec<LeftOutLayer>,
    /// Layer blobs the image manifest `targets` ends at names without the archive holding
    /// them.
    pub blobs: Vec<Digest>,
}

impl LeftOut {
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty() && self.blobs.is_empty()
    }
}

/// A layer of `manifest.json` the archive leaves out, identified through the config's diff IDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOutLayer {
    /// Its place in the image's layers, bottom first.
    pub position: usize,
    /// Its path as `manifest.json` names it, normalised.
    pub path: String,
    pub diff_id: Digest,
    /// The ChainID the classic store keys the layer (and those below it) by.
    pub chain_id: Digest,
}

/// What an image's config says about it: enough to recognise the image where the engine made
/// a manifest of its own (a legacy archive loaded into the containerd store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageConfig {
    /// `os/architecture`.
    pub platform: String,
    /// The creation time, as written.
    pub created: Option<String>,
    /// The layers' uncompressed digests, bottom first.
    pub diff_ids: Vec<Digest>,
    /// The digest of the config's bytes as the archive holds them: the image ID a classic
    /// engine gives the image, whatever name the archive files the config under.
    pub content: Digest,
}

/// What [`forward`] learnt about an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contents {
    pub images: Vec<ArchivedImage>,
    pub compression: Compression,
    pub format: Format,
    /// The archive has an `oci-layout` entry: the containerd store then imports the images of
    /// `index.json` and ignores `manifest.json`.
    pub oci_layout: bool,
    /// The layers rebuilt from recipes (docs/delta.md).
    pub recipes: Vec<RebuiltLayer>,
}

impl Contents {
    /// The image one of whose tags names the same image as `wanted` once normalised
    /// (`alpine` = `alpine:latest` = `docker.io/library/alpine:latest`). Tags that do not parse
    /// as references are skipped.
    pub fn find(&self, wanted: &Reference) -> Option<&ArchivedImage> {
        self.images.iter().find(|image| {
            image
                .tags
                .iter()
                .filter_map(|tag| Reference::parse(tag).ok())
                .any(|tag| tag.same_as(wanted))
        })
    }

    /// The image `wanted` names, as the one image the engine is to load, under that name only;
    /// an error listing what the archive holds when it has no such image.
    pub fn choose(&self, wanted: &Reference) -> Result<Choice> {
        let image = self.find(wanted).ok_or_else(|| self.not_held(wanted))?;
        Ok(Choice {
            image: image.clone(),
            name: wanted.clone(),
        })
    }

    fn not_held(&self, wanted: &Reference) -> anyhow::Error {
        let tags = self.all_tags();
        if tags.is_empty() {
            anyhow!(
                "the archive does not hold {wanted}: it has no tagged images; nothing was loaded"
            )
        } else {
            anyhow!(
                "the archive does not hold {wanted}; it holds {}; nothing was loaded",
                listing(&tags)
            )
        }
    }

    /// The archive's names the engine is not given with `choice`, sorted, each once.
    pub fn dropped_names(&self, choice: &Choice) -> Vec<String> {
        let mut dropped: Vec<String> = self
            .all_tags()
            .into_iter()
            .filter(|tag| Reference::parse(tag).map_or(true, |tag| !tag.same_as(&choice.name)))
            .collect();
        dropped.dedup();
        dropped
    }

    /// Whether any image names layers the archive leaves out.
    pub fn is_slim(&self) -> bool {
        self.images.iter().any(|image| !image.left_out.is_empty())
    }

    /// Every tag of every image, sorted: `docker image save` writes its images in no fixed
    /// order, and a message listing them should read the same for the same archive content.
    pub fn all_tags(&self) -> Vec<String> {
        let mut tags: Vec<String> = self
            .images
            .iter()
            .flat_map(|image| image.tags.iter().cloned())
            .collect();
        tags.sort_unstable();
        tags
    }
}

/// A list of names for a message: the first few, and how many more.
pub fn listing(names: &[String]) -> String {
    const SHOWN: usize = 20;
    match names.len().checked_sub(SHOWN) {
        Some(more) if more > 0 => format!("{} and {more} more", names[..SHOWN].join(", ")),
        _ => names.join(", "),
    }
}

/// The one image of the archive the engine is to load, and the one name it is to give it.
/// Made by [`Contents::choose`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub(super) image: ArchivedImage,
    pub(super) name: Reference,
}

impl Choice {
    pub fn image(&self) -> &ArchivedImage {
        &self.image
    }

    pub fn name(&self) -> &Reference {
        &self.name
    }
}

/// What [`forward`] passed to the engine: what the archive holds, and what the check chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    pub contents: Contents,
    pub choice: Choice,
}
