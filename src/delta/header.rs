//! Tar header blocks as Go's `archive/tar` (the engine's reader) reads them, for what `chunks`
//! needs: which kind of entry a block starts and how much data follows it. PAX `size` records
//! count (the last PAX header's only); link, device, directory and FIFO entries have no data
//! whatever their size field says, nor has an old-style file (`\0`) whose name ends in `/`;
//! extension headers over 1 MiB are refused.

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
    /// A GNU long name or link name for the next entry (`L`, `K`).
    LongName,
    /// A regular file (`0`, `\0`, `7`): its data is content.
    File,
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
        let name = &block[..100];
        let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
        let kind = match block[156] {
            b'x' => Kind::Pax,
            b'g' => Kind::Global,
            b'L' | b'K' => Kind::LongName,
            b'\0' if name.ends_with(b"/") => Kind::NoData,
            b'0' | b'\0' | b'7' => Kind::File,
            b'1'..=b'6' => Kind::NoData,
            b'S' => Kind::Sparse {
                extended: block[482] != 0,
            },
            _ => Kind::Other,
        };
        if matches!(kind, Kind::Pax | Kind::Global | Kind::LongName) && size > EXTENSION_LIMIT {
            return Err(not_tar(format!(
                "the extension header at byte {at} holds {size} bytes, over the \
                 {EXTENSION_LIMIT} a tar reader takes"
            )));
        }
        Ok(Header { kind, size })
    }
}

/// The `size` a PAX header's records give the next entry, if any (an empty value gives none).
pub fn pax_size(records: &[u8], at: u64) -> io::Result<Option<u64>> {
    let bad = || not_tar(format!("the PAX header at byte {at} is not PAX records"));
    let mut size = None;
    let mut rest = records;
    while !rest.is_empty() {
        // "<length> <key>=<value>\n", the length counting the whole record.
        let space = rest.iter().position(|&b| b == b' ').ok_or_else(bad)?;
        let len = ascii_number(&rest[..space], 10).ok_or_else(bad)?;
        let len = usize::try_from(len).map_err(|_| bad())?;
        if len <= space + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err(bad());
        }
        if let Some(value) = rest[space + 1..len - 1].strip_prefix(b"size=") {
            size = match value {
                [] => None,
                digits => Some(ascii_number(digits, 10).ok_or_else(bad)?),
            };
        }
        rest = &rest[len..];
    }
    Ok(size)
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

/// Octal digits between spaces and NULs (none is 0).
fn octal(field: &[u8]) -> Option<u64> {
    let is_pad = |b: &u8| *b == b' ' || *b == 0;
    let start = field.iter().position(|b| !is_pad(b)).unwrap_or(field.len());
    let end = field
        .iter()
        .rposition(|b| !is_pad(b))
        .map_or(start, |last| last + 1);
    match &field[start..end] {
        [] => Some(0),
        digits => ascii_number(digits, 8),
    }
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
    }
}
