//! The files of an app's content folder (`docs/delta.md`, "What the host keeps"): their names,
//! the index format, the temporary files a pack is written to, and pruning.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufWriter, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use super::chunks::{Key, MAX_CHUNK};
use crate::digest::Digest;

const IDX_MAGIC: &[u8] = b"dokku-image-idx 1\n";
const RECORD: usize = 48;
const TEMP_PREFIX: &str = ".tmp-";
/// A temporary file untouched this long is a leftover of a load that died.
const STALE: Duration = Duration::from_secs(3600);
/// The longest frame a chunk of `MAX_CHUNK` bytes compresses to (zstd's bound, with room).
const MAX_FRAME: u32 = MAX_CHUNK + MAX_CHUNK / 128 + 1024;

/// One chunk in an index: its SHA-256, where its frame is in the pack, and its length.
#[derive(Debug, Clone, Copy)]
pub struct Record {
    pub sha256: [u8; 32],
    pub offset: u64,
    pub frame_len: u32,
    pub len: u32,
}

impl Record {
    pub fn key(&self) -> Key {
        Key::of(&self.sha256)
    }

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
}

/// `<hex>.pack` and `<hex>.idx` of a diff ID.
pub fn paths(dir: &Path, diff_id: &Digest) -> (PathBuf, PathBuf) {
    let hex = diff_id.hex();
    let (pack, idx) = (format!("{hex}.pack"), format!("{hex}.idx"));
    (dir.join(pack), dir.join(idx))
}

/// The two temporary files of a pack being written; removed when dropped unless renamed.
pub struct Temp {
    pub pack: PathBuf,
    pub idx: PathBuf,
}

impl Temp {
    /// New temporary names in `dir` (created if missing), and the pack's file, created.
    pub fn create(dir: &Path) -> io::Result<(Temp, File)> {
        static COUNT: AtomicU64 = AtomicU64::new(0);
        fs::create_dir_all(dir)?;
        loop {
            let nanos = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let count = COUNT.fetch_add(1, Ordering::Relaxed);
            let stem = format!("{TEMP_PREFIX}{}-{count}-{nanos}", std::process::id());
            let pack = dir.join(format!("{stem}.pack"));
            match File::options().write(true).create_new(true).open(&pack) {
                Ok(file) => {
                    let idx = dir.join(format!("{stem}.idx"));
                    return Ok((Temp { pack, idx }, file));
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.pack);
        let _ = fs::remove_file(&self.idx);
    }
}

/// Writes an index of these records, sorted, and syncs it.
pub fn write_idx(path: &Path, records: &mut [Record]) -> io::Result<()> {
    records.sort_unstable_by_key(|record| record.sha256);
    let mut idx = BufWriter::new(File::create(path)?);
    idx.write_all(IDX_MAGIC)?;
    for record in records.iter() {
        idx.write_all(&record.to_bytes())?;
    }
    idx.into_inner()
        .map_err(io::IntoInnerError::into_error)?
        .sync_all()
}

/// The records of an index; InvalidData naming it when it is not one.
pub fn read_idx(path: &Path) -> io::Result<Vec<Record>> {
    let bytes = fs::read(path)?;
    let damaged = || {
        let path = path.display();
        io::Error::new(
            ErrorKind::InvalidData,
            format!("{path} is not a pack index"),
        )
    };
    let Some((records, [])) = bytes.strip_prefix(IDX_MAGIC).map(<[u8]>::as_chunks) else {
        return Err(damaged());
    };
    let records: Vec<Record> = records.iter().map(Record::from_bytes).collect();
    let sound = |r: &Record| r.len > 0 && r.len <= MAX_CHUNK && r.frame_len <= MAX_FRAME;
    match records.iter().all(sound) {
        true => Ok(records),
        false => Err(damaged()),
    }
}

/// The diff IDs of the committed packs in a folder (those with an index), sorted.
pub fn layers(dir: &Path) -> io::Result<Vec<Digest>> {
    let mut layers: Vec<Digest> = files(dir)?
        .into_iter()
        .filter(|(_, ext)| ext == "idx")
        .map(|(digest, _)| digest)
        .collect();
    layers.sort();
    Ok(layers)
}

/// Removes the packs of diff IDs not in keep (and leftover temporary files untouched for an
/// hour); returns how many packs went.
pub fn prune(dir: &Path, keep: &HashSet<Digest>) -> io::Result<usize> {
    let gone: HashSet<Digest> = files(dir)?
        .into_iter()
        .map(|(digest, _)| digest)
        .filter(|digest| !keep.contains(digest))
        .collect();
    for diff_id in &gone {
        let (pack, idx) = paths(dir, diff_id);
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
        let modified = entry.metadata()?.modified()?;
        let stale = modified.elapsed().is_ok_and(|age| age > STALE);
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) && stale {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(gone.len())
}

/// The `<hex>.pack` and `<hex>.idx` files of a folder, as diff IDs and extensions.
fn files(dir: &Path) -> io::Result<Vec<(Digest, String)>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::pack::{pack_layer, Packs};
    use crate::delta::tests::{dir, layer, names, random};

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
    fn prune_removes_only_the_other_layers_and_stale_leftovers() {
        let content = dir();
        let a = layer(&[("a", &random(10_000, 4))], 1);
        let b = layer(&[("b", &random(10_000, 5))], 1);
        let mut diff_ids = Vec::new();
        for tar in [&a, &b] {
            let finished = pack_layer(&tar[..], content.path(), None).unwrap();
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
}
