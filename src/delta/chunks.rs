//! A layer tar cut into pieces (`docs/delta.md`, "Chunks"): its header blocks, extension
//! headers, padding and end blocks as they are, and each regular file's data cut into
//! content-defined chunks, file by file. Entries are found as Go's `archive/tar` (the engine's
//! reader) finds them (`header`).

use std::collections::HashSet;
use std::io::{self, BufReader, ErrorKind, Read};

use fastcdc::v2020::FastCDC;
use sha2::{Digest as _, Sha256};

use super::header::{cut_short, Header, Kind, Pending, BLOCK};
use crate::digest::Digest;

pub const MIN_CHUNK: u32 = 4096;
pub const AVG_CHUNK: u32 = 16384;
pub const MAX_CHUNK: u32 = 65536;

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

    /// The key as a query asks for it.
    pub fn asked(&self) -> Asked {
        let mut asked = [0; ASKED_LEN];
        asked.copy_from_slice(&self.0[..ASKED_LEN]);
        Asked(asked)
    }
}

/// How many bytes of a key a query carries: a query is most of what a recipe of unchanged files
/// costs on the wire, and a host that matches a prefix of another chunk than the client's only
/// makes the recipe refer to a key it does not keep, which it refuses.
pub const ASKED_LEN: usize = 6;

/// A key as a query carries it: its first [`ASKED_LEN`] bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Asked(pub [u8; ASKED_LEN]);

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
    // What extension headers said of the entry that follows them.
    let mut pending = Pending::default();
    loop {
        let at = input.len;
        let mut block = [0; BLOCK];
        match read_full(&mut input, &mut block)? {
            // A tar may end without its end blocks (Go's reader takes it).
            0 => break,
            BLOCK => {}
            _ => return Err(cut_short(at)),
        }
        each(Piece::Raw(&block))?;
        if block == [0; BLOCK] {
            copy_raw(&mut input, u64::MAX, &mut window, &mut each)?;
            break;
        }
        let header = Header::read(&block, at)?;
        let size = match header.kind {
            Kind::Pax => {
                let records = extension(&mut input, header.size, at, &mut each)?;
                pending.pax(&records, at)?;
                header.size
            }
            Kind::LongName => {
                let name = extension(&mut input, header.size, at, &mut each)?;
                pending.long_name(&name);
                header.size
            }
            // A global header is an entry of its own: what was pending is dropped.
            Kind::Global => {
                pending = Pending::default();
                copy_raw(&mut input, header.size, &mut window, &mut each)?
            }
            Kind::LongLink => copy_raw(&mut input, header.size, &mut window, &mut each)?,
            _ => match std::mem::take(&mut pending).entry(&header) {
                (Kind::File, size) => chunk_file(&mut input, size, &mut window, &mut each)?,
                (Kind::Sparse { extended }, size) => {
                    if extended {
                        sparse_blocks(&mut input, at, &mut each)?;
                    }
                    copy_raw(&mut input, size, &mut window, &mut each)?
                }
                (_, size) => copy_raw(&mut input, size, &mut window, &mut each)?,
            },
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
/// first pass); every piece is shown to `cut` as well, which notes where it was cut for the
/// recipe's pass (`cuts`).
pub fn keys<R: Read>(
    layer: R,
    mut cut: impl FnMut(&Piece<'_>) -> io::Result<()>,
) -> io::Result<(Vec<Key>, Split)> {
    let mut seen = HashSet::new();
    let mut keys = Vec::new();
    let split = split(layer, |piece| {
        cut(&piece)?;
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

/// Hands `len` bytes on as Raw pieces; returns `len`. For `u64::MAX`, all that is left (no entry
/// is that long: sizes are at most `i64::MAX`).
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

/// Hands on an extension header's data (at most `EXTENSION_LIMIT`, as `Header::read` checked),
/// and returns it.
fn extension<R: Read>(
    input: &mut Tally<R>,
    len: u64,
    at: u64,
    each: &mut impl FnMut(Piece<'_>) -> io::Result<()>,
) -> io::Result<Vec<u8>> {
    let mut data = vec![0; len as usize];
    if read_full(input, &mut data)? < data.len() {
        return Err(cut_short(at));
    }
    each(Piece::Raw(&data))?;
    Ok(data)
}

/// Hands on the extension blocks of an old GNU sparse header, which hold more of its map.
fn sparse_blocks<R: Read>(
    input: &mut Tally<R>,
    at: u64,
    each: &mut impl FnMut(Piece<'_>) -> io::Result<()>,
) -> io::Result<()> {
    loop {
        let mut block = [0; BLOCK];
        if read_full(input, &mut block)? < BLOCK {
            return Err(cut_short(at));
        }
        each(Piece::Raw(&block))?;
        if block[504] == 0 {
            return Ok(());
        }
    }
}
#[cfg(test)]
mod tests {
    use std::io::Write;

    use tar::{EntryType, Header};

    use super::*;
    use crate::delta::tests::{layer, random};

    /// The keys of a layer and its Split, its cuts dropped.
    fn keys_only(layer: &[u8]) -> io::Result<(Vec<Key>, Split)> {
        keys(layer, |_| Ok(()))
    }

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
        let mut old = header(EntryType::Regular, 5000);
        old.as_old_mut().linkflag = [0];
        let data = random(5000, 3);
        let mut builder = tar::Builder::new(Vec::new());
        builder.append_data(&mut old, "old", &data[..]).unwrap();
        assert_eq!(builder.get_ref()[156], 0);
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
    fn only_the_last_pax_header_counts_and_a_global_one_drops_it() {
        let data = random(7000, 6);
        let mut builder = tar::Builder::new(Vec::new());
        // Neither the size of an earlier PAX header nor one before a global header counts.
        builder
            .append_pax_extensions([("size", b"99999".as_slice())])
            .unwrap();
        builder
            .append_pax_extensions([("mtime", b"1".as_slice())])
            .unwrap();
        builder
            .append_data(&mut header(EntryType::Regular, 7000), "a", &data[..])
            .unwrap();
        builder
            .append_pax_extensions([("size", b"99999".as_slice())])
            .unwrap();
        let global = &mut header(EntryType::XGlobalHeader, 8);
        builder
            .append_data(global, "global", &b"8 a=bcd\n"[..])
            .unwrap();
        builder
            .append_data(&mut header(EntryType::Regular, 7000), "b", &data[..])
            .unwrap();
        assert_split(&builder.into_inner().unwrap(), &[&data, &data]);
    }

    /// Writes the header of an old-style entry ('\0') of that own name and size field.
    fn old_style(out: &mut Vec<u8>, name: &[u8], size: u64) {
        let mut old = header(EntryType::Regular, size);
        old.as_old_mut().linkflag = [0];
        old.as_old_mut().name[..name.len()].copy_from_slice(name);
        old.set_cksum();
        out.write_all(old.as_bytes()).unwrap();
    }

    #[test]
    fn an_old_style_entry_named_like_a_directory_has_no_data() {
        let data = random(7000, 7);
        let mut builder = tar::Builder::new(Vec::new());
        // By its own name, by a PAX path, by a GNU long name: no data, whatever its size says.
        old_style(builder.get_mut(), b"olddir/", 1024);
        builder
            .append_pax_extensions([("path", b"paxdir/".as_slice())])
            .unwrap();
        old_style(builder.get_mut(), b"file", 1024);
        let long_dir = &mut header(EntryType::GNULongName, 8);
        builder
            .append_data(long_dir, "././@LongLink", &b"longdir/"[..])
            .unwrap();
        old_style(builder.get_mut(), b"file", 1024);
        // A long name that is no directory's wins over its own name that is.
        let long_file = &mut header(EntryType::GNULongName, 4);
        builder
            .append_data(long_file, "././@LongLink", &b"file"[..])
            .unwrap();
        old_style(builder.get_mut(), b"dir/", 7000);
        let out = builder.get_mut();
        out.write_all(&data).unwrap();
        out.write_all(&vec![0; data.len().next_multiple_of(512) - data.len()])
            .unwrap();
        builder
            .append_data(&mut header(EntryType::Regular, 7000), "after", &data[..])
            .unwrap();
        assert_split(&builder.into_inner().unwrap(), &[&data, &data]);
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
        let (before, _) = keys_only(&layer(&[("f", &original)], 1)[..]).unwrap();
        assert!(before.len() > 20, "{}", before.len());
        let mut overwritten = original.clone();
        overwritten[500_000..500_016].copy_from_slice(&[0xaa; 16]);
        let mut inserted = original.clone();
        inserted.splice(300_000..300_000, [1, 2, 3, 4, 5]);
        for edited in [overwritten, inserted] {
            let (after, _) = keys_only(&layer(&[("f", &edited)], 1)[..]).unwrap();
            let new = after.iter().filter(|key| !before.contains(key)).count();
            assert!((1..=2).contains(&new), "{new} new keys");
        }
    }

    #[test]
    fn identical_files_give_identical_keys() {
        let data = random(200_000, 10);
        let (one, split_one) = keys_only(&layer(&[("a", &data)], 1)[..]).unwrap();
        let (two, _) = keys_only(&layer(&[("a", &data), ("b/c", &data)], 2)[..]).unwrap();
        let (moved, split_moved) = keys_only(&layer(&[("elsewhere", &data)], 3)[..]).unwrap();
        assert_eq!(one, two);
        assert_eq!(one, moved);
        assert_ne!(split_one.diff_id, split_moved.diff_id);
        assert_eq!(Key::of(&[7; 32]), Key([7; 8]));
    }
}
