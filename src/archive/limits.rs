//! The bounds a hostile archive meets: the settable ones in [`Limits`], the fixed ones below.

use std::ffi::OsString;

use anyhow::{bail, Result};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const DEFAULT_MAX_METADATA_ENTRY: u64 = 16 * MIB;
const DEFAULT_MAX_TOTAL_BYTES: u64 = 256 * GIB;
const DEFAULT_DISK_RESERVE: u64 = GIB;
pub(super) const METADATA_ENV: &str = "DOKKU_IMAGE_MAX_METADATA_BYTES";
pub(super) const ARCHIVE_ENV: &str = "DOKKU_IMAGE_MAX_ARCHIVE_BYTES";
pub const DISK_RESERVE_ENV: &str = "DOKKU_IMAGE_DISK_RESERVE_BYTES";
/// An engine writes what it loads twice before it is done: classic stores extract the archive
/// into `<data-root>/tmp`, then unpack each layer; the containerd store ingests the blobs into
/// its content store, then unpacks them into snapshots (docs/tags.md).
pub(super) const ENGINE_COPIES: u64 = 2;

/// PAX and GNU long-name headers are held in memory until their entry's header arrives.
pub(super) const MAX_EXTENSION_HEADER: u64 = MIB;
/// `docker image save` writes a handful of entries per layer; this only stops the set of entry
/// names from growing without bound.
pub(super) const MAX_ENTRIES: usize = 100_000;
pub(super) const MAX_PATH_LEN: usize = 4096;
/// OCI manifests, indexes and image configs are kept, to be read at the end, only up to this
/// size each and in all (a config with a long history is some tens of KiB).
pub(super) const MAX_KEPT_BLOB: u64 = 512 << 10;
pub(super) const MAX_KEPT_BLOBS_TOTAL: u64 = 8 * MIB;
/// Nested OCI indexes deeper than this are not followed.
pub(super) const MAX_INDEX_DEPTH: usize = 4;
/// `xz -9` needs 65 MiB to decode; a stream that asks for more than this is refused, so a
/// hostile header cannot make the decoder allocate gigabytes.
pub(super) const XZ_MEMORY_LIMIT: u64 = 256 * MIB;

/// Bounds on what an archive may make the reader do.
///
/// - `max_metadata_entry`: the largest metadata entry (`manifest.json`, `index.json`,
///   `repositories`, `oci-layout`) accepted, since these are held in memory until the end.
///   Default 16 MiB; environment `DOKKU_IMAGE_MAX_METADATA_BYTES`.
/// - `max_total_bytes`: the most decompressed tar data read, which bounds the work a small
///   compressed input can cause. Default 256 GiB; environment `DOKKU_IMAGE_MAX_ARCHIVE_BYTES`.
/// - `disk_free`: the free space where the engine keeps images, when known (the caller asks
///   the engine); the decompressed tar data read may take, twice over, all of it but
///   `disk_reserve`. Default reserve 1 GiB; environment `DOKKU_IMAGE_DISK_RESERVE_BYTES`.
///
/// The environment variables take a plain positive integer of bytes (the reserve may be 0);
/// unset or empty means the default. Fixed bounds also apply: extension headers up to 1 MiB, entry paths up to 4096 bytes,
/// at most 100000 entries, and OCI manifests, indexes and configs are only read when at most
/// 512 KiB each (8 MiB in all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_metadata_entry: u64,
    pub max_total_bytes: u64,
    pub disk_free: Option<u64>,
    pub disk_reserve: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_metadata_entry: DEFAULT_MAX_METADATA_ENTRY,
            max_total_bytes: DEFAULT_MAX_TOTAL_BYTES,
            disk_free: None,
            disk_reserve: DEFAULT_DISK_RESERVE,
        }
    }
}

impl Limits {
    /// The defaults, overridden by `DOKKU_IMAGE_MAX_METADATA_BYTES` and
    /// `DOKKU_IMAGE_MAX_ARCHIVE_BYTES`.
    pub fn from_env() -> Result<Limits> {
        Limits::from_lookup(|name| std::env::var_os(name))
    }

    /// Like [`Limits::from_env`], with variables looked up through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<OsString>) -> Result<Limits> {
        let defaults = Limits::default();
        Ok(Limits {
            max_metadata_entry: limit_var(METADATA_ENV, lookup(METADATA_ENV))?
                .unwrap_or(defaults.max_metadata_entry),
            max_total_bytes: limit_var(ARCHIVE_ENV, lookup(ARCHIVE_ENV))?
                .unwrap_or(defaults.max_total_bytes),
            disk_free: None,
            disk_reserve: reserve_var(DISK_RESERVE_ENV, lookup(DISK_RESERVE_ENV))?
                .unwrap_or(defaults.disk_reserve),
        })
    }

    /// The most decompressed tar data the engine has room to load, when its free space is
    /// known.
    pub(super) fn disk_room(&self) -> Option<u64> {
        self.disk_free
            .map(|free| free.saturating_sub(self.disk_reserve) / ENGINE_COPIES)
    }
}

fn limit_var(name: &str, value: Option<OsString>) -> Result<Option<u64>> {
    match whole_bytes(value) {
        Ok(None) => Ok(None),
        Ok(Some(n)) if n > 0 => Ok(Some(n)),
        Ok(Some(_)) => bail!("{name} must be a positive whole number of bytes, not \"0\""),
        Err(text) => bail!("{name} must be a positive whole number of bytes, not {text:?}"),
    }
}

fn reserve_var(name: &str, value: Option<OsString>) -> Result<Option<u64>> {
    whole_bytes(value).or_else(|text| bail!("{name} must be a whole number of bytes, not {text:?}"))
}

/// A variable's whole number of bytes; None when unset or empty, the text when it is not one.
fn whole_bytes(value: Option<OsString>) -> Result<Option<u64>, String> {
    let Some(value) = value else {
        return Ok(None);
    };
    let text = value.to_string_lossy();
    if text.is_empty() {
        return Ok(None);
    }
    match text.parse::<u64>() {
        Ok(n) if text.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(n)),
        _ => Err(text.into_owned()),
    }
}
