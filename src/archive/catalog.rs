//! What the archive holds, learnt from what the walker saw: the names of all entries, the
//! held-back `manifest.json` and `index.json`, and the small JSON blobs (OCI manifests and
//! indexes, image configs) kept on the way. It reads neither the input nor the sink.

use std::collections::{HashMap, HashSet};

use anyhow::{anyhow, bail, Result};

use super::contents::{ArchivedImage, Format, ImageConfig, LeftOut, LeftOutLayer};
use super::entries::Entries;
use super::header::normalize;
use super::layout::{BlobDoc, Descriptor, ManifestItem, OciIndex};
use super::limits::{MAX_INDEX_DEPTH, MAX_KEPT_BLOB, MAX_KEPT_BLOBS_TOTAL};
use super::platform::{choose_platform, host_platform, platforms, NoHostPlatform};
use super::recipes::RebuiltLayer;
use crate::digest::{chain_ids, Digest};
use crate::output::human_bytes;
use crate::protocol;
use crate::reference::{CONTAINERD_NAME_ANNOTATION, OCI_REF_NAME_ANNOTATION};

/// The entries seen so far and the blobs kept to be read at the end.
pub(super) struct Catalog {
    /// Every entry's name, to check what the manifests refer to.
    entries: Entries,
    /// Small OCI manifests, indexes and image configs by digest.
    blobs: HashMap<Digest, BlobDoc>,
    kept_blob_bytes: u64,
    /// The layers rebuilt from recipes, which the metadata must name.
    rebuilt: Vec<RebuiltLayer>,
}

impl Catalog {
    pub(super) fn new() -> Catalog {
        Catalog {
            entries: Entries::new(),
            blobs: HashMap::new(),
            kept_blob_bytes: 0,
            rebuilt: Vec::new(),
        }
    }

    /// Notes a layer rebuilt from its recipe, to be checked against the metadata.
    pub(super) fn rebuilt(&mut self, layer: RebuiltLayer) {
        self.rebuilt.push(layer);
    }

    pub(super) fn rebuilt_layers(&self) -> &[RebuiltLayer] {
        &self.rebuilt
    }

    /// Notes an entry's (normalised) name, or refuses it (`Entries::add`).
    pub(super) fn saw(&mut self, name: &str, entry_type: tar::EntryType) -> Result<()> {
        self.entries.add(name, entry_type)
    }

    /// The digest of an entry worth a copy (an OCI blob or a legacy `<hex>.json` config: it may
    /// be a manifest, an index or a config), when there is still room for it.
    pub(super) fn wants(&self, name: &str, data_len: u64) -> Option<Digest> {
        let hex = name
            .strip_prefix("blobs/sha256/")
            .or_else(|| name.strip_suffix(".json").filter(|hex| !hex.contains('/')))?;
        let digest = Digest::from_hex(hex)?;
        (data_len <= MAX_KEPT_BLOB && self.kept_blob_bytes + data_len <= MAX_KEPT_BLOBS_TOTAL)
            .then_some(digest)
    }

    /// Keeps a blob asked for by [`Catalog::wants`], when it is a manifest, an index or a
    /// config.
    pub(super) fn keep(&mut self, digest: Digest, data: &[u8]) {
        if let Some(doc) = BlobDoc::parse(data) {
            self.kept_blob_bytes += data.len() as u64;
            self.blobs.insert(digest, doc);
        }
    }

    /// The images the archive holds, from its `manifest.json` when it has one (it is what the
    /// engine loads), else from its `index.json`.
    pub(super) fn learn(
        &self,
        manifest: Option<&[u8]>,
        index: Option<&[u8]>,
    ) -> Result<(Vec<ArchivedImage>, Format)> {
        let mut named = Vec::new();
        let (images, format) = if let Some(manifest) = manifest {
            let mut images = self.learn_manifest(manifest, &mut named)?;
            if let Some(index) = index {
                self.add_targets(&mut images, index);
            }
            (images, Format::DockerSave)
        } else if let Some(index) = index {
            (self.learn_index(index)?, Format::OciLayout)
        } else {
            bail!("archive holds no manifest.json or index.json: not a docker image archive")
        };
        for image in &images {
            named.extend(
                image
                    .blobs
                    .iter()
                    .map(|blob| (blob.blob_path(), blob.clone())),
            );
        }
        self.check_recipes(&named)?;
        Ok((images, format))
    }

    /// Every layer rebuilt from a recipe is one an image names, by that digest: a layer of
    /// `manifest.json` paired with its config's diff ID, or an uncompressed layer blob.
    fn check_recipes(&self, named: &[(String, Digest)]) -> Result<()> {
        for layer in &self.rebuilt {
            if !named
                .iter()
                .any(|(path, digest)| *path == layer.name && *digest == layer.diff_id)
            {
                bail!(protocol::recipe_refusal(
                    &layer.name,
                    &format!(
                        "the archive names no layer {} of diff ID {}",
                        layer.name, layer.diff_id
                    )
                ));
            }
        }
        Ok(())
    }

    pub(super) fn holds(&self, name: &str) -> bool {
        self.entries.holds(&normalize(name))
    }

    fn require(&self, what: &str, name: &str) -> Result<()> {
        if !self.holds(name) {
            bail!("{what} names {name}, which the archive does not contain");
        }
        Ok(())
    }

    /// The layers of a `manifest.json` item the archive leaves out. Only the config's diff
    /// IDs say which layer the host would have to hold: without them (or when they do not
    /// match the layers one to one) a missing layer is refused as before.
    fn omitted_layers(
        &self,
        layers: &[String],
        facts: Option<&ImageConfig>,
    ) -> Result<Vec<LeftOutLayer>> {
        let diff_ids = facts
            .map(|facts| facts.diff_ids.as_slice())
            .filter(|diff_ids| diff_ids.len() == layers.len());
        let chains = diff_ids.map(chain_ids).unwrap_or_default();
        let mut left_out = Vec::new();
        for (position, layer) in layers.iter().enumerate() {
            if self.holds(layer) {
                continue;
            }
            let (Some(diff_ids), Some(chain_id)) = (diff_ids, chains.get(position)) else {
                bail!("manifest.json names {layer}, which the archive does not contain");
            };
            left_out.push(LeftOutLayer {
                position,
                path: normalize(layer),
                diff_id: diff_ids[position].clone(),
                chain_id: chain_id.clone(),
            });
        }
        Ok(left_out)
    }

    /// The images of `manifest.json`; each layer path it names, paired with its diff ID, goes
    /// to `named`.
    fn learn_manifest(
        &self,
        data: &[u8],
        named: &mut Vec<(String, Digest)>,
    ) -> Result<Vec<ArchivedImage>> {
        let items: Vec<ManifestItem> = serde_json::from_slice(data)
            .map_err(|e| anyhow!("manifest.json is not a valid docker image manifest: {e}"))?;
        if items.is_empty() {
            bail!("manifest.json lists no images");
        }
        let mut images = ImageSet::default();
        for item in items {
            let id = config_id(&item.config).ok_or_else(|| {
                anyhow!(
                    "manifest.json names config {:?}, which is not a sha256 digest",
                    item.config
                )
            })?;
            self.require("manifest.json", &item.config)?;
            let mut image = self.image(id, Vec::new());
            image.left_out.layers = self.omitted_layers(&item.layers, image.facts.as_ref())?;
            if let Some(facts) = image
                .facts
                .as_ref()
                .filter(|facts| facts.diff_ids.len() == item.layers.len())
            {
                named.extend(
                    item.layers
                        .iter()
                        .map(|path| normalize(path))
                        .zip(facts.diff_ids.iter().cloned()),
                );
            }
            images.add(image, item.repo_tags.unwrap_or_default());
        }
        Ok(images.images)
    }

    /// Beside a `manifest.json`, an `index.json` names the same images by their manifest (or
    /// index) digest: what the containerd store, which imports the OCI layout, takes for
    /// their ID. Descriptors that cannot be resolved are left out: `manifest.json` is what a
    /// classic engine loads.
    fn add_targets(&self, images: &mut [ArchivedImage], index: &[u8]) {
        let Ok(index) = serde_json::from_slice::<OciIndex>(index) else {
            return;
        };
        // Looked up by config, each descriptor's digest resolved once: an index of many
        // descriptors must not cost the product of their number and the images'.
        let by_config: HashMap<Digest, usize> = images
            .iter()
            .enumerate()
            .rev()
            .map(|(at, image)| (image.config.clone(), at))
            .collect();
        let mut resolver = Resolver::new(self);
        for descriptor in &index.manifests {
            let Ok(resolved) = resolver.resolve(descriptor) else {
                continue;
            };
            let Some(&at) = by_config.get(&resolved.config) else {
                continue;
            };
            let image = &mut images[at];
            if image.targets.is_empty() {
                image.targets = resolved.targets.clone();
                image.blobs = resolved.layers.clone();
                image.left_out.blobs = resolved.left_out.clone();
            }
        }
    }

    /// An image with config `config`, with what the archive's copy of that config says.
    fn image(&self, config: Digest, targets: Vec<Digest>) -> ArchivedImage {
        let facts = match self.blobs.get(&config) {
            Some(BlobDoc::Config(facts)) => Some(facts.clone()),
            _ => None,
        };
        ArchivedImage {
            config,
            tags: Vec::new(),
            targets,
            facts,
            blobs: Vec::new(),
            left_out: LeftOut::default(),
        }
    }

    fn learn_index(&self, data: &[u8]) -> Result<Vec<ArchivedImage>> {
        let index: OciIndex = serde_json::from_slice(data)
            .map_err(|e| anyhow!("index.json is not a valid OCI image index: {e}"))?;
        if index.manifests.is_empty() {
            bail!("index.json lists no images");
        }
        let mut images = ImageSet::default();
        let mut resolver = Resolver::new(self);
        for descriptor in &index.manifests {
            let annotations = &descriptor.annotations;
            // A bare `ref.name` ("latest") says nothing about the repository, so it cannot match.
            let name = annotations
                .get(CONTAINERD_NAME_ANNOTATION)
                .or_else(|| {
                    annotations
                        .get(OCI_REF_NAME_ANNOTATION)
                        .filter(|name| name.contains(':') || name.contains('/'))
                })
                .cloned();
            let resolved = resolver.resolve(descriptor).map_err(|err| {
                match (err.downcast_ref::<NoHostPlatform>(), &name) {
                    (Some(missing), Some(name)) => anyhow!(
                        "the archive holds {name} only for {}, not for this host's platform {}; nothing was loaded",
                        missing.platforms,
                        host_platform()
                    ),
                    _ => err,
                }
            })?;
            let tags = name.into_iter().collect();
            if images.has(&resolved.config) {
                images.add_tags(&resolved.config, tags);
                continue;
            }
            let mut image = self.image(resolved.config.clone(), resolved.targets.clone());
            image.blobs = resolved.layers.clone();
            image.left_out.blobs = resolved.left_out.clone();
            images.add(image, tags);
        }
        Ok(images.images)
    }

    /// The config of the image a descriptor in `index.json` (or a nested index) names, for
    /// this host's platform, and the digests on the way to it.
    fn resolve(&self, descriptor: &Descriptor, depth: usize) -> Result<Resolved> {
        let digest = descriptor_digest(descriptor)?;
        let path = digest.blob_path();
        self.require("index.json", &path)?;
        match self.blobs.get(&digest) {
            None | Some(BlobDoc::Config(_)) => bail!(
                "{path} is not an OCI image manifest or index of at most {}",
                human_bytes(MAX_KEPT_BLOB)
            ),
            Some(BlobDoc::Manifest { config, layers }) => {
                let config = sha256(config, || {
                    format!("{path} names config {config:?}, which is not a sha256 digest")
                })?;
                self.require(&path, &config.blob_path())?;
                let layers = layers
                    .iter()
                    .map(|layer| {
                        sha256(layer, || {
                            format!("{path} names layer {layer:?}, which is not a sha256 digest")
                        })
                    })
                    .collect::<Result<Vec<Digest>>>()?;
                let left_out = layers
                    .iter()
                    .filter(|layer| !self.holds(&layer.blob_path()))
                    .cloned()
                    .collect();
                Ok(Resolved {
                    config,
                    targets: vec![digest],
                    layers,
                    left_out,
                })
            }
            Some(BlobDoc::Index { manifests }) => {
                if depth >= MAX_INDEX_DEPTH {
                    bail!("index.json nests image indexes more than {MAX_INDEX_DEPTH} deep");
                }
                let chosen = choose_platform(manifests).ok_or_else(|| NoHostPlatform {
                    path: path.clone(),
                    platforms: platforms(manifests),
                })?;
                let mut resolved = self.resolve(chosen, depth + 1)?;
                resolved.targets.insert(0, digest);
                Ok(resolved)
            }
        }
    }
}

/// Resolves descriptors, each digest once: an index may name one manifest or nested index any
/// number of times, and following a nested index costs its size.
struct Resolver<'c> {
    catalog: &'c Catalog,
    done: HashMap<Digest, Resolved>,
}

impl<'c> Resolver<'c> {
    fn new(catalog: &'c Catalog) -> Resolver<'c> {
        Resolver {
            catalog,
            done: HashMap::new(),
        }
    }

    /// What `Catalog::resolve` gives for a descriptor of `index.json`. Failures are not kept:
    /// the first ends `learn_index`, and `add_targets` skips the descriptor.
    fn resolve(&mut self, descriptor: &Descriptor) -> Result<&Resolved> {
        let digest = descriptor_digest(descriptor)?;
        if !self.done.contains_key(&digest) {
            let resolved = self.catalog.resolve(descriptor, 0)?;
            self.done.insert(digest.clone(), resolved);
        }
        Ok(&self.done[&digest])
    }
}

fn descriptor_digest(descriptor: &Descriptor) -> Result<Digest> {
    sha256(&descriptor.digest, || {
        format!(
            "index.json names digest {:?}, which is not a sha256 digest",
            descriptor.digest
        )
    })
}

/// An image descriptor followed to its config.
struct Resolved {
    config: Digest,
    /// The digests from the descriptor down to the image manifest, outermost first.
    targets: Vec<Digest>,
    /// The layer blobs of that manifest, bottom first.
    layers: Vec<Digest>,
    /// Those of them the archive leaves out.
    left_out: Vec<Digest>,
}

fn sha256(text: &str, message: impl FnOnce() -> String) -> Result<Digest> {
    Digest::parse(text).ok_or_else(|| anyhow!(message()))
}

/// The images an archive names, in archive order, one per ID, each tag listed once. Lookups are
/// hashed: a manifest of many items or tags must not take quadratic time.
#[derive(Default)]
struct ImageSet {
    images: Vec<ArchivedImage>,
    /// Index in `images` and the tags already listed, by image ID.
    by_id: HashMap<Digest, (usize, HashSet<String>)>,
}

impl ImageSet {
    fn has(&self, config: &Digest) -> bool {
        self.by_id.contains_key(config)
    }

    /// Adds tags to the image of `config`, which the set has.
    fn add_tags(&mut self, config: &Digest, tags: Vec<String>) {
        let (index, known) = self.by_id.get_mut(config).expect("the set has the image");
        for tag in tags {
            if known.insert(tag.clone()) {
                self.images[*index].tags.push(tag);
            }
        }
    }

    fn add(&mut self, image: ArchivedImage, tags: Vec<String>) {
        let config = image.config.clone();
        if !self.has(&config) {
            self.by_id
                .insert(config.clone(), (self.images.len(), HashSet::new()));
            self.images.push(image);
        }
        self.add_tags(&config, tags);
    }
}

/// The image ID from manifest.json's `Config`: `<hex>.json` (legacy) or `blobs/sha256/<hex>`.
pub(super) fn config_id(config: &str) -> Option<Digest> {
    let name = normalize(config);
    let hex = name
        .strip_prefix("blobs/sha256/")
        .or_else(|| name.strip_suffix(".json"))?;
    Digest::from_hex(hex)
}
