//! `image:from` (and `git:from-image` where core lacks it): deploy an app from an image
//! reference, pulling it only when needed. A pull that moves the tag off an image another app
//! runs, keeps or rebuilds from puts the tag back and is refused (docs/tags.md).

use std::ffi::OsString;

use anyhow::Context;

use crate::builds;
use crate::cancel;
use crate::claims;
use crate::command::Command;
use crate::deploy::AppSession;
use crate::digest::ImageId;
use crate::docker::Docker;
use crate::host::Host;
use crate::output;
use crate::reference::Reference;
use crate::request::ImageRequest;
use crate::retention;

pub fn run(command: &Command, argv: Vec<OsString>) -> anyhow::Result<()> {
    let host = Host::from_env();
    let request = ImageRequest::parse(argv, command)?;
    claims::refuse_dokku_namespace(&request.reference)?;
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
            // Until the moved tag has been checked, a signal points it back.
            let _put_back = present.clone().map(|before| {
                let (docker, tag) = (docker.clone(), request.image.clone());
                cancel::on_cancel(move || {
                    let _ = docker.tag(&before, &tag);
                })
            });
            docker.pull(&request.image)?;
            let pulled = docker.inspect(&request.image)?.with_context(|| {
                format!(
                    "image {} is not on the host after pulling it",
                    request.image
                )
            })?;
            if let Some(before) = present.filter(|before| *before != pulled.id) {
                keep_others_image(&host, &docker, &request.app, &request.reference, &before)?;
            }
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

/// A pull moved `tag` off `before`: when another app runs, keeps or rebuilds from that image,
/// the tag is put back and the deploy refused.
fn keep_others_image(
    host: &Host,
    docker: &Docker,
    app: &str,
    tag: &Reference,
    before: &ImageId,
) -> anyhow::Result<()> {
    let Some(previous) = docker.inspect(before.as_str())? else {
        return Ok(());
    };
    let Some(claim) = claims::claim_on(host, docker, app, tag, &previous)? else {
        return Ok(());
    };
    docker.tag(before, &tag.to_string())?;
    anyhow::bail!(
        "{tag} named {}, {claim}, and the pull moved it to another image: it was put back; deploy from a unique tag or a digest",
        before.short()
    )
}
