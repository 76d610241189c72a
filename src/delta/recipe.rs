//! A layer sent as a recipe (`docs/delta.md`, "The recipe entry"): a header (a magic line, the
//! layer's size and diff ID), then literal bytes and references to kept chunks in the layer's
//! order, in one of two formats ([`Format`]). `delta::ops` writes one from a layer and what the
//! host keeps; `delta::rebuild` turns one back into the layer, checking everything as it goes,
//! with what this module reads.

use std::collections::{HashMap, HashSet};
use std::io::{self, BufReader, Chain, Cursor, ErrorKind, Read};

use super::chunks::{Key, Split};
pub use super::error::RecipeError;
use super::pack::is_set;
use crate::digest::Digest;

const MAGIC: &[u8] = b"dokku-image-recipe 1\n";
const MAGIC_V2: &[u8] = b"dokku-image-recipe 2\n";
/// A format-2 recipe's header: its magic line, then the layer's size and diff ID, raw.
pub const PREFIX_LEN: usize = MAGIC_V2.len() + 8 + 32;
pub(super) const END: u8 = 0x00;
pub(super) const LITERAL: u8 = 0x01;
pub(super) const REFERENCE: u8 = 0x02;
/// A tar header block whose checksum field the host fills in.
pub(super) const HEADER: u8 = 0x03;
/// The chunk that follows, in its pack, the one the recipe referred to last.
pub(super) const NEXT: u8 = 0x04;
/// Where a tar header's checksum field lies.
pub(super) const CHECKSUM: std::ops::Range<usize> = 148..156;
/// How a zstd frame begins.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// The largest window (2^23 bytes) a recipe's stream may ask its reader to keep: level 9 uses
/// 2^22 at most, and a hostile stream may not make the host hold more.
const WINDOW_LOG_MAX: u32 = 23;

/// The two forms of a recipe. 1: one zstd stream of the header and the operations. 2: the
/// header raw ([`header_bytes`]), then a zstd stream of the operations, so that a client can write
/// the operations as the layer streams and the header once it has read the layer to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    V1,
    V2,
}

/// A recipe's header in `format`: its magic line, the layer's size and diff ID. Format 1 has it
/// at the start of the zstd stream, format 2 raw before it ([`PREFIX_LEN`] bytes).
pub fn header_bytes(format: Format, split: &Split) -> Vec<u8> {
    let magic = match format {
        Format::V1 => MAGIC,
        Format::V2 => MAGIC_V2,
    };
    [magic, &split.size.to_be_bytes(), &split.diff_id.sha256()].concat()
}

/// What the host keeps of a layer's chunks, as its query's answers said.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Kept {
    pub keys: HashSet<Key>,
    /// `after[a] == b`: the chunk of b follows the one of a in the host's pack.
    pub after: HashMap<Key, Key>,
}

impl Kept {
    /// From a query's keys and its two answers (`Packs::bitmap`, `Packs::follows`).
    pub fn from_answers(keys: &[Key], kept: &[u8], follows: &[u8]) -> Kept {
        let mut found = Kept::default();
        found.add_answers(keys, kept, follows);
        found
    }

    /// Adds what another query's answers said.
    pub fn add_answers(&mut self, keys: &[Key], kept: &[u8], follows: &[u8]) {
        for (i, key) in keys.iter().enumerate() {
            if is_set(kept, i) {
                self.keys.insert(*key);
                if i > 0 && is_set(follows, i) {
                    self.after.insert(keys[i - 1], *key);
                }
            }
        }
    }
}

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

/// Reads only the header (size, diff ID) of a recipe stream.
pub fn header<R: Read>(recipe: R) -> Result<Header, RecipeError> {
    open(recipe).map(|(header, _)| header)
}

pub(super) type Stream<R> =
    zstd::stream::read::Decoder<'static, BufReader<Chain<Cursor<[u8; 4]>, R>>>;

/// The recipe's header, and its stream where the operations begin.
pub(super) fn open<R: Read>(mut recipe: R) -> Result<(Header, Stream<R>), RecipeError> {
    let mut head = [0; 4];
    recipe.read_exact(&mut head).map_err(reading)?;
    let raw_header = if head == ZSTD_MAGIC {
        None
    } else if head[..] == MAGIC_V2[..4] {
        let mut rest = [0; PREFIX_LEN - 4];
        recipe.read_exact(&mut rest).map_err(reading)?;
        if rest[..MAGIC_V2.len() - 4] != MAGIC_V2[4..] {
            return Err(RecipeError::BadMagic);
        }
        recipe.read_exact(&mut head).map_err(reading)?;
        if head != ZSTD_MAGIC {
            return Err(RecipeError::BadMagic);
        }
        Some(read_header(&mut &rest[MAGIC_V2.len() - 4..]).map_err(reading)?)
    } else {
        return Err(RecipeError::BadMagic);
    };
    let mut stream =
        zstd::stream::read::Decoder::new(Cursor::new(head).chain(recipe))?.single_frame();
    stream.window_log_max(WINDOW_LOG_MAX)?;
    let header = match raw_header {
        Some(header) => header,
        None => {
            let mut magic = [0; MAGIC.len()];
            stream.read_exact(&mut magic).map_err(reading)?;
            if magic != MAGIC {
                return Err(RecipeError::BadMagic);
            }
            read_header(&mut stream).map_err(reading)?
        }
    };
    Ok((header, stream))
}

/// The layer's size and diff ID, as a header holds them after its magic line.
fn read_header(from: &mut impl Read) -> io::Result<Header> {
    let mut size = [0; 8];
    from.read_exact(&mut size)?;
    let mut diff_id = [0; 32];
    from.read_exact(&mut diff_id)?;
    Ok(Header {
        size: u64::from_be_bytes(size),
        diff_id: Digest::from_sha256(diff_id),
    })
}

/// Writes a header block's checksum, the sum of its bytes with the field counted as spaces, in
/// the spelling its blank field keeps (see `ops::blank_checksum`).
pub(super) fn fill_checksum(block: &mut [u8; 512]) {
    let seven_digits = block[CHECKSUM.end - 1] == 0;
    block[CHECKSUM].fill(b' ');
    let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
    let field = if seven_digits {
        format!("{sum:07o}\0")
    } else {
        format!("{sum:06o}\0 ")
    };
    block[CHECKSUM].copy_from_slice(field.as_bytes());
}

pub(super) fn read_len(stream: &mut impl Read) -> Result<u64, RecipeError> {
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

pub(super) fn read_byte(stream: &mut impl Read) -> Result<u8, RecipeError> {
    let mut byte = [0; 1];
    stream.read_exact(&mut byte).map_err(reading)?;
    Ok(byte[0])
}

/// A stream that ends too soon is cut short; any other error is the reader's.
pub(super) fn reading(e: io::Error) -> RecipeError {
    match e.kind() {
        ErrorKind::UnexpectedEof => RecipeError::CutShort,
        _ => RecipeError::Io(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    use crate::delta::chunks::{self, keys, Piece};
    use crate::delta::cuts::{Cut, CutReader, CutWriter};
    use crate::delta::ops::{blank_checksum, write, write_len, LEVEL};
    use crate::delta::pack::pack_layer;
    use crate::delta::pack::Packs;
    use crate::delta::rebuild::rebuild;
    use crate::delta::tests::{dir, layer, random};

    /// An app that keeps one layer, and a layer made from it: a file kept as it was, one edited
    /// in the middle, one new, all with new mtimes.
    struct Case {
        packs: Packs,
        new: Vec<u8>,
        _dir: tempfile::TempDir,
    }

    fn case() -> Case {
        let (same, mut edited) = (random(200_000, 1), random(150_000, 2));
        let old = layer(&[("same", &same), ("edited", &edited)], 1);
        let dir = dir();
        pack_layer(&old[..], dir.path(), None)
            .unwrap()
            .commit()
            .unwrap();
        edited[70_000..70_100].copy_from_slice(&[0; 100]);
        let new = layer(
            &[
                ("same", &same),
                ("edited", &edited),
                ("new", &random(30_000, 3)),
            ],
            2,
        );
        let packs = Packs::open(dir.path()).unwrap();
        Case {
            packs,
            new,
            _dir: dir,
        }
    }

    /// The keys, cuts and Split of the client's first pass over `layer`.
    fn first_pass(layer: &[u8]) -> (Vec<Key>, Vec<u8>, Split) {
        let mut cuts = CutWriter::new(Vec::new());
        let (keys, split) = keys(layer, |piece| cuts.push(Cut::of(piece)?)).unwrap();
        (keys, cuts.into_inner(), split)
    }

    /// The recipe of the case's new layer, in format 2 as clients send it.
    fn recipe_of(case: &Case) -> (Vec<u8>, Totals, Split) {
        recipe_in(case, Format::V2)
    }

    fn recipe_in(case: &Case, format: Format) -> (Vec<u8>, Totals, Split) {
        let (keys, cuts, split) = first_pass(&case.new);
        let asked: Vec<_> = keys.iter().map(Key::asked).collect();
        let kept = Kept::from_answers(
            &keys,
            &case.packs.bitmap(&asked),
            &case.packs.follows(&asked),
        );
        let mut recipe = Vec::new();
        let totals = write(
            Cursor::new(&case.new),
            CutReader::new(&cuts[..]),
            &split,
            &kept,
            format,
            &mut recipe,
        )
        .unwrap();
        (recipe, totals, split)
    }

    /// A recipe stream of these header fields and operation bytes, as `write` would frame it.
    fn recipe(size: u64, diff_id: &Digest, ops: &[u8]) -> Vec<u8> {
        let body = [MAGIC, &size.to_be_bytes(), &diff_id.sha256(), ops].concat();
        zstd::encode_all(&body[..], LEVEL).unwrap()
    }

    fn len(n: u64) -> Vec<u8> {
        let mut bytes = Vec::new();
        write_len(&mut bytes, n).unwrap();
        bytes
    }

    /// The operations of a recipe, as (op, length).
    fn ops(recipe: &[u8]) -> Vec<(u8, u64)> {
        let (_, mut stream) = open(recipe).unwrap();
        let mut ops = Vec::new();
        loop {
            let op = read_byte(&mut stream).unwrap();
            if op == END {
                return ops;
            }
            let skip = |stream: &mut Stream<&[u8]>, n: u64| {
                io::copy(&mut stream.take(n), &mut io::sink()).unwrap();
            };
            let len = match op {
                HEADER => {
                    skip(&mut stream, 512);
                    512
                }
                NEXT => 0,
                REFERENCE => {
                    skip(&mut stream, 8);
                    read_len(&mut stream).unwrap()
                }
                _ => {
                    let len = read_len(&mut stream).unwrap();
                    skip(&mut stream, len);
                    len
                }
            };
            ops.push((op, len));
        }
    }

    fn rebuild_to_vec(
        recipe: &[u8],
        packs: &Packs,
        max: u64,
    ) -> (Result<Rebuilt, RecipeError>, Vec<u8>) {
        let mut out = Vec::new();
        let result = rebuild(recipe, packs, &mut out, max);
        (result, out)
    }

    #[test]
    fn a_recipe_rebuilds_the_layer_from_kept_and_new_bytes() {
        let case = case();
        let (recipe, totals, split) = recipe_of(&case);
        assert_eq!(totals.literal + totals.referenced, case.new.len() as u64);
        assert!(totals.referenced > 250_000, "{totals:?}");
        assert!(
            totals.literal > 30_000 && totals.literal < 100_000,
            "{totals:?}"
        );
        let ops = ops(&recipe);
        assert!(ops
            .windows(2)
            .all(|pair| pair[0].0 != LITERAL || pair[1].0 != LITERAL));
        assert!(ops.iter().any(|op| op.0 == REFERENCE));
        let (rebuilt, out) = rebuild_to_vec(&recipe, &case.packs, u64::MAX);
        assert_eq!(out, case.new);
        let rebuilt = rebuilt.unwrap();
        assert_eq!(
            (rebuilt.size, &rebuilt.diff_id),
            (split.size, &split.diff_id)
        );
        let header = header(&recipe[..]).unwrap();
        assert_eq!((header.size, &header.diff_id), (split.size, &split.diff_id));
        // Format 2 is the header raw before the operations' stream; format 1 (older clients)
        // has it inside, and rebuilds the same.
        assert_eq!(&recipe[..PREFIX_LEN], &header_bytes(Format::V2, &split)[..]);
        assert_eq!(&recipe[PREFIX_LEN..PREFIX_LEN + 4], &ZSTD_MAGIC);
        let (v1, v1_totals, _) = recipe_in(&case, Format::V1);
        assert_eq!(&v1[..4], &ZSTD_MAGIC);
        assert_eq!((v1_totals, self::ops(&v1)), (totals, ops));
        let (rebuilt, out) = rebuild_to_vec(&v1, &case.packs, u64::MAX);
        assert_eq!((rebuilt.unwrap().diff_id, out), (split.diff_id, case.new));
    }

    #[test]
    fn a_kept_chunk_damaged_in_its_pack_stops_the_rebuild() {
        let case = case();
        let (recipe, _, _) = recipe_of(&case);
        // Random bytes are stored raw: a flipped byte still decompresses, to other bytes.
        let pack = fs::read_dir(case._dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .find(|path| path.extension().is_some_and(|ext| ext == "pack"))
            .unwrap();
        let mut bytes = fs::read(&pack).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        fs::write(&pack, &bytes).unwrap();
        let packs = Packs::open(case._dir.path()).unwrap();
        let (rebuilt, out) = rebuild_to_vec(&recipe, &packs, u64::MAX);
        assert!(matches!(rebuilt, Err(RecipeError::Damaged)), "{rebuilt:?}");
        assert!(out.len() < case.new.len(), "{} written", out.len());
    }

    #[test]
    fn a_recipe_of_nothing_kept_is_all_literal_but_its_headers() {
        let case = case();
        let (_, cuts, split) = first_pass(&case.new);
        let mut recipe = Vec::new();
        let totals = write(
            Cursor::new(&case.new),
            CutReader::new(&cuts[..]),
            &split,
            &Kept::default(),
            Format::V2,
            &mut recipe,
        )
        .unwrap();
        assert_eq!(
            totals,
            Totals {
                literal: case.new.len() as u64,
                referenced: 0
            }
        );
        // Each file's header, then its data and padding (and, after the last, the end blocks).
        let ops = ops(&recipe);
        assert_eq!(ops.iter().filter(|(op, _)| *op == HEADER).count(), 3);
        assert!(ops.iter().all(|(op, _)| [HEADER, LITERAL].contains(op)));
        assert_eq!(
            ops.iter().map(|(_, len)| len).sum::<u64>(),
            case.new.len() as u64
        );
        let empty = Packs::open(&case._dir.path().join("none")).unwrap();
        let (rebuilt, out) = rebuild_to_vec(&recipe, &empty, u64::MAX);
        assert_eq!(rebuilt.unwrap().diff_id, split.diff_id);
        assert_eq!(out, case.new);
    }

    #[test]
    fn a_spooled_layer_of_another_length_than_its_cuts_is_refused() {
        let case = case();
        let (_, cuts, split) = first_pass(&case.new);
        for spooled in [
            &case.new[..case.new.len() - 1],
            &[&case.new[..], &[0]].concat(),
        ] {
            let e = write(
                Cursor::new(spooled),
                CutReader::new(&cuts[..]),
                &split,
                &Kept::default(),
                Format::V2,
                io::sink(),
            )
            .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidData, "{e}");
        }
    }

    #[test]
    fn each_hostile_recipe_gets_its_reason() {
        let case = case();
        let (good, _, split) = recipe_of(&case);
        // The first chunk of the layer, which the app keeps.
        let mut first = None;
        chunks::split(&case.new[..], |piece| {
            if let (Piece::Chunk { data, sha256 }, None) = (piece, &first) {
                first = Some((Key::of(&sha256), data.to_vec()));
            }
            Ok(())
        })
        .unwrap();
        let (key, data) = first.unwrap();
        assert!(case.packs.has(&key));
        let n = data.len() as u64;
        let data_digest = Digest::of(&data);
        let reference = |key: &Key, n: u64| [&[REFERENCE][..], &key.0, &len(n)].concat();
        let literal = |bytes: &[u8]| [&[LITERAL][..], &len(bytes.len() as u64), bytes].concat();
        let ended = |ops: &[u8]| [ops, &[END]].concat();
        let hello = Digest::of(b"hello");
        let wrong_digest =
            format!("it rebuilds {hello}, not the diff ID {data_digest} it declares");
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                recipe(n, &data_digest, &ended(&reference(&Key([9; 8]), n))),
                "it refers to content this host does not keep",
            ),
            (
                recipe(n + 1, &data_digest, &ended(&reference(&key, n + 1))),
                "a reference's length is not its chunk's",
            ),
            (
                recipe(3, &hello, &ended(&literal(b"hello"))),
                "its bytes add up to more than the 3 it declares",
            ),
            (
                recipe(
                    5,
                    &hello,
                    &[
                        LITERAL, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40,
                    ],
                ),
                "its bytes add up to more than the 5 it declares",
            ),
            (
                recipe(9, &hello, &ended(&literal(b"hello"))),
                "its bytes add up to 5, not the 9 it declares",
            ),
            (
                recipe(5, &data_digest, &ended(&literal(b"hello"))),
                &wrong_digest,
            ),
            (good[..good.len() - 6].to_vec(), "it is cut short"),
            (good[..2].to_vec(), "it is cut short"),
            (recipe(5, &hello, &literal(b"hello")), "it is cut short"),
            (
                recipe(5, &hello, &literal(b"hello")[..4]),
                "it is cut short",
            ),
            (
                recipe(5, &hello, &ended(&ended(&literal(b"hello")))),
                "it goes on after its end",
            ),
            ([&good[..], b"x"].concat(), "it goes on after its end"),
            ([&good[..], &good[..]].concat(), "it goes on after its end"),
            (
                b"hello, not zstd".to_vec(),
                "it is not a layer recipe (bad magic)",
            ),
            (
                zstd::encode_all(&b"dokku-image-recipe 2\n and more"[..], 3).unwrap(),
                "it is not a layer recipe (bad magic)",
            ),
            // Format 2: the raw header cut short, alone, before something not zstd, or of
            // another version.
            (good[..PREFIX_LEN - 1].to_vec(), "it is cut short"),
            (good[..PREFIX_LEN].to_vec(), "it is cut short"),
            (
                [&good[..PREFIX_LEN], b"hello, not zstd"].concat(),
                "it is not a layer recipe (bad magic)",
            ),
            (
                [&b"dokku-image-recipe 3\n"[..], &good[MAGIC_V2.len()..]].concat(),
                "it is not a layer recipe (bad magic)",
            ),
            (recipe(5, &hello, &[7]), "it has an unknown operation 0x07"),
            (
                recipe(
                    5,
                    &hello,
                    &[
                        LITERAL, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
                    ],
                ),
                "it has a length over 64 bits",
            ),
        ];
        for (recipe, why) in cases {
            let (result, out) = rebuild_to_vec(&recipe, &case.packs, u64::MAX);
            assert_eq!(result.unwrap_err().to_string(), why);
            // Never more than it declares.
            if let Ok(header) = header(&recipe[..]) {
                assert!(out.len() as u64 <= header.size);
            }
        }
        let limit = split.size - 1;
        let (result, out) = rebuild_to_vec(&good, &case.packs, limit);
        let e = result.unwrap_err().to_string();
        assert_eq!(
            e,
            format!("its size {} is over the limit {limit}", split.size)
        );
        assert!(out.is_empty());
    }

    #[test]
    fn lengths_are_leb128() {
        assert_eq!(len(0), [0]);
        assert_eq!(len(127), [0x7f]);
        assert_eq!(len(300), [0xac, 0x02]);
        assert_eq!(len(u64::MAX).len(), 10);
        for n in [0, 1, 127, 128, 300, 1 << 35, u64::MAX] {
            assert_eq!(read_len(&mut &len(n)[..]).unwrap(), n);
        }
    }

    #[test]
    fn a_reinstall_refers_to_its_first_chunk_by_key_and_to_the_rest_as_the_next() {
        let files: Vec<(String, Vec<u8>)> = (0..40)
            .map(|i| {
                (
                    format!("node_modules/p{i}/index.js"),
                    random(3_000 + i * 50, i as u64),
                )
            })
            .collect();
        let named: Vec<(&str, &[u8])> = files.iter().map(|(n, d)| (n.as_str(), &d[..])).collect();
        let dir = dir();
        pack_layer(&layer(&named, 1)[..], dir.path(), None)
            .unwrap()
            .commit()
            .unwrap();
        let packs = Packs::open(dir.path()).unwrap();
        let new = layer(&named, 2);
        let case = Case {
            packs,
            new,
            _dir: dir,
        };
        let (recipe, totals, split) = recipe_of(&case);
        let ops = ops(&recipe);
        let count = |op: u8| ops.iter().filter(|(o, _)| *o == op).count();
        assert_eq!(count(REFERENCE), 1);
        assert_eq!(count(NEXT), 39);
        assert_eq!(count(HEADER), 40);
        assert_eq!(
            totals.referenced,
            files.iter().map(|(_, d)| d.len() as u64).sum::<u64>()
        );
        let (result, out) = rebuild_to_vec(&recipe, &case.packs, u64::MAX);
        assert_eq!(result.unwrap().diff_id, split.diff_id);
        assert_eq!(out, case.new);
    }

    #[test]
    fn only_a_checksum_spelled_as_writers_spell_it_is_left_to_the_host() {
        let tar = layer(&[("a", b"x")], 1);
        let crate_block: [u8; 512] = tar[..512].try_into().unwrap();
        let sum =
            u32::from_str_radix(std::str::from_utf8(&crate_block[148..155]).unwrap(), 8).unwrap();
        let mut go_block = crate_block;
        go_block[CHECKSUM].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        for block in [crate_block, go_block] {
            let blanked = blank_checksum(&block).unwrap();
            assert!(blanked[CHECKSUM].starts_with(b"       "));
            let mut filled = blanked;
            fill_checksum(&mut filled);
            assert_eq!(filled, block);
        }
        // Padded with spaces: the same sum, a spelling the host would not write back.
        let mut spaced = crate_block;
        spaced[CHECKSUM].copy_from_slice(format!("{sum:6o}\0 ").as_bytes());
        assert_eq!(blank_checksum(&spaced), None);
        assert_eq!(blank_checksum(&[0; 512]), None);
    }

    #[test]
    fn the_next_chunk_with_nothing_referred_to_before_is_not_kept() {
        let case = case();
        let r = recipe(10, &Digest::of(b"x"), &[NEXT, END]);
        let (result, out) = rebuild_to_vec(&r, &case.packs, u64::MAX);
        assert!(matches!(result, Err(RecipeError::NotKept)));
        assert!(out.is_empty());
    }
}
