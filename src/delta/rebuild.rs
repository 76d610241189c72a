//! A layer rebuilt from its recipe (`docs/delta.md`, "The recipe entry") and the app's packs,
//! checked as it goes and against the diff ID the recipe declares, before the engine sees it.

use std::io::{self, Read, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread;

use sha2::{Digest as _, Sha256};

use super::chunks::Key;
use super::error::RecipeError;
use super::pack::Packs;
use super::recipe::{
    fill_checksum, open, read_byte, read_len, reading, Header, Rebuilt, Stream, END, HEADER,
    LITERAL, NEXT, REFERENCE,
};
use crate::digest::Digest;

/// The part of a literal read at a time.
const COPY: usize = 64 * 1024;
/// A rebuilt layer's bytes go to its writer in batches of this many, a few at a time.
const BATCH: usize = 256 * 1024;
const IN_FLIGHT: usize = 4;

/// Rebuilds the layer from a recipe into `out`, checking every reference against packs, the
/// total length (never writes more than the declared size, and refuses a declared size over
/// max_size before writing anything), the SHA-256 against the declared diff ID, a stream cut
/// short or with bytes after the end op. The layer is hashed and written on a second thread
/// while this one reads the recipe and the kept chunks, since the engine waits on the whole
/// rebuild. Memory flat: [`IN_FLIGHT`] batches on their way, literal ops streamed.
pub fn rebuild<R: Read, W: Write + Send>(
    recipe: R,
    packs: &Packs,
    out: W,
    max_size: u64,
) -> Result<Rebuilt, RecipeError> {
    let (Header { size, diff_id }, mut stream) = open(recipe)?;
    if size > max_size {
        return Err(RecipeError::OverLimit {
            size,
            limit: max_size,
        });
    }
    let (pieces, received) = mpsc::sync_channel(IN_FLIGHT);
    let (read, written) = thread::scope(|scope| {
        let writer = scope.spawn(move || write_hashed(received, out));
        let read = read_pieces(&mut stream, packs, size, &pieces);
        drop(pieces);
        let written = writer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (read, written)
    });
    // A write that failed stopped the reading: its error is the one to tell.
    let rebuilt = written?;
    read?;
    if rebuilt != diff_id {
        return Err(RecipeError::WrongDigest {
            rebuilt,
            declared: diff_id,
        });
    }
    Ok(Rebuilt { size, diff_id })
}

/// Reads the recipe's operations after its header, handing the layer's bytes on in order: at
/// most `size` of them, and all of them.
fn read_pieces<R: Read>(
    stream: &mut Stream<R>,
    packs: &Packs,
    size: u64,
    pieces: &SyncSender<Vec<u8>>,
) -> Result<(), RecipeError> {
    let mut out = Batches {
        pieces,
        batch: Vec::with_capacity(BATCH),
        written: 0,
        size,
    };
    let mut buf = vec![0; COPY];
    // Right after the chunk referred to last.
    let mut place = None;
    loop {
        let op = read_byte(stream)?;
        match op {
            END => break,
            REFERENCE => {
                let mut key = [0; 8];
                stream.read_exact(&mut key).map_err(reading)?;
                let len = read_len(stream)?;
                let (chunk, after) = packs.read(&Key(key), len)?;
                place = Some(after);
                out.add(&chunk)?;
            }
            NEXT => {
                let (chunk, after) = packs.read_at(place.ok_or(RecipeError::NotKept)?)?;
                place = Some(after);
                out.add(&chunk)?;
            }
            HEADER => {
                let mut block = [0; 512];
                stream.read_exact(&mut block).map_err(reading)?;
                fill_checksum(&mut block);
                out.add(&block)?;
            }
            LITERAL => {
                let len = read_len(stream)?;
                if len > size - out.written {
                    return Err(RecipeError::TooLong { declared: size });
                }
                let mut left = len;
                while left > 0 {
                    let part = &mut buf[..left.min(COPY as u64) as usize];
                    stream.read_exact(part).map_err(reading)?;
                    left -= part.len() as u64;
                    out.add(part)?;
                }
            }
            _ => return Err(RecipeError::UnknownOp(op)),
        }
    }
    if out.written < size {
        return Err(RecipeError::TooShort {
            total: out.written,
            declared: size,
        });
    }
    // Nothing may follow the end: neither in the frame nor after it.
    let mut one = [0; 1];
    if stream.read(&mut one).map_err(reading)? > 0 || stream.get_mut().read(&mut one)? > 0 {
        return Err(RecipeError::Trailing);
    }
    out.send()
}

/// A rebuilt layer's bytes on their way to its writer, in batches: a header block or a small
/// chunk each on its own would cost the writer a wake-up apiece.
struct Batches<'s> {
    pieces: &'s SyncSender<Vec<u8>>,
    batch: Vec<u8>,
    /// The bytes handed on so far, at most `size`.
    written: u64,
    size: u64,
}

impl Batches<'_> {
    fn add(&mut self, bytes: &[u8]) -> Result<(), RecipeError> {
        if bytes.len() as u64 > self.size - self.written {
            return Err(RecipeError::TooLong {
                declared: self.size,
            });
        }
        self.written += bytes.len() as u64;
        self.batch.extend_from_slice(bytes);
        if self.batch.len() >= BATCH {
            self.send()?;
        }
        Ok(())
    }

    fn send(&mut self) -> Result<(), RecipeError> {
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        self.pieces
            .send(batch)
            .map_err(|_| RecipeError::Io(io::Error::other("the rebuilt layer's writer stopped")))
    }
}

/// Writes and hashes the batches it receives until their sender is gone; their SHA-256.
fn write_hashed<W: Write>(pieces: Receiver<Vec<u8>>, mut out: W) -> Result<Digest, RecipeError> {
    let mut sha256 = Sha256::new();
    for piece in pieces {
        sha256.update(&piece);
        out.write_all(&piece)?;
    }
    out.flush()?;
    Ok(Digest::from_sha256(sha256.finalize().into()))
}
