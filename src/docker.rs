//! The Docker engine, through `$DOCKER_BIN`: image identity, pulls, tags and loads.

use std::collections::BTreeSet;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::archive::{self, Choice, Contents, Forwarded, Limits};
use crate::digest::{Digest, ImageId};
use crate::host::Host;
use crate::output;
use crate::process::{Cmd, ProcessError};
use crate::state;

/// The docker client for one app: `$DOCKER_BIN`, with the app's registry credentials when
/// `registry:login APP` wrote some.
#[derive(Debug, Clone)]
pub struct Docker {
    bin: String,
    /// Options before the command (`--context NAME`), as a CLI plugin's were given them.
    global_args: Vec<String>,
    config_dir: Option<PathBuf>,
}

impl Docker {
    pub fn for_app(host: &Host, app: &str) -> Docker {
        let dir = state::registry_config(host, app);
        Docker {
            bin: host.docker_bin.clone(),
            global_args: Vec::new(),
            config_dir: has_auths(&dir.join("config.json")).then_some(dir),
        }
    }

    /// The docker client of this machine: `$DOCKER_BIN` or `docker`, its own config.
    pub fn local() -> Docker {
        Docker {
            bin: Host::from_env().docker_bin,
            global_args: Vec::new(),
            config_dir: None,
        }
    }

    /// The docker CLI BIN with these global options first, as the CLI ran its plugin
    /// (`docker --context NAME dokku push …`): each call reaches the engine that CLI would.
    pub fn cli(bin: String, global_args: Vec<String>) -> Docker {
        Docker {
            bin,
            global_args,
            config_dir: None,
        }
    }

    pub fn command(&self) -> Cmd {
        let cmd = Cmd::new(&self.bin).args(&self.global_args);
        match &self.config_dir {
            Some(dir) => cmd.env("DOCKER_CONFIG", dir),
            None => cmd,
        }
    }

    /// `docker image inspect --format FORMAT REFERENCE`'s output, or None when the engine has
    /// no such image.
    fn inspect_as(&self, reference: &str, format: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let cmd = self
            .command()
            .args(["image", "inspect", "--format", format, "--"])
            .arg(reference);
        let output = cmd.output()?;
        if output.status.success() {
            return Ok(Some(output.stdout));
        }
        if is_no_such_image(&output.stderr) {
            return Ok(None);
        }
        cmd.check(&output)?;
        Ok(None)
    }

    /// The image ID behind a reference (or an ID), or None when the engine has no such image.
    pub fn image_id(&self, reference: &str) -> anyhow::Result<Option<ImageId>> {
        let Some(stdout) = self.inspect_as(reference, "{{.Id}}")? else {
            return Ok(None);
        };
        let id = String::from_utf8_lossy(&stdout).trim().to_string();
        let id = ImageId::parse(&id).with_context(|| {
            format!("docker image inspect returned an unexpected ID {id:?} for {reference}")
        })?;
        Ok(Some(id))
    }

    /// What the engine says of an image, or None when it has no such image.
    pub fn inspect(&self, reference: &str) -> anyhow::Result<Option<ImageInfo>> {
        let Some(stdout) = self.inspect_as(reference, "{{json .}}")? else {
            return Ok(None);
        };
        let raw: RawImageInfo = serde_json::from_slice(&stdout)
            .with_context(|| format!("docker image inspect of {reference} printed no image"))?;
        let id = ImageId::parse(&raw.id).with_context(|| {
            format!(
                "docker image inspect returned an unexpected ID {:?} for {reference}",
                raw.id
            )
        })?;
        Ok(Some(ImageInfo {
            id,
            repo_tags: raw.repo_tags.unwrap_or_default(),
            repo_digests: raw.repo_digests.unwrap_or_default(),
            size: raw.size,
            platform: format!("{}/{}", raw.os, raw.architecture),
            created: raw.created,
            diff_ids: raw
                .rootfs
                .layers
                .iter()
                .filter_map(|layer| Digest::parse(layer))
                .collect(),
        }))
    }

    /// The ID of every image the engine lists, intermediate ones included, each once.
    pub fn image_ids(&self) -> anyhow::Result<Vec<ImageId>> {
        let listed = self
            .command()
            .args(["image", "ls", "--all", "--quiet", "--no-trunc"])
            .read()?;
        let mut ids: Vec<ImageId> = listed.lines().filter_map(Digest::parse).collect();
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// The diff IDs of each of these images, bottom first, in a few `docker image inspect`
    /// calls however many there are. An image removed meanwhile is left out.
    pub fn layer_stacks(&self, ids: &[ImageId]) -> anyhow::Result<Vec<Vec<Digest>>> {
        let mut stacks = Vec::with_capacity(ids.len());
        for line in self.inspect_each(ids, "{{json .RootFS.Layers}}")? {
            let layers: Option<Vec<String>> = serde_json::from_str(&line).with_context(|| {
                format!("docker image inspect printed {line:?}, not a list of layers")
            })?;
            stacks.push(
                layers
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|layer| Digest::parse(layer))
                    .collect(),
            );
        }
        Ok(stacks)
    }

    /// Which of these images the engine still has. Asked of each by ID, not by listing them
    /// all: the containerd store's `docker image ls` takes most of a second with 200 images.
    pub fn existing(&self, ids: &[ImageId]) -> anyhow::Result<BTreeSet<ImageId>> {
        Ok(self
            .inspect_each(ids, "{{.Id}}")?
            .iter()
            .filter_map(|line| Digest::parse(line))
            .collect())
    }

    /// `docker image inspect --format FORMAT` of these images, a line each for those that
    /// exist, in a few calls however many there are.
    fn inspect_each(&self, ids: &[ImageId], format: &str) -> anyhow::Result<Vec<String>> {
        // Bounded so the command line stays far below the kernel's limit.
        const PER_CALL: usize = 500;
        let mut lines = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(PER_CALL) {
            let cmd = self
                .command()
                .args(["image", "inspect", "--format", format, "--"])
                .args(chunk.iter().map(ImageId::as_str));
            let output = cmd.output()?;
            if !output.status.success() && !is_no_such_image(&output.stderr) {
                cmd.check(&output)?;
            }
            lines.extend(
                String::from_utf8_lossy(&output.stdout)
                    .lines()
                    .map(String::from),
            );
        }
        Ok(lines)
    }

    /// Which image store the engine keeps its images in.
    pub fn store(&self) -> anyhow::Result<Store> {
        Ok(self.engine()?.store)
    }

    /// Where and how the engine keeps its images, from `docker info`.
    pub fn engine(&self) -> anyhow::Result<Engine> {
        let info = self
            .command()
            .args([
                "info",
                "--format",
                "{{json .DriverStatus}}\n{{.DockerRootDir}}",
            ])
            .read()?;
        let (status, root_dir) = info.split_once('\n').unwrap_or((info.as_str(), ""));
        let pairs: Vec<Vec<String>> = serde_json::from_str(status).unwrap_or_default();
        let containerd = pairs.iter().any(|pair| {
            pair.first().is_some_and(|key| key == "driver-type")
                && pair
                    .get(1)
                    .is_some_and(|value| value.starts_with("io.containerd.snapshotter"))
        });
        Ok(Engine {
            store: if containerd {
                Store::Containerd
            } else {
                Store::Classic
            },
            root_dir: PathBuf::from(root_dir.trim()),
        })
    }

    /// Pulls a reference; progress goes to stdout unless quiet, stderr goes into the error.
    pub fn pull(&self, reference: &str) -> anyhow::Result<()> {
        let quiet = output::quiet();
        let mut args = vec!["image", "pull"];
        if quiet {
            args.push("--quiet");
        }
        self.command()
            .args(args)
            .arg("--")
            .arg(reference)
            .run_showing_stdout(quiet)
            .map_err(|err| pull_error(reference, err))
    }

    /// Points a tag at an image ID.
    pub fn tag(&self, image_id: &ImageId, reference: &str) -> anyhow::Result<()> {
        self.command()
            .args(["image", "tag", image_id.as_str(), reference])
            .read()
            .map(drop)
    }

    /// Removes a tag, or an image by ID; never forced, so an image a container uses stays.
    pub fn remove(&self, reference: &str) -> anyhow::Result<()> {
        self.command()
            .args(["image", "rm", "--", reference])
            .read()
            .map(drop)
    }

    /// Whether any container, running or not, was made from the image or an image built on it.
    pub fn has_containers(&self, image_id: &ImageId) -> anyhow::Result<bool> {
        let ids = self
            .command()
            .args(["container", "ls", "--all", "--quiet", "--filter"])
            .arg(format!("ancestor={image_id}"))
            .read()?;
        Ok(!ids.trim().is_empty())
    }

    /// Every container, running or not, made from the image or an image built on it, with
    /// the value of its `label` (empty when it has none).
    pub fn containers_of(
        &self,
        image_id: &ImageId,
        label: &str,
    ) -> anyhow::Result<Vec<(String, String)>> {
        let listed = self
            .command()
            .args(["container", "ls", "--all", "--filter"])
            .arg(format!("ancestor={image_id}"))
            .arg("--format")
            .arg(format!("{{{{.ID}}}} {{{{.Label {label:?}}}}}"))
            .read()?;
        Ok(listed
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                let (id, value) = line.split_once(' ').unwrap_or((line, ""));
                (id.to_string(), value.trim().to_string())
            })
            .collect())
    }

    /// Streams an archive into `docker image load` through [`archive::forward`]: `check` sees
    /// what the archive holds once it has been read and chooses what the engine loads, and when
    /// it (or anything else) fails, the load is killed before its stdin closes, so the engine
    /// imports nothing.
    pub fn load_archive(
        &self,
        input: impl Read + Send,
        limits: &Limits,
        content: &mut dyn archive::Content,
        check: impl FnOnce(&Contents) -> anyhow::Result<Choice>,
    ) -> anyhow::Result<Forwarded> {
        let (reader, mut writer) =
            io::pipe().context("cannot create a pipe to docker image load")?;
        let load = self
            .command()
            .args(["image", "load"])
            .start(reader.into())?;
        let forwarded = archive::forward(input, &mut writer, limits, content, check);
        let forwarded = match forwarded {
            Ok(forwarded) => forwarded,
            Err(err) => {
                // The engine imports only after the end of the archive, which it never got:
                // killing the load before its stdin closes leaves the engine as it was.
                load.kill();
                drop(writer);
                let docker_stderr = load
                    .wait()
                    .map(|output| String::from_utf8_lossy(&output.stderr).trim().to_string())
                    .unwrap_or_default();
                if is_broken_pipe(&err) {
                    anyhow::bail!("docker image load stopped reading the archive: {docker_stderr}");
                }
                return Err(err);
            }
        };
        drop(writer);
        load.finish()
            .map_err(|err| match err.downcast::<ProcessError>() {
                Ok(process) => {
                    anyhow::anyhow!("docker image load failed: {}", process.stderr.trim())
                }
                Err(other) => other,
            })?;
        Ok(forwarded)
    }
}

/// Where an engine keeps its images: what an image ID is, and what `docker image save` writes,
/// differ between the two (docs/engines.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// Graph drivers (overlay2): the ID is the config digest.
    Classic,
    /// The containerd image store (`containerd-snapshotter`, every fresh Engine 29): the ID is
    /// the digest of the image's manifest or index.
    Containerd,
}

/// What `docker info` says of where the engine keeps its images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engine {
    pub store: Store,
    /// `DockerRootDir`: the engine's data root, where a classic store keeps its layers and
    /// unpacks a load.
    pub root_dir: PathBuf,
}

/// What `docker image inspect` says of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    pub id: ImageId,
    pub repo_tags: Vec<String>,
    /// `NAME@sha256:…`: where the image was pulled from (or, on the containerd store, what it
    /// was loaded as).
    pub repo_digests: Vec<String>,
    /// Bytes on disk, as docker counts them.
    pub size: u64,
    /// `os/architecture`.
    pub platform: String,
    pub created: Option<String>,
    /// The layers' uncompressed digests, bottom first.
    pub diff_ids: Vec<Digest>,
}

#[derive(serde::Deserialize)]
struct RawImageInfo {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "RepoDigests", default)]
    repo_digests: Option<Vec<String>>,
    #[serde(rename = "Size", default)]
    size: u64,
    #[serde(rename = "Os", default)]
    os: String,
    #[serde(rename = "Architecture", default)]
    architecture: String,
    #[serde(rename = "Created")]
    created: Option<String>,
    #[serde(rename = "RootFS", default)]
    rootfs: RawRootFs,
}

#[derive(serde::Deserialize, Default)]
struct RawRootFs {
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

fn is_no_such_image(stderr: &[u8]) -> bool {
    let stderr = String::from_utf8_lossy(stderr);
    stderr.contains("No such image") || stderr.contains("No such object")
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
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
