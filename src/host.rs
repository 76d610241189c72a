//! The Dokku host as a plugin sees it: paths from the environment, the app name rule, the
//! dokku user (the plugin's own state and the properties: `state.rs`). It uses nothing else of the crate.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Dokku's app name rule (`_` too, which older apps may have).
pub fn is_valid_app_name(app: &str) -> bool {
    let mut chars = app.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_'))
}

/// Where the host keeps things, read once from the environment `dokku` exports.
#[derive(Debug, Clone)]
pub struct Host {
    pub dokku_root: PathBuf,
    pub lib_root: PathBuf,
    /// `PLUGIN_ENABLED_PATH`: a link per enabled plugin.
    pub enabled_plugins: PathBuf,
    pub docker_bin: String,
    pub system_user: String,
}

impl Host {
    pub fn from_env() -> Host {
        let var = |name: &str, default: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_string())
        };
        let lib_root = PathBuf::from(var("DOKKU_LIB_ROOT", "/var/lib/dokku"));
        Host {
            dokku_root: PathBuf::from(var("DOKKU_ROOT", "/home/dokku")),
            enabled_plugins: std::env::var_os("PLUGIN_ENABLED_PATH")
                .filter(|path| !path.is_empty())
                .map_or_else(|| lib_root.join("plugins/enabled"), PathBuf::from),
            lib_root,
            docker_bin: var("DOCKER_BIN", "docker"),
            system_user: var("DOKKU_SYSTEM_USER", "dokku"),
        }
    }

    /// A host whose roots are folders under `dir`, for unit tests.
    #[cfg(test)]
    pub fn under(dir: &Path) -> Host {
        Host {
            dokku_root: dir.join("home"),
            lib_root: dir.join("lib"),
            enabled_plugins: dir.join("lib/plugins/enabled"),
            docker_bin: "docker".into(),
            system_user: "no-such-user-here".into(),
        }
    }

    /// The app's bare git repo.
    pub fn app_repo(&self, app: &str) -> PathBuf {
        self.dokku_root.join(app)
    }

    /// Every app of the host, from the folders of `DOKKU_ROOT`, whatever the current user may
    /// see: for what every app needs of the engine (which images stay, whose an image is),
    /// never to show anyone. Sorted.
    pub fn every_app(&self) -> anyhow::Result<Vec<String>> {
        let listing = match fs::read_dir(&self.dokku_root) {
            Ok(listing) => listing,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(err).context("cannot list the apps"),
        };
        let mut apps = Vec::new();
        for entry in listing {
            let entry = entry.context("cannot list the apps")?;
            if let Ok(app) = entry.file_name().into_string() {
                if is_valid_app_name(&app) && entry.path().is_dir() {
                    apps.push(app);
                }
            }
        }
        apps.sort_unstable();
        Ok(apps)
    }

    /// Files the plugin writes as root must stay usable by the dokku user.
    pub fn chown_to_system_user(&self, path: &Path) {
        if let Some((uid, gid)) = system_user_ids(&self.system_user) {
            let _ = std::os::unix::fs::chown(path, Some(uid), Some(gid));
        }
    }

    /// The folders that hold other apps' or the host's private files: `DOKKU_ROOT` (every
    /// app's repo), `DOKKU_LIB_ROOT` (every app's settings, registry credentials and data)
    /// and the dokku user's home (its docker credentials, ssh keys), from /etc/passwd.
    pub fn private_roots(&self) -> Vec<PathBuf> {
        let mut roots = vec![self.dokku_root.clone(), self.lib_root.clone()];
        // A home of `/` (a system user's placeholder) would refuse every folder.
        roots.extend(
            passwd_entry(&self.system_user)
                .map(|fields| PathBuf::from(&fields[5]))
                .filter(|home| home.is_absolute() && home.parent().is_some()),
        );
        roots
    }
}

/// Creates a directory tree with Dokku's 0755 mode.
pub fn create_dirs(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o755));
    Ok(())
}

/// Removes a file or a whole folder; one that is already gone is fine.
pub fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    let removed = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(err) => Err(err),
    };
    match removed {
        Err(err) if err.kind() != io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// The fields of a user's line of /etc/passwd (read as a file: the binaries may be static,
/// without the C library's name service), when the user exists.
fn passwd_entry(user: &str) -> Option<Vec<String>> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd
        .lines()
        .map(|line| line.split(':').map(str::to_string).collect::<Vec<_>>())
        .find(|fields| fields.len() >= 7 && fields[0] == user)
}

/// The uid and gid of a user from /etc/passwd, when the user exists.
pub fn system_user_ids(user: &str) -> Option<(u32, u32)> {
    let fields = passwd_entry(user)?;
    Some((fields[2].parse().ok()?, fields[3].parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names() {
        for good in ["app", "my-app.v2", "0app", "old_app"] {
            assert!(is_valid_app_name(good), "{good}");
        }
        for bad in [
            "", "App", "../x", "a/b", "a b", ".hidden", "-x", "ünï", "a\nb",
        ] {
            assert!(!is_valid_app_name(bad), "{bad}");
        }
    }

    #[test]
    fn private_roots_are_the_two_roots_and_the_system_users_home() {
        let dir = tempfile::tempdir().unwrap();
        let mut host = Host::under(dir.path());
        assert_eq!(
            host.private_roots(),
            [dir.path().join("home"), dir.path().join("lib")]
        );
        // root's line of /etc/passwd stands for the dokku user's
        host.system_user = "root".into();
        let home = PathBuf::from(&passwd_entry("root").unwrap()[5]);
        // a home of `/` is left out
        assert_eq!(
            host.private_roots().contains(&home),
            home.parent().is_some()
        );
        assert_eq!(system_user_ids("root"), Some((0, 0)));
    }
}
