//! A layer tar cut into pieces (`docs/delta.md`, "Chunks"): its header blocks, extension
//! headers, padding and end blocks as they are, and each regular file's data cut into
//! content-defined chunks, file by file. Entries are found as Go's `archive/tar` (the engine's
//! reader) finds them: PAX `size` records count, link, device, directory and FIFO entries have no
//! data whatever their size field says.

use std::collections::HashSet;
use std::io::{self, BufReader, ErrorKind, Read};

use fastcdc::v2020::FastCDC;
use sha2::{Digest as _, Sha256};

use crate::digest::Digest;

pub const MIN_CHUNK: u32 = 4096;
pub const AVG_CHUNK: u32 = 16384;
pub const MAX_CHUNK: u32 = 65536;

const BLOCK: usize = 512;
/// The most of a PAX header's data read to find its `size` (Go's reader refuses more too).
const PAX_LIMIT: u64 = 1 << 20;
/// The window a file's data is chunked in: room for a few chunks, so that the bytes left over
/// after a cut move to the front only now and then.
const WINDOW: usize = 4 * MAX_CHUNK as usize;

/// A chunk's name when asking for it: the first 8 bytes of its SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(pub [u8; 8]);

impl Key {
    pub fn of(sha256: &[u8; 32]) -> Key {
        let mut key = [0; 8];
        key.copy_from_slice(&sha256[..8]);
        Key(key)
    }
}

/// A piece of a layer tar, in the layer's order.
pub enum Piece<'a> {
    /// Bytes that are not a regular file's data: header blocks, extension headers and their
    /// data, padding, end blocks and whatever follows them.
    Raw(&'a [u8]),
    /// A content-defined chunk of a regular file's data, with its SHA-256.
    Chunk { data: &'a [u8], sha256: [u8; 32] },
}

/// What a whole layer read adds up to: its SHA-256 (its diff ID) and its length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub diff_id: Digest,
    pub size: u64,
}

/// Reads a layer tar to its very end (bytes after the end blocks are Raw too), handing every
/// piece in order: header blocks, extension headers with their data, padding and end blocks are
/// Raw; each regular file's data ('0', '\0', '7' typeflags) is cut into chunks per file.
/// Concatenating all pieces gives back the input exactly. Returns the SHA-256 and length of
/// everything read. Input that is not a tar (bad checksum, truncated entry) is an io error of
/// kind InvalidData with a clear message, never a panic.
pub fn split<R: Read>(
    layer: R,
    mut each: impl FnMut(Piece<'_>) -> io::Result<()>,
) -> io::Result<Split> {
    let mut input = Tally {
        inner: BufReader::with_capacity(WINDOW, layer),
        sha256: Sha256::new(),
        len: 0,
    };
    let mut window = vec![0; WINDOW];
    // The size a PAX header gave the entry that follows it.
    let mut pax_size = None;
    loop {
        let at = input.len;
        let mut header = [0; BLOCK];
        match read_full(&mut input, &mut header)? {
            // A tar may end without its end blocks (Go's reader takes it).
            0 => break,
            BLOCK => {}
            _ => return Err(cut_short(at)),
        }
        each(Piece::Raw(&header))?;
        if header == [0; BLOCK] {
            copy_raw(&mut input, u64::MAX, &mut window, &mut each)?;
            break;
        }
        check_sum(&header, at)?;
        let stored = number(&header[124..136]).ok_or_else(|| {
            not_tar(format!(
                "the size of the entry at byte {at} is not a number"
            ))
        })?;
        let size = match header[156] {
            b'x' => {
                pax_size = pax(&mut input, stored, at, &mut each)?.or(pax_size);
                stored
            }
            b'g' | b'L' | b'K' => copy_raw(&mut input, stored, &mut window, &mut each)?,
            flag => {
                let size = pax_size.take().unwrap_or(stored);
                match flag {
                    b'0' | b'\0' | b'7' => chunk_file(&mut input, size, &mut window, &mut each)?,
                    b'1'..=b'6' => 0,
                    b'S' => {
                        sparse_blocks(&mut input, &header, at, &mut each)?;
                        copy_raw(&mut input, size, &mut window, &mut each)?
                    }
                    _ => copy_raw(&mut input, size, &mut window, &mut each)?,
                }
            }
        };
        let padding = (BLOCK - (size % BLOCK as u64) as usize) % BLOCK;
        copy_raw(&mut input, padding as u64, &mut window, &mut each)?;
    }
    let diff_id = Digest::from_sha256(input.sha256.finalize().into());
    Ok(Split {
        diff_id,
        size: input.len,
    })
}

/// The distinct keys of a layer's chunks, in first-seen order, with its Split (the client's
/// first pass).
pub fn keys<R: Read>(layer: R) -> io::Result<(Vec<Key>, Split)> {
    let mut seen = HashSet::new();
    let mut keys = Vec::new();
    let split = split(layer, |piece| {
        if let Piece::Chunk { sha256, .. } = piece {
            let key = Key::of(&sha256);
            if seen.insert(key) {
                keys.push(key);
            }
        }
        Ok(())
    })?;
    Ok((keys, split))
}

/// The layer as read: its SHA-256 and length so far.
struct Tally<R> {
    inner: BufReader<R>,
    sha256: Sha256,
    len: u64,
}

impl<R: Read> Read for Tally<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha256.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

/// Fills `buf` but at the end of the input; how many bytes it read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Hands `len` bytes on as Raw pieces (all that is left for `u64::MAX`); returns `len`.
fn copy_raw<R: Read>(
    input: &mut Tally<R>,
    len: u64,
    window: &mut [u8],
    each: &mut impl FnMut(Piece<'_>) -> io::Result<()>,
) -> io::Result<u64> {
    let at = input.len;
    let mut left = len;
    while left > 0 {
        let want = window
            .len()
            .min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = read_full(input, &mut window[..want])?;
        if n > 0 {
            each(Piece::Raw(&window[..n]))?;
        }
        if n < want {
            return match len {
                u64::MAX => Ok(len),
                _ => Err(cut_short(at)),
            };
        }
        left -= n as u64;
    }
    Ok(len)
}

/// Cuts a regular file's `size` bytes of data into chunks; returns `size`.
fn chunk_file<R: Read>(
    input: &mut Tally<R>,
    size: u64,
    window: &mut [u8],
    each: &mut impl FnMut(Piece<'_>) -> io::Result<()>,
) -> io::Result<u64> {
    let at = input.len;
    let (mut start, mut end, mut left) = (0, 0, size);
    loop {
        if end - start < MAX_CHUNK as usize && left > 0 {
            window.copy_within(start..end, 0);
            (start, end) = (0, end - start);
            let want = (window.len() - end).min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = read_full(input, &mut window[end..end + want])?;
            if n < want {
                return Err(cut_short(at));
            }
            end += n;
            left -= n as u64;
        }
        if start == end {
            return Ok(size);
        }
        let held = &window[start..end];
        let (_, cut) = FastCDC::new(held, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK).cut(0, held.len());
        let data = &held[..cut.max(1)];
        each(Piece::Chunk {
            data,
            sha256: Sha256::digest(data).into(),
        })?;
        start += data.len();
    }
}

/// Hands on a PAX header's data (and reads the `size` it gives the next entry, if any).
fn pax<R: Read>(
    input: &mut Tally<R>,
    len: u64,
    at: u64,
    each: &mut impl FnMut(Piece<'_>) -> io::Result<()>,
) -> io::Result<Option<u64>> {
    if len > PAX_LIMIT {
        return Err(not_tar(format!(
            "the PAX header at byte {at} holds {len} bytes, over the {PAX_LIMIT} a tar reader takes"
        )));
    }
    let mut data = vec![0; len as usize];
    if read_full(input, &mut data)? < data.len() {
        return Err(cut_short(at));
    }
    each(Piece::Raw(&data))?;
    let bad = || not_tar(format!("the PAX header at byte {at} is not PAX records"));
    let mut size = None;
    let mut rest = &data[..];
    while !rest.is_empty() {
        // "<length> <key>=<value>\n", the length counting the whole record.
        let space = rest.iter().position(|&b| b == b' ').ok_or_else(bad)?;
        let record_len: usize = ascii_number(&rest[..space], 10).ok_or_else(bad)? as usize;
        if record_len <= space + 1 || record_len > rest.len() || rest[record_len - 1] != b'\n' {
            return Err(bad());
        }
        let record = &rest[space + 1..record_len - 1];
        if let Some(value) = record.strip_prefix(b"size=") {
            // An empty value takes the size back to the header's.
            size = match value {
                [] => None,
                digits => Some(ascii_number(digits, 10).ok_or_else(bad)?),
            };
        }
        rest = &rest[record_len..];
    }
    Ok(size)
}

/// Hands on the extension blocks of an old GNU sparse header, which hold more of its map.
fn sparse_blocks<R: Read>(
    input: &mut Tally<R>,
    header: &[u8; BLOCK],
    at: u64,
    each: &mut impl FnMut(Piece<'_>) -> io::Result<()>,
) -> io::Result<()> {
    let mut extended = header[482] != 0;
    while extended {
        let mut block = [0; BLOCK];
        if read_full(input, &mut block)? < BLOCK {
            return Err(cut_short(at));
        }
        each(Piece::Raw(&block))?;
        extended = block[504] != 0;
    }
    Ok(())
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

fn not_tar(why: String) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, format!("not a layer tar: {why}"))
}

fn cut_short(at: u64) -> io::Error {
    not_tar(format!("it is cut short in the entry at byte {at}"))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use tar::{EntryType, Header};

    use super::*;
    use crate::delta::tests::{layer, random};

    /// Every piece of a layer as (is a chunk, its bytes), with its Split; checks each chunk's hash.
    type Pieces = Vec<(bool, Vec<u8>)>;

    fn pieces(input: &[u8]) -> io::Result<(Pieces, Split)> {
        let mut pieces = Vec::new();
        let split = split(input, |piece| {
            pieces.push(match piece {
                Piece::Raw(data) => (false, data.to_vec()),
                Piece::Chunk { data, sha256 } => {
                    assert_eq!(sha256, <[u8; 32]>::from(Sha256::digest(data)));
                    (true, data.to_vec())
                }
            });
            Ok(())
        })?;
        Ok((pieces, split))
    }

    /// Checks that the pieces give back the input, and that the chunks are exactly the files'
    /// data, file by file, each file cut within the chunk sizes.
    fn assert_split(input: &[u8], files: &[&[u8]]) {
        let (pieces, split) = pieces(input).unwrap();
        let whole: Vec<u8> = pieces.iter().flat_map(|(_, data)| data.clone()).collect();
        assert_eq!(whole, input);
        assert_eq!(split.diff_id, Digest::of(input));
        assert_eq!(split.size, input.len() as u64);
        let mut chunks = pieces
            .iter()
            .filter(|(chunk, _)| *chunk)
            .map(|(_, data)| data);
        for file in files {
            let mut rest = *file;
            while !rest.is_empty() {
                let chunk = chunks.next().expect("a chunk for the rest of the file");
                assert_eq!(&rest[..chunk.len()], &chunk[..]);
                assert!(chunk.len() <= MAX_CHUNK as usize);
                rest = &rest[chunk.len()..];
                assert!(chunk.len() >= MIN_CHUNK as usize || rest.is_empty());
            }
        }
        assert_eq!(chunks.next(), None);
    }

    fn header(kind: EntryType, size: u64) -> Header {
        let mut header = Header::new_gnu();
        header.set_entry_type(kind);
        header.set_size(size);
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        header
    }

    #[test]
    fn pieces_give_back_every_kind_of_layer_exactly() {
        let big = random(300 * 1024 + 123, 1);
        let small = b"hello\n".to_vec();
        let contiguous = random(9000, 2);
        let mut builder = tar::Builder::new(Vec::new());
        builder
            .append_data(&mut header(EntryType::Directory, 0), "app/", io::empty())
            .unwrap();
        builder
            .append_pax_extensions([
                ("mtime", b"1700000000.25".as_slice()),
                ("uname", b"someone"),
            ])
            .unwrap();
        builder
            .append_data(&mut header(EntryType::Regular, 6), "app/hello", &small[..])
            .unwrap();
        let long = format!("app/{}/big.bin", "deep/".repeat(40));
        let big_header = &mut header(EntryType::Regular, big.len() as u64);
        builder.append_data(big_header, &long, &big[..]).unwrap();
        builder
            .append_data(&mut header(EntryType::Regular, 0), "app/empty", io::empty())
            .unwrap();
        builder
            .append_link(&mut header(EntryType::Symlink, 0), "app/link", "hello")
            .unwrap();
        builder
            .append_link(&mut header(EntryType::Link, 0), "app/hard", "app/hello")
            .unwrap();
        let contiguous_header = &mut header(EntryType::Continuous, contiguous.len() as u64);
        builder
            .append_data(contiguous_header, "app/contiguous", &contiguous[..])
            .unwrap();
        let mut tar = builder.into_inner().unwrap();
        tar.resize(tar.len().next_multiple_of(10240) + 10240, 0);
        assert_split(&tar, &[&small, &big, &contiguous]);
        // An old-style regular file ('\0') is content too.
        let mut old = header(EntryType::new(0), 5000);
        let data = random(5000, 3);
        let mut builder = tar::Builder::new(Vec::new());
        builder.append_data(&mut old, "old", &data[..]).unwrap();
        assert_split(&builder.into_inner().unwrap(), &[&data]);
    }

    #[test]
    fn entries_are_found_as_the_engine_finds_them() {
        // A PAX size gives the next entry its data, whatever its own size field says; a
        // symlink's size field is no data.
        let data = random(70_000, 4);
        let mut builder = tar::Builder::new(Vec::new());
        let size = data.len().to_string();
        builder
            .append_pax_extensions([("size", size.as_bytes())])
            .unwrap();
        let mut file = header(EntryType::Regular, 0);
        file.set_path("big-by-pax").unwrap();
        file.set_cksum();
        let mut link = header(EntryType::Symlink, 1024);
        link.set_path("link").unwrap();
        link.set_link_name("big-by-pax").unwrap();
        link.set_cksum();
        let out = builder.get_mut();
        out.write_all(file.as_bytes()).unwrap();
        out.write_all(&data).unwrap();
        out.write_all(&vec![0; data.len().next_multiple_of(512) - data.len()])
            .unwrap();
        out.write_all(link.as_bytes()).unwrap();
        let after = random(5000, 5);
        builder
            .append_data(&mut header(EntryType::Regular, 5000), "after", &after[..])
            .unwrap();
        assert_split(&builder.into_inner().unwrap(), &[&data, &after]);
    }

    #[test]
    fn a_tar_without_end_blocks_and_an_empty_input_split() {
        let data = random(20_000, 6);
        let tar = layer(&[("f", &data)], 1);
        assert_split(&tar[..tar.len() - 1024], &[&data]);
        assert_split(&[], &[]);
    }

    #[test]
    fn what_is_not_a_tar_is_invalid_data() {
        let data = random(100_000, 7);
        let tar = layer(&[("f", &data)], 1);
        let mut bad_sum = tar.clone();
        bad_sum[0] ^= 1;
        let mut bad_size = tar.clone();
        bad_size[124..136].copy_from_slice(b"0000000zz00\0");
        let cases: [(&[u8], &str); 5] = [
            (&bad_sum, "checksum"),
            (&bad_size, "checksum"),
            (&tar[..50_000], "cut short"),
            (&tar[..700], "cut short"),
            (&random(4096, 8), "checksum"),
        ];
        for (input, why) in cases {
            let e = split(input, |_| Ok(())).expect_err("an error");
            assert_eq!(e.kind(), ErrorKind::InvalidData);
            assert!(e.to_string().contains(why), "{e}");
        }
        // A size that is no number, checksum and all.
        let mut header = Header::new_gnu();
        header.as_old_mut().size.copy_from_slice(b"0000000zz00\0");
        header.set_cksum();
        let e = split(&header.as_bytes()[..], |_| Ok(())).unwrap_err();
        assert!(e.to_string().contains("is not a number"), "{e}");
    }

    #[test]
    fn an_error_of_the_caller_ends_the_split() {
        let tar = layer(&[("f", b"data")], 1);
        let e = split(&tar[..], |_| Err(io::Error::other("stop")))
            .err()
            .unwrap();
        assert_eq!(e.to_string(), "stop");
    }

    #[test]
    fn a_small_edit_changes_one_or_two_chunks() {
        let original = random(1 << 20, 9);
        let (before, _) = keys(&layer(&[("f", &original)], 1)[..]).unwrap();
        assert!(before.len() > 20, "{}", before.len());
        let mut overwritten = original.clone();
        overwritten[500_000..500_016].copy_from_slice(&[0xaa; 16]);
        let mut inserted = original.clone();
        inserted.splice(300_000..300_000, [1, 2, 3, 4, 5]);
        for edited in [overwritten, inserted] {
            let (after, _) = keys(&layer(&[("f", &edited)], 1)[..]).unwrap();
            let new = after.iter().filter(|key| !before.contains(key)).count();
            assert!((1..=2).contains(&new), "{new} new keys");
        }
    }

    #[test]
    fn identical_files_give_identical_keys() {
        let data = random(200_000, 10);
        let (one, split_one) = keys(&layer(&[("a", &data)], 1)[..]).unwrap();
        let (two, _) = keys(&layer(&[("a", &data), ("b/c", &data)], 2)[..]).unwrap();
        let (moved, split_moved) = keys(&layer(&[("elsewhere", &data)], 3)[..]).unwrap();
        assert_eq!(one, two);
        assert_eq!(one, moved);
        assert_ne!(split_one.diff_id, split_moved.diff_id);
        assert_eq!(Key::of(&[7; 32]), Key([7; 8]));
    }

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
