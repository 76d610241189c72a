//! The plugin's state on the host, and the parts of Dokku's it reads or takes, in one place:
//! where each file lives, the properties by name, the one way a file is written (whole, to a
//! temporary file renamed over it, owned by the dokku user) and the one way a lock is taken.
//!
//! The plugin's own state is small on purpose (the app repo is the record):
//! `$DOKKU_LIB_ROOT/data/image/APP` (the deploy lock, a deploy's scratch folder),
//! `data/image/--brought` and `data/image/--blobs` (notes per image ID, names no app can have),
//! and the `keep-images` property.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::host::{self, Host};

/// The plugin's name: its folder of `data/`, its properties, `uninstall NAME`.
pub const PLUGIN: &str = "image";

/// A property Dokku keeps as `$DOKKU_LIB_ROOT/config/PLUGIN/SCOPE/KEY` (SCOPE is an app or
/// [`GLOBAL`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Property {
    pub plugin: &'static str,
    pub key: &'static str,
}

/// The scope of a global property.
pub const GLOBAL: &str = "--global";

/// The image an app was last deployed from (core's, which `image:*` deploys keep in line).
pub const SOURCE_IMAGE: Property = Property {
    plugin: "git",
    key: "source-image",
};
/// The branch an app deploys from: the app's, else the global one, else `master`.
pub const DEPLOY_BRANCH: Property = Property {
    plugin: "git",
    key: "deploy-branch",
};
/// How many earlier image deploys keep their source image (docs/retention.md).
pub const KEEP_IMAGES: Property = Property {
    plugin: PLUGIN,
    key: "keep-images",
};

/// A property shows as its key (`keep-images`).
impl std::fmt::Display for Property {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key)
    }
}

impl Property {
    fn path(self, host: &Host, scope: &str) -> PathBuf {
        host.lib_root
            .join("config")
            .join(self.plugin)
            .join(scope)
            .join(self.key)
    }

    /// The value in SCOPE; an empty file counts as unset, as in Dokku.
    pub fn get(self, host: &Host, scope: &str) -> anyhow::Result<Option<String>> {
        let path = self.path(host, scope);
        match fs::read_to_string(&path) {
            Ok(value) if value.trim().is_empty() => Ok(None),
            Ok(value) => Ok(Some(value.trim_end_matches('\n').to_string())),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Writes the value as Dokku does: the raw value, mode 0600, directories 0755.
    pub fn set(self, host: &Host, scope: &str, value: &str) -> anyhow::Result<()> {
        let path = self.path(host, scope);
        host::create_dirs(path.parent().expect("property paths have a parent"))?;
        write_whole(host, &path, value.as_bytes(), 0o600)
    }

    pub fn delete(self, host: &Host, scope: &str) -> anyhow::Result<()> {
        host::remove_if_present(&self.path(host, scope))
    }

    /// Writes the value, or deletes it for `None` (puts back a value read with `get`).
    pub fn put(self, host: &Host, scope: &str, value: Option<&str>) -> anyhow::Result<()> {
        match value {
            Some(value) => self.set(host, scope, value),
            None => self.delete(host, scope),
        }
    }
}

/// The app's deploy branch: its `deploy-branch` property, else the global one, else master.
pub fn deploy_branch(host: &Host, app: &str) -> anyhow::Result<String> {
    Ok(match DEPLOY_BRANCH.get(host, app)? {
        Some(branch) => branch,
        None => DEPLOY_BRANCH
            .get(host, GLOBAL)?
            .unwrap_or_else(|| "master".to_string()),
    })
}

/// All of the plugin's data (what `uninstall image` removes).
pub fn plugin_data(host: &Host) -> PathBuf {
    host.lib_root.join("data").join(PLUGIN)
}

/// The plugin's per-app data: its deploy lock, and a deploy's scratch files.
pub fn app_data(host: &Host, app: &str) -> PathBuf {
    plugin_data(host).join(app)
}

/// The app's kept layer content, the packs its layer recipes refer to (docs/delta.md).
pub fn content_dir(host: &Host, app: &str) -> PathBuf {
    app_data(host, app).join("content")
}

/// The plugin's per-app deploy lock.
pub fn deploy_lock(host: &Host, app: &str) -> PathBuf {
    app_data(host, app).join("deploy.lock")
}

/// The notes of the images the plugin brought onto the host, one empty file per image ID.
pub fn brought_dir(host: &Host) -> PathBuf {
    plugin_data(host).join("--brought")
}

/// The notes of loaded images' layer blobs, one file per image ID, a digest a line.
pub fn blobs_dir(host: &Host) -> PathBuf {
    plugin_data(host).join("--blobs")
}

/// Dokku's per-app data folder (0.34 and later), which holds its deploy lock.
pub fn dokku_app_data(host: &Host, app: &str) -> PathBuf {
    host.lib_root.join("data").join("apps").join(app)
}

/// Dokku's deploy lock of the app (0.34 and later), holding the deploy's build id.
pub fn dokku_deploy_lock(host: &Host, app: &str) -> PathBuf {
    dokku_app_data(host, app).join(".deploy.lock")
}

/// Per-app docker credentials written by `registry:login APP`.
pub fn registry_config(host: &Host, app: &str) -> PathBuf {
    host.lib_root.join("config").join("registry").join(app)
}

/// Where the `builds` plugin keeps an app's build logs.
pub fn build_logs(host: &Host, app: &str) -> PathBuf {
    host.lib_root.join("data").join("builds").join(app)
}

/// Whether the plugin NAME is enabled (`PLUGIN_ENABLED_PATH/NAME`), or a path inside it exists.
pub fn plugin_has(host: &Host, path: impl AsRef<Path>) -> bool {
    host.enabled_plugins.join(path).exists()
}

/// Writes a file whole: to a temporary file beside it, then renamed over it, so a reader never
/// sees half of it; owned by the dokku user (the plugin may run as root).
pub fn write_whole(host: &Host, path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let dir = path.parent().expect("state paths have a parent");
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temporary = dir.join(format!(".{name}.{}.image-tmp", std::process::id()));
    let written = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&temporary)
        .and_then(|mut file| file.write_all(bytes).and_then(|()| file.sync_all()));
    if let Err(err) = written {
        let _ = fs::remove_file(&temporary);
        return Err(err).with_context(|| format!("cannot write {}", temporary.display()));
    }
    host.chown_to_system_user(&temporary);
    fs::rename(&temporary, path).with_context(|| format!("cannot write {}", path.display()))
}

/// Opens (creating) the lock file PATH and takes its lock without waiting: `None` when another
/// process holds it. The kernel releases it when the file is closed or the process dies.
pub fn try_lock(path: &Path, what: &str) -> anyhow::Result<Option<File>> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open {what} {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(err)) => {
            Err(err).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn properties_round_trip_and_empty_means_unset() {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::under(dir.path());
        assert_eq!(deploy_branch(&host, "app").unwrap(), "master");
        DEPLOY_BRANCH.set(&host, GLOBAL, "main").unwrap();
        assert_eq!(deploy_branch(&host, "app").unwrap(), "main");
        DEPLOY_BRANCH.set(&host, "app", "").unwrap();
        assert_eq!(deploy_branch(&host, "app").unwrap(), "main");
        DEPLOY_BRANCH.set(&host, "app", "prod").unwrap();
        assert_eq!(deploy_branch(&host, "app").unwrap(), "prod");
        let path = DEPLOY_BRANCH.path(&host, "app");
        assert_eq!(path, dir.path().join("lib/config/git/app/deploy-branch"));
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        DEPLOY_BRANCH.delete(&host, "app").unwrap();
        DEPLOY_BRANCH.delete(&host, "app").unwrap();
        assert_eq!(DEPLOY_BRANCH.get(&host, "app").unwrap(), None);
        // nothing is left beside the value
        let left: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn a_second_lock_waits_for_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let first = try_lock(&path, "the lock").unwrap();
        assert!(first.is_some());
        assert!(try_lock(&path, "the lock").unwrap().is_none());
        drop(first);
        assert!(try_lock(&path, "the lock").unwrap().is_some());
    }
}
