//! `image:from`: deploy an app from an image reference, pulling it only when needed.

use std::ffi::OsString;

use anyhow::Context;

use crate::args::{self, Spec};
use crate::context::BuildContext;
use crate::deploy::{AppSession, Content, DeployRequest};
use crate::docker::Docker;
use crate::host::{self, Host};
use crate::reference::Reference;
use crate::repo::Author;

pub const SPEC: Spec = Spec {
    build_dir: true,
    pull: true,
    force: true,
    max_positionals: 3,
    ..Spec::new(
        "image:from",
        "[--build-dir DIR] [--pull] [--force] APP IMAGE [USER_NAME [USER_EMAIL]]",
    )
};

/// What a deploy from a reference or an archive needs, validated before any side effect.
#[derive(Debug)]
pub struct Validated {
    pub app: String,
    pub image: String,
    pub reference: Reference,
    pub context: BuildContext,
    pub author: Author,
    pub pull: bool,
    pub force: bool,
}

impl Validated {
    /// The deploy of the validated image once its ID is known; `note` ends the commit subject.
    pub fn into_deploy(self, image_id: String, command: &'static str, note: &str) -> DeployRequest {
        DeployRequest {
            subject: format!("Deploy {}{note}", self.image),
            image: self.image,
            image_id,
            content: Content::Context(self.context),
            author: self.author,
            force: self.force,
            command,
        }
    }
}

/// Parses and validates the arguments of `image:from`/`image:load` (same shape): app, image,
/// author, build dir.
pub fn validate(argv: Vec<OsString>, spec: &Spec) -> anyhow::Result<Validated> {
    let (app, parsed) = args::parse_for_app(argv, spec)?;
    let mut positionals = parsed.positionals.into_iter();
    let image = positionals
        .next()
        .filter(|image| !image.is_empty())
        .ok_or_else(|| spec.usage_error("IMAGE is required"))?;
    let name = positionals.next();
    let email = positionals.next();
    host::ensure_app(&app)?;
    let reference = Reference::parse(&image)?;
    let author = Author::new(name.as_deref(), email.as_deref())?;
    let context = match &parsed.build_dir {
        Some(dir) => BuildContext::from_build_dir(dir)?,
        None => BuildContext::default(),
    };
    Ok(Validated {
        app,
        image,
        reference,
        context,
        author,
        pull: parsed.pull,
        force: parsed.force,
    })
}

/// `image:from`, or `git:from-image` on hosts whose core git plugin lacks it (same behaviour;
/// COMMAND is what the user typed, recorded in the commit).
pub fn run(argv: Vec<OsString>, command: &'static str) -> anyhow::Result<()> {
    let host = Host::from_env();
    let request = validate(argv, &Spec { command, ..SPEC })?;
    let session = AppSession::open(&host, &request.app)?;
    let docker = Docker::for_app(&host, &request.app);

    // --force implies --pull: a forced deploy takes whatever the reference names now.
    let image_id = match docker.image_id(&request.image)? {
        Some(id) if !request.pull && !request.force => id,
        _ => {
            host::info(format!("Pulling {}", request.image));
            docker.pull(&request.image)?;
            docker.image_id(&request.image)?.with_context(|| {
                format!(
                    "image {} is not on the host after pulling it",
                    request.image
                )
            })?
        }
    };

    session.deploy(request.into_deploy(image_id, command, ""))?;
    Ok(())
}
