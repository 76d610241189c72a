//! The room the engine has on disk for a load (docs/tags.md): `image:load` stops before it
//! gives the engine more than the free space where the engine keeps images can take.

use std::path::Path;

use crate::docker::{Engine, Store};

/// Where the containerd store keeps its content and snapshots when Docker runs the system's
/// containerd, as Docker Engine's packages do (containerd's default root); Docker's `info`
/// does not say.
const CONTAINERD_ROOT: &str = "/var/lib/containerd";

/// The free space, in bytes, the engine can write a load to: the least of its data root's and,
/// on the containerd store, containerd's root's when there is one; None when the data root
/// cannot be looked at from here (a remote engine).
pub fn free_space(engine: &Engine) -> Option<u64> {
    let free = available(&engine.root_dir)?;
    let containerd = match engine.store {
        Store::Containerd => available(Path::new(CONTAINERD_ROOT)),
        Store::Classic => None,
    };
    Some(containerd.map_or(free, |containerd| containerd.min(free)))
}

/// The bytes an unprivileged user may still write on the filesystem of `path`.
fn available(path: &Path) -> Option<u64> {
    if path.as_os_str().is_empty() {
        return None;
    }
    let stat = rustix::fs::statvfs(path).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}
