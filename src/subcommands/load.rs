//! `image:load` (and `git:load-image` where core lacks it): deploy an app from an image
//! archive streamed on stdin. The archive is checked while it streams into `docker image
//! load`, and the load is aborted, importing nothing, when the archive does not hold IMAGE,
//! when the engine's disk has no room for it, or when it would move IMAGE off an image another
//! app runs, keeps or rebuilds from; the engine is given IMAGE as the only name (docs/tags.md).

use std::ffi::OsString;
use std::io::{self, IsTerminal};

use anyhow::Context;

use crate::archive::{self, Choice, Contents, Limits};
use crate::claims;
use crate::command::Command;
use crate::content::AppContent;
use crate::deploy;
use crate::digest::ImageId;
use crate::docker::{Docker, Store};
use crate::host::Host;
use crate::identity;
use crate::layers;
use crate::output::{self, Status};
use crate::progress::Progress;
use crate::protocol;
use crate::reference::Reference;
use crate::request::ImageRequest;
use crate::retention;
use crate::room;
use crate::trigger;

pub fn run(command: &Command, argv: Vec<OsString>) -> anyhow::Result<Status> {
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
    claims::refuse_dokku_namespace(&request.reference)?;
    let what = format!("the deploy of {} to {}", request.image, request.app);
    deploy::start(&host, &request.app.clone(), command, what, |session| {
        let limits = Limits::from_env()?;
        let content = AppContent::for_load(&host, &request.app);
        let image_id = load(
            &host,
            &session.docker,
            (&request.app, content),
            &request.reference,
            limits,
        )?;
        retention::note_brought(&host, &image_id)?;
        trigger::fire(
            "post-image-load",
            &[request.app.as_str(), &request.image, image_id.as_str()],
        )
        .context("the post-image-load trigger failed")?;
        session.deploy(request.into_deploy(image_id, command))
    })
}

/// Streams stdin into `docker image load`, and returns the ID of IMAGE once the engine holds
/// exactly the image the archive named, under that name only. Recipes are rebuilt from the
/// app's kept content, and what it is asked to keep is kept once the image is there.
fn load(
    host: &Host,
    docker: &Docker,
    (app, mut content): (&str, AppContent),
    image: &Reference,
    mut limits: Limits,
) -> anyhow::Result<ImageId> {
    output::info(format!("Loading {image} from the archive on stdin"));
    let engine = docker.engine()?;
    limits.disk_free = room::free_space(&engine);
    let mut input = Progress::new(io::stdin());
    let loaded = docker.load_archive(&mut input, &limits, &mut content, |contents: &Contents| {
        let choice = contents.choose(image)?;
        check_platform(&choice)?;
        check_recipes(contents, engine.store)?;
        if contents.is_slim() {
            check_slim(host, docker, contents, engine.store)?;
        }
        check_tag_move(host, docker, app, contents, &choice, engine.store)?;
        Ok(choice)
    });
    input.finish();
    let forwarded = loaded?;

    let wanted = forwarded.choice.image();
    let loaded = docker
        .inspect(&image.to_string())?
        .with_context(|| format!("{image} is not on the host after loading the archive"))?;
    anyhow::ensure!(
        identity::is_archived(&loaded, wanted, || Ok(engine.store))?,
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
    if let Some(left_out) = left_out(&forwarded.contents, &forwarded.choice) {
        output::info(left_out);
    }
    let rebuilt = forwarded.contents.recipes.len();
    if rebuilt > 0 {
        output::info(format!(
            "Rebuilt {rebuilt} {} from recipes and the app's kept content",
            if rebuilt == 1 { "layer" } else { "layers" }
        ));
    }
    let kept = content.commit(host)?;
    if kept > 0 {
        output::info(format!(
            "Kept the content of {kept} {} for later recipes",
            if kept == 1 { "layer" } else { "layers" }
        ));
    }
    Ok(loaded.id)
}

/// The containerd store imports a layer blob by its own digest: a rebuilt layer must be the
/// blob the manifest names, uncompressed (docs/delta.md).
fn check_recipes(contents: &Contents, store: Store) -> anyhow::Result<()> {
    if store != Store::Containerd {
        return Ok(());
    }
    for layer in &contents.recipes {
        anyhow::ensure!(
            layer.name == layer.diff_id.blob_path(),
            protocol::recipe_refusal(
                &layer.name,
                "this host's containerd store takes a layer blob by its own digest, which a rebuilt layer is not"
            )
        );
    }
    Ok(())
}

/// The image IMAGE names is one this host can run.
fn check_platform(choice: &Choice) -> anyhow::Result<()> {
    if let Some(facts) = &choice.image().facts {
        let host = archive::host_platform();
        anyhow::ensure!(
            facts.platform == host,
            "the archive holds {} only for {}, not for this host's platform {host}; nothing was loaded",
            choice.name(),
            facts.platform
        );
    }
    Ok(())
}

/// A load that would move IMAGE off an image another app runs, keeps or rebuilds from (or a
/// container of another app uses) is refused before the engine imports anything. When the
/// engine will give the archive's image the ID IMAGE names now, nothing moves.
fn check_tag_move(
    host: &Host,
    docker: &Docker,
    app: &str,
    contents: &Contents,
    choice: &Choice,
    store: Store,
) -> anyhow::Result<()> {
    let image = choice.name();
    let Some(current) = docker.inspect(&image.to_string())? else {
        return Ok(());
    };
    if identity::expected_id(contents, choice.image(), store).as_ref() == Some(&current.id) {
        return Ok(());
    }
    match claims::claim_on(host, docker, app, image, &current)? {
        Some(claim) => anyhow::bail!(
            "{image} names {}, {claim}: loading the archive would move that tag; load it under a unique tag; nothing was loaded",
            current.id.short()
        ),
        None => Ok(()),
    }
}

/// The info line on what the archive holds besides IMAGE's image and name, which the engine was
/// not given.
fn left_out(contents: &Contents, choice: &Choice) -> Option<String> {
    let names = contents.dropped_names(choice);
    let images = contents.images.len().saturating_sub(1);
    let images = match images {
        0 => String::new(),
        1 => "1 other image".to_string(),
        n => format!("{n} other images"),
    };
    let names = (!names.is_empty()).then(|| format!("the names {}", archive::listing(&names)));
    let what = match (names, images.is_empty()) {
        (None, true) => return None,
        (Some(names), true) => names,
        (None, false) => images,
        (Some(names), false) => format!("{names} and {images}"),
    };
    Some(format!(
        "Tagged {} only; left out of the load: {what}",
        choice.name()
    ))
}

/// A slim archive loads only when the host holds every layer it leaves out (docs/slim.md):
/// otherwise the classic store fails half-way and the containerd store makes a broken image.
fn check_slim(
    host: &Host,
    docker: &Docker,
    contents: &Contents,
    store: Store,
) -> anyhow::Result<()> {
    let held = layers::held(host, docker, store)?;
    let missing = layers::not_held(contents, &held);
    // Clients match this line to retry with the whole archive (crate::protocol).
    anyhow::ensure!(missing.is_empty(), protocol::refusal(&missing));
    let count = layers::left_out_count(contents, held.store);
    let noun = if count == 1 { "layer" } else { "layers" };
    output::info(format!(
        "The archive leaves out {count} {noun} the host holds"
    ));
    Ok(())
}
