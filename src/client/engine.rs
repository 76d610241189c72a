//! A push through the client's engine (docs/registry.md): on a containerd-store engine, which
//! knows its blobs' digests without reading them, the client serves a registry on a loopback
//! port ([`Registry`]), tags the image there under a throwaway name and lets the engine
//! `docker push` it twice: once with every blob present, to learn the image's manifests, then
//! with only the blobs the host holds present, so the engine uploads the rest, which stream on
//! into the slim archive `image:load` takes. The throwaway tag goes when the push ends, fails
//! or is stopped by a signal.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Seek, Write};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::archive::{images_of, Descriptor, OciIndex};
use crate::cancel;
use crate::client::filter::{file_header, temp_file, LeftOutTotals};
use crate::client::held::{Holds, LeftOutPlan};
use crate::client::meter::Meter;
use crate::client::recipes::{LayerForm, RecipeTotals, Recipes, MIN_LAYER};
use crate::client::registry::{Blobs, Delivered, Manifest, Registry};
use crate::client::send::{compressor, Sent, Session};
use crate::client::streamed::Tee;
use crate::client::transport::Remote;
use crate::digest::Digest;
use crate::docker::{Docker, ImageInfo, Store};
use crate::output;
use crate::protocol::RECIPE_SUFFIX;
use crate::reference::Reference;

/// The repository of the throwaway tags on the loopback registry.
const REPOSITORY: &str = "dokku-image-push";

/// The image, tagged on the loopback registry.
pub struct ThroughEngine {
    docker: Docker,
    registry: Registry,
    reference: String,
    /// Removes the tag should a signal end the push first.
    untag: Option<cancel::Undo>,
}

/// Why the push through the engine gave up: the caller saves the image instead.
pub struct Fallback(pub String);

/// What the first push taught: the image's manifests and the one for the image's platform.
pub struct Learned {
    manifests: HashMap<Digest, Manifest>,
    root: Digest,
    image: ImageManifest,
}

/// An image manifest's config and layer descriptors.
#[derive(Debug, Clone, Deserialize)]
struct ImageManifest {
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

impl ThroughEngine {
    /// Whether the push goes through the engine: see [`ThroughEngine::prepare`].
    pub fn applies(store: Option<Store>, info: &ImageInfo) -> bool {
        !info.repo_tags.is_empty() && store == Some(Store::Containerd)
    }

    /// Starts the registry and tags the image there, when the engine keeps a containerd store
    /// (`store`, None when `docker info` could not say) and the image has a name of its own (removing the throwaway tag of an image with none
    /// would remove the image). None for the save path; a failure says so in one line.
    pub fn prepare(
        docker: &Docker,
        store: Option<Store>,
        image: &str,
        info: &ImageInfo,
    ) -> Option<ThroughEngine> {
        if !ThroughEngine::applies(store, info) {
            return None;
        }
        let prepared = (|| -> anyhow::Result<ThroughEngine> {
            cancel::install()?;
            cancel::describe(format!("the push of {image}"));
            let registry = Registry::start()?;
            let nonce = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_nanos());
            let reference = format!(
                "127.0.0.1:{}/{REPOSITORY}:{}-{nonce}",
                registry.port(),
                std::process::id()
            );
            let _critical = cancel::hold();
            docker
                .command()
                .args(["image", "tag", image, &reference])
                .read()?;
            let (untag_docker, untag_reference) = (docker.clone(), reference.clone());
            let untag = cancel::on_cancel(move || {
                let _ = untag_docker.remove(&untag_reference);
            });
            Ok(ThroughEngine {
                docker: docker.clone(),
                registry,
                reference,
                untag: Some(untag),
            })
        })();
        match prepared {
            Ok(engine) => Some(engine),
            Err(err) => {
                output::warn(format!(
                    "cannot push through this machine's engine ({}); saving the image instead",
                    first_line(&err.to_string())
                ));
                None
            }
        }
    }

    /// The first push: every blob is present, so only the manifests travel.
    pub fn learn(&self, info: &ImageInfo) -> Result<Learned, Fallback> {
        self.push()?;
        let delivered = self.registry.take_delivered();
        let Some(root) = delivered.root.clone() else {
            return Err(Fallback(
                "the engine's push did not reach this client's registry".to_string(),
            ));
        };
        // The containerd store's image ID is the digest of what its name points at: anything
        // else was not put by this push (another process of this machine can reach the port).
        if root != info.id {
            return Err(Fallback(format!(
                "the registry received {}, not the image {}",
                root.short(),
                info.id.short()
            )));
        }
        let image = image_manifest(&delivered, &root, &info.platform).ok_or_else(|| {
            Fallback(format!(
                "the pushed image has no manifest for {}",
                info.platform
            ))
        })?;
        Ok(Learned {
            manifests: delivered.manifests,
            root,
            image,
        })
    }

    /// `docker push` of the throwaway tag.
    fn push(&self) -> Result<(), Fallback> {
        let pushed = self
            .docker
            .command()
            .args(["image", "push", &self.reference])
            .output()
            .map_err(|err| Fallback(first_line(&err.to_string())))?;
        if pushed.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&pushed.stderr);
        let why = stderr
            .lines()
            .rev()
            .map(str::trim)
            .find(|line| !line.is_empty())
            .unwrap_or("no message");
        Err(Fallback(format!("`docker push` failed: {why}")))
    }

    /// The second push, into `load` on the host (through `opened`, a session started
    /// earlier, or a new one): the blobs of `present` stay out, and the layers the engine
    /// sends go as their recipes when there are `recipes` (a classic host: it takes a layer
    /// uncompressed in place of its blob). Returns what went as recipes too.
    #[allow(clippy::too_many_arguments)]
    pub fn send(
        &self,
        opened: Option<(Session, io::PipeWriter)>,
        remote: &Remote,
        load: &[String],
        image: &str,
        learned: &Learned,
        present: HashSet<Digest>,
        recipes: Option<Recipes>,
    ) -> anyhow::Result<Result<(Sent, RecipeTotals), Fallback>> {
        let (session, to_host) = match opened {
            Some(opened) => opened,
            None => Session::start(remote, load)?,
        };
        session.release();
        let layers = recipes.map(|recipes| LayerRecipes {
            recipes,
            layers: learned.compressed_layers(),
        });
        let archive = match Archive::start(to_host, layers) {
            Ok(archive) => archive,
            Err(err) => {
                session.abandon();
                return Err(err.into());
            }
        };
        let left_out = learned.left_out(&present);
        self.registry.set_present(present);
        self.registry.set_sink(Box::new(archive.clone()));
        let pushed = self.push();
        self.registry.clear_sink();
        let delivered = self.registry.take_delivered();
        let finished = match pushed {
            Err(fallback) => Err(fallback),
            Ok(()) => match self.registry.spoiled() {
                Some(why) => Err(Fallback(why)),
                None if delivered.root.as_ref() != Some(&learned.root) => Err(Fallback(
                    "the second push did not put the image the first one did".to_string(),
                )),
                None => archive
                    .finish(&metadata(image, learned, &delivered))
                    .map_err(|err| Fallback(format!("writing the archive: {err}"))),
            },
        };
        let totals = archive.recipe_totals();
        let bytes = match finished {
            Ok(bytes) => bytes,
            Err(fallback) => {
                session.abandon();
                return Ok(Err(fallback));
            }
        };
        let (status, refusals) = session.wait()?;
        Ok(Ok((
            Sent {
                status,
                refused: refusals.slim,
                recipe_refused: refusals.recipe,
                left_out,
                bytes,
            },
            totals,
        )))
    }
}

impl Drop for ThroughEngine {
    fn drop(&mut self) {
        let _critical = cancel::hold();
        if let Some(untag) = self.untag.take() {
            untag.forget(&_critical);
        }
        if let Err(err) = self.docker.remove(&self.reference) {
            output::warn(format!(
                "cannot remove the throwaway tag {}: {}",
                self.reference,
                first_line(&err.to_string())
            ));
        }
    }
}

impl Learned {
    /// The blobs of the image's layers the host holds, by its store's rule: on the classic
    /// store the blob of each layer whose ChainID it holds (the manifest's `layers[i]` is the
    /// blob of the config's `rootfs.diff_ids[i]`); on the containerd store the very blobs.
    pub fn present(&self, held: Option<&Holds>, diff_ids: &[Digest]) -> HashSet<Digest> {
        let blobs: Vec<Digest> = self
            .image
            .layers
            .iter()
            .filter_map(|layer| Digest::parse(&layer.digest))
            .collect();
        match held {
            None => HashSet::new(),
            Some(Holds::Containerd(held)) => blobs
                .into_iter()
                .filter(|blob| held.contains(blob))
                .collect(),
            Some(Holds::Classic(_)) if blobs.len() != diff_ids.len() => HashSet::new(),
            Some(held @ Holds::Classic(_)) => {
                let plan = LeftOutPlan::plan(Some(held), diff_ids);
                blobs
                    .into_iter()
                    .zip(diff_ids)
                    .filter(|(_, diff_id)| plan.diff_ids.contains(diff_id))
                    .map(|(blob, _)| blob)
                    .collect()
            }
        }
    }

    /// How many of the image's layers `present` leaves out, and their bytes as blobs.
    fn left_out(&self, present: &HashSet<Digest>) -> LeftOutTotals {
        let mut left_out = LeftOutTotals::default();
        for layer in &self.image.layers {
            if Digest::parse(&layer.digest).is_some_and(|blob| present.contains(&blob)) {
                left_out.entries += 1;
                left_out.bytes += layer.size;
            }
        }
        left_out
    }

    pub fn layers(&self) -> usize {
        self.image.layers.len()
    }

    /// The image's layer blobs by digest, with how each is compressed.
    fn compressed_layers(&self) -> HashMap<Digest, Compressed> {
        self.image
            .layers
            .iter()
            .filter_map(|layer| {
                let compressed = if layer.media_type.contains("zstd") {
                    Compressed::Zstd
                } else if layer.media_type.contains("gzip") {
                    Compressed::Gzip
                } else {
                    Compressed::No
                };
                Some((Digest::parse(&layer.digest)?, compressed))
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy)]
enum Compressed {
    No,
    Gzip,
    Zstd,
}

/// The recipes of a push through the engine, and the layer blobs they are made for.
struct LayerRecipes {
    recipes: Recipes,
    layers: HashMap<Digest, Compressed>,
}

impl LayerRecipes {
    /// Writes layer blob `digest` as its recipe, or whole as it came.
    fn write(
        &mut self,
        out: &mut Out,
        (digest, compressed): (&Digest, Compressed),
        size: u64,
        data: &mut dyn Read,
    ) -> io::Result<()> {
        let mut blob = temp_file()?;
        let mut tee = Tee {
            data,
            copy: &mut blob,
        };
        let form = match compressed {
            Compressed::No => self.recipes.prepare(&mut tee, temp_file)?,
            Compressed::Gzip => self
                .recipes
                .prepare(&mut flate2::read::GzDecoder::new(&mut tee), temp_file)?,
            Compressed::Zstd => self
                .recipes
                .prepare(&mut zstd::stream::read::Decoder::new(&mut tee)?, temp_file)?,
        };
        // Read to its end: the registry checks the blob's digest there.
        io::copy(&mut tee, &mut io::sink())?;
        match form {
            LayerForm::Recipe { mut recipe, len } => {
                let name = format!("{}{RECIPE_SUFFIX}", digest.blob_path());
                append(out, &name, len, &mut recipe)
            }
            LayerForm::Whole(_) => {
                blob.rewind()?;
                append(out, &digest.blob_path(), size, &mut blob)
            }
        }
    }
}

/// The image manifest of `root` for `platform` (`os/architecture`): `root` itself, or the
/// first of its index's image manifests for that platform that was pushed, attestations
/// aside as the archive reader sets them aside ([`images_of`]).
fn image_manifest(delivered: &Delivered, root: &Digest, platform: &str) -> Option<ImageManifest> {
    let bytes = &delivered.manifests.get(root)?.bytes;
    let Ok(index) = serde_json::from_slice::<OciIndex>(bytes) else {
        return None;
    };
    if index.manifests.is_empty() {
        return serde_json::from_slice(bytes).ok();
    }
    let found = images_of(&index.manifests)
        .filter(|descriptor| {
            descriptor.platform.as_ref().is_none_or(|p| {
                platform.is_empty() || format!("{}/{}", p.os, p.architecture) == platform
            })
        })
        .filter_map(|descriptor| delivered.manifests.get(&Digest::parse(&descriptor.digest)?))
        .find_map(|manifest| serde_json::from_slice(&manifest.bytes).ok());
    found
}

/// The entries `docker image save IMAGE` of a containerd store ends with: every manifest as a
/// blob, then `index.json`, `manifest.json` and `oci-layout`, naming IMAGE as that save does.
fn metadata(image: &str, learned: &Learned, delivered: &Delivered) -> Vec<(String, Vec<u8>)> {
    let mut manifests: Vec<(&Digest, &Manifest)> = learned.manifests.iter().collect();
    manifests.extend(
        delivered
            .manifests
            .iter()
            .filter(|(digest, _)| !learned.manifests.contains_key(digest)),
    );
    manifests.sort_by(|a, b| a.0.cmp(b.0));
    let mut entries: Vec<(String, Vec<u8>)> = manifests
        .iter()
        .map(|(digest, manifest)| (digest.blob_path(), manifest.bytes.clone()))
        .collect();
    let root = &learned.manifests[&learned.root];
    let reference = Reference::parse(image).ok().filter(|r| !r.has_digest());
    let annotations = reference
        .as_ref()
        .map(Reference::name_annotations)
        .unwrap_or_default();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": root.media_type,
            "digest": learned.root.to_string(),
            "size": root.bytes.len(),
            "annotations": annotations,
        }],
    });
    let blob = |digest: &str| {
        Digest::parse(digest)
            .map(|d| d.blob_path())
            .unwrap_or_default()
    };
    let repo_tags: Vec<String> = reference.iter().map(|_| image.to_string()).collect();
    let manifest = serde_json::json!([{
        "Config": blob(&learned.image.config.digest),
        "RepoTags": repo_tags,
        "Layers": learned.image.layers.iter().map(|l| blob(&l.digest)).collect::<Vec<_>>(),
    }]);
    entries.push(("index.json".into(), index.to_string().into_bytes()));
    entries.push(("manifest.json".into(), manifest.to_string().into_bytes()));
    entries.push((
        "oci-layout".into(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    ));
    entries
}

type Out = tar::Builder<zstd::stream::write::Encoder<'static, Meter<io::PipeWriter>>>;

/// The slim archive on its way to the host: the registry writes the blobs as they arrive,
/// the flow the metadata at the end.
#[derive(Clone)]
struct Archive {
    out: Arc<Mutex<Option<Out>>>,
    recipes: Arc<Mutex<Option<LayerRecipes>>>,
}

impl Archive {
    fn start(to_host: io::PipeWriter, recipes: Option<LayerRecipes>) -> io::Result<Archive> {
        let mut out = tar::Builder::new(compressor(to_host)?);
        for dir in ["blobs/", "blobs/sha256/"] {
            let mut header = tar::Header::new_ustar();
            header.set_entry_type(tar::EntryType::Directory);
            header.set_path(dir)?;
            header.set_mode(0o755);
            header.set_size(0);
            header.set_cksum();
            out.append(&header, io::empty())?;
        }
        Ok(Archive {
            out: Arc::new(Mutex::new(Some(out))),
            recipes: Arc::new(Mutex::new(recipes)),
        })
    }

    /// Ends the recipes' queries; what went as recipes.
    fn recipe_totals(&self) -> RecipeTotals {
        self.recipes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
            .map(|layers| layers.recipes.finish())
            .unwrap_or_default()
    }

    /// Writes the metadata and the end marker, flushes, closes the host's stdin; returns the
    /// bytes written to it.
    fn finish(&self, entries: &[(String, Vec<u8>)]) -> io::Result<u64> {
        let mut out = self
            .out
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
            .ok_or_else(|| io::Error::other("the archive was finished already"))?;
        for (name, bytes) in entries {
            append(&mut out, name, bytes.len() as u64, &mut &bytes[..])?;
        }
        let mut meter = out.into_inner()?.finish()?;
        meter.flush()?;
        Ok(meter.bytes())
    }
}

impl Blobs for Archive {
    fn blob(&mut self, digest: &Digest, size: u64, data: &mut dyn Read) -> io::Result<()> {
        let mut out = self
            .out
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let out = out
            .as_mut()
            .ok_or_else(|| io::Error::other("the archive was finished already"))?;
        let mut recipes = self
            .recipes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match recipes.as_mut() {
            Some(layers) if size > MIN_LAYER => match layers.layers.get(digest).copied() {
                Some(compressed) => layers.write(out, (digest, compressed), size, data),
                None => append(out, &digest.blob_path(), size, data),
            },
            _ => append(out, &digest.blob_path(), size, data),
        }
    }
}

/// One file entry; `data` must yield exactly `size` bytes (a short one fails).
fn append(out: &mut Out, name: &str, size: u64, data: &mut dyn Read) -> io::Result<()> {
    out.append(&file_header(name, size, 0)?, data)
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").trim().to_string()
}

#[cfg(test)]
mod tests;
