//! `image:from` (and `git:from-image` where core lacks it): deploy an app from an image
//! reference, pulling it only when needed. A pull that moves the tag off an image another app
//! runs, keeps or rebuilds from puts the tag back and is refused (docs/tags.md).

use std::ffi::OsString;

use anyhow::Context;

use crate::cancel;
use crate::claims;
use crate::command::Command;
use crate::deploy;
use crate::digest::ImageId;
use crate::docker::{Docker, ImageInfo};
use crate::host::Host;
use crate::output::{self, Status};
use crate::request::ImageRequest;
use crate::retention;

pub fn run(command: &Command, argv: Vec<OsString>) -> anyhow::Result<Status> {
    let host = Host::from_env();
    let request = ImageRequest::parse(argv, command)?;
    claims::refuse_dokku_namespace(&request.reference)?;
    let what = format!("the deploy of {} to {}", request.image, request.app);
    deploy::start(&host, &request.app.clone(), command, what, |session| {
        let docker = &session.docker;
        // --force implies --pull: a forced deploy takes whatever the reference names now.
        let present = docker.image_id(&request.image)?;
        let (image_id, repo_digest) = match present {
            Some(id) if !request.pull && !request.force => (id, None),
            present => {
                let pulled = pull(&host, docker, &request, present)?;
                retention::note_brought(&host, &pulled.id)?;
                let digest = request
                    .reference
                    .digest_among(&pulled.repo_digests)
                    .map(str::to_string);
                (pulled.id, digest)
            }
        };
        let mut deploy = request.into_deploy(image_id, command);
        deploy.repo_digest = repo_digest;
        session.deploy(deploy)
    })
}

/// Pulls IMAGE, which names `before` now (if anything). When `before` is another app's, a pull
/// that moves the tag off it puts the tag back and is refused; until then a second tag holds
/// `before`, which the containerd store would otherwise drop with its last tag.
fn pull(
    host: &Host,
    docker: &Docker,
    request: &ImageRequest,
    before: Option<ImageId>,
) -> anyhow::Result<ImageInfo> {
    let image = request.image.as_str();
    let claimed = match &before {
        Some(before) => match docker.inspect(before.as_str())? {
            Some(info) => claims::claim_on(host, docker, &request.app, &request.reference, &info)?
                .map(|claim| (before.clone(), claim)),
            None => None,
        },
        None => None,
    };
    let hold = match &claimed {
        Some((before, _)) => Some(Hold::new(docker, before, image)?),
        None => None,
    };
    output::info(format!("Pulling {image}"));
    docker.pull(image)?;
    let pulled = docker
        .inspect(image)?
        .with_context(|| format!("image {image} is not on the host after pulling it"))?;
    let Some((before, claim)) = claimed.filter(|(before, _)| *before != pulled.id) else {
        return Ok(pulled);
    };
    docker.tag(&before, image)?;
    drop(hold);
    anyhow::bail!(
        "{image} named {}, {claim}, and the pull moved it to another image: it was put back; deploy from a unique tag or a digest",
        before.short()
    )
}

/// A second tag on an image while a pull may move its tag: dropped, it is removed; a signal
/// meanwhile points the tag back and removes it too.
struct Hold {
    docker: Docker,
    name: String,
    _on_signal: cancel::Undo,
}

impl Hold {
    fn new(docker: &Docker, image: &ImageId, tag: &str) -> anyhow::Result<Hold> {
        let name = format!("{HOLD_REPOSITORY}:{}-{}", image.short(), std::process::id());
        docker.tag(image, &name)?;
        let (signal_docker, signal_name) = (docker.clone(), name.clone());
        let (image, tag) = (image.clone(), tag.to_string());
        Ok(Hold {
            docker: docker.clone(),
            name,
            _on_signal: cancel::on_cancel(move || {
                let _ = signal_docker.tag(&image, &tag);
                let _ = signal_docker.remove(&signal_name);
            }),
        })
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let Err(err) = self.docker.remove(&self.name) {
            output::warn(format!("cannot remove the tag {}: {err:#}", self.name));
        }
    }
}

/// Where the plugin holds an image for the length of a pull.
const HOLD_REPOSITORY: &str = "dokku-image-hold";
