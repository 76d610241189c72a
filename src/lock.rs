//! The plugin's own per-app deploy lock, so two `image:*` deploys of one app never interleave.
//! It is a different file from Dokku's deploy lock, which `receive-app` takes itself; the kernel
//! releases it when the process dies, so a killed deploy never blocks the next one.

use std::fs::{File, OpenOptions, TryLockError};

use anyhow::Context;

use crate::host::{self, Host};

/// Another process holds the app's lock.
#[derive(Debug)]
pub struct DeployInProgress {
    pub app: String,
}

impl std::fmt::Display for DeployInProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "another image deploy of {} is in progress; nothing was changed, try again when it has finished",
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
        let dir = host.plugin_data(app);
        host::create_dirs(&dir)?;
        let path = dir.join("deploy.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open the deploy lock {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(DeployLock { _file: file }),
            Err(TryLockError::WouldBlock) => Err(DeployInProgress {
                app: app.to_string(),
            }
            .into()),
            Err(TryLockError::Error(err)) => {
                Err(err).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let host = Host {
            dokku_root: dir.path().join("home"),
            lib_root: dir.path().join("lib"),
            docker_bin: "docker".into(),
            system_user: "nobody-here".into(),
        };
        let first = DeployLock::acquire(&host, "app").unwrap();
        let err = DeployLock::acquire(&host, "app").unwrap_err();
        assert!(err.to_string().contains("in progress"), "{err}");
        assert!(err.downcast_ref::<DeployInProgress>().is_some());
        assert!(DeployLock::acquire(&host, "other").is_ok());
        drop(first);
        assert!(DeployLock::acquire(&host, "app").is_ok());
    }
}
