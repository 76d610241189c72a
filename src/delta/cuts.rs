//! Where the client's first pass over a layer cut it (`chunks::split`), kept beside the spooled
//! layer, so that its recipe is written from the spool without cutting and hashing the layer a
//! second time (docs/delta.md, "Where a recipe's time goes"). A record a piece: its length as a
//! u32, big endian, the top bit set for a content chunk, which the chunk's key follows.

use std::io::{self, ErrorKind, Read, Write};

use super::chunks::{Key, Piece};

/// The length's bit that marks a content chunk: no piece is 2 GiB long (raw pieces are at most
/// a chunking window or an extension header, chunks at most `MAX_CHUNK`).
const CHUNK: u32 = 1 << 31;

/// A piece as the first pass cut it: its length, and its key when it is a content chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    pub len: u32,
    pub key: Option<Key>,
}

impl Cut {
    /// Where the first pass cut `piece`.
    pub fn of(piece: &Piece<'_>) -> io::Result<Cut> {
        let (data, key) = match piece {
            Piece::Raw(data) => (data, None),
            Piece::Chunk { data, sha256 } => (data, Some(Key::of(sha256))),
        };
        let len = u32::try_from(data.len())
            .ok()
            .filter(|len| len & CHUNK == 0)
            .ok_or_else(|| io::Error::new(ErrorKind::InvalidInput, "a piece of 2 GiB or more"))?;
        Ok(Cut { len, key })
    }
}

/// Writes the record of each cut it is given.
pub struct CutWriter<W: Write>(W);

impl<W: Write> CutWriter<W> {
    pub fn new(out: W) -> CutWriter<W> {
        CutWriter(out)
    }

    pub fn push(&mut self, cut: Cut) -> io::Result<()> {
        match cut.key {
            None => self.0.write_all(&cut.len.to_be_bytes()),
            Some(key) => {
                self.0.write_all(&(cut.len | CHUNK).to_be_bytes())?;
                self.0.write_all(&key.0)
            }
        }
    }

    /// What the records went to.
    pub fn into_inner(self) -> W {
        self.0
    }
}

/// The cuts a [`CutWriter`] wrote, in order.
pub struct CutReader<R: Read>(R);

impl<R: Read> CutReader<R> {
    pub fn new(records: R) -> CutReader<R> {
        CutReader(records)
    }

    /// The next cut; None at the end of the records.
    pub fn next_cut(&mut self) -> io::Result<Option<Cut>> {
        let mut len = [0; 4];
        match self.0.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let len = u32::from_be_bytes(len);
        if len & CHUNK == 0 {
            return Ok(Some(Cut { len, key: None }));
        }
        let mut key = [0; 8];
        self.0.read_exact(&mut key)?;
        Ok(Some(Cut {
            len: len & !CHUNK,
            key: Some(Key(key)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_read_back_as_they_were_written() {
        let sha256 = [7u8; 32];
        let mut writer = CutWriter::new(Vec::new());
        for piece in [
            Piece::Raw(&[0; 512]),
            Piece::Chunk {
                data: &[1; 4096],
                sha256,
            },
            Piece::Raw(&[]),
        ] {
            writer.push(Cut::of(&piece).unwrap()).unwrap();
        }
        let records = writer.into_inner();
        let mut reader = CutReader::new(&records[..]);
        let mut cuts = Vec::new();
        while let Some(cut) = reader.next_cut().unwrap() {
            cuts.push(cut);
        }
        assert_eq!(
            cuts,
            [
                Cut {
                    len: 512,
                    key: None
                },
                Cut {
                    len: 4096,
                    key: Some(Key::of(&sha256))
                },
                Cut { len: 0, key: None },
            ]
        );
    }

    #[test]
    fn a_record_cut_short_is_an_error() {
        let mut writer = CutWriter::new(Vec::new());
        let piece = Piece::Chunk {
            data: &[1; 10],
            sha256: [0; 32],
        };
        writer.push(Cut::of(&piece).unwrap()).unwrap();
        let records = writer.into_inner();
        let mut reader = CutReader::new(&records[..records.len() - 1]);
        assert_eq!(
            reader.next_cut().unwrap_err().kind(),
            ErrorKind::UnexpectedEof
        );
    }
}
