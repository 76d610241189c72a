//! The content an app keeps (`docs/delta.md`, "What the host keeps"): per layer, a pack of its
//! distinct chunks, each one zstd frame, and an index of them sorted by SHA-256. A pack is
//! written under a temporary name and renamed into place (index last) only when committed.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufWriter, ErrorKind, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use sha2::{Digest as _, Sha256};

use super::chunks::{self, Key, Piece, MAX_CHUNK};
use super::error::RecipeError;
use crate::digest::Digest;

const IDX_MAGIC: &[u8] = b"dokku-image-idx 1\n";
const RECORD: usize = 48;
const LEVEL: i32 = 3;
const TEMP_PREFIX: &str = ".tmp-";
/// A temporary file untouched this long is a leftover of a load that died.
const STALE: Duration = Duration::from_secs(3600);
/// The longest frame a chunk of `MAX_CHUNK` bytes compresses to (zstd's bound, with room).
const MAX_FRAME: u32 = MAX_CHUNK + MAX_CHUNK / 128 + 1024;

/// One chunk in an index: its SHA-256, where its frame is in the pack, and its length.
#[derive(Debug, Clone, Copy)]
struct Record {
    sha256: [u8; 32],
    offset: u64,
    frame_len: u32,
    len: u32,
}

impl Record {
    fn to_bytes(self) -> [u8; RECORD] {
        let mut bytes = [0; RECORD];
        bytes[..32].copy_from_slice(&self.sha256);
        bytes[32..40].copy_from_slice(&self.offset.to_be_bytes());
        bytes[40..44].copy_from_slice(&self.frame_len.to_be_bytes());
        bytes[44..].copy_from_slice(&self.len.to_be_bytes());
        bytes
    }

    fn from_bytes(bytes: &[u8; RECORD]) -> Record {
        Record {
            sha256: array(&bytes[..32]),
            offset: u64::from_be_bytes(array(&bytes[32..40])),
            frame_len: u32::from_be_bytes(array(&bytes[40..44])),
            len: u32::from_be_bytes(array(&bytes[44..])),
        }
    }

    fn key(&self) -> Key {
        Key::of(&self.sha256)
    }
}

/// The two temporary files of a pack being written; removed when dropped unless renamed.
struct Temp {
    pack: PathBuf,
    idx: PathBuf,
}

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.pack);
        let _ = fs::remove_file(&self.idx);
    }
}

/// Writes `<tmp>.pack` and `<tmp>.idx` in a folder.
pub struct PackWriter {
    dir: PathBuf,
    temp: Temp,
    pack: BufWriter<File>,
    offset: u64,
    records: Vec<Record>,
    seen: HashSet<[u8; 32]>,
    compressor: zstd::bulk::Compressor<'static>,
}

impl PackWriter {
    /// Starts a pack in `dir`, created if missing.
    pub fn create(dir: &Path) -> io::Result<PackWriter> {
        static COUNT: AtomicU64 = AtomicU64::new(0);
        fs::create_dir_all(dir)?;
        let (temp, file) = loop {
            let nanos = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let count = COUNT.fetch_add(1, Ordering::Relaxed);
            let stem = format!("{TEMP_PREFIX}{}-{count}-{nanos}", std::process::id());
            let pack = dir.join(format!("{stem}.pack"));
            match File::options().write(true).create_new(true).open(&pack) {
                Ok(file) => {
                    let idx = dir.join(format!("{stem}.idx"));
                    break (Temp { pack, idx }, file);
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        };
        Ok(PackWriter {
            dir: dir.to_path_buf(),
            temp,
            pack: BufWriter::new(file),
            offset: 0,
            records: Vec::new(),
            seen: HashSet::new(),
            compressor: zstd::bulk::Compressor::new(LEVEL)?,
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
        let frame = self.compressor.compress(data)?;
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
        self.records.sort_unstable_by_key(|record| record.sha256);
        let mut idx = BufWriter::new(File::create(&self.temp.idx)?);
        idx.write_all(IDX_MAGIC)?;
        for record in &self.records {
            idx.write_all(&record.to_bytes())?;
        }
        idx.into_inner()
            .map_err(io::IntoInnerError::into_error)?
            .sync_all()?;
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
        let (pack, idx) = pack_paths(&self.dir, &self.diff_id);
        fs::rename(&self.temp.pack, &pack)?;
        fs::rename(&self.temp.idx, idx)
    }
}

/// Splits a layer tar and packs all its chunks; the diff ID is the layer's own SHA-256.
pub fn pack_layer<R: Read>(layer: R, dir: &Path) -> io::Result<FinishedPack> {
    let mut writer = PackWriter::create(dir)?;
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

/// What an app keeps: every committed pack in a folder (a missing folder keeps nothing).
pub struct Packs {
    dir: PathBuf,
    layers: Vec<Digest>,
    /// Every pack's records, sorted by SHA-256 (so by key too).
    entries: Vec<Entry>,
    /// The pack file read last, as chunks come mostly from one pack in a row.
    open: Mutex<Option<(usize, File)>>,
}

impl Packs {
    pub fn open(dir: &Path) -> io::Result<Packs> {
        let mut layers: Vec<Digest> = digests_in(dir)?
            .into_iter()
            .filter(|(_, ext)| ext == "idx")
            .map(|(digest, _)| digest)
            .collect();
        layers.sort();
        let mut entries = Vec::new();
        for (pack, diff_id) in layers.iter().enumerate() {
            let path = pack_paths(dir, diff_id).1;
            let bytes = fs::read(&path)?;
            let records = match bytes.strip_prefix(IDX_MAGIC).map(<[u8]>::as_chunks) {
                Some((records, [])) => records,
                _ => return Err(damaged_idx(&path)),
            };
            for record in records.iter().map(Record::from_bytes) {
                if record.len == 0 || record.len > MAX_CHUNK || record.frame_len > MAX_FRAME {
                    return Err(damaged_idx(&path));
                }
                entries.push(Entry { record, pack });
            }
        }
        entries.sort_unstable_by_key(|entry| entry.record.sha256);
        Ok(Packs {
            dir: dir.to_path_buf(),
            layers,
            entries,
            open: Mutex::new(None),
        })
    }

    pub fn has(&self, key: &Key) -> bool {
        !self.of_key(key).is_empty()
    }

    /// The chunk of that key; errors when not kept, when len is not its length, or when its
    /// bytes do not hash to the recorded SHA-256 (a damaged pack).
    pub fn read(&self, key: &Key, len: u64) -> Result<Vec<u8>, RecipeError> {
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
            if let Some(chunk) = self.chunk(entry)? {
                return Ok(chunk);
            }
        }
        Err(RecipeError::Damaged)
    }

    /// The query's answer: bit i (most significant bit of byte i/8 first) set when keys[i] is kept.
    pub fn bitmap(&self, keys: &[Key]) -> Vec<u8> {
        let mut bitmap = vec![0; keys.len().div_ceil(8)];
        for (i, key) in keys.iter().enumerate() {
            if self.has(key) {
                bitmap[i / 8] |= 0x80 >> (i % 8);
            }
        }
        bitmap
    }

    /// The diff IDs of the packs.
    pub fn layers(&self) -> Vec<Digest> {
        self.layers.clone()
    }

    fn of_key(&self, key: &Key) -> &[Entry] {
        let start = self.entries.partition_point(|e| e.record.key() < *key);
        let end = start + self.entries[start..].partition_point(|e| e.record.key() == *key);
        &self.entries[start..end]
    }

    /// The entry's chunk, or None when its frame is missing, unreadable or not its bytes.
    fn chunk(&self, entry: &Entry) -> Result<Option<Vec<u8>>, RecipeError> {
        let Record {
            sha256,
            offset,
            frame_len,
            len,
        } = entry.record;
        let mut frame = vec![0; frame_len as usize];
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if open.as_ref().is_none_or(|(pack, _)| *pack != entry.pack) {
            let path = pack_paths(&self.dir, &self.layers[entry.pack]).0;
            match File::open(path) {
                Ok(file) => *open = Some((entry.pack, file)),
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
        let Some((_, file)) = open.as_ref() else {
            return Ok(None);
        };
        match file.read_exact_at(&mut frame, offset) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        Ok(zstd::bulk::decompress(&frame, len as usize)
            .ok()
            .filter(|chunk| chunk.len() == len as usize && Sha256::digest(chunk)[..] == sha256))
    }
}

/// Reads the bitmap of a query's answer: whether bit i is set.
pub fn is_set(bitmap: &[u8], i: usize) -> bool {
    bitmap
        .get(i / 8)
        .is_some_and(|byte| byte & (0x80 >> (i % 8)) != 0)
}

/// Removes the packs of diff IDs not in keep (and leftover temporary files untouched for an
/// hour); returns how many packs went.
pub fn prune(dir: &Path, keep: &HashSet<Digest>) -> io::Result<usize> {
    let gone: HashSet<Digest> = digests_in(dir)?
        .into_iter()
        .map(|(digest, _)| digest)
        .filter(|digest| !keep.contains(digest))
        .collect();
    for diff_id in &gone {
        let (pack, idx) = pack_paths(dir, diff_id);
        // The index first: a pack without one is never read.
        for path in [idx, pack] {
            match fs::remove_file(path) {
                Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    for entry in read_dir(dir)? {
        let entry = entry?;
        let stale = entry
            .metadata()?
            .modified()?
            .elapsed()
            .is_ok_and(|age| age > STALE);
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) && stale {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(gone.len())
}

pub fn pack_paths(dir: &Path, diff_id: &Digest) -> (PathBuf, PathBuf) {
    let hex = diff_id.hex();
    (
        dir.join(format!("{hex}.pack")),
        dir.join(format!("{hex}.idx")),
    )
}

/// The `<hex>.pack` and `<hex>.idx` files of a folder, as diff IDs and extensions.
fn digests_in(dir: &Path) -> io::Result<Vec<(Digest, String)>> {
    let mut found = Vec::new();
    for entry in read_dir(dir)? {
        let name = entry?.file_name();
        let Some((stem, ext)) = name.to_str().and_then(|name| name.split_once('.')) else {
            continue;
        };
        if let (Some(digest), "pack" | "idx") = (Digest::from_hex(stem), ext) {
            found.push((digest, ext.to_string()));
        }
    }
    Ok(found)
}

/// A folder's entries; none for a missing folder.
fn read_dir(dir: &Path) -> io::Result<Vec<io::Result<fs::DirEntry>>> {
    match fs::read_dir(dir) {
        Ok(entries) => Ok(entries.collect()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// The bytes of a slice of exactly N.
fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut array = [0; N];
    array.copy_from_slice(bytes);
    array
}

fn damaged_idx(path: &Path) -> io::Error {
    let path = path.display();
    io::Error::new(
        ErrorKind::InvalidData,
        format!("{path} is not a pack index"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::chunks::Split;
    use crate::delta::tests::{dir, layer, random};

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

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_committed_pack_reads_back_every_chunk() {
        let data = random(300_000, 1);
        let tar = layer(&[("a", &data), ("b", &random(50_000, 2)), ("c", &data)], 1);
        let packs_dir = dir();
        let content = packs_dir.path().join("app/content");
        let finished = pack_layer(&tar[..], &content).unwrap();
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
        assert_eq!(idx_len as usize, IDX_MAGIC.len() + distinct.len() * RECORD);
        let packs = Packs::open(&content).unwrap();
        assert_eq!(packs.layers(), [split.diff_id]);
        for (key, data) in &chunks {
            assert!(packs.has(key));
            assert_eq!(&packs.read(key, data.len() as u64).unwrap(), data);
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
        pack_layer(&tar[..], content.path())
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
            match packs.read(key, data.len() as u64) {
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
    fn a_damaged_index_is_an_error_naming_it() {
        let content = dir();
        let idx = content.path().join(format!("{}.idx", "ab".repeat(32)));
        for bytes in [&b"dokku-image-idx 2\n"[..], &[IDX_MAGIC, &[0; 47]].concat()] {
            fs::write(&idx, bytes).unwrap();
            let e = Packs::open(content.path()).err().unwrap();
            assert_eq!(e.kind(), ErrorKind::InvalidData);
            assert!(e.to_string().contains("is not a pack index"), "{e}");
        }
    }

    #[test]
    fn an_unfinished_or_uncommitted_pack_leaves_nothing() {
        let content = dir();
        let mut writer = PackWriter::create(content.path()).unwrap();
        writer
            .add(b"chunk", &Sha256::digest(b"chunk").into())
            .unwrap();
        assert_eq!(names(content.path()).len(), 1);
        drop(writer);
        assert!(names(content.path()).is_empty());
        let tar = layer(&[("a", b"data")], 1);
        let finished = pack_layer(&tar[..], content.path()).unwrap();
        assert_eq!(names(content.path()).len(), 2);
        drop(finished);
        assert!(names(content.path()).is_empty());
        let missing = content.path().join("missing");
        let packs = Packs::open(&missing).unwrap();
        assert!(packs.layers().is_empty() && !packs.has(&Key([0; 8])));
        assert_eq!(prune(&missing, &HashSet::new()).unwrap(), 0);
    }

    #[test]
    fn prune_removes_only_the_other_layers_and_stale_leftovers() {
        let content = dir();
        let a = layer(&[("a", &random(10_000, 4))], 1);
        let b = layer(&[("b", &random(10_000, 5))], 1);
        let mut diff_ids = Vec::new();
        for tar in [&a, &b] {
            let finished = pack_layer(&tar[..], content.path()).unwrap();
            diff_ids.push(finished.diff_id().clone());
            finished.commit().unwrap();
        }
        let stale = content.path().join(".tmp-1-2-3.pack");
        let fresh = content.path().join(".tmp-4-5-6.pack");
        fs::write(&fresh, b"").unwrap();
        let old = SystemTime::now() - STALE * 2;
        File::create(&stale).unwrap().set_modified(old).unwrap();
        let keep = HashSet::from([diff_ids[0].clone()]);
        assert_eq!(prune(content.path(), &keep).unwrap(), 1);
        let hex = diff_ids[0].hex();
        let left = [
            ".tmp-4-5-6.pack".to_string(),
            format!("{hex}.idx"),
            format!("{hex}.pack"),
        ];
        assert_eq!(names(content.path()), left);
        assert_eq!(
            Packs::open(content.path()).unwrap().layers(),
            [diff_ids[0].clone()]
        );
        assert_eq!(prune(content.path(), &keep).unwrap(), 0);
    }

    #[test]
    fn the_bitmap_sets_the_bits_of_kept_keys() {
        let tar = layer(&[("a", &random(100_000, 6))], 1);
        let content = dir();
        pack_layer(&tar[..], content.path())
            .unwrap()
            .commit()
            .unwrap();
        let (chunks, _) = chunks_of(&tar);
        let packs = Packs::open(content.path()).unwrap();
        let (kept, other) = (chunks[0].0, Key([0; 8]));
        let keys = [
            kept, other, kept, other, other, other, other, other, other, kept,
        ];
        let bitmap = packs.bitmap(&keys);
        assert_eq!(bitmap, [0b1010_0000, 0b0100_0000]);
        let set: Vec<usize> = (0..keys.len()).filter(|&i| is_set(&bitmap, i)).collect();
        assert_eq!(set, [0, 2, 9]);
        assert!(!is_set(&bitmap, 16));
        assert!(packs.bitmap(&[]).is_empty());
    }
}
