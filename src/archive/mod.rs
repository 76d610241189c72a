//! The streaming archive reader behind `image:load`.
//!
//! `docker image save IMG | ssh host image:load APP IMG` streams an archive on stdin. [`forward`]
//! reads it exactly once, decompresses it in-process when needed (gzip, bzip2, xz, zstd: every
//! Docker engine then gets a plain tar) on a thread that reads ahead, and forwards it to
//! `docker image load` through a pipe while walking its tar entries, in memory that does not
//! grow with the archive's size.
//!
//! # Holding back the metadata
//!
//! `docker image load` imports nothing until it has read the archive's `manifest.json` (or
//! `index.json`), which `docker image save` writes after all the layers. So the reader forwards
//! every layer and blob as it passes, but holds back the metadata entries (`manifest.json`,
//! `index.json`, `repositories`, `oci-layout`) and the end-of-archive marker. Once the whole input
//! has been read and decoded, the caller's `check` sees what the archive holds (tags and image IDs);
//! only if it agrees are the held-back entries and the end marker written. When anything fails
//! (the check, truncated or corrupt input, a limit, the pipe), the loader has seen no metadata, so
//! killing it imports nothing.
//!
//! # Naming IMAGE only
//!
//! The held-back metadata is not forwarded as the archive wrote it: the check chooses one
//! image and one name (`Choice`, IMAGE), and `manifest.json` and `index.json` are rewritten so
//! that the engine loads that image under that name only; `repositories` (which an engine reads
//! only without `manifest.json`) is dropped. The rewrite leaves every digest as it was, so the
//! image gets the ID a full load gives (docs/tags.md).
//!
//! # What the engine sees is what was checked
//!
//! Every entry name appears once, and no entry's path runs through a link of the archive (a
//! classic engine extracts the archive before reading it, so `x -> .` then `x/manifest.json`
//! would write a `manifest.json` the check never saw). The configs and manifests read are
//! hashed, so the check knows whether the bytes match the digest they are named by.
//!
//! OCI-only archives (skopeo, containerd) name their images in `index.json` but give the config
//! digest (the Docker image ID) only inside the image manifest blobs. Those are small JSON files, so
//! a copy of each small blob that parses as a manifest or index is kept while it is forwarded, and
//! the index is resolved at the end.
//!
//! # Slim archives
//!
//! A client may leave out layers the host already holds (docs/slim.md). A layer a manifest names
//! but the archive lacks is then no error: each image reports what it leaves out (`LeftOut`),
//! and the caller's check decides whether the host holds it before anything is imported.
//!
//! # Where each job lives
//!
//! - `input`: compression detection, the decoders, the read-ahead thread, byte counting.
//! - `header`: one tar header at a time, as docker's Go reader reads it (PAX and GNU
//!   extensions, names, sizes, padding, checksums).
//! - `walker`: the walk over the entries, forwarding data and holding back the metadata.
//! - `catalog`: what the archive holds, learnt from the metadata and the small blobs.
//! - `entries`: the entry names seen, each once, none through a link.
//! - `naming`: the held-back metadata rewritten to name IMAGE only.
//! - `platform`: this host's platform and the choice among a multi-platform index's images.
//! - `limits`: the bounds hostile input meets.

mod catalog;
mod entries;
mod header;
mod input;
mod limits;
mod naming;
mod platform;
mod walker;

#[cfg(test)]
mod tests;

use std::io::{Read, Write};
use std::thread;

use anyhow::{anyhow, Result};

use crate::digest::Digest;
use crate::reference::Reference;

pub use input::Compression;
pub use limits::{Limits, DISK_RESERVE_ENV};
pub use platform::host_platform;

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
    image: ArchivedImage,
    name: Reference,
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

/// Streams `input` (compressed or plain) into `sink` as a plain tar.
///
/// Metadata entries (`manifest.json`, `index.json`, `repositories`, `oci-layout`) are held back;
/// small OCI manifest blobs are forwarded but also kept in memory to learn config digests. At the
/// end of the archive `check(&contents)` runs and chooses the image to load and its name; only
/// when it returns `Ok` are the held-back entries, rewritten to name that image only, and the
/// end-of-archive blocks written and the sink flushed. When anything fails (check rejects,
/// truncated input, garbage, limits exceeded, sink write error) this returns `Err` and the sink
/// has not received the metadata or the end-of-archive marker, so the caller can kill `docker
/// image load` and nothing is imported. An error from `check` is returned unchanged.
pub fn forward<R: Read + Send, W: Write>(
    input: R,
    sink: W,
    limits: &Limits,
    check: impl FnOnce(&Contents) -> Result<Choice>,
) -> Result<Forwarded> {
    let decoded = input::decode(input)?;
    let compression = decoded.compression;
    thread::scope(|scope| {
        // Reading and decompressing on their own thread overlap with the writes to the engine,
        // which block until it has read.
        let input = input::TarInput::start(scope, decoded, limits);
        let mut walker = walker::Walker::new(input, sink, *limits);
        walker.walk()?;
        let (images, format) = walker.learn()?;
        let contents = Contents {
            images,
            compression,
            format,
            oci_layout: walker.holds("oci-layout"),
        };
        let choice = check(&contents)?;
        walker.release(&choice)?;
        Ok(Forwarded { contents, choice })
    })
}
