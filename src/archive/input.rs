//! The input side of the reader: compression detected from the first bytes, the decoders, a
//! thread that reads and decompresses ahead of the writes, and the counts messages need.

use std::fmt;
use std::io::{self, BufReader, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;

use anyhow::{anyhow, bail, Result};

use super::limits::{Limits, ARCHIVE_ENV, DISK_RESERVE_ENV, ENGINE_COPIES, XZ_MEMORY_LIMIT};
use crate::output::human_bytes;

/// Small enough that whole-chunk reads of an uncompressed archive bypass it (one copy, not two);
/// a pipe gives at most 64 KiB per read anyway.
const INPUT_BUFFER: usize = 64 << 10;
/// What the reading thread reads at a time; also the largest write to the sink.
pub(super) const CHUNK_SIZE: usize = 1 << 20;
/// Chunks the reading thread may run ahead of the walker.
const CHUNKS_AHEAD: usize = 2;

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

/// The input, decompressed, not yet read.
pub(super) struct Decoded<'a> {
    pub(super) compression: Compression,
    stream: Box<dyn Read + Send + 'a>,
    /// Bytes read from the input as it came, before decompression.
    raw_count: Arc<AtomicU64>,
}

/// Detects the compression of `input` and puts the matching decoder in front of it.
pub(super) fn decode<'a, R: Read + Send + 'a>(input: R) -> Result<Decoded<'a>> {
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
    let stream: Box<dyn Read + Send + 'a> = match compression {
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
    Ok(Decoded {
        compression,
        stream,
        raw_count,
    })
}

/// A stream read on its own thread, up to [`CHUNKS_AHEAD`] chunks ahead of its reader. When
/// this is dropped the thread stops once the chunk it is filling is full or the input ends, so
/// after an early error the reader returns when the input has sent that much more or closed.
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
pub(super) struct TarInput {
    inner: ReadAhead,
    pub(super) compression: Compression,
    raw_count: Arc<AtomicU64>,
    /// Bytes of tar read so far.
    pub(super) pos: u64,
    limits: Limits,
}

impl TarInput {
    /// Starts reading `decoded` ahead on a thread of `scope`.
    pub(super) fn start<'scope, 'env>(
        scope: &'scope thread::Scope<'scope, 'env>,
        decoded: Decoded<'env>,
        limits: &Limits,
    ) -> TarInput {
        TarInput {
            inner: ReadAhead::spawn(scope, decoded.stream),
            compression: decoded.compression,
            raw_count: decoded.raw_count,
            pos: 0,
            limits: *limits,
        }
    }

    /// Up to `max` next bytes of the tar, straight from the read-ahead chunk; none only at the
    /// end of the input.
    pub(super) fn take(&mut self, max: usize) -> Result<&[u8]> {
        if let Err(error) = self.inner.refill() {
            return Err(self.read_error(error));
        }
        let data = self.inner.take(max);
        self.pos += data.len() as u64;
        if self.pos > self.limits.max_total_bytes {
            bail!(
                "archive exceeds the size limit of {} bytes ({ARCHIVE_ENV})",
                self.limits.max_total_bytes
            );
        }
        // Counted in tar bytes, before they reach the engine: however well the input was
        // compressed, the engine never gets more than it has room for.
        if let Some(room) = self.limits.disk_room().filter(|room| self.pos > *room) {
            bail!(
                "the engine has no room on disk for this archive: {} is free where it keeps images, less a reserve of {} ({DISK_RESERVE_ENV}), and it holds {ENGINE_COPIES} copies of what it loads while it imports, so it can take {} of archive; nothing was loaded",
                human_bytes(self.limits.disk_free.unwrap_or_default()),
                human_bytes(self.limits.disk_reserve),
                human_bytes(room)
            );
        }
        Ok(data)
    }

    pub(super) fn read_up_to(&mut self, buf: &mut [u8]) -> Result<usize> {
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

    pub(super) fn read_exact(&mut self, buf: &mut [u8]) -> Result<()> {
        if self.read_up_to(buf)? < buf.len() {
            return Err(self.truncated());
        }
        Ok(())
    }

    /// Bytes read so far from the input as it came, before decompression.
    pub(super) fn raw_bytes(&self) -> u64 {
        self.raw_count.load(Ordering::Relaxed)
    }

    pub(super) fn truncated(&self) -> anyhow::Error {
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
                XZ_MEMORY_LIMIT >> 20
            ),
            c => anyhow!("corrupt {c} stream: {error}"),
        }
    }

    pub(super) fn not_a_tar(&self) -> anyhow::Error {
        match self.compression {
            Compression::None => {
                anyhow!("input is not a tar archive (or a gzip/bzip2/xz/zstd-compressed one)")
            }
            c => anyhow!("the {c} stream does not hold a tar archive"),
        }
    }
}
