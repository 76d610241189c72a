//! The names of the archive's entries. Each may appear once, and none may run through a link
//! of the archive: a classic engine extracts the archive to disk before it reads it and follows
//! such links, so `x -> .` then `x/manifest.json` would write a `manifest.json` the check never
//! saw, and a second entry of one name would replace what the check read. `docker image save`
//! writes neither; its links (a legacy layer shared by two images, `<id>/layer.tar ->
//! ../<other>/layer.tar`) have nothing below them.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};

use anyhow::{bail, Result};

use super::limits::MAX_ENTRIES;

pub(super) struct Entries {
    /// Hashes of the normalised names of every entry; hashes keep this small however long the
    /// names are.
    seen: HashSet<u64>,
    /// Hashes of the names of the symbolic and hard links among them.
    links: HashSet<u64>,
    hasher: RandomState,
}

impl Entries {
    pub(super) fn new() -> Entries {
        Entries {
            seen: HashSet::new(),
            links: HashSet::new(),
            hasher: RandomState::new(),
        }
    }

    /// Notes an entry by its normalised name, or refuses it.
    pub(super) fn add(&mut self, name: &str, entry_type: tar::EntryType) -> Result<()> {
        if self.seen.len() >= MAX_ENTRIES {
            bail!("archive has more than {MAX_ENTRIES} entries: not a docker image archive");
        }
        if let Some(link) = self.link_above(name) {
            bail!(
                "archive entry {name} runs through {link}, a link of the archive, so the engine would write it elsewhere than its name says; refused"
            );
        }
        let hash = self.hasher.hash_one(name);
        if !self.seen.insert(hash) {
            bail!("archive holds {name} twice");
        }
        if matches!(entry_type, tar::EntryType::Symlink | tar::EntryType::Link) {
            self.links.insert(hash);
        }
        Ok(())
    }

    /// Whether the archive has an entry of this (normalised) name.
    pub(super) fn holds(&self, name: &str) -> bool {
        self.seen.contains(&self.hasher.hash_one(name))
    }

    /// The first folder of `name`'s path that is a link of the archive.
    fn link_above<'n>(&self, name: &'n str) -> Option<&'n str> {
        if self.links.is_empty() {
            return None;
        }
        name.match_indices('/')
            .map(|(slash, _)| &name[..slash])
            .find(|folder| self.links.contains(&self.hasher.hash_one(*folder)))
    }
}
