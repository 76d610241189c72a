//! A recipe written (`docs/delta.md`, "The recipe entry"): kept chunks become references,
//! everything else literal, adjacent literals merged, in one zstd stream (level 9). [`Ops`]
//! takes the layer's pieces one at a time, in the layer's order, so that a client can write
//! them as the layer streams (format 2, whose header goes raw before them once the layer is
//! read); [`write`] feeds it from a spooled layer and the cuts of its first pass.

use std::io::{self, BufReader, ErrorKind, Read, Seek, SeekFrom, Write};

use super::chunks::{Key, Split};
use super::cuts::CutReader;
use super::recipe::{
    fill_checksum, header_bytes, Format, Kept, Totals, CHECKSUM, END, HEADER, LITERAL, NEXT,
    REFERENCE,
};

pub(super) const LEVEL: i32 = 9;
/// The most literal bytes held before they go out as one operation.
const LITERAL_RUN: usize = 1 << 20;

/// A recipe's operations on their way into its zstd stream.
pub struct Ops<W: Write> {
    stream: zstd::stream::write::Encoder<'static, W>,
    run: Vec<u8>,
    /// The key referred to last: the host's place is right after its chunk.
    last: Option<Key>,
    totals: Totals,
}

impl<W: Write> Ops<W> {
    /// The operations of a format-2 recipe: its header ([`header_bytes`]) goes before them.
    pub fn new(out: W) -> io::Result<Ops<W>> {
        Ops::after(out, &[])
    }

    /// A stream that begins with `header`, then the operations.
    fn after(out: W, header: &[u8]) -> io::Result<Ops<W>> {
        let mut stream = zstd::stream::write::Encoder::new(out, LEVEL)?;
        stream.write_all(header)?;
        Ok(Ops {
            stream,
            run: Vec::new(),
            last: None,
            totals: Totals::default(),
        })
    }

    /// The next piece is the chunk of `key`, `len` bytes, which the host keeps.
    pub fn kept(&mut self, key: Key, len: u64, kept: &Kept) -> io::Result<()> {
        self.literal()?;
        if self.last.and_then(|last| kept.after.get(&last)) == Some(&key) {
            self.stream.write_all(&[NEXT])?;
        } else {
            self.stream.write_all(&[REFERENCE])?;
            self.stream.write_all(&key.0)?;
            write_len(&mut self.stream, len)?;
        }
        self.last = Some(key);
        self.totals.referenced += len;
        Ok(())
    }

    /// The next piece, which the host lacks.
    pub fn lacked(&mut self, piece: &[u8]) -> io::Result<()> {
        self.totals.literal += piece.len() as u64;
        if let Some(blanked) = blank_checksum(piece) {
            // The checksum is the block's one field that differs from header to header however
            // alike they are: the host computes it.
            self.literal()?;
            self.stream.write_all(&[HEADER])?;
            self.stream.write_all(&blanked)?;
        } else {
            self.run.extend_from_slice(piece);
            if self.run.len() >= LITERAL_RUN {
                self.literal()?;
            }
        }
        Ok(())
    }

    /// Ends the operations and the stream; its writer, and the bytes sent and referred to.
    pub fn finish(mut self) -> io::Result<(W, Totals)> {
        self.literal()?;
        self.stream.write_all(&[END])?;
        Ok((self.stream.finish()?, self.totals))
    }

    /// Hands the literal bytes held on as one operation.
    fn literal(&mut self) -> io::Result<()> {
        if !self.run.is_empty() {
            self.stream.write_all(&[LITERAL])?;
            write_len(&mut self.stream, self.run.len() as u64)?;
            self.stream.write_all(&self.run)?;
            self.run.clear();
        }
        Ok(())
    }
}

/// Writes the recipe of `layer` (the bytes the first pass read, cut where `cuts` says; the
/// first pass's Split) to `out`, in `format`. The layer is not hashed again: the host checks
/// the rebuilt bytes against the diff ID.
pub fn write<R: Read + Seek, C: Read, W: Write>(
    layer: R,
    mut cuts: CutReader<C>,
    split: &Split,
    kept: &Kept,
    format: Format,
    mut out: W,
) -> io::Result<Totals> {
    let mut layer = BufReader::with_capacity(256 * 1024, layer);
    let mut ops = match format {
        Format::V1 => Ops::after(out, &header_bytes(format, split))?,
        Format::V2 => {
            out.write_all(&header_bytes(format, split))?;
            Ops::new(out)?
        }
    };
    let mut piece = Vec::new();
    while let Some(cut) = cuts.next_cut()? {
        let len = u64::from(cut.len);
        if let Some(key) = cut.key.filter(|key| kept.keys.contains(key)) {
            layer.seek_relative(i64::from(cut.len))?;
            ops.kept(key, len, kept)?;
            continue;
        }
        piece.resize(cut.len as usize, 0);
        layer.read_exact(&mut piece).map_err(|e| match e.kind() {
            ErrorKind::UnexpectedEof => unlike_its_cuts(split),
            _ => e,
        })?;
        ops.lacked(&piece)?;
    }
    // Where the cuts ended and where the spool ends: both the first pass's length.
    if layer.stream_position()? != split.size || layer.seek(SeekFrom::End(0))? != split.size {
        return Err(unlike_its_cuts(split));
    }
    Ok(ops.finish()?.1)
}

/// A spooled layer whose length is not what its first pass cut.
fn unlike_its_cuts(split: &Split) -> io::Error {
    io::Error::new(
        ErrorKind::InvalidData,
        format!(
            "the layer read for its recipe is not the {} bytes its first pass cut",
            split.size
        ),
    )
}

/// A tar header block with its checksum field blanked, when the field holds the checksum in
/// one of the two ways writers spell it: six octal digits, a NUL and a space (Go's, Python's),
/// or seven digits and a NUL (the `tar` crate's). The blank keeps the NUL where the spelling has
/// it, so that the host writes the field back byte for byte.
pub(super) fn blank_checksum(block: &[u8]) -> Option<[u8; 512]> {
    let block: [u8; 512] = block.try_into().ok()?;
    for spelling in [*b"        ", *b"       \0"] {
        let mut blanked = block;
        blanked[CHECKSUM].copy_from_slice(&spelling);
        let mut filled = blanked;
        fill_checksum(&mut filled);
        if filled == block {
            return Some(blanked);
        }
    }
    None
}

/// A length as LEB128: 7 bits a byte, the least significant first, the top bit set but on the last.
pub(super) fn write_len(stream: &mut impl Write, mut len: u64) -> io::Result<()> {
    let mut bytes = Vec::with_capacity(10);
    while len >= 0x80 {
        bytes.push(len as u8 | 0x80);
        len >>= 7;
    }
    bytes.push(len as u8);
    stream.write_all(&bytes)
}
