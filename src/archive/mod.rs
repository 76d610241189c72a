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
//! - `contents`: the data it is learnt into (`Contents`, `ArchivedImage`, `LeftOut`, `Choice`).
//! - `layout`: the OCI and `docker image save` documents as serde reads them.
//! - `entries`: the entry names seen, each once, none through a link.
//! - `naming`: the held-back metadata rewritten to name IMAGE only.
//! - `platform`: this host's platform and the choice among a multi-platform index's images.
//! - `recipes`: layer recipes rebuilt, and layers' content kept, through the caller.
//! - `limits`: the bounds hostile input meets.

mod catalog;
mod contents;
mod entries;
mod header;
mod input;
mod layout;
mod limits;
mod naming;
mod platform;
mod recipes;
mod walker;

#[cfg(test)]
mod tests;

use std::io::{Read, Write};
use std::thread;

use anyhow::Result;

pub use contents::{
    listing, ArchivedImage, Choice, Contents, Format, Forwarded, ImageConfig, LeftOut, LeftOutLayer,
};
pub use input::Compression;
pub(crate) use layout::{Descriptor, ManifestItem, OciIndex};
pub use limits::{Limits, DISK_RESERVE_ENV};
pub use platform::host_platform;
pub(crate) use platform::images_of;
pub use recipes::{Content, NoContent, RebuiltLayer};

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
/// Layer recipes are rebuilt, and layers' content kept, through `content` (docs/delta.md).
pub fn forward<R: Read + Send, W: Write>(
    input: R,
    sink: W,
    limits: &Limits,
    content: &mut dyn Content,
    check: impl FnOnce(&Contents) -> Result<Choice>,
) -> Result<Forwarded> {
    let decoded = input::decode(input)?;
    let compression = decoded.compression;
    thread::scope(|scope| {
        // Reading and decompressing on their own thread overlap with the writes to the engine,
        // which block until it has read.
        let input = input::TarInput::start(scope, decoded, limits);
        let mut walker = walker::Walker::new(input, sink, *limits, content);
        walker.walk()?;
        let (images, format) = walker.learn()?;
        let contents = Contents {
            images,
            compression,
            format,
            oci_layout: walker.holds("oci-layout"),
            recipes: walker.recipes(),
        };
        let choice = check(&contents)?;
        walker.release(&choice)?;
        Ok(Forwarded { contents, choice })
    })
}
