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
            // Whose the image the tag names now is, asked before a pull can move the tag off
            // it (the containerd store may then drop it).
            let claimed = match &present {
                Some(before) => claim_on(&host, &docker, &request.app, &request.reference, before)?,
                None => None,
            };
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
            if let (Some(before), Some(claim)) = (&present, claimed) {
                if *before != pulled.id {
                    docker.tag(before, &request.image)?;
                    anyhow::bail!(
                        "{} named {}, {claim}, and the pull moved it to another image: it was put back; deploy from a unique tag or a digest",
                        request.image,
                        before.short()
                    );
                }
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

/// Another app's claim on the image `before`, which `tag` names now.
fn claim_on(
    host: &Host,
    docker: &Docker,
    app: &str,
    tag: &Reference,
    before: &ImageId,
) -> anyhow::Result<Option<claims::Claim>> {
    match docker.inspect(before.as_str())? {
        Some(image) => claims::claim_on(host, docker, app, tag, &image),
        None => Ok(None),
    }
}
