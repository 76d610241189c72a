//! The walk over the archive's entries: every layer and blob is forwarded as it passes, the
//! metadata entries and the end-of-archive marker are held back until the caller's check has
//! passed, so that a loader killed before then imports nothing. A layer recipe is rebuilt and
//! checked on the way, and forwarded as the layer it rebuilds (`recipes`).

use std::io::{self, Read, Seek, Write};
use std::ops::Range;

use anyhow::{anyhow, bail, Context as _, Result};

use super::catalog::Catalog;
use super::contents::{ArchivedImage, Choice, Format};
use super::header::{self, Entry, Extensions, BLOCK, END_OF_ARCHIVE};
use super::input::{Compression, TarInput};
use super::limits::{Limits, METADATA_ENV};
use super::naming;
use super::recipes::{self, Content, EntryData, RebuiltLayer, KEEP_THRESHOLD};
use crate::output::human_bytes;
use crate::protocol::{self, RECIPE_SUFFIX};

/// The entries the engine reads to import anything; held back until the check passes.
pub(super) const METADATA_NAMES: [&str; 4] =
    ["manifest.json", "index.json", "repositories", "oci-layout"];

/// A metadata entry held back until the check passes: its raw bytes (extension headers, header,
/// data, padding) and where its data lies within them.
struct HeldEntry {
    name: String,
    raw: Vec<u8>,
    data: Range<usize>,
}

pub(super) struct Walker<'c, W> {
    input: TarInput,
    sink: W,
    limits: Limits,
    catalog: Catalog,
    held: Vec<HeldEntry>,
    content: &'c mut dyn Content,
}

impl<'c, W: Write> Walker<'c, W> {
    pub(super) fn new(
        input: TarInput,
        sink: W,
        limits: Limits,
        content: &'c mut dyn Content,
    ) -> Walker<'c, W> {
        Walker {
            input,
            sink,
            limits,
            catalog: Catalog::new(),
            held: Vec::new(),
            content,
        }
    }

    /// Reads the whole archive, forwarding all but the metadata and the end marker.
    pub(super) fn walk(&mut self) -> Result<()> {
        let mut ext = Extensions::default();
        let mut block = [0u8; BLOCK];
        loop {
            let offset = self.input.pos;
            let n = self.input.read_up_to(&mut block)?;
            if n < BLOCK {
                return Err(self.short_header(offset, &block[..n]));
            }
            if block.iter().all(|&b| b == 0) {
                if !ext.raw.is_empty() {
                    bail!(
                        "corrupt tar archive: extension header without an entry at offset {offset}"
                    );
                }
                return self.finish_end_marker(offset);
            }
            if !header::checksum_ok(&block) {
                if offset == 0 {
                    return Err(self.input.not_a_tar());
                }
                bail!("corrupt tar archive: bad header checksum at offset {offset}");
            }
            let tar_header = tar::Header::from_byte_slice(&block);
            let size = tar_header.entry_size().map_err(|e| {
                anyhow!("corrupt tar archive: bad entry size at offset {offset}: {e}")
            })?;
            let entry_type = tar_header.entry_type();
            if header::is_extension(entry_type) {
                ext.read(&mut self.input, &block, entry_type, size)?;
                continue;
            }
            // What the extension headers said applies to this entry only.
            let entry = Entry::read(&block, offset, size, std::mem::take(&mut ext))?;
            if let Some(layer) = entry.name.strip_suffix(RECIPE_SUFFIX) {
                if entry.is_regular() {
                    let layer = layer.to_string();
                    self.rebuild(entry.data_len, layer)?;
                    continue;
                }
            }
            self.catalog.saw(&entry.name, entry.entry_type)?;
            if METADATA_NAMES.contains(&entry.name.as_str()) {
                self.hold(entry, &block)?;
            } else {
                self.pass(entry, &block)?;
            }
        }
    }

    fn short_header(&self, offset: u64, partial: &[u8]) -> anyhow::Error {
        if offset == 0 {
            if partial.is_empty() {
                return match self.input.compression {
                    Compression::None => self.input.not_a_tar(),
                    c => anyhow!("the {c} stream is empty: expected a tar archive"),
                };
            }
            // Too short to hold one header: call it a truncated tar only if it looks like one.
            if partial.get(257..262) != Some(b"ustar") {
                return self.input.not_a_tar();
            }
        }
        if partial.is_empty() {
            anyhow!(
                "archive is truncated after {} bytes (no end-of-archive marker)",
                self.input.raw_bytes()
            )
        } else {
            self.input.truncated()
        }
    }

    fn hold(&mut self, entry: Entry, block: &[u8; BLOCK]) -> Result<()> {
        let name = entry.name.clone();
        if !entry.is_regular() {
            bail!("archive entry {name} is not a regular file");
        }
        if entry.data_len > self.limits.max_metadata_entry {
            bail!(
                "{name} is larger than the {} limit ({METADATA_ENV})",
                human_bytes(self.limits.max_metadata_entry)
            );
        }
        let mut raw = entry.prefix;
        raw.extend_from_slice(block);
        let data_start = raw.len();
        let padded = (entry.data_len + header::padding(entry.data_len)) as usize;
        raw.resize(data_start + padded, 0);
        self.input.read_exact(&mut raw[data_start..])?;
        self.held.push(HeldEntry {
            name,
            raw,
            data: data_start..data_start + entry.data_len as usize,
        });
        Ok(())
    }

    fn pass(&mut self, entry: Entry, block: &[u8; BLOCK]) -> Result<()> {
        let kept_digest = entry
            .is_regular()
            .then(|| self.catalog.wants(&entry.name, entry.data_len))
            .flatten();
        let mut keeper = self.keeper(&entry.name, entry.data_len, entry.is_regular());
        let mut prefix = entry.prefix;
        prefix.extend_from_slice(block);
        self.sink.write_all(&prefix).map_err(sink_error)?;
        let mut kept = Vec::new();
        let mut remaining = entry.data_len + header::padding(entry.data_len);
        let mut data_left = entry.data_len;
        while remaining > 0 {
            // Written from the read-ahead chunk itself: each byte is copied once, into the pipe.
            let data = self
                .input
                .take(usize::try_from(remaining).unwrap_or(usize::MAX))?;
            if data.is_empty() {
                return Err(self.input.truncated());
            }
            self.sink.write_all(data).map_err(sink_error)?;
            let data_part = data_left.min(data.len() as u64) as usize;
            if kept_digest.is_some() {
                kept.extend_from_slice(&data[..data_part]);
            }
            copy_to(&mut keeper, &data[..data_part]);
            data_left -= data_part as u64;
            remaining -= data.len() as u64;
        }
        if let Some(digest) = kept_digest {
            self.catalog.keep(digest, &kept);
        }
        Ok(())
    }

    /// The caller's keeper for a layer entry's data, when it keeps content and the entry is
    /// worth keeping.
    fn keeper(&mut self, name: &str, size: u64, regular: bool) -> Option<Box<dyn Write>> {
        (regular && size >= KEEP_THRESHOLD && recipes::names_a_layer(name))
            .then(|| self.content.keeper())
            .flatten()
    }

    /// Rebuilds the layer `name` from the recipe entry's data, then forwards it under its own
    /// name: checked against the digest the recipe declares before the engine sees it.
    fn rebuild(&mut self, data_len: u64, name: String) -> Result<()> {
        self.catalog.saw(&name, tar::EntryType::Regular)?;
        let mut spool = tempfile::tempfile().context("cannot make a temp file for a layer")?;
        let max_size = self
            .limits
            .disk_room()
            .unwrap_or(u64::MAX)
            .min(self.limits.max_total_bytes);
        let mut data = EntryData {
            input: &mut self.input,
            left: data_len,
        };
        let rebuilt = self.content.rebuild(&mut data, &mut spool, max_size);
        // A recipe refused part-way is read to its end all the same: a cut-short archive
        // says so rather than the recipe.
        io::copy(&mut data, &mut io::sink())
            .map_err(|err| anyhow!("reading the archive failed: {err}"))?;
        let mut padding = vec![0u8; header::padding(data_len) as usize];
        self.input.read_exact(&mut padding)?;
        let (size, diff_id) =
            rebuilt.map_err(|why| anyhow!(protocol::recipe_refusal(&name, &why)))?;
        self.catalog.rebuilt(RebuiltLayer {
            name: name.clone(),
            diff_id,
        });
        let entry = naming::entry_header(&name, size)?;
        self.sink.write_all(&entry).map_err(sink_error)?;
        spool.rewind()?;
        let mut buffer = vec![0u8; 256 * 1024];
        loop {
            let count = spool.read(&mut buffer)?;
            if count == 0 {
                break;
            }
            self.sink.write_all(&buffer[..count]).map_err(sink_error)?;
        }
        let padding = vec![0u8; header::padding(size) as usize];
        self.sink.write_all(&padding).map_err(sink_error)
    }

    /// Reads the rest of the end marker and anything after it, so that a compressed stream's
    /// trailer (and its checksum) is verified before anything is committed.
    fn finish_end_marker(&mut self, offset: u64) -> Result<()> {
        let mut block = [0u8; BLOCK];
        let n = self.input.read_up_to(&mut block)?;
        if n == BLOCK && block.iter().any(|&b| b != 0) {
            bail!(
                "corrupt tar archive: a header follows a single zero block at offset {}",
                offset + BLOCK as u64
            );
        }
        while !self.input.take(usize::MAX)?.is_empty() {}
        Ok(())
    }

    fn held_data(&self, name: &str) -> Option<&[u8]> {
        self.held
            .iter()
            .find(|held| held.name == name)
            .map(|held| &held.raw[held.data.clone()])
    }

    /// The layers rebuilt from recipes.
    pub(super) fn recipes(&self) -> Vec<RebuiltLayer> {
        self.catalog.rebuilt_layers().to_vec()
    }

    /// Whether a metadata entry of this name was held back.
    pub(super) fn holds(&self, name: &str) -> bool {
        self.held_data(name).is_some()
    }

    /// What the archive holds, once it has been walked.
    pub(super) fn learn(&self) -> Result<(Vec<ArchivedImage>, Format)> {
        self.catalog.learn(
            self.held_data("manifest.json"),
            self.held_data("index.json"),
        )
    }

    /// Writes the held-back entries, rewritten to name the chosen image only, and the
    /// end-of-archive marker, then flushes.
    pub(super) fn release(&mut self, choice: &Choice) -> Result<()> {
        for entry in std::mem::take(&mut self.held) {
            let data = &entry.raw[entry.data.clone()];
            let rewritten = match entry.name.as_str() {
                "manifest.json" => naming::manifest_json(data, choice)?,
                "index.json" => naming::index_json(data, choice)?,
                // A classic engine reads it only without manifest.json, and then names from it
                // what no check saw; neither store needs it beside manifest.json or index.json.
                "repositories" => continue,
                _ => {
                    self.sink.write_all(&entry.raw).map_err(sink_error)?;
                    continue;
                }
            };
            let written = naming::entry(&entry.name, &rewritten)?;
            self.sink.write_all(&written).map_err(sink_error)?;
        }
        self.sink.write_all(&END_OF_ARCHIVE).map_err(sink_error)?;
        self.sink.flush().map_err(sink_error)
    }
}

/// Copies to a keeper; one that fails is dropped, and the load goes on without it.
fn copy_to(keeper: &mut Option<Box<dyn Write>>, data: &[u8]) {
    if let Some(sink) = keeper {
        if sink.write_all(data).is_err() {
            *keeper = None;
        }
    }
}

/// A failed write to the loader. The io::Error stays in the chain, so the caller can tell a
/// loader that stopped reading (broken pipe) from other failures.
fn sink_error(error: io::Error) -> anyhow::Error {
    anyhow::Error::new(error).context("forwarding the archive to docker image load failed")
}
