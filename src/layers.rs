//! Which layers this host holds, by the rule of its image store (docs/slim.md), and which of
//! the layers a slim archive leaves out it does not hold.
//!
//! - Classic store: the engine keys layers by ChainID, and `docker image load` takes a layer
//!   an archive leaves out from the engine when it holds that ChainID. Every ChainID of every
//!   image the engine lists is held.
//! - Containerd store: the load takes a left-out layer only when the content store holds that
//!   very blob digest, and otherwise makes a broken image (docs/engines.md §5). Without
//!   containerd's socket the plugin knows this soundly only for images it loaded itself: after
//!   each load it notes the layer blobs of the image manifest it chose, under the loaded
//!   image's ID. The blobs of the notes of images the engine still lists are held (an image
//!   the engine lists keeps its blobs from containerd's garbage collection; a broken one is not
//!   listed). Images loaded otherwise contribute nothing: fewer savings, never a broken image.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::path::PathBuf;

use anyhow::Context;

use crate::archive::{self, Contents};
use crate::digest::{chain_ids, Digest, ImageId};
use crate::docker::{Docker, Store};
use crate::host::{self, Host};
use crate::protocol::{self, Answer, CLASSIC, CONTAINERD};
use crate::state;
use crate::version;

/// What the host holds, by its store's rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLayers {
    pub store: Store,
    /// Classic store: the ChainIDs of every listed image's layers.
    pub chains: BTreeSet<Digest>,
    /// Containerd store: the layer blobs noted for the listed images the plugin loaded.
    pub blobs: BTreeSet<Digest>,
}

impl HeldLayers {
    /// The line `image:layers` prints: sets, so sorted and each once.
    pub fn answer(&self) -> Answer {
        let strings = |set: &BTreeSet<Digest>| set.iter().map(|d| d.to_string()).collect();
        Answer {
            store: match self.store {
                Store::Classic => CLASSIC,
                Store::Containerd => CONTAINERD,
            }
            .to_string(),
            chains: strings(&self.chains),
            blobs: strings(&self.blobs),
            version: Some(version::VERSION.to_string()),
            delta: Some(protocol::DELTA_VERSION),
        }
    }
}

/// What the engine behind `docker`, whose store is `store`, holds now. Notes of images it no
/// longer has are removed.
pub fn held(host: &Host, docker: &Docker, store: Store) -> anyhow::Result<HeldLayers> {
    let mut held = HeldLayers {
        store,
        chains: BTreeSet::new(),
        blobs: BTreeSet::new(),
    };
    match store {
        Store::Classic => {
            for stack in docker.layer_stacks(&docker.image_ids()?)? {
                held.chains.extend(chain_ids(&stack));
            }
        }
        Store::Containerd => held.blobs = noted_blobs(host, docker)?,
    }
    Ok(held)
}

/// The layers `contents` leaves out that the host does not hold, as short digests (diff IDs
/// for `manifest.json` layers, blob digests for OCI ones), each once, in archive order.
pub fn not_held(contents: &Contents, held: &HeldLayers) -> Vec<String> {
    let mut missing: Vec<&Digest> = Vec::new();
    // Hashed: an archive may leave out a hundred thousand layers.
    let mut named: HashSet<&Digest> = HashSet::new();
    for image in &contents.images {
        let left_out = &image.left_out;
        let not_held: Vec<&Digest> = match held.store {
            // The classic engine loads manifest.json and keys layers by ChainID; an OCI-only
            // archive names its layers by blob digests, which this store does not keep.
            Store::Classic => match contents.format {
                archive::Format::DockerSave => left_out
                    .layers
                    .iter()
                    .filter(|layer| !held.chains.contains(&layer.chain_id))
                    .map(|layer| &layer.diff_id)
                    .collect(),
                archive::Format::OciLayout => left_out.blobs.iter().collect(),
            },
            // The containerd store needs the very blobs of the manifest it imports; an archive
            // without one (legacy layout) makes the engine write its own, of no known blobs.
            Store::Containerd if image.targets.is_empty() => {
                left_out.layers.iter().map(|layer| &layer.diff_id).collect()
            }
            Store::Containerd => left_out
                .blobs
                .iter()
                .filter(|blob| !held.blobs.contains(*blob))
                .collect(),
        };
        for digest in not_held {
            if named.insert(digest) {
                missing.push(digest);
            }
        }
    }
    missing.into_iter().map(|d| d.short().to_string()).collect()
}

/// How many distinct layers `contents` leaves out, as the host's store counts them.
pub fn left_out_count(contents: &Contents, store: Store) -> usize {
    let mut distinct: BTreeSet<&Digest> = BTreeSet::new();
    for image in &contents.images {
        match store {
            Store::Classic if contents.format == archive::Format::DockerSave => {
                distinct.extend(image.left_out.layers.iter().map(|layer| &layer.chain_id))
            }
            _ => distinct.extend(&image.left_out.blobs),
        }
    }
    distinct.len()
}

/// Notes that the content store holds these layer blobs for as long as image `id` is listed.
/// Written whole to a temporary file and renamed, so a reader never sees half a note.
pub fn note_blobs(host: &Host, id: &ImageId, blobs: &[Digest]) -> anyhow::Result<()> {
    let dir = state::blobs_dir(host);
    host::create_dirs(&dir)?;
    let text: String = blobs.iter().map(|blob| format!("{blob}\n")).collect();
    state::write_whole(host, &dir.join(id.hex()), text.as_bytes(), 0o644)
}

/// Drops the note of an image that was removed.
pub fn forget_blobs(host: &Host, id: &ImageId) {
    let _ = host::remove_if_present(&state::blobs_dir(host).join(id.hex()));
}

/// The blobs noted for the images the engine still has; the notes of the others are removed.
/// A note removed for an image that was being loaded meanwhile only costs savings.
fn noted_blobs(host: &Host, docker: &Docker) -> anyhow::Result<BTreeSet<Digest>> {
    let notes = notes(host)?;
    let ids: Vec<ImageId> = notes.iter().map(|(id, _)| id.clone()).collect();
    blobs_of_existing(notes, &docker.existing(&ids)?)
}

/// Every note: its image ID and its file.
fn notes(host: &Host) -> anyhow::Result<Vec<(ImageId, PathBuf)>> {
    let dir = state::blobs_dir(host);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err).with_context(|| format!("cannot list {}", dir.display())),
    };
    let mut notes = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        if let Some(id) = entry.file_name().to_str().and_then(Digest::from_hex) {
            notes.push((id, entry.path()));
        }
    }
    Ok(notes)
}

/// The blobs of the notes whose image is in `existing`; the other notes are removed.
fn blobs_of_existing(
    notes: Vec<(ImageId, PathBuf)>,
    existing: &BTreeSet<ImageId>,
) -> anyhow::Result<BTreeSet<Digest>> {
    let mut blobs = BTreeSet::new();
    for (id, path) in notes {
        if !existing.contains(&id) {
            host::remove_if_present(&path)?;
            continue;
        }
        let text =
            fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        blobs.extend(text.lines().filter_map(Digest::parse));
    }
    Ok(blobs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::{ArchivedImage, Compression, Format, LeftOut, LeftOutLayer};

    /// Digests whose short forms differ too.
    fn digest(n: u32) -> Digest {
        Digest::from_hex(&format!("{n:064x}").chars().rev().collect::<String>()).unwrap()
    }

    /// One image leaving out layers 1 (ChainID 11, blob 21) and 2 (ChainID 12, blob 22).
    fn slim(format: Format, targets: Vec<Digest>) -> Contents {
        let layer = |n: u32| LeftOutLayer {
            position: n as usize,
            path: format!("{n}/layer.tar"),
            diff_id: digest(n),
            chain_id: digest(10 + n),
        };
        let blobs = if targets.is_empty() {
            Vec::new()
        } else {
            vec![digest(21), digest(22)]
        };
        let layers = match format {
            Format::DockerSave => vec![layer(1), layer(2)],
            Format::OciLayout => Vec::new(),
        };
        Contents {
            images: vec![ArchivedImage {
                config: digest(9),
                tags: vec!["app:1".into()],
                targets,
                facts: None,
                blobs: blobs.clone(),
                left_out: LeftOut { layers, blobs },
            }],
            compression: Compression::None,
            format,
            oci_layout: format == Format::OciLayout,
            recipes: Vec::new(),
        }
    }

    fn held(store: Store, chains: &[u32], blobs: &[u32]) -> HeldLayers {
        HeldLayers {
            store,
            chains: chains.iter().map(|&n| digest(n)).collect(),
            blobs: blobs.iter().map(|&n| digest(n)).collect(),
        }
    }

    fn shorts(ns: &[u32]) -> Vec<String> {
        ns.iter().map(|&n| digest(n).short().to_string()).collect()
    }

    #[test]
    fn classic_holds_a_layer_by_its_chain_id_only() {
        let contents = slim(Format::DockerSave, vec![digest(30)]);
        assert!(not_held(&contents, &held(Store::Classic, &[11, 12], &[])).is_empty());
        // Held blobs or diff IDs are no ChainIDs.
        assert_eq!(
            not_held(&contents, &held(Store::Classic, &[11, 2, 22], &[21, 22])),
            shorts(&[2])
        );
        assert_eq!(left_out_count(&contents, Store::Classic), 2);
        // An OCI-only archive: refused whatever the engine holds.
        let oci = slim(Format::OciLayout, vec![digest(30)]);
        assert_eq!(
            not_held(&oci, &held(Store::Classic, &[11, 12, 21, 22], &[])),
            shorts(&[21, 22])
        );
    }

    #[test]
    fn containerd_holds_a_layer_by_its_noted_blob_only() {
        let contents = slim(Format::DockerSave, vec![digest(30)]);
        assert!(not_held(&contents, &held(Store::Containerd, &[], &[21, 22])).is_empty());
        assert_eq!(
            not_held(&contents, &held(Store::Containerd, &[11, 12], &[22])),
            shorts(&[21])
        );
        assert_eq!(left_out_count(&contents, Store::Containerd), 2);
        // A legacy archive: the engine writes a manifest of its own; refused.
        let legacy = slim(Format::DockerSave, Vec::new());
        assert_eq!(
            not_held(
                &legacy,
                &held(Store::Containerd, &[11, 12], &[1, 2, 21, 22])
            ),
            shorts(&[1, 2])
        );
    }

    #[test]
    fn a_layer_two_images_leave_out_is_named_once() {
        let mut contents = slim(Format::DockerSave, vec![digest(30)]);
        let mut other = contents.images[0].clone();
        other.config = digest(8);
        contents.images.push(other);
        assert_eq!(
            not_held(&contents, &held(Store::Classic, &[], &[])),
            shorts(&[1, 2])
        );
        assert_eq!(left_out_count(&contents, Store::Containerd), 2);
    }

    // An archive leaving out 100,000 layers the host lacks: each was looked for among those
    // listed so far (minutes). No timed assertion: quadratic work would show without one.
    #[test]
    fn regression_many_layers_left_out_are_listed_in_linear_time() {
        let mut contents = slim(Format::OciLayout, vec![digest(30)]);
        let blobs: Vec<Digest> = (0..100_000).map(|n| digest(1_000_000 + n)).collect();
        contents.images[0].left_out.blobs = blobs.clone();
        contents.images.push(contents.images[0].clone());
        let missing = not_held(&contents, &held(Store::Containerd, &[], &[]));
        assert_eq!(missing.len(), blobs.len());
        assert_eq!(missing[0], blobs[0].short());
    }

    /// The blobs noted for the images of `existing`, as the engine would answer.
    fn noted(host: &Host, existing: &[Digest]) -> BTreeSet<Digest> {
        blobs_of_existing(notes(host).unwrap(), &existing.iter().cloned().collect()).unwrap()
    }

    #[test]
    fn notes_count_while_their_image_exists_and_go_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::under(dir.path());
        assert!(noted(&host, &[digest(1)]).is_empty());
        note_blobs(&host, &digest(1), &[digest(21), digest(22)]).unwrap();
        note_blobs(&host, &digest(2), &[digest(22), digest(23)]).unwrap();
        let both = noted(&host, &[digest(1), digest(2)]);
        assert_eq!(both, [21, 22, 23].map(digest).into_iter().collect());
        // Image 1 is gone: its note is removed, its blobs no longer count.
        let left = noted(&host, &[digest(2), digest(3)]);
        assert_eq!(left, [22, 23].map(digest).into_iter().collect());
        assert!(!state::blobs_dir(&host).join(digest(1).hex()).exists());
        assert!(state::blobs_dir(&host).join(digest(2).hex()).is_file());
        forget_blobs(&host, &digest(2));
        assert!(noted(&host, &[digest(2)]).is_empty());
        // Rewriting a note replaces it whole.
        note_blobs(&host, &digest(2), &[digest(24)]).unwrap();
        let rewritten = noted(&host, &[digest(2)]);
        assert_eq!(rewritten, [digest(24)].into_iter().collect());
        assert_eq!(fs::read_dir(state::blobs_dir(&host)).unwrap().count(), 1);
    }
}
