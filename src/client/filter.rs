//! The tar filter between `docker image save` and the host: copies the archive entry by entry,
//! headers and data byte for byte and in order, leaving out the layers of a [`LeftOutPlan`].
//! Memory stays constant: entries stream through. A legacy `<v1id>/layer.tar` is known by
//! its directory's `json` (see [`legacy`]); a layer whose diff ID neither its name nor that
//! tells (a gzip or zstd blob of a containerd-store client) is spooled to a temp file while
//! its uncompressed content is hashed, and only while a layer to leave out is still unmatched.
//! The input is the local engine's own output, so it is trusted. With [`Recipes`], a plain
//! layer the host lacks goes as its recipe (docs/delta.md).

use std::collections::{HashMap, HashSet};
use std::io::{self, BufReader, Read, Seek, Write};

use sha2::{Digest as _, Sha256};

use crate::client::held::LeftOutPlan;
use crate::client::legacy;
use crate::client::recipes::{LayerForm, Recipes, MIN_LAYER};
use crate::client::to_oci;
use crate::digest::{chain_ids, Digest};
use crate::protocol::RECIPE_SUFFIX;

/// Entries up to this size always pass straight through: they are metadata, or layers too
/// small to be worth a spool.
const SPOOL_THRESHOLD: u64 = 64 * 1024;
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// What the filter left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeftOutTotals {
    pub entries: usize,
    /// Their data, as the archive holds it.
    pub bytes: u64,
    /// Layers read through a spool and hashed to learn their diff ID (left out or not).
    pub hashed: usize,
}

/// Copies the archive on `input` to `output`, without the entries `plan` leaves out, and
/// returns what was left out and `output` once the archive's end marker is written.
pub fn filter<R: Read, W: Write>(
    input: R,
    output: W,
    plan: &LeftOutPlan,
    recipes: Option<&mut Recipes>,
) -> io::Result<(LeftOutTotals, W)> {
    let mut walk = Walk {
        plan,
        recipes,
        unmatched: plan.diff_ids.clone(),
        chains: chain_ids(&plan.image_layers),
        legacy_layers: HashMap::new(),
        builder: tar::Builder::new(output),
        pending: Vec::new(),
        left_out: LeftOutTotals::default(),
        oci: if plan.to_oci { Oci::Undecided } else { Oci::No },
    };
    let mut archive = tar::Archive::new(input);
    // Raw entries: PAX and GNU extension headers come as entries of their own and are copied
    // as they are (or left out with the entry they describe).
    for entry in archive.entries()?.raw(true) {
        walk.entry(entry?)?;
    }
    // Whatever follows the end marker (padding to a record size) is read too: a writer that
    // finds the pipe closed dies of SIGPIPE.
    io::copy(&mut archive.into_inner(), &mut io::sink())?;
    walk.finish_oci()?;
    let Walk {
        builder, left_out, ..
    } = walk;
    Ok((left_out, builder.into_inner()?))
}

struct Walk<'p, W: Write> {
    plan: &'p LeftOutPlan,
    recipes: Option<&'p mut Recipes>,
    /// The diff IDs to leave out that no entry has matched yet.
    unmatched: HashSet<Digest>,
    /// The ChainIDs of the image's layers, bottom first.
    chains: Vec<Digest>,
    /// Legacy directories whose `json` told their layer: v1 ID → its place in `chains`.
    legacy_layers: HashMap<String, usize>,
    builder: tar::Builder<W>,
    /// Extension headers read ahead of the entry they belong to.
    pending: Vec<(tar::Header, Vec<u8>)>,
    left_out: LeftOutTotals,
    oci: Oci,
}

/// Whether a legacy archive is being rewritten in the OCI form ([`to_oci`]).
enum Oci {
    /// The plan asks for it; the first entry tells whether the archive is legacy.
    Undecided,
    No,
    Yes {
        seen: to_oci::Seen,
        manifest: Option<Vec<u8>>,
        /// Blobs written or left out: two layers of the same content make one blob.
        blobs: HashSet<Digest>,
    },
}

impl<W: Write> Walk<'_, W> {
    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> io::Result<()> {
        let header = entry.header().clone();
        let kind = header.entry_type();
        if kind.is_pax_global_extensions()
            || kind.is_pax_local_extensions()
            || kind.is_gnu_longname()
            || kind.is_gnu_longlink()
        {
            let mut data = Vec::new();
            entry.read_to_end(&mut data)?;
            self.pending.push((header, data));
            return Ok(());
        }
        let size = entry.size();
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if matches!(self.oci, Oci::Undecided) {
            // A legacy archive starts with a layer's `<v1id>/` or the config's `<hex>.json`,
            // whichever sorts first; an OCI one with `blobs/`.
            let first = name.split('/').next().unwrap_or_default();
            self.oci = match Digest::from_hex(first.strip_suffix(".json").unwrap_or(first)) {
                Some(_) => Oci::Yes {
                    seen: to_oci::Seen::default(),
                    manifest: None,
                    blobs: HashSet::new(),
                },
                None => Oci::No,
            };
        }
        if matches!(self.oci, Oci::Yes { .. }) {
            return self.convert(entry, &header, &name, size);
        }
        let spoolable = size > SPOOL_THRESHOLD && !self.unmatched.is_empty() && kind.is_file();
        if let Some(blob) = name
            .strip_prefix("blobs/sha256/")
            .and_then(Digest::from_hex)
        {
            if self.plan.blobs.contains(&blob) || self.unmatched.remove(&blob) {
                return self.leave_out(size);
            }
            if spoolable {
                let mut magic = [0u8; 4];
                entry.read_exact(&mut magic)?;
                let layer = if magic.starts_with(GZIP_MAGIC) {
                    Some(Layer::Gzip)
                } else if magic.starts_with(ZSTD_MAGIC) {
                    Some(Layer::Zstd)
                } else {
                    None
                };
                return match layer {
                    Some(layer) => self.spool(&header, (&magic[..]).chain(entry), layer),
                    None => self.write_layer(&header, (&magic[..]).chain(entry)),
                };
            }
            if size > MIN_LAYER && kind.is_file() {
                return self.write_layer(&header, entry);
            }
        } else if let Some(v1id) = legacy_dir(&name, "json") {
            if !self.chains.is_empty() && kind.is_file() && size <= SPOOL_THRESHOLD {
                let mut json = Vec::new();
                entry.read_to_end(&mut json)?;
                if let Some(layer) = legacy::layer_of(v1id, &json, &self.chains) {
                    self.legacy_layers.insert(v1id.to_string(), layer);
                }
                return self.write(&header, &json[..]);
            }
        } else if let Some(v1id) = legacy_dir(&name, "layer.tar") {
            if let Some(&layer) = self.legacy_layers.get(v1id) {
                let diff_id = &self.plan.image_layers[layer];
                if self.plan.diff_ids.contains(diff_id) {
                    self.unmatched.remove(diff_id);
                    return self.leave_out(size);
                }
            } else if spoolable {
                return self.spool(&header, entry, Layer::Plain);
            }
            if size > MIN_LAYER && kind.is_file() {
                return self.write_layer(&header, entry);
            }
        }
        self.write(&header, entry)
    }

    /// One entry of a legacy archive on its way into the OCI form: layers and configs
    /// renamed to their blobs, the legacy files dropped, `manifest.json` kept for the end.
    fn convert<R: Read>(
        &mut self,
        mut entry: tar::Entry<'_, R>,
        header: &tar::Header,
        name: &str,
        size: u64,
    ) -> io::Result<()> {
        // The extension headers described the legacy entry; a renamed one needs none.
        self.pending.clear();
        if let Some(v1id) = legacy_dir(name, "json") {
            if !self.chains.is_empty() && size <= SPOOL_THRESHOLD {
                let mut json = Vec::new();
                entry.read_to_end(&mut json)?;
                if let Some(layer) = legacy::layer_of(v1id, &json, &self.chains) {
                    self.legacy_layers.insert(v1id.to_string(), layer);
                }
            }
            return Ok(());
        }
        if let Some(v1id) = legacy_dir(name, "layer.tar") {
            let known = self
                .legacy_layers
                .get(v1id)
                .map(|&layer| self.plan.image_layers[layer].clone());
            let (diff_id, spool) = match known {
                Some(diff_id) => (diff_id, None),
                None => {
                    let (diff_id, spool) = self.hash_to_spool(&mut entry, Layer::Plain)?;
                    let diff_id = diff_id.ok_or_else(|| {
                        io::Error::other(format!("{name} cannot be read as a layer"))
                    })?;
                    (diff_id, Some(spool))
                }
            };
            let Oci::Yes { seen, blobs, .. } = &mut self.oci else {
                unreachable!("convert runs only on a legacy archive");
            };
            seen.layers
                .insert(name.to_string(), (diff_id.clone(), size));
            if !blobs.insert(diff_id.clone()) {
                return Ok(());
            }
            if self.plan.blobs.contains(&diff_id) {
                return self.leave_out(size);
            }
            let renamed = renamed(header, &diff_id.blob_path())?;
            return match spool {
                Some(spool) => {
                    self.write_layer(&renamed, BufReader::with_capacity(256 * 1024, spool))
                }
                None => self.write_layer(&renamed, entry),
            };
        }
        let Oci::Yes { seen, manifest, .. } = &mut self.oci else {
            unreachable!("convert runs only on a legacy archive");
        };
        if name == "manifest.json" {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes)?;
            *manifest = Some(bytes);
            return Ok(());
        }
        if !name.contains('/') {
            if let Some(config) = to_oci::config_digest(name) {
                seen.configs.insert(name.to_string(), size);
                let renamed = renamed(header, &config.blob_path())?;
                return self.write(&renamed, entry);
            }
        }
        // VERSION, repositories, the directories: the OCI form has no place for them.
        io::copy(&mut entry, &mut io::sink())?;
        Ok(())
    }

    /// The metadata of the OCI form, once the legacy archive has been read.
    fn finish_oci(&mut self) -> io::Result<()> {
        let Oci::Yes { seen, manifest, .. } = std::mem::replace(&mut self.oci, Oci::No) else {
            return Ok(());
        };
        let entries = manifest
            .and_then(|manifest| to_oci::metadata(&manifest, &seen))
            .ok_or_else(|| {
                io::Error::other(
                    "the legacy archive's manifest.json names entries it does not hold",
                )
            })?;
        for (name, bytes) in entries {
            let header = file_header(&name, bytes.len() as u64, 0)?;
            self.write(&header, &bytes[..])?;
        }
        Ok(())
    }

    /// Hashes the entry's uncompressed content on its way to a temp file, then leaves it out
    /// when that diff ID is to be, or writes it from the file.
    fn spool<R: Read>(
        &mut self,
        header: &tar::Header,
        mut data: R,
        layer: Layer,
    ) -> io::Result<()> {
        let (diff_id, spool) = self.hash_to_spool(&mut data, layer)?;
        if let Some(diff_id) = diff_id.filter(|d| self.unmatched.contains(d)) {
            self.unmatched.remove(&diff_id);
            return self.leave_out(header.entry_size()?);
        }
        let spool = BufReader::with_capacity(256 * 1024, spool);
        match layer {
            Layer::Plain => self.write_layer(header, spool),
            // A compressed blob cannot be rebuilt byte for byte: it goes whole.
            Layer::Gzip | Layer::Zstd => self.write(header, spool),
        }
    }

    /// Copies `data` to a temp file while hashing its uncompressed content; returns that
    /// digest (None when it does not decompress) and the file, rewound.
    fn hash_to_spool(
        &mut self,
        data: &mut dyn Read,
        layer: Layer,
    ) -> io::Result<(Option<Digest>, std::fs::File)> {
        self.left_out.hashed += 1;
        let mut spool = temp_file()?;
        let mut hasher = Some(Hasher::new(layer)?);
        let mut buffer = vec![0u8; 256 * 1024];
        loop {
            let count = match data.read(&mut buffer) {
                Ok(0) => break,
                Ok(count) => count,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            };
            spool.write_all(&buffer[..count])?;
            // Content that does not decompress has no diff ID to match: it is sent.
            if let Some(h) = hasher.as_mut() {
                if h.write_all(&buffer[..count]).is_err() {
                    hasher = None;
                }
            }
        }
        let diff_id = hasher.and_then(|h| h.finish().ok());
        spool.rewind()?;
        Ok((diff_id, spool))
    }

    fn leave_out(&mut self, size: u64) -> io::Result<()> {
        self.pending.clear();
        self.left_out.entries += 1;
        self.left_out.bytes += size;
        Ok(())
    }

    /// A plain layer the host lacks: as its recipe when there are [`Recipes`] and the host
    /// keeps some of it, else whole.
    fn write_layer<R: Read>(&mut self, header: &tar::Header, mut data: R) -> io::Result<()> {
        let Some(recipes) = self.recipes.as_deref_mut() else {
            return self.write(header, data);
        };
        match recipes.prepare(&mut data, temp_file)? {
            LayerForm::Whole(spool) => {
                self.write(header, BufReader::with_capacity(256 * 1024, spool))
            }
            LayerForm::Recipe { recipe, len } => {
                // The extension headers described the layer's entry, not its recipe's.
                self.pending.clear();
                let name = format!(
                    "{}{RECIPE_SUFFIX}",
                    String::from_utf8_lossy(&header.path_bytes())
                );
                let entry = file_header(&name, len, header.mtime().unwrap_or(0))?;
                self.write(&entry, BufReader::with_capacity(256 * 1024, recipe))
            }
        }
    }

    fn write<R: Read>(&mut self, header: &tar::Header, data: R) -> io::Result<()> {
        for (extension, bytes) in std::mem::take(&mut self.pending) {
            self.builder.append(&extension, &bytes[..])?;
        }
        self.builder.append(header, data)
    }
}

/// A temp file (in TMPDIR), for a layer or its recipe on the way.
pub(crate) fn temp_file() -> io::Result<std::fs::File> {
    tempfile::tempfile().map_err(|err| {
        let dir = std::env::temp_dir();
        io::Error::new(
            err.kind(),
            format!(
                "cannot make a temp file in {} (TMPDIR): {err}",
                dir.display()
            ),
        )
    })
}

/// `header` under another name.
fn renamed(header: &tar::Header, name: &str) -> io::Result<tar::Header> {
    file_header(name, header.entry_size()?, header.mtime().unwrap_or(0))
}

/// The plain ustar header of a regular file the client writes into an archive.
pub(crate) fn file_header(name: &str, size: u64, mtime: u64) -> io::Result<tar::Header> {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_path(name)?;
    header.set_mode(0o644);
    header.set_size(size);
    header.set_mtime(mtime);
    header.set_cksum();
    Ok(header)
}

/// The directory of `<v1id>/FILE` in the legacy layout (engines up to 24).
fn legacy_dir<'n>(name: &'n str, file: &str) -> Option<&'n str> {
    name.strip_suffix(file)?
        .strip_suffix('/')
        .filter(|dir| !dir.is_empty() && !dir.contains('/'))
}

#[derive(Debug, Clone, Copy)]
enum Layer {
    Plain,
    Gzip,
    Zstd,
}

/// The sha256 of a layer's uncompressed content, fed its bytes as the archive holds them.
enum Hasher {
    Plain(Sha),
    Gzip(Box<flate2::write::GzDecoder<Sha>>),
    Zstd(zstd::stream::write::Decoder<'static, Sha>),
}

impl Hasher {
    fn new(layer: Layer) -> io::Result<Hasher> {
        Ok(match layer {
            Layer::Plain => Hasher::Plain(Sha::default()),
            Layer::Gzip => Hasher::Gzip(Box::new(flate2::write::GzDecoder::new(Sha::default()))),
            Layer::Zstd => Hasher::Zstd(zstd::stream::write::Decoder::new(Sha::default())?),
        })
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Hasher::Plain(sha) => sha.write_all(bytes),
            Hasher::Gzip(decoder) => decoder.write_all(bytes),
            Hasher::Zstd(decoder) => decoder.write_all(bytes),
        }
    }

    fn finish(self) -> io::Result<Digest> {
        let sha = match self {
            Hasher::Plain(sha) => sha,
            Hasher::Gzip(decoder) => decoder.finish()?,
            Hasher::Zstd(mut decoder) => {
                decoder.flush()?;
                decoder.into_inner()
            }
        };
        Ok(Digest::from_sha256(sha.0.finalize().into()))
    }
}

#[derive(Default)]
struct Sha(Sha256);

impl Write for Sha {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
