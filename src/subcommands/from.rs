//! `image:from` (and `git:from-image` where core lacks it): deploy an app from an image
//! reference, pulling it only when needed.

use std::ffi::OsString;

use anyhow::Context;

use crate::builds;
use crate::cancel;
use crate::command::Command;
use crate::deploy::AppSession;
use crate::docker::Docker;
use crate::host::Host;
use crate::output;
use crate::request::ImageRequest;
use crate::retention;

pub fn run(command: &Command, argv: Vec<OsString>) -> anyhow::Result<()> {
    let host = Host::from_env();
    let request = ImageRequest::parse(argv, command)?;
    builds::capture(&host, &request.app, builds::source_of(command.name))?;
    cancel::install()?;
    cancel::describe(format!(
        "the deploy of {} to {}",
        request.image, request.app
    ));
    let session = AppSession::open(&host, &request.app)?;
    let docker = Docker::for_app(&host, &request.app);

    // --force implies --pull: a forced deploy takes whatever the reference names now.
    let present = docker.image_id(&request.image)?;
    let (image_id, repo_digest) = match present {
        Some(id) if !request.pull && !request.force => (id, None),
        _ => {
            output::info(format!("Pulling {}", request.image));
            docker.pull(&request.image)?;
            let pulled = docker.inspect(&request.image)?.with_context(|| {
                format!(
                    "image {} is not on the host after pulling it",
                    request.image
                )
            })?;
            retention::note_brought(&host, &pulled.id)?;
            let digest = request
                .reference
                .digest_among(&pulled.repo_digests)
                .map(str::to_string);
            (pulled.id, digest)
        }
    };

    let mut deploy = request.into_deploy(image_id, command.name, "");
    deploy.repo_digest = repo_digest;
    session.deploy(deploy)?;
    Ok(())
}
