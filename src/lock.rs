//! The locks of a deploy. The plugin's own per-app lock, so two `image:*` deploys of one app
//! never interleave, is held for the whole deploy. Dokku's deploy lock (docs/dokku-builds.md)
//! is held too until `receive-app` is fired, which takes it itself: meanwhile a `git push`
//! waits, and `builds:cancel` finds the deploy by the build id written in it. The kernel
//! releases both when the process dies, so a killed deploy never blocks the next one.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use crate::host::{self, Host};
use crate::state;

/// Another process holds the app's lock, or Dokku's.
#[derive(Debug)]
pub struct DeployInProgress {
    pub app: String,
    /// Dokku's deploy lock (a `git push`, `ps:rebuild`…), not another image deploy.
    pub dokku: bool,
}

impl std::fmt::Display for DeployInProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = if self.dokku {
            "a Dokku deploy"
        } else {
            "another image deploy"
        };
        write!(
            f,
            "{what} of {} is in progress; nothing was changed, try again when it has finished",
            self.app
        )
    }
}

impl std::error::Error for DeployInProgress {}

/// Held while a deploy runs; released on drop.
#[derive(Debug)]
pub struct DeployLock {
    _file: File,
}

impl DeployLock {
    /// Takes the app's lock, or fails at once when another deploy holds it.
    pub fn acquire(host: &Host, app: &str) -> anyhow::Result<DeployLock> {
        let path = state::deploy_lock(host, app);
        host::create_dirs(path.parent().expect("the lock is in the app's data"))?;
        match state::try_lock(&path, "the deploy lock")? {
            Some(file) => Ok(DeployLock { _file: file }),
            None => Err(DeployInProgress {
                app: app.to_string(),
                dokku: false,
            }
            .into()),
        }
    }
}

/// Dokku's deploy lock, `$DOKKU_LIB_ROOT/data/apps/APP/.deploy.lock`, holding the deploy's
/// build id as Dokku writes it. Absent on hosts before 0.34 (no `data/apps/APP`).
#[derive(Debug)]
pub struct DokkuLock {
    held: Option<(File, PathBuf)>,
}

impl DokkuLock {
    /// Takes Dokku's lock of the app, or fails at once when a Dokku deploy holds it.
    pub fn acquire(host: &Host, app: &str) -> anyhow::Result<DokkuLock> {
        if !state::dokku_app_data(host, app).is_dir() {
            return Ok(DokkuLock { held: None });
        }
        let path = state::dokku_deploy_lock(host, app);
        let Some(mut file) = state::try_lock(&path, "Dokku's deploy lock")? else {
            return Err(DeployInProgress {
                app: app.to_string(),
                dokku: true,
            }
            .into());
        };
        let id = std::env::var("DOKKU_BUILD_ID")
            .ok()
            .filter(|id| !id.is_empty())
            .or_else(|| std::env::var("DOKKU_PID").ok())
            .unwrap_or_else(|| std::process::id().to_string());
        file.set_len(0)
            .and_then(|()| writeln!(file, "{id}"))
            .with_context(|| format!("cannot write {}", path.display()))?;
        host.chown_to_system_user(&path);
        Ok(DokkuLock {
            held: Some((file, path)),
        })
    }

    /// Lets go of it as Dokku does (the file goes, then the lock), so that `receive-app` can
    /// take it.
    pub fn release(&mut self) {
        if let Some((file, path)) = self.held.take() {
            let _ = std::fs::remove_file(&path);
            drop(file);
        }
    }
}

impl Drop for DokkuLock {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::under(dir.path());
        let first = DeployLock::acquire(&host, "app").unwrap();
        let err = DeployLock::acquire(&host, "app").unwrap_err();
        assert!(err.to_string().contains("in progress"), "{err}");
        assert!(err.downcast_ref::<DeployInProgress>().is_some());
        assert!(DeployLock::acquire(&host, "other").is_ok());
        drop(first);
        assert!(DeployLock::acquire(&host, "app").is_ok());
    }

    #[test]
    fn dokkus_lock_holds_the_build_id_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::under(dir.path());
        // before Dokku 0.34, or an app without data/apps/APP: nothing to take
        let mut none = DokkuLock::acquire(&host, "app").unwrap();
        none.release();
        let apps = state::dokku_app_data(&host, "app");
        std::fs::create_dir_all(&apps).unwrap();
        let mut lock = DokkuLock::acquire(&host, "app").unwrap();
        let content = std::fs::read_to_string(state::dokku_deploy_lock(&host, "app")).unwrap();
        assert!(content.ends_with('\n') && content.len() > 1, "{content:?}");
        let err = DokkuLock::acquire(&host, "app").unwrap_err();
        assert_eq!(
            err.to_string(),
            "a Dokku deploy of app is in progress; nothing was changed, try again when it has finished"
        );
        lock.release();
        assert!(!state::dokku_deploy_lock(&host, "app").exists());
        assert!(DokkuLock::acquire(&host, "app").is_ok());
    }
}
