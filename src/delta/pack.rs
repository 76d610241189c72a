//! The content an app keeps (`docs/delta.md`, "What the host keeps"): per layer, a pack of its
//! distinct chunks, each one zstd frame, and an index of them sorted by SHA-256 (`store`). A pack
//! is written under a temporary name and renamed into place (index last) only when committed.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufWriter, ErrorKind, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest as _, Sha256};

use super::chunks::{self, Asked, Key, Piece, MAX_CHUNK};
use super::error::RecipeError;
use super::store::{self, Record, Temp};
pub use super::store::{paths as pack_paths, prune};
use crate::digest::Digest;

const LEVEL: i32 = 3;

/// Writes `<tmp>.pack` and `<tmp>.idx` in a folder.
pub struct PackWriter<'k> {
    dir: PathBuf,
    temp: Temp,
    pack: BufWriter<File>,
    offset: u64,
    records: Vec<Record>,
    seen: HashSet<[u8; 32]>,
    compressor: zstd::bulk::Compressor<'static>,
    /// Packs whose frames are copied for the chunks they hold, rather than compressed again.
    kept: Option<&'k Packs>,
}

impl<'k> PackWriter<'k> {
    /// Starts a pack in `dir`, created if missing, copying the frames `kept` holds.
    pub fn create(dir: &Path, kept: Option<&'k Packs>) -> io::Result<PackWriter<'k>> {
        let (temp, file) = Temp::create(dir)?;
        Ok(PackWriter {
            dir: dir.to_path_buf(),
            temp,
            pack: BufWriter::new(file),
            offset: 0,
            records: Vec::new(),
            seen: HashSet::new(),
            compressor: zstd::bulk::Compressor::new(LEVEL)?,
            kept,
        })
    }

    /// Adds a chunk as one zstd frame; a chunk already added is skipped.
    pub fn add(&mut self, data: &[u8], sha256: &[u8; 32]) -> io::Result<()> {
        if !self.seen.insert(*sha256) {
            return Ok(());
        }
        let len = u32::try_from(data.len())
            .ok()
            .filter(|&len| len <= MAX_CHUNK)
            .ok_or_else(|| io::Error::new(ErrorKind::InvalidInput, "a chunk over 64 KiB"))?;
        let frame = match self.kept.and_then(|kept| kept.frame_of(data, sha256)) {
            Some(frame) => frame,
            None => self.compressor.compress(data)?,
        };
        self.pack.write_all(&frame)?;
        self.records.push(Record {
            sha256: *sha256,
            offset: self.offset,
            frame_len: frame.len() as u32,
            len,
        });
        self.offset += frame.len() as u64;
        Ok(())
    }

    /// Writes the sorted index beside the pack, both still under their temporary names.
    pub fn finish(mut self, diff_id: &Digest) -> io::Result<FinishedPack> {
        let pack = self
            .pack
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?;
        pack.sync_all()?;
        store::write_idx(&self.temp.idx, &mut self.records)?;
        Ok(FinishedPack {
            dir: self.dir,
            temp: self.temp,
            diff_id: diff_id.clone(),
        })
    }
}

/// A written pack under its temporary names: dropped, it is removed; committed, it is kept.
pub struct FinishedPack {
    dir: PathBuf,
    temp: Temp,
    diff_id: Digest,
}

impl FinishedPack {
    pub fn diff_id(&self) -> &Digest {
        &self.diff_id
    }

    /// Renames the files to `<hex>.pack` and `<hex>.idx`, the index last: a pack is kept once
    /// its index is in place.
    pub fn commit(self) -> io::Result<()> {
        let (pack, idx) = store::paths(&self.dir, &self.diff_id);
        fs::rename(&self.temp.pack, &pack)?;
        fs::rename(&self.temp.idx, idx)
    }
}

/// Splits a layer tar and packs all its chunks, copying the frames of those `kept` holds; the
/// diff ID is the layer's own SHA-256.
pub fn pack_layer<R: Read>(layer: R, dir: &Path, kept: Option<&Packs>) -> io::Result<FinishedPack> {
    let mut writer = PackWriter::create(dir, kept)?;
    let split = chunks::split(layer, |piece| match piece {
        Piece::Chunk { data, sha256 } => writer.add(data, &sha256),
        Piece::Raw(_) => Ok(()),
    })?;
    writer.finish(&split.diff_id)
}

/// A kept chunk: its record and which pack holds it.
struct Entry {
    record: Record,
    pack: usize,
}

impl Entry {
    fn place(&self) -> Place {
        Place {
            pack: self.pack,
            offset: self.record.offset,
        }
    }

    fn after(&self) -> Place {
        Place {
            pack: self.pack,
            offset: self.record.offset + u64::from(self.record.frame_len),
        }
    }
}

/// What an app keeps: every committed pack in a folder (a missing folder keeps nothing).
pub struct Packs {
    dir: PathBuf,
    layers: Vec<Digest>,
    /// Every pack's records, sorted by SHA-256 (so by key too).
    entries: Vec<Entry>,
    /// Each entry's index in `entries` by its place: its pack and its frame's offset there.
    by_place: HashMap<Place, usize>,
    reader: Mutex<FrameReader>,
}

/// Where a frame starts: its pack, and its offset there. The place right after a chunk's frame
/// is where the chunk that follows it in its layer's pack starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Place {
    pack: usize,
    offset: u64,
}

impl Packs {
    pub fn open(dir: &Path) -> io::Result<Packs> {
        let (mut layers, mut entries) = (Vec::new(), Vec::new());
        for diff_id in store::layers(dir)? {
            let records = match store::read_idx(&store::paths(dir, &diff_id).1) {
                Ok(records) => records,
                // Pruned since the folder was listed.
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let pack = layers.len();
            entries.extend(records.into_iter().map(|record| Entry { record, pack }));
            layers.push(diff_id);
        }
        entries.sort_unstable_by_key(|entry| entry.record.sha256);
        let by_place = entries
            .iter()
            .enumerate()
            .map(|(at, entry)| (entry.place(), at))
            .collect();
        Ok(Packs {
            dir: dir.to_path_buf(),
            layers,
            entries,
            by_place,
            reader: Mutex::new(FrameReader {
                last_pack: None,
                decompressor: None,
            }),
        })
    }

    pub fn has(&self, key: &Key) -> bool {
        !self.of_key(key).is_empty()
    }

    /// The chunk of that key, unchecked, and the place right after its frame; errors when not
    /// kept, when len is not its length, or when no frame of that key decompresses to it (a
    /// damaged pack). Of two kept chunks of one key and length (a 64-bit key's collision), the
    /// first is read.
    pub fn read(&self, key: &Key, len: u64) -> Result<(Unchecked, Place), RecipeError> {
        let found = self.of_key(key);
        if found.is_empty() {
            return Err(RecipeError::NotKept);
        }
        let mut same_len = found
            .iter()
            .filter(|e| u64::from(e.record.len) == len)
            .peekable();
        if same_len.peek().is_none() {
            return Err(RecipeError::WrongLength);
        }
        for entry in same_len {
            if let Some(read) = self.frame(entry)? {
                return Ok((read.unchecked(entry), entry.after()));
            }
        }
        Err(RecipeError::Damaged)
    }

    /// The chunk whose frame starts at `place`, unchecked, and the place after it.
    pub fn read_at(&self, place: Place) -> Result<(Unchecked, Place), RecipeError> {
        let entry = self
            .by_place
            .get(&place)
            .map(|&at| &self.entries[at])
            .ok_or(RecipeError::NotKept)?;
        let read = self.frame(entry)?.ok_or(RecipeError::Damaged)?;
        Ok((read.unchecked(entry), entry.after()))
    }

    /// The query's second answer: bit i set when keys[i] and keys[i - 1] are kept and the
    /// chunk [`Packs::read`] gives for keys[i - 1] is followed, in its pack, by one of keys[i]:
    /// the recipe then says "the next chunk" for it, not its key.
    pub fn follows(&self, keys: &[Asked]) -> Vec<u8> {
        bitmap(keys.len(), |i| {
            i > 0
                && self
                    .of_asked(&keys[i - 1])
                    .first()
                    .and_then(|entry| self.by_place.get(&entry.after()))
                    .is_some_and(|&at| self.entries[at].record.key().asked() == keys[i])
        })
    }

    /// The query's answer: bit i (most significant bit of byte i/8 first) set when keys[i] is kept.
    pub fn bitmap(&self, keys: &[Asked]) -> Vec<u8> {
        bitmap(keys.len(), |i| !self.of_asked(&keys[i]).is_empty())
    }

    /// The diff IDs of the packs.
    pub fn layers(&self) -> Vec<Digest> {
        self.layers.clone()
    }

    /// The entries whose key starts with `asked`, in the same order as [`Packs::of_key`]'s.
    fn of_asked(&self, asked: &Asked) -> &[Entry] {
        let start = self
            .entries
            .partition_point(|e| e.record.key().asked() < *asked);
        let end =
            start + self.entries[start..].partition_point(|e| e.record.key().asked() == *asked);
        &self.entries[start..end]
    }

    fn of_key(&self, key: &Key) -> &[Entry] {
        let start = self.entries.partition_point(|e| e.record.key() < *key);
        let end = start + self.entries[start..].partition_point(|e| e.record.key() == *key);
        &self.entries[start..end]
    }

    /// The frame of a kept chunk of these bytes and SHA-256, when one decompresses to them.
    fn frame_of(&self, data: &[u8], sha256: &[u8; 32]) -> Option<Vec<u8>> {
        self.of_key(&Key::of(sha256))
            .iter()
            .filter(|entry| {
                entry.record.sha256 == *sha256 && entry.record.len as usize == data.len()
            })
            .find_map(|entry| {
                let read = self.frame(entry).ok()??;
                (read.chunk == data).then_some(read.frame)
            })
    }

    /// The entry's frame and the bytes it decompresses to, or None when the frame is missing
    /// or does not decompress to the recorded length.
    fn frame(&self, entry: &Entry) -> Result<Option<ReadFrame>, RecipeError> {
        let Record {
            offset,
            frame_len,
            len,
            ..
        } = entry.record;
        let mut reader = self
            .reader
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let FrameReader {
            last_pack,
            decompressor,
        } = &mut *reader;
        if last_pack
            .as_ref()
            .is_none_or(|(pack, _)| *pack != entry.pack)
        {
            let path = store::paths(&self.dir, &self.layers[entry.pack]).0;
            match File::open(path) {
                Ok(file) => *last_pack = Some((entry.pack, file)),
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
        let Some((_, file)) = last_pack.as_ref() else {
            return Ok(None);
        };
        let mut frame = vec![0; frame_len as usize];
        match file.read_exact_at(&mut frame, offset) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let decompressor = match decompressor {
            Some(decompressor) => decompressor,
            None => decompressor.insert(zstd::bulk::Decompressor::new()?),
        };
        Ok(decompressor
            .decompress(&frame, len as usize)
            .ok()
            .filter(|chunk| chunk.len() == len as usize)
            .map(|chunk| ReadFrame { frame, chunk }))
    }
}

/// A frame as the pack holds it, and the chunk it decompresses to.
struct ReadFrame {
    frame: Vec<u8>,
    chunk: Vec<u8>,
}

impl ReadFrame {
    fn unchecked(self, entry: &Entry) -> Unchecked {
        Unchecked {
            bytes: self.chunk,
            sha256: entry.record.sha256,
        }
    }
}

/// A kept chunk as its frame decompressed, and the SHA-256 its pack records for it: the bytes
/// are the chunk only once they hash to it ([`intact`]). Reading and checking are apart so that
/// a rebuild checks on another thread than the one that reads.
#[derive(Debug)]
pub struct Unchecked {
    pub bytes: Vec<u8>,
    pub sha256: [u8; 32],
}

/// Whether a kept chunk's bytes hash to the SHA-256 its pack records.
pub fn intact(bytes: &[u8], sha256: &[u8; 32]) -> bool {
    Sha256::digest(bytes)[..] == sha256[..]
}

/// What reading frames reuses from one chunk to the next: the pack file read last (chunks come
/// mostly from one pack in a row) and a zstd context (making one per frame costs more than
/// decompressing a small chunk).
struct FrameReader {
    last_pack: Option<(usize, File)>,
    decompressor: Option<zstd::bulk::Decompressor<'static>>,
}

/// A query's answer for `count` keys: bit i (most significant bit of byte i/8 first) set when
/// `set(i)`.
pub fn bitmap(count: usize, mut set: impl FnMut(usize) -> bool) -> Vec<u8> {
    let mut bitmap = vec![0; count.div_ceil(8)];
    for i in (0..count).filter(|&i| set(i)) {
        bitmap[i / 8] |= 0x80 >> (i % 8);
    }
    bitmap
}

/// Reads the bitmap of a query's answer: whether bit i is set.
pub fn is_set(bitmap: &[u8], i: usize) -> bool {
    bitmap
        .get(i / 8)
        .is_some_and(|byte| byte & (0x80 >> (i % 8)) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::chunks::Split;
    use crate::delta::tests::{dir, layer, names, random};

    /// A layer's chunks as (key, bytes), in order, and its Split.
    fn chunks_of(tar: &[u8]) -> (Vec<(Key, Vec<u8>)>, Split) {
        let mut found = Vec::new();
        let split = chunks::split(tar, |piece| {
            if let Piece::Chunk { data, sha256 } = piece {
                found.push((Key::of(&sha256), data.to_vec()));
            }
            Ok(())
        })
        .unwrap();
        (found, split)
    }

    /// The kept chunk of that key and length, read and checked.
    fn read_checked(packs: &Packs, key: &Key, len: usize) -> Vec<u8> {
        packs.read(key, len as u64).and_then(checked).unwrap()
    }

    /// The chunk read, or Damaged when its bytes are not those its pack recorded (as the
    /// rebuild's writer checks them).
    fn checked((chunk, _): (Unchecked, Place)) -> Result<Vec<u8>, RecipeError> {
        if intact(&chunk.bytes, &chunk.sha256) {
            Ok(chunk.bytes)
        } else {
            Err(RecipeError::Damaged)
        }
    }
    #[test]
    fn a_committed_pack_reads_back_every_chunk() {
        let data = random(300_000, 1);
        let tar = layer(&[("a", &data), ("b", &random(50_000, 2)), ("c", &data)], 1);
        let packs_dir = dir();
        let content = packs_dir.path().join("app/content");
        let finished = pack_layer(&tar[..], &content, None).unwrap();
        let (chunks, split) = chunks_of(&tar);
        assert_eq!(finished.diff_id(), &split.diff_id);
        // Not kept before the commit.
        assert!(Packs::open(&content).unwrap().layers().is_empty());
        finished.commit().unwrap();
        let hex = split.diff_id.hex();
        assert_eq!(
            names(&content),
            [format!("{hex}.idx"), format!("{hex}.pack")]
        );
        // Each distinct chunk once: the second copy of `data` adds nothing.
        let idx_len = fs::metadata(content.join(format!("{hex}.idx")))
            .unwrap()
            .len();
        let distinct: HashSet<&Key> = chunks.iter().map(|(key, _)| key).collect();
        assert!(distinct.len() < chunks.len());
        // The magic line, then 48 bytes a chunk (docs/delta.md).
        assert_eq!(
            idx_len as usize,
            "dokku-image-idx 1\n".len() + distinct.len() * 48
        );
        let packs = Packs::open(&content).unwrap();
        assert_eq!(packs.layers(), [split.diff_id]);
        for (key, data) in &chunks {
            assert!(packs.has(key));
            assert_eq!(&read_checked(&packs, key, data.len()), data);
        }
        let (key, data) = &chunks[0];
        let other = Key([0xee; 8]);
        assert!(!packs.has(&other));
        assert!(matches!(packs.read(&other, 10), Err(RecipeError::NotKept)));
        let wrong = packs.read(key, data.len() as u64 + 1);
        assert!(matches!(wrong, Err(RecipeError::WrongLength)));
    }

    #[test]
    fn a_damaged_pack_is_found_out() {
        let tar = layer(&[("a", &random(200_000, 3))], 1);
        let content = dir();
        pack_layer(&tar[..], content.path(), None)
            .unwrap()
            .commit()
            .unwrap();
        let (chunks, split) = chunks_of(&tar);
        let pack = content.path().join(format!("{}.pack", split.diff_id.hex()));
        let mut bytes = fs::read(&pack).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        fs::write(&pack, &bytes).unwrap();
        let packs = Packs::open(content.path()).unwrap();
        let mut damaged = 0;
        for (key, data) in &chunks {
            match packs.read(key, data.len() as u64).and_then(checked) {
                Ok(read) => assert_eq!(&read, data),
                Err(RecipeError::Damaged) => damaged += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(damaged, 1);
        // A pack cut short, or gone, is damaged too.
        fs::write(&pack, &bytes[..10]).unwrap();
        let (key, data) = chunks.last().unwrap();
        let packs = Packs::open(content.path()).unwrap();
        assert!(matches!(
            packs.read(key, data.len() as u64),
            Err(RecipeError::Damaged)
        ));
        fs::remove_file(&pack).unwrap();
        assert!(matches!(
            packs.read(key, data.len() as u64),
            Err(RecipeError::Damaged)
        ));
    }

    #[test]
    fn a_pack_copies_the_frames_of_kept_chunks_and_compresses_the_rest() {
        let (same, changed) = (random(200_000, 11), random(100_000, 12));
        let content = dir();
        let old = layer(&[("same", &same), ("old", &changed)], 1);
        pack_layer(&old[..], content.path(), None)
            .unwrap()
            .commit()
            .unwrap();
        let new = layer(&[("same", &same), ("new", &random(100_000, 13))], 2);
        let kept = Packs::open(content.path()).unwrap();
        // A kept frame damaged on disk is compressed anew, not copied.
        let (old_chunks, old_split) = chunks_of(&old);
        let damaged = kept.of_key(&old_chunks[1].0)[0].record;
        let old_pack = store::paths(content.path(), &old_split.diff_id).0;
        let mut bytes = fs::read(&old_pack).unwrap();
        bytes[damaged.offset as usize + damaged.frame_len as usize - 1] ^= 0xff;
        fs::write(&old_pack, bytes).unwrap();
        let kept = Packs::open(content.path()).unwrap();
        let other = dir();
        let finished = pack_layer(&new[..], other.path(), Some(&kept)).unwrap();
        finished.commit().unwrap();
        let packs = Packs::open(other.path()).unwrap();
        let frame_bytes = |packs: &Packs, key: &Key| {
            let entry = &packs.of_key(key)[0];
            packs.frame(entry).unwrap().unwrap().frame
        };
        let (new_chunks, _) = chunks_of(&new);
        let (mut copied, mut fresh) = (0, 0);
        for (key, data) in &new_chunks {
            assert_eq!(&read_checked(&packs, key, data.len()), data);
            let is_kept = kept.has(key) && *key != old_chunks[1].0;
            if is_kept {
                assert_eq!(frame_bytes(&packs, key), frame_bytes(&kept, key));
                copied += 1;
            } else {
                fresh += 1;
            }
        }
        assert!(copied >= 2 && fresh >= 2, "{copied} copied, {fresh} fresh");
        // The damaged chunk is in the new pack, whole and readable.
        assert_eq!(
            read_checked(&packs, &old_chunks[1].0, old_chunks[1].1.len()),
            old_chunks[1].1
        );
    }

    #[test]
    fn an_unfinished_or_uncommitted_pack_leaves_nothing() {
        let content = dir();
        let mut writer = PackWriter::create(content.path(), None).unwrap();
        writer
            .add(b"chunk", &Sha256::digest(b"chunk").into())
            .unwrap();
        assert_eq!(names(content.path()).len(), 1);
        drop(writer);
        assert!(names(content.path()).is_empty());
        let tar = layer(&[("a", b"data")], 1);
        let finished = pack_layer(&tar[..], content.path(), None).unwrap();
        assert_eq!(names(content.path()).len(), 2);
        drop(finished);
        assert!(names(content.path()).is_empty());
        let missing = content.path().join("missing");
        let packs = Packs::open(&missing).unwrap();
        assert!(packs.layers().is_empty() && !packs.has(&Key([0; 8])));
        assert_eq!(prune(&missing, &HashSet::new()).unwrap(), 0);
    }

    #[test]
    fn the_bitmap_sets_the_bits_of_kept_keys() {
        let tar = layer(&[("a", &random(100_000, 6))], 1);
        let content = dir();
        pack_layer(&tar[..], content.path(), None)
            .unwrap()
            .commit()
            .unwrap();
        let (chunks, _) = chunks_of(&tar);
        let packs = Packs::open(content.path()).unwrap();
        let (kept, other) = (chunks[0].0, Key([0; 8]));
        let keys = [
            kept, other, kept, other, other, other, other, other, other, kept,
        ];
        let asked: Vec<Asked> = keys.iter().map(Key::asked).collect();
        let bitmap = packs.bitmap(&asked);
        assert_eq!(bitmap, [0b1010_0000, 0b0100_0000]);
        let set: Vec<usize> = (0..keys.len()).filter(|&i| is_set(&bitmap, i)).collect();
        assert_eq!(set, [0, 2, 9]);
        assert!(!is_set(&bitmap, 16));
        assert!(packs.bitmap(&[]).is_empty());
    }

    #[test]
    fn a_key_follows_the_one_before_when_its_chunk_comes_next_in_the_pack() {
        let tar = layer(&[("a", &random(100_000, 7)), ("b", &random(5_000, 8))], 1);
        let content = dir();
        pack_layer(&tar[..], content.path(), None)
            .unwrap()
            .commit()
            .unwrap();
        let packs = Packs::open(content.path()).unwrap();
        let (chunks, _) = chunks_of(&tar);
        let keys: Vec<Asked> = chunks.iter().map(|(key, _)| key.asked()).collect();
        assert!(keys.len() >= 3);
        let follows = packs.follows(&keys);
        assert!(!is_set(&follows, 0));
        assert!((1..keys.len()).all(|i| is_set(&follows, i)));
        // Out of the pack's order, or after a key it does not keep: no run.
        let shuffled = [keys[1], keys[0], Key([0; 8]).asked(), keys[2]];
        assert_eq!(packs.follows(&shuffled), [0]);
    }
}
