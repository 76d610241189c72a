//! One tar header at a time, read the way docker's reader (Go's `archive/tar`) reads it, so
//! that this reader and the engine agree on every entry's name and size: PAX and GNU
//! extension headers, the ustar prefix field, header-only types, padding and checksums.

use anyhow::{anyhow, bail, Result};

use super::input::TarInput;
use super::limits::{MAX_EXTENSION_HEADER, MAX_PATH_LEN};
use crate::output::human_bytes;

pub(super) const BLOCK: usize = 512;
pub(super) const END_OF_ARCHIVE: [u8; 2 * BLOCK] = [0; 2 * BLOCK];

/// The extension headers seen since the last entry, and what they say about the next one.
#[derive(Default)]
pub(super) struct Extensions {
    /// Their raw bytes, forwarded in front of the entry's own header.
    pub(super) raw: Vec<u8>,
    path: Option<Vec<u8>>,
    size: Option<u64>,
    /// A PAX header, a GNU long name was seen.
    pax: bool,
    long_name: bool,
    /// The PAX header has `GNU.sparse.*` records.
    sparse: bool,
}

/// Whether a header of this type is an extension header for the entry that follows.
pub(super) fn is_extension(entry_type: tar::EntryType) -> bool {
    matches!(
        entry_type,
        tar::EntryType::XHeader
            | tar::EntryType::XGlobalHeader
            | tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink
    )
}

impl Extensions {
    /// Reads the data of an extension header whose header block was just read.
    pub(super) fn read(
        &mut self,
        input: &mut TarInput,
        block: &[u8; BLOCK],
        entry_type: tar::EntryType,
        size: u64,
    ) -> Result<()> {
        if size > MAX_EXTENSION_HEADER {
            bail!(
                "tar extension header is larger than the {} limit",
                human_bytes(MAX_EXTENSION_HEADER)
            );
        }
        if self.raw.len() as u64 + size > 4 * MAX_EXTENSION_HEADER {
            bail!("corrupt tar archive: too many extension headers for one entry");
        }
        // Docker's reader keeps only the last PAX header, prefers a GNU long name to a PAX
        // path whatever their order, and drops both at a global header. Rather than mirror
        // that, refuse the combinations, which docker save never writes.
        let offset = input.pos - BLOCK as u64;
        let conflict = match entry_type {
            tar::EntryType::XHeader if self.pax => Some("two PAX headers for one entry"),
            tar::EntryType::GNULongName if self.long_name => {
                Some("two GNU long names for one entry")
            }
            tar::EntryType::XGlobalHeader if self.pax || self.long_name => {
                Some("a global PAX header after an entry's extension headers")
            }
            _ => None,
        };
        if let Some(conflict) = conflict {
            bail!("corrupt tar archive: {conflict} at offset {offset}");
        }
        let start = self.raw.len();
        self.raw.extend_from_slice(block);
        let data_start = self.raw.len();
        let padded = size as usize + padding(size) as usize;
        self.raw.resize(data_start + padded, 0);
        input.read_exact(&mut self.raw[data_start..])?;
        let data = &self.raw[data_start..data_start + size as usize];
        let both_names = || {
            anyhow!("corrupt tar archive: a PAX path and a GNU long name for one entry at offset {offset}")
        };
        match entry_type {
            tar::EntryType::XHeader => {
                self.pax = true;
                for record in tar::PaxExtensions::new(data) {
                    let record = record.map_err(|_| {
                        anyhow!(
                            "corrupt tar archive: bad PAX header at offset {}",
                            input.pos - (self.raw.len() - start) as u64
                        )
                    })?;
                    match record.key_bytes() {
                        b"path" if self.long_name => return Err(both_names()),
                        b"path" => self.path = Some(record.value_bytes().to_vec()),
                        // Docker reads these as a sparse file, which may rename the entry
                        // (`GNU.sparse.name`).
                        key if key.starts_with(b"GNU.sparse.") => self.sparse = true,
                        b"size" => {
                            let size = std::str::from_utf8(record.value_bytes())
                                .ok()
                                .and_then(|s| s.parse::<u64>().ok())
                                .ok_or_else(|| anyhow!("corrupt tar archive: bad PAX size"))?;
                            self.size = Some(size);
                        }
                        _ => {}
                    }
                }
            }
            tar::EntryType::GNULongName => {
                if self.path.is_some() {
                    return Err(both_names());
                }
                self.long_name = true;
                let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
                self.path = Some(data[..end].to_vec());
            }
            // Global headers and long link names are forwarded untouched with the next entry.
            _ => {}
        }
        Ok(())
    }
}

/// An entry's header as docker reads it, with the extension headers that came before it.
pub(super) struct Entry {
    /// The normalised path.
    pub(super) name: String,
    pub(super) entry_type: tar::EntryType,
    /// Bytes of data that follow the header (before padding).
    pub(super) data_len: u64,
    /// The raw extension headers, forwarded in front of the header.
    pub(super) prefix: Vec<u8>,
}

impl Entry {
    /// The entry a (non-extension) header block at `offset` starts, with `ext`, the extension
    /// headers read since the last entry.
    pub(super) fn read(
        block: &[u8; BLOCK],
        offset: u64,
        size: u64,
        ext: Extensions,
    ) -> Result<Entry> {
        let header = tar::Header::from_byte_slice(block);
        let path = ext.path.unwrap_or_else(|| header_path(block));
        let size = ext.size.unwrap_or(size);
        // Go's archive/tar reads the old type `\0` as a directory when the name ends in a
        // slash (so without data), as a file otherwise; the tar crate always as a file.
        let entry_type = if block[156] == 0 && path.ends_with(b"/") {
            tar::EntryType::Directory
        } else {
            header.entry_type()
        };
        // Go's archive/tar refuses sizes beyond int64; below that, size plus padding cannot
        // overflow.
        if size > i64::MAX as u64 {
            bail!("corrupt tar archive: bad entry size at offset {offset}: {size} bytes");
        }
        let name = entry_name(&path)?;
        if entry_type == tar::EntryType::GNUSparse || ext.sparse {
            bail!(
                "archive entry {name} is a GNU sparse file, which docker image archives never hold"
            );
        }
        Ok(Entry {
            name,
            entry_type,
            // Go's archive/tar ignores the size of header-only types.
            data_len: if header_only(entry_type) { 0 } else { size },
            prefix: ext.raw,
        })
    }

    pub(super) fn is_regular(&self) -> bool {
        matches!(
            self.entry_type,
            tar::EntryType::Regular | tar::EntryType::Continuous
        )
    }
}

/// An entry path without `.` components, empty components or a trailing slash.
pub(super) fn normalize(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect();
    if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    }
}

/// An entry's path as docker (Go's archive/tar) reads it from the header: the name field, with
/// the prefix field in front whenever the magic is `ustar\0`, whatever the version field says
/// (the tar crate also wants version `00`); star headers, marked by a `tar\0` trailer, have a
/// shorter prefix.
pub(super) fn header_path(block: &[u8; BLOCK]) -> Vec<u8> {
    fn until_nul(field: &[u8]) -> &[u8] {
        let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
        &field[..end]
    }
    let name = until_nul(&block[..100]);
    if &block[257..263] != b"ustar\0" {
        return name.to_vec();
    }
    let prefix = if &block[508..] == b"tar\0" {
        until_nul(&block[345..476])
    } else {
        until_nul(&block[345..500])
    };
    if prefix.is_empty() {
        return name.to_vec();
    }
    [prefix, b"/", name].concat()
}

/// The normalised name of an entry, refusing paths that would escape the extraction directory.
fn entry_name(path: &[u8]) -> Result<String> {
    let path = String::from_utf8_lossy(path);
    if path.len() > MAX_PATH_LEN {
        bail!("archive entry path is longer than {MAX_PATH_LEN} bytes");
    }
    if path.is_empty() {
        bail!("corrupt tar archive: an entry has an empty path");
    }
    if path.starts_with('/') || path.split('/').any(|part| part == "..") {
        bail!("archive entry has an unsafe path: {path:?}");
    }
    Ok(normalize(&path))
}

/// The zero bytes after `size` bytes of data up to the next block.
pub(super) fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

fn header_only(entry_type: tar::EntryType) -> bool {
    matches!(
        entry_type,
        tar::EntryType::Link
            | tar::EntryType::Symlink
            | tar::EntryType::Char
            | tar::EntryType::Block
            | tar::EntryType::Directory
            | tar::EntryType::Fifo
    )
}

/// Checks a header's checksum, computed with the checksum field as spaces; some old tars summed
/// signed bytes, which Go (and so docker) also accepts.
pub(super) fn checksum_ok(block: &[u8; BLOCK]) -> bool {
    let Ok(stored) = tar::Header::from_byte_slice(block).cksum() else {
        return false;
    };
    let (mut unsigned, mut signed) = (0u32, 0i64);
    for (i, &byte) in block.iter().enumerate() {
        let byte = if (148..156).contains(&i) { b' ' } else { byte };
        unsigned += u32::from(byte);
        signed += i64::from(byte as i8);
    }
    stored == unsigned || i64::from(stored) == signed
}
