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
//! OCI-only archives (skopeo, containerd) name their images in `index.json` but give the config
//! digest (the Docker image ID) only inside the image manifest blobs. Those are small JSON files, so
//! a copy of each small blob that parses as a manifest or index is kept while it is forwarded, and
//! the index is resolved at the end.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::io::{self, BufReader, Read, Write};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;

use anyhow::{anyhow, bail, Result};
use serde::Deserialize;

use crate::reference::Reference;

const BLOCK: usize = 512;
const END_OF_ARCHIVE: [u8; 2 * BLOCK] = [0; 2 * BLOCK];
/// Small enough that whole-chunk reads of an uncompressed archive bypass it (one copy, not two);
/// a pipe gives at most 64 KiB per read anyway.
const INPUT_BUFFER: usize = 64 << 10;
/// What the reading thread reads at a time; also the largest write to the sink.
const CHUNK_SIZE: usize = 1 << 20;
/// Chunks the reading thread may run ahead of the walker.
const CHUNKS_AHEAD: usize = 2;
const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const DEFAULT_MAX_METADATA_ENTRY: u64 = 16 * MIB;
const DEFAULT_MAX_TOTAL_BYTES: u64 = 256 * GIB;
/// PAX and GNU long-name headers are held in memory until their entry's header arrives.
const MAX_EXTENSION_HEADER: u64 = MIB;
/// `docker image save` writes a handful of entries per layer; this only stops the set of entry
/// names from growing without bound.
const MAX_ENTRIES: usize = 100_000;
const MAX_PATH_LEN: usize = 4096;
const MAX_KEPT_BLOB: u64 = 64 * KIB;
const MAX_KEPT_BLOBS_TOTAL: u64 = 4 * MIB;
/// Nested OCI indexes deeper than this are not followed.
const MAX_INDEX_DEPTH: usize = 4;
/// `xz -9` needs 65 MiB to decode; a stream that asks for more than this is refused, so a
/// hostile header cannot make the decoder allocate gigabytes.
const XZ_MEMORY_LIMIT: u64 = 256 * MIB;
const METADATA_ENV: &str = "DOKKU_IMAGE_MAX_METADATA_BYTES";
const ARCHIVE_ENV: &str = "DOKKU_IMAGE_MAX_ARCHIVE_BYTES";
const METADATA_NAMES: [&str; 4] = ["manifest.json", "index.json", "repositories", "oci-layout"];

/// How the input stream was compressed, detected from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

impl Compression {
    /// Recognises the magic bytes at the start of a stream; anything else is taken as a plain tar.
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(b"BZh") {
            Compression::Bzip2
        } else if head.starts_with(&[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]) {
            Compression::Xz
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "plain tar",
            Compression::Gzip => "gzip",
            Compression::Bzip2 => "bzip2",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
        })
    }
}

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
    /// `sha256:<64 hex>`: the config digest, which is the Docker image ID.
    pub id: String,
    /// The image's names as written in the archive (`alpine:latest`, `docker.io/library/app:1`).
    pub tags: Vec<String>,
}

/// What [`forward`] learnt about an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contents {
    pub images: Vec<ArchivedImage>,
    pub compression: Compression,
    pub format: Format,
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

/// Bounds on what an archive may make the reader do.
///
/// - `max_metadata_entry`: the largest metadata entry (`manifest.json`, `index.json`,
///   `repositories`, `oci-layout`) accepted, since these are held in memory until the end.
///   Default 16 MiB; environment `DOKKU_IMAGE_MAX_METADATA_BYTES`.
/// - `max_total_bytes`: the most decompressed tar data read, which bounds the work a small
///   compressed input can cause. Default 256 GiB; environment `DOKKU_IMAGE_MAX_ARCHIVE_BYTES`.
///
/// Both environment variables take a plain positive integer of bytes; unset or empty means the
/// default. Fixed bounds also apply: extension headers up to 1 MiB, entry paths up to 4096 bytes,
/// at most 100000 entries, and OCI manifest blobs are only read when at most 64 KiB each
/// (4 MiB in all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_metadata_entry: u64,
    pub max_total_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_metadata_entry: DEFAULT_MAX_METADATA_ENTRY,
            max_total_bytes: DEFAULT_MAX_TOTAL_BYTES,
        }
    }
}

impl Limits {
    /// The defaults, overridden by `DOKKU_IMAGE_MAX_METADATA_BYTES` and
    /// `DOKKU_IMAGE_MAX_ARCHIVE_BYTES`.
    pub fn from_env() -> Result<Limits> {
        Limits::from_lookup(|name| std::env::var_os(name))
    }

    /// Like [`Limits::from_env`], with variables looked up through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<OsString>) -> Result<Limits> {
        let defaults = Limits::default();
        Ok(Limits {
            max_metadata_entry: limit_var(METADATA_ENV, lookup(METADATA_ENV))?
                .unwrap_or(defaults.max_metadata_entry),
            max_total_bytes: limit_var(ARCHIVE_ENV, lookup(ARCHIVE_ENV))?
                .unwrap_or(defaults.max_total_bytes),
        })
    }
}

fn limit_var(name: &str, value: Option<OsString>) -> Result<Option<u64>> {
    let Some(value) = value else {
        return Ok(None);
    };
    let text = value.to_string_lossy();
    if text.is_empty() {
        return Ok(None);
    }
    match text.parse::<u64>() {
        Ok(n) if n > 0 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(n)),
        _ => bail!("{name} must be a positive whole number of bytes, not {text:?}"),
    }
}

/// Streams `input` (compressed or plain) into `sink` as a plain tar.
///
/// Metadata entries (`manifest.json`, `index.json`, `repositories`, `oci-layout`) are held back;
/// small OCI manifest blobs are forwarded but also kept in memory to learn config digests. At the
/// end of the archive `check(&contents)` runs; only when it returns `Ok` are the held-back entries
/// and the end-of-archive blocks written and the sink flushed. When anything fails (check
/// rejects, truncated input, garbage, limits exceeded, sink write error) this returns `Err` and
/// the sink has not received the metadata or the end-of-archive marker, so the caller can kill
/// `docker image load` and nothing is imported. An error from `check` is returned unchanged.
pub fn forward<R: Read + Send, W: Write>(
    input: R,
    sink: W,
    limits: &Limits,
    check: impl FnOnce(&Contents) -> Result<()>,
) -> Result<Contents> {
    let raw_count = Arc::new(AtomicU64::new(0));
    let mut counted = BufReader::with_capacity(
        INPUT_BUFFER,
        CountingReader {
            inner: input,
            count: Arc::clone(&raw_count),
        },
    );
    // BufReader cannot top up a short first read, so the magic bytes are read out and chained back.
    let mut head = [0u8; 6];
    let head_len = read_up_to(&mut counted, &mut head)
        .map_err(|e| anyhow!("reading the archive failed: {e}"))?;
    if head_len == 0 {
        bail!("empty input: expected a tar archive (docker image save output) on stdin");
    }
    let compression = Compression::detect(&head[..head_len]);
    let stream = io::Cursor::new(head[..head_len].to_vec()).chain(counted);
    let decoded: Box<dyn Read + Send + '_> = match compression {
        Compression::None => Box::new(stream),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(stream)),
        Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(stream)),
        Compression::Xz => {
            let decoder = liblzma::stream::Stream::new_stream_decoder(
                XZ_MEMORY_LIMIT,
                liblzma::stream::CONCATENATED,
            )
            .map_err(|e| anyhow!("cannot start the xz decoder: {e}"))?;
            Box::new(liblzma::bufread::XzDecoder::new_stream(stream, decoder))
        }
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(stream)
                .map_err(|e| anyhow!("corrupt zstd stream: {e}"))?,
        ),
    };
    thread::scope(|scope| {
        let mut walker = Walker {
            input: TarInput {
                // Reading and decompressing on their own thread overlap with the writes to
                // the engine, which block until it has read.
                inner: ReadAhead::spawn(scope, decoded),
                compression,
                raw_count,
                pos: 0,
                max_total: limits.max_total_bytes,
            },
            sink,
            limits: *limits,
            seen: HashSet::new(),
            hasher: RandomState::new(),
            held: Vec::new(),
            blobs: HashMap::new(),
            kept_blob_bytes: 0,
        };
        walker.walk()?;
        let (images, format) = walker.learn()?;
        let contents = Contents {
            images,
            compression,
            format,
        };
        check(&contents)?;
        walker.release()?;
        Ok(contents)
    })
}

/// A stream read on its own thread, up to [`CHUNKS_AHEAD`] chunks ahead of its reader. When
/// this is dropped the thread stops once the chunk it is filling is full or the input ends, so
/// after an early error [`forward`] returns when the input has sent that much more or closed.
struct ReadAhead {
    chunks: mpsc::Receiver<io::Result<Vec<u8>>>,
    spare: mpsc::SyncSender<Vec<u8>>,
    current: Vec<u8>,
    offset: usize,
}

impl ReadAhead {
    fn spawn<'scope, 'env>(
        scope: &'scope thread::Scope<'scope, 'env>,
        mut stream: Box<dyn Read + Send + 'env>,
    ) -> ReadAhead {
        let (chunk_tx, chunks) = mpsc::sync_channel(CHUNKS_AHEAD);
        let (spare, spare_rx) = mpsc::sync_channel::<Vec<u8>>(CHUNKS_AHEAD + 1);
        scope.spawn(move || loop {
            let mut chunk = spare_rx.try_recv().unwrap_or_default();
            chunk.resize(CHUNK_SIZE, 0);
            let message = match read_up_to(&mut stream, &mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    chunk.truncate(n);
                    Ok(chunk)
                }
                Err(error) => Err(error),
            };
            let failed = message.is_err();
            if chunk_tx.send(message).is_err() || failed {
                break;
            }
        });
        ReadAhead {
            chunks,
            spare,
            current: Vec::new(),
            offset: 0,
        }
    }

    /// Moves on to the next chunk once the current one is used up.
    fn refill(&mut self) -> io::Result<()> {
        if self.offset < self.current.len() {
            return Ok(());
        }
        // A closed channel means the reading thread met the end of the stream.
        if let Ok(chunk) = self.chunks.recv() {
            let used = std::mem::replace(&mut self.current, chunk?);
            let _ = self.spare.try_send(used);
            self.offset = 0;
        }
        Ok(())
    }

    /// Up to `max` unread bytes of the current chunk, borrowed, not copied; after `refill`,
    /// none only at the end of the stream.
    fn take(&mut self, max: usize) -> &[u8] {
        let start = self.offset;
        self.offset += max.min(self.current.len() - start);
        &self.current[start..self.offset]
    }
}

struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Reads until `buf` is full or the stream ends.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The decompressed tar stream, with its position and the total-size limit.
struct TarInput {
    inner: ReadAhead,
    compression: Compression,
    /// Bytes read from the (possibly compressed) input, for messages.
    raw_count: Arc<AtomicU64>,
    /// Bytes of tar read so far.
    pos: u64,
    max_total: u64,
}

impl TarInput {
    /// Up to `max` next bytes of the tar, straight from the read-ahead chunk; none only at the
    /// end of the input.
    fn take(&mut self, max: usize) -> Result<&[u8]> {
        if let Err(error) = self.inner.refill() {
            return Err(self.read_error(error));
        }
        let data = self.inner.take(max);
        self.pos += data.len() as u64;
        if self.pos > self.max_total {
            bail!(
                "archive exceeds the size limit of {} bytes ({ARCHIVE_ENV})",
                self.max_total
            );
        }
        Ok(data)
    }

    fn read_up_to(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            let data = self.take(buf.len() - filled)?;
            if data.is_empty() {
                break;
            }
            buf[filled..filled + data.len()].copy_from_slice(data);
            filled += data.len();
        }
        Ok(filled)
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<()> {
        if self.read_up_to(buf)? < buf.len() {
            return Err(self.truncated());
        }
        Ok(())
    }

    /// Bytes read so far from the input as it came, before decompression.
    fn raw_bytes(&self) -> u64 {
        self.raw_count.load(Ordering::Relaxed)
    }

    fn truncated(&self) -> anyhow::Error {
        anyhow!("archive is truncated after {} bytes", self.raw_bytes())
    }

    fn read_error(&self, error: io::Error) -> anyhow::Error {
        match self.compression {
            Compression::None => anyhow!("reading the archive failed: {error}"),
            c if error.kind() == io::ErrorKind::UnexpectedEof => anyhow!(
                "archive is truncated after {} bytes (the {c} stream ends early)",
                self.raw_bytes()
            ),
            Compression::Xz if error.to_string().contains("memory limit") => anyhow!(
                "the xz stream needs more than {} MiB of memory to decode; refused",
                XZ_MEMORY_LIMIT / MIB
            ),
            c => anyhow!("corrupt {c} stream: {error}"),
        }
    }

    fn not_a_tar(&self) -> anyhow::Error {
        match self.compression {
            Compression::None => {
                anyhow!("input is not a tar archive (or a gzip/bzip2/xz/zstd-compressed one)")
            }
            c => anyhow!("the {c} stream does not hold a tar archive"),
        }
    }
}

/// A metadata entry held back until the check passes: its raw bytes (extension headers, header,
/// data, padding) and where its data lies within them.
struct HeldEntry {
    name: String,
    raw: Vec<u8>,
    data: Range<usize>,
}

/// The extension headers seen since the last entry, and what they say about the next one.
#[derive(Default)]
struct Extensions {
    raw: Vec<u8>,
    path: Option<Vec<u8>>,
    size: Option<u64>,
    /// A PAX header, a GNU long name was seen.
    pax: bool,
    long_name: bool,
    /// The PAX header has `GNU.sparse.*` records.
    sparse: bool,
}

struct Walker<W> {
    input: TarInput,
    sink: W,
    limits: Limits,
    /// Hashes of the normalised names of every entry, to check what the manifests refer to;
    /// hashes keep this small however long the names are.
    seen: HashSet<u64>,
    hasher: RandomState,
    held: Vec<HeldEntry>,
    /// Small OCI manifests and indexes by digest.
    blobs: HashMap<String, BlobDoc>,
    kept_blob_bytes: u64,
}

impl<W: Write> Walker<W> {
    fn write(&mut self, data: &[u8]) -> Result<()> {
        self.sink.write_all(data).map_err(sink_error)
    }

    fn walk(&mut self) -> Result<()> {
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
            if !checksum_ok(&block) {
                if offset == 0 {
                    return Err(self.input.not_a_tar());
                }
                bail!("corrupt tar archive: bad header checksum at offset {offset}");
            }
            let header = tar::Header::from_byte_slice(&block);
            let size = header.entry_size().map_err(|e| {
                anyhow!("corrupt tar archive: bad entry size at offset {offset}: {e}")
            })?;
            let entry_type = header.entry_type();
            if matches!(
                entry_type,
                tar::EntryType::XHeader
                    | tar::EntryType::XGlobalHeader
                    | tar::EntryType::GNULongName
                    | tar::EntryType::GNULongLink
            ) {
                self.read_extension(&block, entry_type, size, &mut ext)?;
                continue;
            }
            // What the extension headers said applies to this entry only.
            let entry_ext = std::mem::take(&mut ext);
            let path = match entry_ext.path {
                Some(path) => path,
                None => header_path(&block),
            };
            let size = entry_ext.size.unwrap_or(size);
            // Go's archive/tar reads the old type `\0` as a directory when the name ends in a
            // slash (so without data), as a file otherwise; the tar crate always as a file.
            let entry_type = if block[156] == 0 && path.ends_with(b"/") {
                tar::EntryType::Directory
            } else {
                entry_type
            };
            // Go's archive/tar (what docker uses) refuses sizes beyond int64; below that, size
            // plus padding cannot overflow.
            if size > i64::MAX as u64 {
                bail!("corrupt tar archive: bad entry size at offset {offset}: {size} bytes");
            }
            // Go's archive/tar ignores the size of header-only types.
            let data_len = if header_only(entry_type) { 0 } else { size };
            let name = entry_name(&path)?;
            if entry_type == tar::EntryType::GNUSparse || entry_ext.sparse {
                bail!("archive entry {name} is a GNU sparse file, which docker image archives never hold");
            }
            if self.seen.len() >= MAX_ENTRIES {
                bail!("archive has more than {MAX_ENTRIES} entries: not a docker image archive");
            }
            self.seen.insert(self.hasher.hash_one(&name));
            let prefix = entry_ext.raw;
            if METADATA_NAMES.contains(&name.as_str()) {
                self.hold(name, prefix, &block, entry_type, data_len)?;
            } else {
                self.pass(&name, prefix, &block, entry_type, data_len)?;
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

    fn read_extension(
        &mut self,
        block: &[u8; BLOCK],
        entry_type: tar::EntryType,
        size: u64,
        ext: &mut Extensions,
    ) -> Result<()> {
        if size > MAX_EXTENSION_HEADER {
            bail!(
                "tar extension header is larger than the {} limit",
                human_bytes(MAX_EXTENSION_HEADER)
            );
        }
        if ext.raw.len() as u64 + size > 4 * MAX_EXTENSION_HEADER {
            bail!("corrupt tar archive: too many extension headers for one entry");
        }
        // Docker's reader (Go's archive/tar) keeps only the last PAX header, prefers a GNU long
        // name to a PAX path whatever their order, and drops both at a global header. Rather
        // than mirror that, refuse the combinations, which docker save never writes: this
        // reader and docker must agree on every entry's name and size.
        let offset = self.input.pos - BLOCK as u64;
        let conflict = match entry_type {
            tar::EntryType::XHeader if ext.pax => Some("two PAX headers for one entry"),
            tar::EntryType::GNULongName if ext.long_name => {
                Some("two GNU long names for one entry")
            }
            tar::EntryType::XGlobalHeader if ext.pax || ext.long_name => {
                Some("a global PAX header after an entry's extension headers")
            }
            _ => None,
        };
        if let Some(conflict) = conflict {
            bail!("corrupt tar archive: {conflict} at offset {offset}");
        }
        let start = ext.raw.len();
        ext.raw.extend_from_slice(block);
        let data_start = ext.raw.len();
        let padded = size as usize + padding(size) as usize;
        ext.raw.resize(data_start + padded, 0);
        self.input.read_exact(&mut ext.raw[data_start..])?;
        let data = &ext.raw[data_start..data_start + size as usize];
        match entry_type {
            tar::EntryType::XHeader => {
                ext.pax = true;
                for record in tar::PaxExtensions::new(data) {
                    let record = record.map_err(|_| {
                        anyhow!(
                            "corrupt tar archive: bad PAX header at offset {}",
                            self.input.pos - (ext.raw.len() - start) as u64
                        )
                    })?;
                    match record.key_bytes() {
                        b"path" if ext.long_name => bail!(
                            "corrupt tar archive: a PAX path and a GNU long name for one entry at offset {offset}"
                        ),
                        b"path" => ext.path = Some(record.value_bytes().to_vec()),
                        // Docker reads these as a sparse file, which may rename the entry
                        // (`GNU.sparse.name`).
                        key if key.starts_with(b"GNU.sparse.") => ext.sparse = true,
                        b"size" => {
                            let size = std::str::from_utf8(record.value_bytes())
                                .ok()
                                .and_then(|s| s.parse::<u64>().ok())
                                .ok_or_else(|| anyhow!("corrupt tar archive: bad PAX size"))?;
                            ext.size = Some(size);
                        }
                        _ => {}
                    }
                }
            }
            tar::EntryType::GNULongName => {
                if ext.path.is_some() {
                    bail!("corrupt tar archive: a PAX path and a GNU long name for one entry at offset {offset}");
                }
                ext.long_name = true;
                let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
                ext.path = Some(data[..end].to_vec());
            }
            // Global headers and long link names are forwarded untouched with the next entry.
            _ => {}
        }
        Ok(())
    }

    fn hold(
        &mut self,
        name: String,
        prefix: Vec<u8>,
        block: &[u8; BLOCK],
        entry_type: tar::EntryType,
        data_len: u64,
    ) -> Result<()> {
        if !is_regular(entry_type) {
            bail!("archive entry {name} is not a regular file");
        }
        if data_len > self.limits.max_metadata_entry {
            bail!(
                "{name} is larger than the {} limit ({METADATA_ENV})",
                human_bytes(self.limits.max_metadata_entry)
            );
        }
        if self.held.iter().any(|held| held.name == name) {
            bail!("archive holds {name} twice");
        }
        let mut raw = prefix;
        raw.extend_from_slice(block);
        let data_start = raw.len();
        let padded = (data_len + padding(data_len)) as usize;
        raw.resize(data_start + padded, 0);
        self.input.read_exact(&mut raw[data_start..])?;
        self.held.push(HeldEntry {
            name,
            raw,
            data: data_start..data_start + data_len as usize,
        });
        Ok(())
    }

    fn pass(
        &mut self,
        name: &str,
        mut prefix: Vec<u8>,
        block: &[u8; BLOCK],
        entry_type: tar::EntryType,
        data_len: u64,
    ) -> Result<()> {
        prefix.extend_from_slice(block);
        self.write(&prefix)?;
        let blob_digest = blob_digest(name).filter(|_| {
            is_regular(entry_type)
                && data_len <= MAX_KEPT_BLOB
                && self.kept_blob_bytes + data_len <= MAX_KEPT_BLOBS_TOTAL
        });
        let mut kept = Vec::new();
        let mut remaining = data_len + padding(data_len);
        let mut data_left = data_len;
        while remaining > 0 {
            // Written from the read-ahead chunk itself: each byte is copied once, into the pipe.
            let data = self
                .input
                .take(usize::try_from(remaining).unwrap_or(usize::MAX))?;
            if data.is_empty() {
                return Err(self.input.truncated());
            }
            // Not `self.write`: `data` still borrows `self.input`.
            self.sink.write_all(data).map_err(sink_error)?;
            if blob_digest.is_some() {
                let data_part = data_left.min(data.len() as u64) as usize;
                kept.extend_from_slice(&data[..data_part]);
                data_left -= data_part as u64;
            }
            remaining -= data.len() as u64;
        }
        if let Some(digest) = blob_digest {
            if let Some(doc) = BlobDoc::parse(&kept) {
                self.kept_blob_bytes += data_len;
                self.blobs.insert(digest, doc);
            }
        }
        Ok(())
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

    fn learn(&self) -> Result<(Vec<ArchivedImage>, Format)> {
        if let Some(manifest) = self.held_data("manifest.json") {
            return Ok((self.learn_manifest(manifest)?, Format::DockerSave));
        }
        if let Some(index) = self.held_data("index.json") {
            return Ok((self.learn_index(index)?, Format::OciLayout));
        }
        bail!("archive holds no manifest.json or index.json: not a docker image archive")
    }

    fn require(&self, what: &str, name: &str) -> Result<()> {
        if !self.seen.contains(&self.hasher.hash_one(normalize(name))) {
            bail!("{what} names {name}, which the archive does not contain");
        }
        Ok(())
    }

    fn learn_manifest(&self, data: &[u8]) -> Result<Vec<ArchivedImage>> {
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
            for layer in &item.layers {
                self.require("manifest.json", layer)?;
            }
            images.add(id, item.repo_tags.unwrap_or_default());
        }
        Ok(images.into_vec())
    }

    fn learn_index(&self, data: &[u8]) -> Result<Vec<ArchivedImage>> {
        let index: OciIndex = serde_json::from_slice(data)
            .map_err(|e| anyhow!("index.json is not a valid OCI image index: {e}"))?;
        if index.manifests.is_empty() {
            bail!("index.json lists no images");
        }
        let mut images = ImageSet::default();
        for descriptor in &index.manifests {
            let id = self.resolve(descriptor, 0)?;
            let annotations = &descriptor.annotations;
            // A bare `ref.name` ("latest") says nothing about the repository, so it cannot match.
            let name = annotations
                .get("io.containerd.image.name")
                .or_else(|| {
                    annotations
                        .get("org.opencontainers.image.ref.name")
                        .filter(|name| name.contains(':') || name.contains('/'))
                })
                .cloned();
            images.add(id, name.into_iter().collect());
        }
        Ok(images.into_vec())
    }

    /// The config digest of the image a descriptor in `index.json` (or a nested index) names.
    fn resolve(&self, descriptor: &Descriptor, depth: usize) -> Result<String> {
        let path = blob_path(&descriptor.digest).ok_or_else(|| {
            anyhow!(
                "index.json names digest {:?}, which is not a sha256 digest",
                descriptor.digest
            )
        })?;
        self.require("index.json", &path)?;
        match self.blobs.get(&descriptor.digest) {
            None => bail!(
                "{path} is not an OCI image manifest or index of at most {}",
                human_bytes(MAX_KEPT_BLOB)
            ),
            Some(BlobDoc::Manifest { config, layers }) => {
                let config_path = blob_path(config).ok_or_else(|| {
                    anyhow!("{path} names config {config:?}, which is not a sha256 digest")
                })?;
                self.require(&path, &config_path)?;
                for layer in layers {
                    let layer_path = blob_path(layer).ok_or_else(|| {
                        anyhow!("{path} names layer {layer:?}, which is not a sha256 digest")
                    })?;
                    self.require(&path, &layer_path)?;
                }
                Ok(config.clone())
            }
            Some(BlobDoc::Index { manifests }) => {
                if depth >= MAX_INDEX_DEPTH {
                    bail!("index.json nests image indexes more than {MAX_INDEX_DEPTH} deep");
                }
                let chosen = choose_platform(manifests).ok_or_else(|| {
                    anyhow!(
                        "{path} is a multi-platform index with no image for linux/{}",
                        host_architecture()
                    )
                })?;
                self.resolve(chosen, depth + 1)
            }
        }
    }

    /// Writes the held-back entries and the end-of-archive marker, then flushes.
    fn release(&mut self) -> Result<()> {
        let held = std::mem::take(&mut self.held);
        for entry in &held {
            self.write(&entry.raw)?;
        }
        self.write(&END_OF_ARCHIVE)?;
        self.sink.flush().map_err(sink_error)
    }
}

/// A failed write to the loader. The io::Error stays in the chain, so the caller can tell a
/// loader that stopped reading (broken pipe) from other failures.
fn sink_error(error: io::Error) -> anyhow::Error {
    anyhow::Error::new(error).context("forwarding the archive to docker image load failed")
}

/// The images an archive names, in archive order, one per ID, each tag listed once. Lookups are
/// hashed: a manifest of many items or tags must not take quadratic time.
#[derive(Default)]
struct ImageSet {
    images: Vec<ArchivedImage>,
    /// Index in `images` and the tags already listed, by image ID.
    by_id: HashMap<String, (usize, HashSet<String>)>,
}

impl ImageSet {
    fn add(&mut self, id: String, tags: Vec<String>) {
        let images = &mut self.images;
        let (index, known) = self.by_id.entry(id).or_insert_with_key(|id| {
            images.push(ArchivedImage {
                id: id.clone(),
                tags: Vec::new(),
            });
            (images.len() - 1, HashSet::new())
        });
        for tag in tags {
            if !known.contains(&tag) {
                known.insert(tag.clone());
                images[*index].tags.push(tag);
            }
        }
    }

    fn into_vec(self) -> Vec<ArchivedImage> {
        self.images
    }
}

/// Of a multi-platform index's manifests, the only image, or the one for this host.
fn choose_platform(manifests: &[Descriptor]) -> Option<&Descriptor> {
    // BuildKit attaches attestations as extra manifests with an "unknown" platform.
    let images: Vec<&Descriptor> = manifests
        .iter()
        .filter(|d| {
            d.annotations
                .get("vnd.docker.reference.type")
                .is_none_or(|t| t != "attestation-manifest")
                && d.platform.as_ref().is_none_or(|p| p.os != "unknown")
        })
        .collect();
    if let [only] = images.as_slice() {
        return Some(only);
    }
    let arch = host_architecture();
    images.into_iter().find(|d| {
        d.platform
            .as_ref()
            .is_some_and(|p| p.os == "linux" && p.architecture == arch)
    })
}

/// The host's architecture in the OCI (Go) spelling.
fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

#[derive(Deserialize)]
struct ManifestItem {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

#[derive(Deserialize)]
struct OciIndex {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize, Clone, Debug)]
struct Descriptor {
    digest: String,
    #[serde(default)]
    annotations: HashMap<String, String>,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize, Clone, Debug)]
struct Platform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
}

/// A small blob understood as an OCI image manifest or index.
#[derive(Debug)]
enum BlobDoc {
    Manifest { config: String, layers: Vec<String> },
    Index { manifests: Vec<Descriptor> },
}

/// The fields that tell a manifest or an index apart; an image config fails to parse as this
/// because its `config` object has no `digest`.
#[derive(Deserialize)]
struct RawBlobDoc {
    config: Option<Descriptor>,
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

impl BlobDoc {
    fn parse(data: &[u8]) -> Option<BlobDoc> {
        if data.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return None;
        }
        let raw: RawBlobDoc = serde_json::from_slice(data).ok()?;
        match (raw.config, raw.manifests) {
            (Some(config), None) => Some(BlobDoc::Manifest {
                config: config.digest,
                layers: raw.layers.into_iter().map(|l| l.digest).collect(),
            }),
            (None, Some(manifests)) => Some(BlobDoc::Index { manifests }),
            _ => None,
        }
    }
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `blobs/sha256/<hex>` for `sha256:<hex>`.
fn blob_path(digest: &str) -> Option<String> {
    let hex = digest.strip_prefix("sha256:")?;
    is_hex64(hex).then(|| format!("blobs/sha256/{hex}"))
}

/// `sha256:<hex>` for an entry named `blobs/sha256/<hex>`.
fn blob_digest(name: &str) -> Option<String> {
    let hex = name.strip_prefix("blobs/sha256/")?;
    is_hex64(hex).then(|| format!("sha256:{hex}"))
}

/// The image ID from manifest.json's `Config`: `<hex>.json` (legacy) or `blobs/sha256/<hex>`.
fn config_id(config: &str) -> Option<String> {
    let name = normalize(config);
    if let Some(digest) = blob_digest(&name) {
        return Some(digest);
    }
    let hex = name.strip_suffix(".json")?;
    is_hex64(hex).then(|| format!("sha256:{hex}"))
}

/// An entry path without `.` components, empty components or a trailing slash.
fn normalize(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect();
    if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    }
}

/// An entry's path as docker (Go's archive/tar) reads it from the header: the name field, with
/// the prefix field in front whenever the magic is `ustar\0`, whatever the version field says
/// (the tar crate also wants version `00`); star headers, marked by a `tar\0` trailer, have a
/// shorter prefix.
fn header_path(block: &[u8; BLOCK]) -> Vec<u8> {
    fn until_nul(field: &[u8]) -> &[u8] {
        let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
        &field[..end]
    }
    let name = until_nul(&block[..100]);
    if &block[257..263] != b"ustar\0" {
        return name.to_vec();
    }
    let prefix = if &block[508..] == b"tar\0" {
        until_nul(&block[345..476])
    } else {
        until_nul(&block[345..500])
    };
    if prefix.is_empty() {
        return name.to_vec();
    }
    [prefix, b"/", name].concat()
}

/// The normalised name of an entry, refusing paths that would escape the extraction directory.
fn entry_name(path: &[u8]) -> Result<String> {
    let path = String::from_utf8_lossy(path);
    if path.len() > MAX_PATH_LEN {
        bail!("archive entry path is longer than {MAX_PATH_LEN} bytes");
    }
    if path.is_empty() {
        bail!("corrupt tar archive: an entry has an empty path");
    }
    if path.starts_with('/') || path.split('/').any(|part| part == "..") {
        bail!("archive entry has an unsafe path: {path:?}");
    }
    Ok(normalize(&path))
}

fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

fn is_regular(entry_type: tar::EntryType) -> bool {
    matches!(
        entry_type,
        tar::EntryType::Regular | tar::EntryType::Continuous
    )
}

fn header_only(entry_type: tar::EntryType) -> bool {
    matches!(
        entry_type,
        tar::EntryType::Link
            | tar::EntryType::Symlink
            | tar::EntryType::Char
            | tar::EntryType::Block
            | tar::EntryType::Directory
            | tar::EntryType::Fifo
    )
}

/// Checks a header's checksum, computed with the checksum field as spaces; some old tars summed
/// signed bytes, which Go (and so docker) also accepts.
fn checksum_ok(block: &[u8; BLOCK]) -> bool {
    let Ok(stored) = tar::Header::from_byte_slice(block).cksum() else {
        return false;
    };
    let (mut unsigned, mut signed) = (0u32, 0i64);
    for (i, &byte) in block.iter().enumerate() {
        let byte = if (148..156).contains(&i) { b' ' } else { byte };
        unsigned += u32::from(byte);
        signed += i64::from(byte as i8);
    }
    stored == unsigned || i64::from(stored) == signed
}

fn human_bytes(n: u64) -> String {
    for (unit, name) in [(GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")] {
        if n >= unit && n.is_multiple_of(unit) {
            return format!("{} {name}", n / unit);
        }
    }
    format!("{n} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io::Cursor;

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Bzip2,
        Compression::Xz,
        Compression::Zstd,
    ];

    fn hex(n: u32) -> String {
        format!("{n:064x}")
    }

    fn pattern(seed: u8, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed | 1)
            .collect()
    }

    fn header(kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_mtime(1_700_000_000);
        h
    }

    fn file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
        let mut h = header(tar::EntryType::Regular, data.len() as u64);
        b.append_data(&mut h, path, data).unwrap();
    }

    fn dir(b: &mut tar::Builder<Vec<u8>>, path: &str) {
        let mut h = header(tar::EntryType::Directory, 0);
        b.append_data(&mut h, path, io::empty()).unwrap();
    }

    fn symlink(b: &mut tar::Builder<Vec<u8>>, path: &str, target: &str) {
        let mut h = header(tar::EntryType::Symlink, 0);
        b.append_link(&mut h, path, target).unwrap();
    }

    fn finish(b: tar::Builder<Vec<u8>>) -> Vec<u8> {
        b.into_inner().unwrap()
    }

    fn config_json() -> Vec<u8> {
        br#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"]},"rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec()
    }

    fn oci_manifest(config: &str, layers: &[&str]) -> Vec<u8> {
        let layers: Vec<serde_json::Value> = layers
            .iter()
            .map(|l| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": format!("sha256:{l}"), "size": 1}))
            .collect();
        serde_json::to_vec_pretty(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{config}"), "size": 1},
            "layers": layers,
        }))
        .unwrap()
    }

    /// Engine <= 24: `<id>/layer.tar`, `<config>.json`, a shared layer as a symlink.
    fn legacy() -> Vec<u8> {
        let (l1, cfg, l2) = (hex(1), hex(2), hex(3));
        let mut b = tar::Builder::new(Vec::new());
        dir(&mut b, &format!("{l1}/"));
        file(&mut b, &format!("{l1}/VERSION"), b"1.0");
        file(&mut b, &format!("{l1}/json"), b"{}");
        file(&mut b, &format!("{l1}/layer.tar"), &pattern(1, 3000));
        file(&mut b, &format!("{cfg}.json"), &config_json());
        dir(&mut b, &format!("{l2}/"));
        symlink(
            &mut b,
            &format!("{l2}/layer.tar"),
            &format!("../{l1}/layer.tar"),
        );
        let manifest = format!(
            r#"[{{"Config":"{cfg}.json","RepoTags":["app:1","app:latest"],"Layers":["{l1}/layer.tar","{l2}/layer.tar"]}}]"#
        );
        file(&mut b, "manifest.json", manifest.as_bytes());
        file(
            &mut b,
            "repositories",
            format!(r#"{{"app":{{"1":"{l2}"}}}}"#).as_bytes(),
        );
        finish(b)
    }

    /// Engine >= 25: OCI blobs, index.json and manifest.json side by side.
    fn docker25(index_name: &str) -> Vec<u8> {
        let (layer, cfg, man) = (hex(10), hex(11), hex(12));
        let mut b = tar::Builder::new(Vec::new());
        dir(&mut b, "blobs/");
        dir(&mut b, "blobs/sha256/");
        file(&mut b, &format!("blobs/sha256/{layer}"), &pattern(2, 5000));
        file(&mut b, &format!("blobs/sha256/{cfg}"), &config_json());
        file(
            &mut b,
            &format!("blobs/sha256/{man}"),
            &oci_manifest(&cfg, &[&layer]),
        );
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{man}"), "size": 1,
            "annotations": {"io.containerd.image.name": index_name, "org.opencontainers.image.ref.name": "2"},
        }]});
        file(&mut b, "index.json", &serde_json::to_vec(&index).unwrap());
        let manifest = format!(
            r#"[{{"Config":"blobs/sha256/{cfg}","RepoTags":["web:2"],"Layers":["blobs/sha256/{layer}"]}}]"#
        );
        file(&mut b, "manifest.json", manifest.as_bytes());
        file(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
        file(&mut b, "repositories", b"{}");
        finish(b)
    }

    /// skopeo/containerd style: index.json only, with a multi-platform nested index.
    fn oci_only() -> Vec<u8> {
        let layer = hex(20);
        let mut b = tar::Builder::new(Vec::new());
        file(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
        file(&mut b, &format!("blobs/sha256/{layer}"), &pattern(3, 700));
        for (cfg, man) in [(21, 22), (23, 24), (26, 25), (31, 30)] {
            file(
                &mut b,
                &format!("blobs/sha256/{}", hex(cfg)),
                &config_json(),
            );
            file(
                &mut b,
                &format!("blobs/sha256/{}", hex(man)),
                &oci_manifest(&hex(cfg), &[&layer]),
            );
        }
        let nested = serde_json::json!({"schemaVersion": 2, "manifests": [
            {"digest": format!("sha256:{}", hex(24)), "platform": {"architecture": "other-arch", "os": "linux"}},
            {"digest": format!("sha256:{}", hex(22)), "platform": {"architecture": host_architecture(), "os": "linux"}},
            {"digest": format!("sha256:{}", hex(25)), "platform": {"architecture": "unknown", "os": "unknown"},
             "annotations": {"vnd.docker.reference.type": "attestation-manifest"}},
        ]});
        file(
            &mut b,
            &format!("blobs/sha256/{}", hex(27)),
            &serde_json::to_vec(&nested).unwrap(),
        );
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [
            {"digest": format!("sha256:{}", hex(27)), "annotations": {"org.opencontainers.image.ref.name": "ghcr.io/acme/tool:v3"}},
            {"digest": format!("sha256:{}", hex(22)), "annotations": {"org.opencontainers.image.ref.name": "latest"}},
            {"digest": format!("sha256:{}", hex(30)), "annotations": {"io.containerd.image.name": "docker.io/library/solo:1"}},
        ]});
        file(&mut b, "index.json", &serde_json::to_vec(&index).unwrap());
        finish(b)
    }

    fn compress(data: &[u8], compression: Compression) -> Vec<u8> {
        match compression {
            Compression::None => data.to_vec(),
            Compression::Gzip => {
                let mut e =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Compression::Bzip2 => {
                let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Compression::Xz => {
                let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Compression::Zstd => zstd::stream::encode_all(data, 1).unwrap(),
        }
    }

    type Entry = (String, u8, Option<String>, Vec<u8>);

    /// The entries of a complete tar, sorted by path (metadata moves to the end when forwarded).
    fn entries(tar_bytes: &[u8]) -> Vec<Entry> {
        let mut archive = tar::Archive::new(tar_bytes);
        let mut out: Vec<Entry> = archive
            .entries()
            .unwrap()
            .map(|entry| {
                let mut entry = entry.unwrap();
                let path = entry.path().unwrap().to_string_lossy().into_owned();
                let kind = entry.header().entry_type().as_byte();
                let link = entry
                    .link_name()
                    .unwrap()
                    .map(|l| l.to_string_lossy().into_owned());
                let mut data = Vec::new();
                entry.read_to_end(&mut data).unwrap();
                (path, kind, link, data)
            })
            .collect();
        out.sort();
        out
    }

    fn run_with(
        input: &[u8],
        limits: &Limits,
        check: impl FnOnce(&Contents) -> Result<()>,
    ) -> (Result<Contents>, Vec<u8>) {
        let mut sink = Vec::new();
        let result = forward(input, &mut sink, limits, check);
        (result, sink)
    }

    fn run(input: &[u8]) -> (Result<Contents>, Vec<u8>) {
        run_with(input, &Limits::default(), |_| Ok(()))
    }

    fn error(input: &[u8]) -> String {
        let (result, sink) = run(input);
        assert_nothing_committed(&sink);
        format!("{:#}", result.expect_err("forward should fail"))
    }

    /// The loader must not have seen any metadata entry or the end-of-archive marker.
    fn assert_nothing_committed(sink: &[u8]) {
        for name in METADATA_NAMES {
            let mut needle = name.as_bytes().to_vec();
            needle.push(0);
            assert!(
                !sink.windows(needle.len()).any(|w| w == needle.as_slice()),
                "{name} reached the sink"
            );
        }
        assert!(
            sink.len() < END_OF_ARCHIVE.len()
                || sink[sink.len() - END_OF_ARCHIVE.len()..]
                    .iter()
                    .any(|&b| b != 0),
            "the end-of-archive marker reached the sink"
        );
    }

    fn image(id: u32, tags: &[&str]) -> ArchivedImage {
        ArchivedImage {
            id: format!("sha256:{}", hex(id)),
            tags: tags.iter().map(|t| t.to_string()).collect(),
        }
    }

    fn reference(s: &str) -> Reference {
        Reference::parse(s).unwrap()
    }

    #[test]
    fn legacy_layout_in_every_compression() {
        let original = legacy();
        for compression in ALL {
            let (result, sink) = run(&compress(&original, compression));
            let contents = result.unwrap();
            assert_eq!(contents.compression, compression);
            assert_eq!(contents.format, Format::DockerSave);
            assert_eq!(contents.images, vec![image(2, &["app:1", "app:latest"])]);
            assert_eq!(entries(&sink), entries(&original), "{compression}");
            assert!(sink.ends_with(&END_OF_ARCHIVE));
        }
    }

    #[test]
    fn docker25_layout_in_every_compression() {
        let original = docker25("docker.io/library/web:2");
        for compression in ALL {
            let (result, sink) = run(&compress(&original, compression));
            let contents = result.unwrap();
            assert_eq!(contents.format, Format::DockerSave);
            assert_eq!(contents.images, vec![image(11, &["web:2"])]);
            assert_eq!(entries(&sink), entries(&original), "{compression}");
        }
    }

    #[test]
    fn manifest_json_is_authoritative_over_index_json() {
        let (result, _) = run(&docker25("docker.io/library/other:9"));
        let contents = result.unwrap();
        assert_eq!(contents.all_tags(), vec!["web:2"]);
        assert!(contents.find(&reference("other:9")).is_none());
    }

    #[test]
    fn oci_only_layout_resolves_config_digests() {
        let original = oci_only();
        for compression in ALL {
            let (result, sink) = run(&compress(&original, compression));
            let contents = result.unwrap();
            assert_eq!(contents.format, Format::OciLayout);
            assert_eq!(
                contents.images,
                vec![
                    image(21, &["ghcr.io/acme/tool:v3"]),
                    image(31, &["docker.io/library/solo:1"]),
                ]
            );
            assert_eq!(entries(&sink), entries(&original), "{compression}");
        }
    }

    #[test]
    fn find_normalises_names() {
        let (result, _) = run(&legacy());
        let contents = result.unwrap();
        let wanted = contents
            .find(&reference("docker.io/library/app:1"))
            .unwrap();
        assert_eq!(wanted.id, format!("sha256:{}", hex(2)));
        assert!(contents.find(&reference("app")).is_some());
        assert!(contents
            .find(&reference("index.docker.io/library/app:latest"))
            .is_some());
        assert!(contents.find(&reference("app:2")).is_none());
        assert!(contents.find(&reference("other/app:1")).is_none());
        assert_eq!(contents.all_tags(), vec!["app:1", "app:latest"]);

        let (result, _) = run(&oci_only());
        let contents = result.unwrap();
        // sorted, not in the archive's order
        assert_eq!(
            contents.all_tags(),
            vec!["docker.io/library/solo:1", "ghcr.io/acme/tool:v3"]
        );
        assert!(contents.find(&reference("solo:1")).is_some());
        assert!(contents.find(&reference("ghcr.io/acme/tool:v3")).is_some());
        // A bare ref.name tag names no repository.
        assert!(contents.find(&reference("latest")).is_none());

        let odd = Contents {
            images: vec![image(5, &["Not A Reference", "ok:1"])],
            compression: Compression::None,
            format: Format::DockerSave,
        };
        assert!(odd.find(&reference("ok:1")).is_some());
    }

    #[test]
    fn check_sees_contents_and_rejection_commits_nothing() {
        for compression in ALL {
            for original in [legacy(), docker25("web:2"), oci_only()] {
                let input = compress(&original, compression);
                let mut seen = None;
                let (result, sink) = run_with(&input, &Limits::default(), |contents| {
                    seen = Some(contents.clone());
                    bail!("archive does not hold the image")
                });
                assert_eq!(
                    result.unwrap_err().to_string(),
                    "archive does not hold the image"
                );
                assert!(!seen.unwrap().images.is_empty());
                assert_nothing_committed(&sink);
                assert!(!sink.is_empty(), "layers are forwarded before the check");
            }
        }
    }

    #[test]
    fn truncated_plain_archives_fail_at_every_offset() {
        let original = legacy();
        let end_marker_start = original.len() - END_OF_ARCHIVE.len();
        let mut cuts: Vec<usize> = (0..end_marker_start + BLOCK).step_by(97).collect();
        cuts.extend((0..end_marker_start + BLOCK).step_by(BLOCK));
        cuts.push(end_marker_start + BLOCK - 1);
        for cut in cuts {
            let (result, sink) = run(&original[..cut]);
            assert!(result.is_err(), "cut at {cut} should fail");
            assert_nothing_committed(&sink);
            let message = format!("{:#}", result.unwrap_err());
            assert!(
                message.starts_with("archive is truncated after")
                    || message.starts_with("empty input")
                    || message.starts_with("input is not a tar archive"),
                "cut at {cut}: {message}"
            );
        }
        assert_eq!(
            error(&original[..end_marker_start]),
            format!(
                "archive is truncated after {end_marker_start} bytes (no end-of-archive marker)"
            )
        );
        assert_eq!(
            error(&original[..5000]),
            "archive is truncated after 5000 bytes"
        );
    }

    #[test]
    fn end_marker_may_be_short_or_padded() {
        let original = legacy();
        let end = original.len();
        for cut in [end - BLOCK, end - 100] {
            run(&original[..cut]).0.unwrap();
        }
        let mut padded = original.clone();
        padded.extend_from_slice(&[0; 10 * 1024 + 7]);
        let (result, sink) = run(&padded);
        result.unwrap();
        assert_eq!(sink.len() % BLOCK, 0);
        assert_eq!(entries(&sink), entries(&original));
        // A lone zero block followed by a header is not an end marker.
        let mut lone = original[..end - 2 * BLOCK].to_vec();
        lone.extend_from_slice(&[0; BLOCK]);
        lone.extend_from_slice(&legacy());
        assert!(error(&lone).contains("a header follows a single zero block"));
    }

    #[test]
    fn truncated_compressed_archives_fail() {
        let original = legacy();
        for compression in [
            Compression::Gzip,
            Compression::Bzip2,
            Compression::Xz,
            Compression::Zstd,
        ] {
            let input = compress(&original, compression);
            for cut in [
                10,
                input.len() / 3,
                input.len() / 2,
                input.len() - 4,
                input.len() - 1,
            ] {
                assert_eq!(
                    error(&input[..cut]),
                    format!("archive is truncated after {cut} bytes (the {compression} stream ends early)")
                );
            }
        }
    }

    #[test]
    fn garbage_and_empty_input() {
        assert_eq!(
            error(b""),
            "empty input: expected a tar archive (docker image save output) on stdin"
        );
        let garbage_message = "input is not a tar archive (or a gzip/bzip2/xz/zstd-compressed one)";
        assert_eq!(error(b"hello"), garbage_message);
        assert_eq!(error(b"<html>not found</html>\n"), garbage_message);
        assert_eq!(error(&pattern(9, 100_000)), garbage_message);
        assert_eq!(
            error(&compress(&pattern(9, 100_000), Compression::Gzip)),
            "the gzip stream does not hold a tar archive"
        );
        assert_eq!(
            error(&compress(b"", Compression::Zstd)),
            "the zstd stream is empty: expected a tar archive"
        );
        let mut bad_gzip = compress(&legacy(), Compression::Gzip);
        for byte in &mut bad_gzip[20..60] {
            *byte ^= 0x55;
        }
        assert!(error(&bad_gzip).starts_with("corrupt gzip stream: "));
        let mut bad_xz = compress(&legacy(), Compression::Xz);
        let middle = bad_xz.len() / 2;
        bad_xz[middle] ^= 0xff;
        assert!(error(&bad_xz).starts_with("corrupt xz stream: "));
    }

    #[test]
    fn corrupt_header_mid_archive() {
        let mut original = legacy();
        original[BLOCK + 10] ^= 0x20;
        assert_eq!(
            error(&original),
            "corrupt tar archive: bad header checksum at offset 512"
        );
    }

    /// A ustar header with a name the tar crate's builder would refuse.
    fn raw_entry(name: &[u8], kind: tar::EntryType, data: &[u8]) -> Vec<u8> {
        let mut h = header(kind, data.len() as u64);
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_cksum();
        let mut out = h.as_bytes().to_vec();
        out.extend_from_slice(data);
        out.resize(out.len() + padding(data.len() as u64) as usize, 0);
        out
    }

    #[test]
    fn unsafe_paths_are_refused() {
        for name in [
            &b"../evil"[..],
            b"/etc/passwd",
            b"a/../../b",
            b"blobs/..",
            b"./../x",
        ] {
            let mut input = raw_entry(b"ok.txt", tar::EntryType::Regular, b"fine");
            input.extend(raw_entry(name, tar::EntryType::Regular, b"x"));
            input.extend_from_slice(&END_OF_ARCHIVE);
            let message = error(&input);
            assert_eq!(
                message,
                format!(
                    "archive entry has an unsafe path: {:?}",
                    String::from_utf8_lossy(name)
                )
            );
        }
        let mut input = raw_entry(b"sparse", tar::EntryType::GNUSparse, b"x");
        input.extend_from_slice(&END_OF_ARCHIVE);
        assert_eq!(
            error(&input),
            "archive entry sparse is a GNU sparse file, which docker image archives never hold"
        );
        // A dot-dot inside a name is harmless.
        let mut input = raw_entry(b"a..b", tar::EntryType::Regular, b"x");
        input.extend_from_slice(&END_OF_ARCHIVE);
        assert!(error(&input).starts_with("archive holds no manifest.json"));
    }

    #[test]
    fn metadata_rules() {
        let mut b = tar::Builder::new(Vec::new());
        file(&mut b, "layer.tar", b"data");
        assert_eq!(
            error(&finish(b)),
            "archive holds no manifest.json or index.json: not a docker image archive"
        );

        let mut b = tar::Builder::new(Vec::new());
        file(&mut b, &format!("{}.json", hex(1)), b"{}");
        file(
            &mut b,
            "manifest.json",
            format!(
                r#"[{{"Config":"{}.json","RepoTags":null,"Layers":["x/layer.tar"]}}]"#,
                hex(1)
            )
            .as_bytes(),
        );
        assert_eq!(
            error(&finish(b)),
            "manifest.json names x/layer.tar, which the archive does not contain"
        );

        let mut b = tar::Builder::new(Vec::new());
        file(
            &mut b,
            "manifest.json",
            format!(r#"[{{"Config":"{}.json","RepoTags":null}}]"#, hex(1)).as_bytes(),
        );
        assert_eq!(
            error(&finish(b)),
            format!(
                "manifest.json names {}.json, which the archive does not contain",
                hex(1)
            )
        );

        let mut b = tar::Builder::new(Vec::new());
        file(&mut b, "manifest.json", br#"[{"Config":"config.json"}]"#);
        assert!(error(&finish(b)).contains("which is not a sha256 digest"));

        let mut b = tar::Builder::new(Vec::new());
        file(&mut b, "manifest.json", b"not json");
        assert!(error(&finish(b)).starts_with("manifest.json is not a valid docker image manifest"));

        let mut b = tar::Builder::new(Vec::new());
        file(&mut b, "manifest.json", b"[]");
        file(&mut b, "manifest.json", b"[]");
        assert_eq!(error(&finish(b)), "archive holds manifest.json twice");

        let mut b = tar::Builder::new(Vec::new());
        symlink(&mut b, "manifest.json", "elsewhere.json");
        assert_eq!(
            error(&finish(b)),
            "archive entry manifest.json is not a regular file"
        );

        // OCI: an index naming a blob that is absent.
        let mut b = tar::Builder::new(Vec::new());
        let index = format!(r#"{{"manifests":[{{"digest":"sha256:{}"}}]}}"#, hex(7));
        file(&mut b, "index.json", index.as_bytes());
        assert_eq!(
            error(&finish(b)),
            format!(
                "index.json names blobs/sha256/{}, which the archive does not contain",
                hex(7)
            )
        );
    }

    #[test]
    fn null_repo_tags_and_dot_slash_names() {
        let cfg = hex(4);
        let mut b = tar::Builder::new(Vec::new());
        file(&mut b, &format!("./{cfg}.json"), b"{}");
        file(&mut b, "./l/layer.tar", b"layer");
        let manifest =
            format!(r#"[{{"Config":"{cfg}.json","RepoTags":null,"Layers":["l/layer.tar"]}}]"#);
        file(&mut b, "./manifest.json", manifest.as_bytes());
        let (result, sink) = run(&finish(b));
        let contents = result.unwrap();
        assert_eq!(contents.images, vec![image(4, &[])]);
        assert!(contents.all_tags().is_empty());
        assert!(sink.ends_with(&END_OF_ARCHIVE));
    }

    #[test]
    fn oversize_metadata_is_refused() {
        let limits = Limits {
            max_metadata_entry: 100,
            ..Limits::default()
        };
        let (result, sink) = run_with(&legacy(), &limits, |_| Ok(()));
        assert_eq!(
            result.unwrap_err().to_string(),
            "manifest.json is larger than the 100 bytes limit (DOKKU_IMAGE_MAX_METADATA_BYTES)"
        );
        assert_nothing_committed(&sink);
        let mut b = tar::Builder::new(Vec::new());
        file(&mut b, "index.json", &vec![b' '; (16 * MIB + 1) as usize]);
        assert_eq!(
            error(&finish(b)),
            "index.json is larger than the 16 MiB limit (DOKKU_IMAGE_MAX_METADATA_BYTES)"
        );
    }

    #[test]
    fn total_size_limit() {
        let limits = Limits {
            max_total_bytes: 4096,
            ..Limits::default()
        };
        for compression in ALL {
            let input = compress(&legacy(), compression);
            let (result, sink) = run_with(&input, &limits, |_| Ok(()));
            assert_eq!(
                result.unwrap_err().to_string(),
                "archive exceeds the size limit of 4096 bytes (DOKKU_IMAGE_MAX_ARCHIVE_BYTES)"
            );
            assert_nothing_committed(&sink);
        }
        // The limit counts decompressed bytes, trailing padding included.
        let mut padded = legacy();
        let exact = Limits {
            max_total_bytes: padded.len() as u64,
            ..Limits::default()
        };
        run_with(&padded, &exact, |_| Ok(())).0.unwrap();
        padded.extend_from_slice(&[0; BLOCK]);
        assert!(run_with(&padded, &exact, |_| Ok(())).0.is_err());
    }

    #[test]
    fn long_names_pax_and_gnu() {
        let cfg = hex(8);
        let long_dir = "d".repeat(150);
        let gnu_path = format!("{long_dir}/gnu/layer.tar");
        let pax_path = format!("{long_dir}/pax/layer.tar");
        let mut b = tar::Builder::new(Vec::new());
        file(&mut b, &format!("{cfg}.json"), b"{}");
        // append_data falls back to a GNU 'L' entry for names over 100 bytes.
        file(&mut b, &gnu_path, &pattern(4, 1500));
        let data = pattern(5, 2100);
        b.append_pax_extensions([
            ("path", pax_path.as_bytes()),
            ("size", data.len().to_string().as_bytes()),
            ("mtime", b"1700000000.5".as_slice()),
        ])
        .unwrap();
        // The header's own size is wrong on purpose: the PAX size wins.
        let mut h = header(tar::EntryType::Regular, 0);
        h.set_path("placeholder").unwrap();
        h.set_cksum();
        let mut raw = finish(b);
        raw.truncate(raw.len() - END_OF_ARCHIVE.len());
        raw.extend_from_slice(h.as_bytes());
        raw.extend_from_slice(&data);
        raw.resize(raw.len() + padding(data.len() as u64) as usize, 0);
        let mut b = tar::Builder::new(raw);
        b.append_pax_extensions([("comment", b"global".as_slice())])
            .unwrap();
        let manifest = format!(
            r#"[{{"Config":"{cfg}.json","RepoTags":["long:1"],"Layers":["{gnu_path}","{pax_path}"]}}]"#
        );
        file(&mut b, "manifest.json", manifest.as_bytes());
        let original = finish(b);
        let (result, sink) = run(&original);
        assert_eq!(result.unwrap().images, vec![image(8, &["long:1"])]);
        let mut expected = original[..original.len() - END_OF_ARCHIVE.len()].to_vec();
        expected.extend_from_slice(&END_OF_ARCHIVE);
        assert_eq!(sink, expected, "forwarded byte for byte");
    }

    #[test]
    fn sink_errors_are_reported() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::BrokenPipe, "broken pipe"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let error = forward(&legacy()[..], Broken, &Limits::default(), |_| Ok(())).unwrap_err();
        assert_eq!(
            format!("{error:#}"),
            "forwarding the archive to docker image load failed: broken pipe"
        );
        // The io::Error is kept, so image:load can tell a loader that stopped reading.
        assert!(error.chain().any(|cause| cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)));
    }

    #[test]
    fn limits_from_variables() {
        let none = |_: &str| None;
        assert_eq!(Limits::from_lookup(none).unwrap(), Limits::default());
        assert_eq!(Limits::default().max_metadata_entry, 16 * MIB);
        assert_eq!(Limits::default().max_total_bytes, 256 * GIB);
        let set = |name: &str| match name {
            METADATA_ENV => Some(OsString::from("1024")),
            ARCHIVE_ENV => Some(OsString::from("")),
            _ => None,
        };
        assert_eq!(
            Limits::from_lookup(set).unwrap(),
            Limits {
                max_metadata_entry: 1024,
                max_total_bytes: 256 * GIB
            }
        );
        for bad in ["0", "-1", "16M", " 5", "1e9", "99999999999999999999999"] {
            let lookup = |name: &str| (name == ARCHIVE_ENV).then(|| OsString::from(bad));
            assert_eq!(
                Limits::from_lookup(lookup).unwrap_err().to_string(),
                format!("DOKKU_IMAGE_MAX_ARCHIVE_BYTES must be a positive whole number of bytes, not {bad:?}")
            );
        }
    }

    #[test]
    fn compression_detection_and_names() {
        assert_eq!(Compression::detect(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(Compression::detect(b"BZh91AY"), Compression::Bzip2);
        assert_eq!(
            Compression::detect(&[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]),
            Compression::Xz
        );
        assert_eq!(
            Compression::detect(&[0xfd, 0x37, 0x7a, 0x58, 0x5a]),
            Compression::None
        );
        assert_eq!(
            Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::detect(b"ustar"), Compression::None);
        let names: Vec<String> = ALL.iter().map(|c| c.to_string()).collect();
        assert_eq!(names, ["plain tar", "gzip", "bzip2", "xz", "zstd"]);
    }

    #[test]
    fn concatenated_compressed_streams() {
        let original = legacy();
        let (first, second) = original.split_at(original.len() / 2);
        for compression in [
            Compression::Gzip,
            Compression::Bzip2,
            Compression::Xz,
            Compression::Zstd,
        ] {
            let mut input = compress(first, compression);
            input.extend(compress(second, compression));
            let (result, sink) = run(&input);
            result.unwrap_or_else(|e| panic!("{compression}: {e:#}"));
            assert_eq!(entries(&sink), entries(&original));
        }
    }

    /// Yields `len` bytes of a pattern without holding them.
    struct Generated {
        remaining: u64,
        position: u64,
    }

    impl Read for Generated {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = (buf.len() as u64).min(self.remaining) as usize;
            for byte in &mut buf[..n] {
                *byte = (self.position % 251) as u8 | 1;
                self.position += 1;
            }
            self.remaining -= n as u64;
            Ok(n)
        }
    }

    /// Checks the stream it receives without keeping it.
    struct CheckingSink {
        written: u64,
        largest_write: usize,
        layer_sum: u64,
    }

    impl Write for CheckingSink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            for (i, &byte) in buf.iter().enumerate() {
                let at = self.written + i as u64;
                if (BLOCK as u64..BLOCK as u64 + 64 * MIB).contains(&at) {
                    self.layer_sum += u64::from(byte);
                }
            }
            self.written += buf.len() as u64;
            self.largest_write = self.largest_write.max(buf.len());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn streams_a_large_layer_in_constant_memory() {
        let layer_len = 64 * MIB;
        let layer = hex(40);
        let cfg = hex(41);
        let mut h = header(tar::EntryType::Regular, layer_len);
        h.set_path(format!("blobs/sha256/{layer}")).unwrap();
        h.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        file(&mut b, &format!("blobs/sha256/{cfg}"), &config_json());
        let manifest = format!(
            r#"[{{"Config":"blobs/sha256/{cfg}","RepoTags":["big:1"],"Layers":["blobs/sha256/{layer}"]}}]"#
        );
        file(&mut b, "manifest.json", manifest.as_bytes());
        let tail = finish(b);
        let input = Cursor::new(h.as_bytes().to_vec())
            .chain(Generated {
                remaining: layer_len,
                position: 0,
            })
            .chain(Cursor::new(tail.clone()));
        let mut sink = CheckingSink {
            written: 0,
            largest_write: 0,
            layer_sum: 0,
        };
        let contents = forward(input, &mut sink, &Limits::default(), |_| Ok(())).unwrap();
        assert_eq!(contents.images, vec![image(41, &["big:1"])]);
        assert_eq!(sink.written, BLOCK as u64 + layer_len + tail.len() as u64);
        assert!(sink.largest_write <= CHUNK_SIZE, "{}", sink.largest_write);
        let mut expected = Generated {
            remaining: layer_len,
            position: 0,
        };
        let mut expected_sum = 0u64;
        let mut buffer = vec![0; CHUNK_SIZE];
        loop {
            let n = expected.read(&mut buffer).unwrap();
            if n == 0 {
                break;
            }
            expected_sum += buffer[..n].iter().map(|&b| u64::from(b)).sum::<u64>();
        }
        assert_eq!(sink.layer_sum, expected_sum);
    }

    // Found by fuzzing (fuzz/fuzz_targets/archive_tar.rs): a PAX or base-256 size near
    // u64::MAX overflowed `size + padding` (a panic in debug builds, a wrong length in release).
    #[test]
    fn regression_huge_entry_size_is_refused() {
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([("size", b"18446744073709551615".as_slice())])
            .unwrap();
        file(&mut b, "layer.tar", b"x");
        assert_eq!(
            error(&finish(b)),
            "corrupt tar archive: bad entry size at offset 1024: 18446744073709551615 bytes"
        );
        let mut h = header(tar::EntryType::Regular, u64::MAX);
        h.set_path("layer.tar").unwrap();
        h.set_cksum();
        let mut input = h.as_bytes().to_vec();
        input.extend_from_slice(&END_OF_ARCHIVE);
        assert_eq!(
            error(&input),
            "corrupt tar archive: bad entry size at offset 0: 18446744073709551615 bytes"
        );
    }

    // Found by fuzzing (fuzz/fuzz_targets/archive_tar.rs): RepoTags listing a tag twice gave
    // it twice in `tags`, while tags merged from another item were deduplicated; and the
    // deduplication was quadratic (a 16 MiB manifest of one-tag items took minutes).
    #[test]
    fn regression_tags_are_listed_once_in_linear_time() {
        let cfg = hex(5);
        let mut b = tar::Builder::new(Vec::new());
        file(&mut b, &format!("{cfg}.json"), b"{}");
        let mut items = vec![format!(
            r#"{{"Config":"{cfg}.json","RepoTags":["a:1","a:1","b:2","a:1"]}}"#
        )];
        // Many items of the same image, with one new tag each.
        items.extend(
            (0..20_000).map(|i| format!(r#"{{"Config":"{cfg}.json","RepoTags":["c:{i}","b:2"]}}"#)),
        );
        file(
            &mut b,
            "manifest.json",
            format!("[{}]", items.join(",")).as_bytes(),
        );
        // No timed assertion: a quadratic merge would make this test take minutes, which
        // shows without one.
        let (result, _) = run(&finish(b));
        let contents = result.unwrap();
        assert_eq!(contents.images.len(), 1);
        let tags = &contents.images[0].tags;
        assert_eq!(tags[..4], ["a:1", "b:2", "c:0", "c:1"]);
        assert_eq!(tags.len(), 2 + 20_000);
    }

    /// PAX extended header data holding `records`.
    fn pax_data(records: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (key, value) in records {
            let body = key.len() + value.len() + 3;
            let mut len = body + 1;
            while len.to_string().len() + body != len {
                len += 1;
            }
            out.extend_from_slice(format!("{len} {key}={value}\n").as_bytes());
        }
        out
    }

    // Found by fuzzing (fuzz/fuzz_targets/archive_tar.rs): with a GNU long name and a PAX path
    // for one entry this reader took the last, docker (Go's archive/tar) the long name, so
    // docker saw a metadata entry this reader forwarded as a layer. Go also keeps only the last
    // of two PAX headers (a size in the first changed where this reader thought the entry
    // ended) and drops both at a global header. These combinations are now refused.
    #[test]
    fn regression_conflicting_extension_headers_are_refused() {
        let long_name = || {
            raw_entry(
                b"././@LongLink",
                tar::EntryType::GNULongName,
                b"manifest.json\0",
            )
        };
        let pax = |records: &[(&str, &str)]| {
            raw_entry(b"pax", tar::EntryType::XHeader, &pax_data(records))
        };
        let global = raw_entry(
            b"pax",
            tar::EntryType::XGlobalHeader,
            &pax_data(&[("comment", "g")]),
        );
        let cases: [(Vec<Vec<u8>>, &str); 5] = [
            (
                vec![long_name(), pax(&[("path", "a/layer.tar")])],
                "a PAX path and a GNU long name for one entry",
            ),
            (
                vec![pax(&[("path", "a/layer.tar")]), long_name()],
                "a PAX path and a GNU long name for one entry",
            ),
            (
                vec![pax(&[("size", "1024")]), pax(&[("comment", "x")])],
                "two PAX headers for one entry",
            ),
            (
                vec![long_name(), long_name()],
                "two GNU long names for one entry",
            ),
            (
                vec![pax(&[("size", "1024")]), global.clone()],
                "a global PAX header after an entry's extension headers",
            ),
        ];
        for (headers, conflict) in cases {
            let mut input = headers.concat();
            input.extend(raw_entry(b"a/layer.tar", tar::EntryType::Regular, b""));
            input.extend_from_slice(&END_OF_ARCHIVE);
            assert_eq!(
                error(&input),
                format!("corrupt tar archive: {conflict} at offset 1024")
            );
        }
        // One of each, and a global header before them, are fine.
        let mut b = tar::Builder::new(global);
        b.append_pax_extensions([("path", b"x/layer.tar".as_slice())])
            .unwrap();
        file(&mut b, "placeholder", b"data");
        let mut input = finish(b);
        input.truncate(input.len() - END_OF_ARCHIVE.len());
        input.extend(long_name());
        input.extend(raw_entry(b"manifest.json", tar::EntryType::Regular, b"[]"));
        input.extend_from_slice(&END_OF_ARCHIVE);
        assert_eq!(error(&input), "manifest.json lists no images");
    }

    // Found by fuzzing (fuzz/fuzz_targets/archive_tar.rs): with the magic `ustar\0` but
    // another version field, the tar crate ignores the prefix field and docker does not, so
    // `manifest.json` + `.` passed as an ordinary entry named `.` and docker extracted a
    // manifest.json that was never checked (and `blobs/sha256` + `index.json` was held back as
    // metadata that docker saw as a blob).
    #[test]
    fn regression_prefix_field_is_read_as_docker_reads_it() {
        let with_prefix = |prefix: &[u8], name: &[u8], version: &[u8; 2], star: bool| {
            let mut h = header(tar::EntryType::Regular, 2);
            let block = h.as_mut_bytes();
            block[..name.len()].copy_from_slice(name);
            block[257..263].copy_from_slice(b"ustar\0");
            block[263..265].copy_from_slice(version);
            block[345..345 + prefix.len()].copy_from_slice(prefix);
            if star {
                block[508..].copy_from_slice(b"tar\0");
            }
            h.set_cksum();
            let block: [u8; BLOCK] = h.as_bytes()[..].try_into().unwrap();
            (block, h)
        };
        for version in [b"00", b" \0", b"xx"] {
            let (block, _) = with_prefix(b"blobs/sha256", b"index.json", version, false);
            assert_eq!(header_path(&block), b"blobs/sha256/index.json");
        }
        // A star header's prefix is 131 bytes; what follows is its access time.
        let long_prefix = [b'p'; 131];
        let (block, _) = with_prefix(&long_prefix, b"x", b"00", true);
        assert_eq!(header_path(&block), [&long_prefix[..], b"/x"].concat());
        let (block, _) = with_prefix(&long_prefix, b"x", b"00", false);
        assert_eq!(header_path(&block), [&long_prefix[..], b"/x"].concat());

        let (_, smuggled) = with_prefix(b"manifest.json", b".", b" \0", false);
        let mut input = legacy();
        input.truncate(input.len() - END_OF_ARCHIVE.len());
        input.extend_from_slice(smuggled.as_bytes());
        input.extend_from_slice(b"[]");
        input.resize(input.len() + BLOCK - 2, 0);
        input.extend_from_slice(&END_OF_ARCHIVE);
        assert_eq!(error(&input), "archive holds manifest.json twice");
    }

    // Found by fuzzing (fuzz/fuzz_targets/archive_tar.rs): PAX records of a GNU sparse file
    // (format 1.0) make docker name the entry after `GNU.sparse.name`, so a layer named
    // `a/layer.tar` here reached docker as `manifest.json`. Sparse files are refused in PAX
    // form too.
    #[test]
    fn regression_pax_sparse_files_are_refused() {
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([
            ("GNU.sparse.major", b"1".as_slice()),
            ("GNU.sparse.minor", b"0"),
            ("GNU.sparse.realsize", b"2"),
            ("GNU.sparse.name", b"manifest.json"),
        ])
        .unwrap();
        let mut data = b"1\n0\n2\n".to_vec();
        data.resize(BLOCK, 0);
        data.extend_from_slice(b"[]");
        file(&mut b, "a/layer.tar", &data);
        let mut input = finish(b);
        input.truncate(input.len() - END_OF_ARCHIVE.len());
        input.extend(legacy());
        assert_eq!(
            error(&input),
            "archive entry a/layer.tar is a GNU sparse file, which docker image archives never hold"
        );
    }

    // Found while checking the fuzz target's model of docker's reader against Go's
    // archive/tar: an entry of the old type `\0` whose name ends in `/` is a directory to
    // docker, so its "data" was read as headers there, and a manifest.json hidden in it reached
    // docker unchecked while this reader forwarded it as file data.
    #[test]
    fn regression_old_type_with_trailing_slash_is_a_directory() {
        // A header of type `\0` (the tar crate writes `0` for a regular file).
        let old_type = |name: &[u8], size: u64| {
            let mut h = header(tar::EntryType::Regular, size);
            h.as_old_mut().name[..name.len()].copy_from_slice(name);
            h.as_mut_bytes()[156] = 0;
            h.set_cksum();
            h.as_bytes().to_vec()
        };
        let mut hidden = raw_entry(b"manifest.json", tar::EntryType::Regular, b"[]");
        hidden.extend_from_slice(&[0; BLOCK]);
        let mut input = old_type(b"x/", hidden.len() as u64);
        input.extend_from_slice(&hidden);
        input.extend_from_slice(&END_OF_ARCHIVE);
        // Now the hidden header is an entry of its own, held back like any manifest.
        assert_eq!(error(&input), "manifest.json lists no images");
        // The same type without the slash is a file with data.
        let mut input = old_type(b"x", 4);
        input.extend_from_slice(b"data");
        input.resize(2 * BLOCK, 0);
        input.extend_from_slice(&END_OF_ARCHIVE);
        assert!(error(&input).starts_with("archive holds no manifest.json"));
    }

    #[test]
    fn regression_xz_stream_asking_for_too_much_memory_is_refused() {
        let mut options = liblzma::stream::LzmaOptions::new_preset(1).unwrap();
        options.dict_size(1536 * 1024 * 1024);
        let mut filters = liblzma::stream::Filters::new();
        filters.lzma2(&options);
        let stream =
            liblzma::stream::Stream::new_stream_encoder(&filters, liblzma::stream::Check::Crc64)
                .unwrap();
        let mut encoder = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
        encoder.write_all(&[0u8; 4096]).unwrap();
        let input = encoder.finish().unwrap();
        let mut sink = Vec::new();
        let err = forward(&input[..], &mut sink, &Limits::default(), |_| Ok(())).unwrap_err();
        assert!(
            err.to_string().contains("more than 256 MiB of memory"),
            "{err}"
        );
        assert!(sink.is_empty());
    }
}
