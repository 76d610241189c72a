//! `image:load` (and `git:load-image` where core lacks it): deploy an app from an image
//! archive streamed on stdin. The archive is checked while it streams into `docker image
//! load`, and the load is aborted, importing nothing, when the archive does not hold IMAGE.

use std::ffi::OsString;
use std::io::{self, IsTerminal};

use anyhow::Context;

use crate::archive::{self, ArchivedImage, Contents, Limits};
use crate::builds;
use crate::cancel;
use crate::command::Command;
use crate::deploy::AppSession;
use crate::digest::ImageId;
use crate::docker::Docker;
use crate::host::Host;
use crate::identity;
use crate::layers;
use crate::output;
use crate::progress::Progress;
use crate::reference::Reference;
use crate::request::ImageRequest;
use crate::retention;
use crate::trigger;

pub fn run(command: &Command, argv: Vec<OsString>) -> anyhow::Result<()> {
    if io::stdin().is_terminal() {
        anyhow::bail!("Expecting tar archive containing docker image on STDIN");
    }
    let host = Host::from_env();
    let request = ImageRequest::parse(argv, command)?;
    if request.reference.has_digest() {
        return Err(command.usage_error(format!(
            "{} takes a tag reference (NAME[:TAG]), not {}: loaded images have no digest",
            command.name, request.image
        )));
    }
    builds::capture(&host, &request.app, builds::source_of(command.name))?;
    cancel::install()?;
    cancel::describe(format!(
        "the deploy of {} to {}",
        request.image, request.app
    ));
    let limits = Limits::from_env()?;
    let session = AppSession::open(&host, &request.app)?;
    let docker = Docker::for_app(&host, &request.app);

    let image_id = load(&host, &docker, &request.reference, &limits)?;
    retention::note_brought(&host, &image_id)?;
    trigger::fire(
        "post-image-load",
        &[request.app.as_str(), &request.image, image_id.as_str()],
    )
    .context("the post-image-load trigger failed")?;

    session.deploy(request.into_deploy(image_id, command.name, " (loaded from an archive)"))?;
    Ok(())
}

/// Streams stdin into `docker image load`, and returns the ID of IMAGE once the engine holds
/// exactly the image the archive named.
fn load(
    host: &Host,
    docker: &Docker,
    image: &Reference,
    limits: &Limits,
) -> anyhow::Result<ImageId> {
    output::info(format!("Loading {image} from the archive on stdin"));
    let mut input = Progress::new(io::stdin());
    let mut wanted = None;
    let loaded = docker.load_archive(&mut input, limits, |contents: &Contents| {
        let found = check(contents, image)?.clone();
        if contents.is_slim() {
            check_slim(host, docker, contents)?;
        }
        wanted = Some(found);
        Ok(())
    });
    input.finish();
    loaded?;

    let wanted = wanted.context("the archive check did not run")?;
    let loaded = docker
        .inspect(&image.to_string())?
        .with_context(|| format!("{image} is not on the host after loading the archive"))?;
    anyhow::ensure!(
        identity::is_archived(&loaded, &wanted, || docker.store())?,
        "after the load {image} is {}, not the archive's image (config {})",
        loaded.id.short(),
        wanted.config.short()
    );
    // An ID that is the archive's manifest digest, not its config digest, is the containerd
    // store's: note the manifest's layer blobs, which it now holds for as long as the image is
    // listed (a slim archive's left-out ones were checked to be held).
    if loaded.id != wanted.config && wanted.targets.contains(&loaded.id) {
        layers::note_blobs(host, &loaded.id, &wanted.blobs)?;
    }
    output::info(format!(
        "Loaded {image} ({}), {} read",
        loaded.id.short(),
        output::human_bytes(input.bytes_read())
    ));
    Ok(loaded.id)
}

/// The image IMAGE names in the archive, when it is one this host can run.
fn check<'c>(contents: &'c Contents, image: &Reference) -> anyhow::Result<&'c ArchivedImage> {
    let found = contents
        .find(image)
        .with_context(|| not_in_archive(image, contents))?;
    if let Some(facts) = &found.facts {
        let host = archive::host_platform();
        anyhow::ensure!(
            facts.platform == host,
            "the archive holds {image} only for {}, not for this host's platform {host}; nothing was loaded",
            facts.platform
        );
    }
    Ok(found)
}

/// A slim archive loads only when the host holds every layer it leaves out (docs/slim.md):
/// otherwise the classic store fails half-way and the containerd store makes a broken image.
fn check_slim(host: &Host, docker: &Docker, contents: &Contents) -> anyhow::Result<()> {
    let held = layers::held(host, docker)?;
    let missing = layers::not_held(contents, &held);
    // Clients match this line's start to retry with the whole archive: keep it as it is.
    anyhow::ensure!(
        missing.is_empty(),
        "the archive leaves out layers this host does not hold: {}; nothing was loaded",
        missing.join(", ")
    );
    let count = layers::omitted_count(contents, held.store);
    let noun = if count == 1 { "layer" } else { "layers" };
    output::info(format!(
        "The archive leaves out {count} {noun} the host holds"
    ));
    Ok(())
}

fn not_in_archive(image: &Reference, contents: &Contents) -> String {
    let tags = contents.all_tags();
    if tags.is_empty() {
        format!("the archive does not hold {image}: it has no tagged images; nothing was loaded")
    } else {
        format!(
            "the archive does not hold {image}; it holds {}; nothing was loaded",
            tags.join(", ")
        )
    }
}
