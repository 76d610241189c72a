//! Tar header blocks as Go's `archive/tar` (the engine's reader) reads them, for what `chunks`
//! needs: which kind of entry a block starts and how much data follows it. PAX `size` records
//! count (the last PAX header's only, and none past a global header); link, device, directory
//! and FIFO entries have no data whatever their size field says, nor has an old-style entry
//! (`\0`) whose name (its GNU long name, else its PAX path, else its own) ends in `/`; extension
//! headers over 1 MiB are refused.

use std::io::{self, ErrorKind};

pub const BLOCK: usize = 512;
/// The most data an extension header (PAX, global, GNU long name) may hold, as in Go's reader.
const EXTENSION_LIMIT: u64 = 1 << 20;

/// What an entry is, for its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// PAX records for the next entry (`x`).
    Pax,
    /// PAX records for the whole archive (`g`).
    Global,
    /// A GNU long name for the next entry (`L`).
    LongName,
    /// A GNU long link name for the next entry (`K`).
    LongLink,
    /// A regular file (`0`, `7`, and `\0` unless named like a directory): its data is content.
    File,
    /// An old-style entry (`\0`): a directory when its name, as extension headers may give it,
    /// ends in `/`; `dir_name` when its own name does.
    Old { dir_name: bool },
    /// Links, devices, directories, FIFOs: no data.
    NoData,
    /// An old GNU sparse file (`S`), with extension blocks of its map when `extended`.
    Sparse { extended: bool },
    /// Anything else: its data is not content.
    Other,
}

/// A header block: its kind and its size field.
pub struct Header {
    pub kind: Kind,
    pub size: u64,
}

impl Header {
    /// The header block read at byte `at`; InvalidData when it is none.
    pub fn read(block: &[u8; BLOCK], at: u64) -> io::Result<Header> {
        check_sum(block, at)?;
        let size = number(&block[124..136]).ok_or_else(|| {
            not_tar(format!(
                "the size of the entry at byte {at} is not a number"
            ))
        })?;
        let kind = match block[156] {
            b'x' => Kind::Pax,
            b'g' => Kind::Global,
            b'L' => Kind::LongName,
            b'K' => Kind::LongLink,
            b'\0' => {
                // A USTAR name is "<prefix>/<name>" when the prefix is not empty.
                let name = until_nul(&block[..100]);
                let prefixed = &block[257..263] == b"ustar\0" && block[345] != 0;
                Kind::Old {
                    dir_name: name.ends_with(b"/") || (prefixed && name.is_empty()),
                }
            }
            b'0' | b'7' => Kind::File,
            b'1'..=b'6' => Kind::NoData,
            b'S' => Kind::Sparse {
                extended: block[482] != 0,
            },
            _ => Kind::Other,
        };
        let extension = matches!(
            kind,
            Kind::Pax | Kind::Global | Kind::LongName | Kind::LongLink
        );
        if extension && size > EXTENSION_LIMIT {
            return Err(not_tar(format!(
                "the extension header at byte {at} holds {size} bytes, over the \
                 {EXTENSION_LIMIT} a tar reader takes"
            )));
        }
        Ok(Header { kind, size })
    }
}

/// What extension headers said of the entry that follows them.
#[derive(Debug, Default)]
pub struct Pending {
    /// From the last PAX header: the size, and whether the path ends in `/`.
    size: Option<u64>,
    path_is_dir: Option<bool>,
    /// From a GNU long name (which wins over a PAX path): whether it ends in `/`.
    long_name_is_dir: Option<bool>,
}

impl Pending {
    /// Takes a PAX header's records, in place of an earlier one's (empty values count as none).
    pub fn pax(&mut self, records: &[u8], at: u64) -> io::Result<()> {
        let bad = || not_tar(format!("the PAX header at byte {at} is not PAX records"));
        (self.size, self.path_is_dir) = (None, None);
        let mut rest = records;
        while !rest.is_empty() {
            // "<length> <key>=<value>\n", the length counting the whole record.
            let space = rest.iter().position(|&b| b == b' ').ok_or_else(bad)?;
            let len = decimal(&rest[..space]).ok_or_else(bad)?;
            let len = usize::try_from(len).map_err(|_| bad())?;
            if len <= space + 1 || len > rest.len() || rest[len - 1] != b'\n' {
                return Err(bad());
            }
            let record = &rest[space + 1..len - 1];
            if let Some(value) = record.strip_prefix(b"size=") {
                self.size = match value {
                    [] => None,
                    digits => Some(decimal(digits).ok_or_else(bad)?),
                };
            } else if let Some(path) = record.strip_prefix(b"path=") {
                self.path_is_dir = (!path.is_empty()).then(|| path.ends_with(b"/"));
            }
            rest = &rest[len..];
        }
        Ok(())
    }

    /// Takes a GNU long name (an empty one counts as none).
    pub fn long_name(&mut self, data: &[u8]) {
        let name = until_nul(data);
        self.long_name_is_dir = (!name.is_empty()).then(|| name.ends_with(b"/"));
    }

    /// The kind and data length of the entry this header starts, all that was pending used up.
    pub fn entry(self, header: &Header) -> (Kind, u64) {
        let size = self.size.unwrap_or(header.size);
        match header.kind {
            Kind::Old { dir_name } => {
                let dir = self
                    .long_name_is_dir
                    .or(self.path_is_dir)
                    .unwrap_or(dir_name);
                if dir {
                    (Kind::NoData, 0)
                } else {
                    (Kind::File, size)
                }
            }
            Kind::NoData => (Kind::NoData, 0),
            kind => (kind, size),
        }
    }
}

pub fn not_tar(why: String) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, format!("not a layer tar: {why}"))
}

pub fn cut_short(at: u64) -> io::Error {
    not_tar(format!("it is cut short in the entry at byte {at}"))
}

/// Refuses a header block whose checksum field is neither the unsigned nor the signed sum of its
/// bytes (the field itself counted as spaces), as Go's reader does.
fn check_sum(header: &[u8; BLOCK], at: u64) -> io::Result<()> {
    let (mut unsigned, mut signed) = (0u64, 0i64);
    for (i, &b) in header.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    let recorded = octal(&header[148..156]);
    if recorded == Some(unsigned) || recorded.is_some_and(|r| i64::try_from(r) == Ok(signed)) {
        Ok(())
    } else {
        Err(not_tar(format!(
            "the block at byte {at} is not a tar header (its checksum does not add up)"
        )))
    }
}

/// A size field: octal digits between spaces and NULs, or base-256 (a first byte with its top
/// bit set) for values octal cannot hold; None for a negative or unreadable one.
fn number(field: &[u8]) -> Option<u64> {
    match field.first() {
        Some(&first) if first & 0x80 != 0 => (first & 0x40 == 0)
            .then(|| {
                field[1..]
                    .iter()
                    .try_fold(u64::from(first & 0x3f), |n, &b| {
                        n.checked_mul(256)?.checked_add(u64::from(b))
                    })
            })
            .flatten()
            .filter(|&n| i64::try_from(n).is_ok()),
        _ => octal(field),
    }
}

/// Octal digits between spaces and NULs (none is 0), up to a NUL among them.
fn octal(field: &[u8]) -> Option<u64> {
    let is_pad = |b: &u8| *b == b' ' || *b == 0;
    let start = field.iter().position(|b| !is_pad(b)).unwrap_or(field.len());
    let end = field
        .iter()
        .rposition(|b| !is_pad(b))
        .map_or(start, |last| last + 1);
    match &field[start..end] {
        [] => Some(0),
        digits => ascii_number(until_nul(digits), 8),
    }
}

/// A string field: up to its first NUL.
fn until_nul(field: &[u8]) -> &[u8] {
    &field[..field.iter().position(|&b| b == 0).unwrap_or(field.len())]
}

/// A PAX number: decimal digits, maybe after a `+`, that Go's int64 holds.
fn decimal(text: &[u8]) -> Option<u64> {
    ascii_number(text.strip_prefix(b"+").unwrap_or(text), 10).filter(|&n| i64::try_from(n).is_ok())
}

/// Digits of `radix` (one at least), or None.
fn ascii_number(digits: &[u8], radix: u32) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        let digit = char::from(b).to_digit(radix)?;
        n.checked_mul(u64::from(radix))?
            .checked_add(u64::from(digit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_fields_read_octal_and_base_256() {
        assert_eq!(number(b"00000001750\0"), Some(1000));
        assert_eq!(number(b"  1750 \0\0\0\0\0"), Some(1000));
        assert_eq!(number(b"\0\0\0\0\0\0\0\0\0\0\0\0"), Some(0));
        assert_eq!(
            number(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0]),
            Some(0x1000)
        );
        assert_eq!(number(&[0xff; 12]), None);
        assert_eq!(number(b"17 50\0"), None);
        assert_eq!(number(b"8\0"), None);
        assert_eq!(number(b" 17\x0050 \0"), Some(0o17));
    }
}
