//! The Docker engine, through `$DOCKER_BIN`: image identity, pulls, tags and loads.

use std::path::{Path, PathBuf};

use crate::host::{self, Host};
use crate::process::{Cmd, ProcessError};

/// The docker client for one app: `$DOCKER_BIN`, with the app's registry credentials when
/// `registry:login APP` wrote some.
#[derive(Debug, Clone)]
pub struct Docker {
    bin: String,
    config_dir: Option<PathBuf>,
}

impl Docker {
    pub fn for_app(host: &Host, app: &str) -> Docker {
        let dir = host.registry_config_dir(app);
        Docker {
            bin: host.docker_bin.clone(),
            config_dir: has_auths(&dir.join("config.json")).then_some(dir),
        }
    }

    pub fn command(&self) -> Cmd {
        let cmd = Cmd::new(&self.bin);
        match &self.config_dir {
            Some(dir) => cmd.env("DOCKER_CONFIG", dir),
            None => cmd,
        }
    }

    /// The image ID (config digest) behind a reference, or None when the engine has no such image.
    pub fn image_id(&self, reference: &str) -> anyhow::Result<Option<String>> {
        let cmd = self
            .command()
            .args(["image", "inspect", "--format", "{{.Id}}", "--"])
            .arg(reference);
        let output = cmd.output()?;
        if output.status.success() {
            let id = String::from_utf8_lossy(&output.stdout).trim().to_string();
            anyhow::ensure!(
                id.starts_with("sha256:"),
                "docker image inspect returned an unexpected ID {id:?} for {reference}"
            );
            return Ok(Some(id));
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("No such image") || stderr.contains("No such object") {
            return Ok(None);
        }
        cmd.check(&output)?;
        Ok(None)
    }

    /// Pulls a reference; progress goes to stdout unless quiet, stderr goes into the error.
    pub fn pull(&self, reference: &str) -> anyhow::Result<()> {
        let mut args = vec!["image", "pull"];
        if host::quiet() {
            args.push("--quiet");
        }
        let cmd = self.command().args(args).arg("--").arg(reference);
        let expression = cmd.expression().stderr_capture().unchecked();
        let expression = if host::quiet() {
            expression.stdout_null()
        } else {
            expression
        };
        let output = expression.run()?;
        cmd.check(&output).map_err(|err| pull_error(reference, err))
    }

    /// Points a tag at an image ID.
    pub fn tag(&self, image_id: &str, reference: &str) -> anyhow::Result<()> {
        self.command()
            .args(["image", "tag", image_id, reference])
            .read()
            .map(drop)
    }

    /// The `docker image load` that an archive is streamed into.
    pub fn load_command(&self) -> Cmd {
        self.command().args(["image", "load"])
    }

    /// The IDs of every image the engine holds, for "nothing was imported" checks.
    pub fn all_image_ids(&self) -> anyhow::Result<Vec<String>> {
        let text = self
            .command()
            .args(["image", "ls", "--all", "--no-trunc", "--quiet"])
            .read()?;
        Ok(text.lines().map(str::to_string).collect())
    }
}

fn pull_error(reference: &str, err: anyhow::Error) -> anyhow::Error {
    let reason = err
        .downcast_ref::<ProcessError>()
        .map(|e| {
            e.stderr
                .lines()
                .map(str::trim)
                .rfind(|l| !l.is_empty())
                .unwrap_or("docker image pull failed")
                .trim_start_matches("Error response from daemon: ")
                .to_string()
        })
        .unwrap_or_else(|| err.to_string());
    anyhow::anyhow!("cannot pull image {reference}: {reason}")
}

/// True when a docker config file has credentials in its `auths`.
fn has_auths(config: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(config) else {
        return false;
    };
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|value| {
            value
                .get("auths")?
                .as_object()
                .map(|auths| !auths.is_empty())
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_config_counts_only_with_auths() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.json");
        assert!(!has_auths(&config));
        std::fs::write(&config, r#"{"auths":{}}"#).unwrap();
        assert!(!has_auths(&config));
        std::fs::write(&config, "not json").unwrap();
        assert!(!has_auths(&config));
        std::fs::write(&config, r#"{"auths":{"127.0.0.1:5000":{"auth":"eDp5"}}}"#).unwrap();
        assert!(has_auths(&config));
    }
}
