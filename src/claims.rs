//! Whose an image is, on a host several teams share (docs/tags.md). A deploy to one app moves
//! a tag only off an image no other app runs, keeps or rebuilds from, and never touches Dokku's
//! own `dokku/*` tags: otherwise another app's next restart, rebuild or rollback would run what
//! this one brought.

use std::fmt;

use crate::docker::{Docker, ImageInfo};
use crate::host::Host;
use crate::record;
use crate::reference::Reference;
use crate::retention;
use crate::state::SOURCE_IMAGE;

/// The label Dokku gives every container of an app, with the app's name.
pub const APP_LABEL: &str = "com.dokku.app-name";

/// Refuses a reference in Dokku's namespace, where Dokku tags every app's release image
/// (`dokku/APP:latest`): no deploy may read from it, move it or record it.
pub fn refuse_dokku_namespace(image: &Reference) -> anyhow::Result<()> {
    anyhow::ensure!(
        image.dokku_app().is_none(),
        "{image} is in dokku/, Dokku's own namespace of app release images; deploy from an image of your own"
    );
    Ok(())
}

/// What another app has to do with an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Tagged `dokku/APP:…`: Dokku runs and restarts the app from it.
    Release { app: String },
    /// The source image of one of the app's deploys that it keeps (the live one, or one it may
    /// roll back to).
    Kept { app: String, live: bool },
    /// The app's `source-image` is the tag: its next rebuild builds from whatever the tag names.
    Source { app: String },
    /// A container made from it (or from an image built on it), of another app or of none.
    Container { id: String, app: Option<String> },
}

impl fmt::Display for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Claim::Release { app } => write!(f, "the release image of app {app}"),
            Claim::Kept { app, live: true } => write!(f, "the image app {app} runs"),
            Claim::Kept { app, live: false } => {
                write!(f, "the image of a deploy app {app} keeps to roll back to")
            }
            Claim::Source { app } => write!(f, "the image app {app} rebuilds from"),
            Claim::Container { id, app: Some(app) } => {
                write!(f, "the image of container {id} of app {app}")
            }
            Claim::Container { id, app: None } => {
                write!(f, "the image of container {id}, which no Dokku app owns")
            }
        }
    }
}

/// What an app other than `app` has to do with `image`, the image `tag` names now, if
/// anything: moving `tag` off it would change what that app runs, restarts, rebuilds or rolls
/// back to. Every app of the host counts, whatever the current user may see.
pub fn claim_on(
    host: &Host,
    docker: &Docker,
    app: &str,
    tag: &Reference,
    image: &ImageInfo,
) -> anyhow::Result<Option<Claim>> {
    let release = image
        .repo_tags
        .iter()
        .filter_map(|name| Reference::parse(name).ok())
        .find_map(|name| {
            name.dokku_app()
                .filter(|owner| *owner != app)
                .map(String::from)
        });
    if let Some(owner) = release {
        return Ok(Some(Claim::Release { app: owner }));
    }
    for other in host.every_app()?.into_iter().filter(|other| other != app) {
        let deploys = record::app_deploys(host, &other)?;
        let keep = retention::keep_images(host, &other).map_or(retention::Keep::All, |k| k.2);
        let kept = retention::retained(&deploys, keep);
        if let Some(at) = kept.iter().position(|id| *id == image.id) {
            let live = at == 0 && deploys.first().is_some_and(|d| d.record.is_some());
            return Ok(Some(Claim::Kept { app: other, live }));
        }
        let source = SOURCE_IMAGE.get(host, &other)?;
        if source
            .and_then(|source| Reference::parse(&source).ok())
            .is_some_and(|source| source.same_as(tag))
        {
            return Ok(Some(Claim::Source { app: other }));
        }
    }
    let containers = docker.containers_of(&image.id, APP_LABEL)?;
    Ok(containers
        .into_iter()
        .find(|(_, owner)| owner != app)
        .map(|(id, owner)| Claim::Container {
            id,
            app: (!owner.is_empty()).then_some(owner),
        }))
}
