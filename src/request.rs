//! The arguments of a deploy from a reference or an archive (`image:from`, `image:load` and
//! their `git:*-image` twins take the same ones), validated before any side effect.

use std::ffi::OsString;

use crate::args;
use crate::command::Command;
use crate::context::BuildContext;
use crate::deploy::{Content, DeployRequest};
use crate::digest::ImageId;
use crate::host::Host;
use crate::reference::Reference;
use crate::repo::Author;
use crate::trigger;

/// What a deploy asks for, before the image's ID is known.
#[derive(Debug)]
pub struct ImageRequest {
    pub app: String,
    /// The reference as the user wrote it.
    pub image: String,
    pub reference: Reference,
    pub context: BuildContext,
    pub author: Author,
    pub pull: bool,
    pub force: bool,
}

impl ImageRequest {
    /// Parses and validates `APP IMAGE [USER_NAME [USER_EMAIL]]` and the build dir; the app
    /// must exist for the current user.
    pub fn parse(argv: Vec<OsString>, command: &Command) -> anyhow::Result<ImageRequest> {
        let (app, parsed) = args::parse_for_app(argv, command)?;
        let mut positionals = parsed.positionals.into_iter();
        let image = positionals
            .next()
            .filter(|image| !image.is_empty())
            .ok_or_else(|| command.usage_error("IMAGE is required"))?;
        let name = positionals.next();
        let email = positionals.next();
        trigger::ensure_app(&app)?;
        let reference = Reference::parse(&image)?;
        let author = Author::new(name.as_deref(), email.as_deref())?;
        let context = match &parsed.build_dir {
            Some(dir) => BuildContext::from_build_dir(dir, &Host::from_env().private_roots())?,
            None => BuildContext::default(),
        };
        Ok(ImageRequest {
            app,
            image,
            reference,
            context,
            author,
            pull: parsed.pull,
            force: parsed.force,
        })
    }

    /// The deploy of the requested image by COMMAND once its ID is known.
    pub fn into_deploy(self, image_id: ImageId, command: &Command) -> DeployRequest {
        let note = if command.deploys().from_archive {
            " (loaded from an archive)"
        } else {
            ""
        };
        DeployRequest {
            subject: format!("Deploy {}{note}", self.image),
            image: self.image,
            image_id,
            repo_digest: None,
            content: Content::Context(self.context),
            author: self.author,
            force: self.force,
            command: command.name,
        }
    }
}
