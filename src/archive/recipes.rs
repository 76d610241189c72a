//! What the walk does with layers besides forwarding them (docs/delta.md): an entry
//! `NAME.recipe` is rebuilt into the layer `NAME` through the caller's [`Content`], checked
//! before the engine sees a byte of it, and layer-sized entries are copied to the caller's
//! keeper as they pass, so that later recipes may refer to their content (a rebuilt layer's
//! content the caller keeps from its spool).

use std::fs::File;
use std::io::{self, Read, Write};

use super::input::TarInput;
use crate::digest::Digest;

/// Entries at least this large that name a layer are offered to [`Content::keeper`]; smaller
/// layers are not worth a recipe.
pub(super) const KEEP_THRESHOLD: u64 = 64 * 1024;

/// A layer rebuilt from its recipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuiltLayer {
    /// The layer entry's name (the recipe's, without its suffix).
    pub name: String,
    /// The SHA-256 of the rebuilt bytes, which the recipe declared and the rebuild checked.
    pub diff_id: Digest,
}

/// The host's side of recipes and kept content, which the archive reader knows nothing of.
pub trait Content {
    /// Rebuilds the layer a recipe describes into `spool`, writing at most `max_size` bytes;
    /// returns its size and digest, or why the recipe cannot be used. A caller that keeps
    /// content keeps the rebuilt layer's from the spool, which the walk then forwards.
    fn rebuild(
        &mut self,
        recipe: &mut dyn Read,
        spool: &mut File,
        max_size: u64,
    ) -> Result<(u64, Digest), String>;

    /// Where the data of a layer entry is copied as it passes, when its content is kept.
    fn keeper(&mut self) -> Option<Box<dyn Write>>;
}

/// Content for a reader that keeps nothing and rebuilds nothing.
pub struct NoContent;

impl Content for NoContent {
    fn rebuild(&mut self, _: &mut dyn Read, _: &mut File, _: u64) -> Result<(u64, Digest), String> {
        Err("this host keeps no content to rebuild it from".to_string())
    }

    fn keeper(&mut self) -> Option<Box<dyn Write>> {
        None
    }
}

/// Whether an entry's name is one a layer goes by: an OCI blob or a legacy `<v1id>/layer.tar`.
pub(super) fn names_a_layer(name: &str) -> bool {
    name.starts_with("blobs/sha256/") || name.ends_with("/layer.tar")
}

/// The data of one entry, read from the tar input as a stream.
pub(super) struct EntryData<'i> {
    pub(super) input: &'i mut TarInput,
    pub(super) left: u64,
}

impl Read for EntryData<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let max = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let data = self.input.take(max).map_err(io::Error::other)?;
        if data.is_empty() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf[..data.len()].copy_from_slice(data);
        self.left -= data.len() as u64;
        Ok(data.len())
    }
}
