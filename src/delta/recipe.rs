//! A layer sent as a recipe (`docs/delta.md`, "The recipe entry"): one zstd stream of a magic
//! line, the layer's size and diff ID, then literal bytes and references to kept chunks in the
//! layer's order. `write` makes one from a layer and what the host keeps; `rebuild` turns one
//! back into the layer, checking everything as it goes.

use std::io::{self, BufReader, Chain, Cursor, ErrorKind, Read, Write};

use sha2::{Digest as _, Sha256};

use super::chunks::{self, Key, Piece, Split};
pub use super::error::RecipeError;
use super::pack::Packs;
use crate::digest::Digest;

const MAGIC: &[u8] = b"dokku-image-recipe 1\n";
const LEVEL: i32 = 9;
const END: u8 = 0x00;
const LITERAL: u8 = 0x01;
const REFERENCE: u8 = 0x02;
/// How a zstd frame begins.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// The most literal bytes held before they go out as one operation.
const LITERAL_RUN: usize = 1 << 20;
/// The largest window (2^23 bytes) a recipe's stream may ask its reader to keep: level 9 uses
/// 2^22 at most, and a hostile stream may not make the host hold more.
const WINDOW_LOG_MAX: u32 = 23;
/// The part of a literal copied at a time.
const COPY: usize = 64 * 1024;

/// Bytes of the layer sent as literals and referenced as kept chunks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub literal: u64,
    pub referenced: u64,
}

/// What a recipe declares: the rebuilt layer's length and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub size: u64,
    pub diff_id: Digest,
}

/// The layer a recipe rebuilt, checked against what it declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebuilt {
    pub size: u64,
    pub diff_id: Digest,
}

/// Writes the recipe of `layer` (the same bytes `keys` read) to `out` as one zstd stream (level 9;
/// kept chunks become references, everything else literal, adjacent literals merged).
pub fn write<R: Read, W: Write>(
    layer: R,
    split: &Split,
    kept: impl Fn(&Key) -> bool,
    out: W,
) -> io::Result<Totals> {
    let mut stream = zstd::stream::write::Encoder::new(out, LEVEL)?;
    stream.write_all(MAGIC)?;
    stream.write_all(&split.size.to_be_bytes())?;
    stream.write_all(&split.diff_id.sha256())?;
    let mut totals = Totals::default();
    let mut run = Vec::new();
    let read = chunks::split(layer, |piece| {
        let (data, reference) = match piece {
            Piece::Chunk { data, sha256 } => (data, Some(Key::of(&sha256)).filter(&kept)),
            Piece::Raw(data) => (data, None),
        };
        if let Some(key) = reference {
            literal(&mut stream, &mut run)?;
            stream.write_all(&[REFERENCE])?;
            stream.write_all(&key.0)?;
            write_len(&mut stream, data.len() as u64)?;
            totals.referenced += data.len() as u64;
        } else {
            run.extend_from_slice(data);
            totals.literal += data.len() as u64;
            if run.len() >= LITERAL_RUN {
                literal(&mut stream, &mut run)?;
            }
        }
        Ok(())
    })?;
    literal(&mut stream, &mut run)?;
    if read != *split {
        return Err(io::Error::new(
            ErrorKind::InvalidData,
            format!(
                "the layer read for its recipe is {} ({} bytes), not {} ({} bytes) as before",
                read.diff_id, read.size, split.diff_id, split.size
            ),
        ));
    }
    stream.write_all(&[END])?;
    stream.finish()?;
    Ok(totals)
}

/// Rebuilds the layer from a recipe into `out`, checking every reference against packs, the
/// total length (never writes more than the declared size, and refuses a declared size over
/// max_size before writing anything), the SHA-256 against the declared diff ID, a stream cut
/// short or with bytes after the end op. Memory flat (literal ops are streamed, not buffered whole).
pub fn rebuild<R: Read, W: Write>(
    recipe: R,
    packs: &Packs,
    mut out: W,
    max_size: u64,
) -> Result<Rebuilt, RecipeError> {
    let (Header { size, diff_id }, mut stream) = open(recipe)?;
    if size > max_size {
        return Err(RecipeError::OverLimit {
            size,
            limit: max_size,
        });
    }
    let mut sha256 = Sha256::new();
    let mut written = 0u64;
    let mut buf = vec![0; COPY];
    loop {
        let op = read_byte(&mut stream)?;
        let key = match op {
            END => break,
            LITERAL => None,
            REFERENCE => {
                let mut key = [0; 8];
                stream.read_exact(&mut key).map_err(reading)?;
                Some(Key(key))
            }
            _ => return Err(RecipeError::UnknownOp(op)),
        };
        let len = read_len(&mut stream)?;
        if len > size - written {
            return Err(RecipeError::TooLong { declared: size });
        }
        if let Some(key) = key {
            let chunk = packs.read(&key, len)?;
            sha256.update(&chunk);
            out.write_all(&chunk)?;
        } else {
            let mut left = len;
            while left > 0 {
                let part = &mut buf[..left.min(COPY as u64) as usize];
                stream.read_exact(part).map_err(reading)?;
                sha256.update(&*part);
                out.write_all(part)?;
                left -= part.len() as u64;
            }
        }
        written += len;
    }
    if written < size {
        return Err(RecipeError::TooShort {
            total: written,
            declared: size,
        });
    }
    // Nothing may follow the end: neither in the frame nor after it.
    let mut one = [0; 1];
    if stream.read(&mut one).map_err(reading)? > 0 || stream.finish().read(&mut one)? > 0 {
        return Err(RecipeError::Trailing);
    }
    out.flush()?;
    let rebuilt = Digest::from_sha256(sha256.finalize().into());
    if rebuilt != diff_id {
        return Err(RecipeError::WrongDigest {
            rebuilt,
            declared: diff_id,
        });
    }
    Ok(Rebuilt { size, diff_id })
}

/// Reads only the header (size, diff ID) of a recipe stream.
pub fn header<R: Read>(recipe: R) -> Result<Header, RecipeError> {
    open(recipe).map(|(header, _)| header)
}

type Stream<R> = zstd::stream::read::Decoder<'static, BufReader<Chain<Cursor<[u8; 4]>, R>>>;

/// The recipe's header, and its stream where the operations begin.
fn open<R: Read>(mut recipe: R) -> Result<(Header, Stream<R>), RecipeError> {
    let mut head = [0; 4];
    recipe.read_exact(&mut head).map_err(reading)?;
    if head != ZSTD_MAGIC {
        return Err(RecipeError::BadMagic);
    }
    let mut stream =
        zstd::stream::read::Decoder::new(Cursor::new(head).chain(recipe))?.single_frame();
    stream.window_log_max(WINDOW_LOG_MAX)?;
    let mut magic = [0; MAGIC.len()];
    stream.read_exact(&mut magic).map_err(reading)?;
    if magic != MAGIC {
        return Err(RecipeError::BadMagic);
    }
    let mut size = [0; 8];
    stream.read_exact(&mut size).map_err(reading)?;
    let mut diff_id = [0; 32];
    stream.read_exact(&mut diff_id).map_err(reading)?;
    let header = Header {
        size: u64::from_be_bytes(size),
        diff_id: Digest::from_sha256(diff_id),
    };
    Ok((header, stream))
}

/// Hands the literal bytes held on as one operation.
fn literal(stream: &mut impl Write, run: &mut Vec<u8>) -> io::Result<()> {
    if !run.is_empty() {
        stream.write_all(&[LITERAL])?;
        write_len(stream, run.len() as u64)?;
        stream.write_all(run)?;
        run.clear();
    }
    Ok(())
}

/// A length as LEB128: 7 bits a byte, the least significant first, the top bit set but on the last.
fn write_len(stream: &mut impl Write, mut len: u64) -> io::Result<()> {
    let mut bytes = Vec::with_capacity(10);
    while len >= 0x80 {
        bytes.push(len as u8 | 0x80);
        len >>= 7;
    }
    bytes.push(len as u8);
    stream.write_all(&bytes)
}

fn read_len(stream: &mut impl Read) -> Result<u64, RecipeError> {
    let mut len = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = read_byte(stream)?;
        let bits = u64::from(byte & 0x7f);
        if bits >> (64 - shift).min(7) != 0 {
            return Err(RecipeError::BadLength);
        }
        len |= bits << shift;
        if byte & 0x80 == 0 {
            return Ok(len);
        }
    }
    Err(RecipeError::BadLength)
}

fn read_byte(stream: &mut impl Read) -> Result<u8, RecipeError> {
    let mut byte = [0; 1];
    stream.read_exact(&mut byte).map_err(reading)?;
    Ok(byte[0])
}

/// A stream that ends too soon is cut short; any other error is the reader's.
fn reading(e: io::Error) -> RecipeError {
    match e.kind() {
        ErrorKind::UnexpectedEof => RecipeError::CutShort,
        _ => RecipeError::Io(e),
    }
}
