//! How an image deploy is written into, and read back from, a commit message, and the list of
//! an app's deploys read back from its deploy branch. The trailers carry the reference as the
//! user wrote it and the full image ID, so `image:history`, `image:rollback` and
//! `image:report` need nothing but the app repo.

use crate::digest::ImageId;
use crate::host::Host;
use crate::reference::Reference;
use crate::repo::{AppRepo, CommitInfo, PENDING_REF};

const SOURCE: &str = "Image-Source";
const ID: &str = "Image-Id";
const COMMAND: &str = "Image-Command";
const DIGEST: &str = "Image-Digest";

/// An image deploy as recorded in its commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployRecord {
    pub image: String,
    pub image_id: ImageId,
    pub command: String,
    /// `REPOSITORY@sha256:…` of a pulled image: how to pull exactly it again once its tag
    /// names something else.
    pub repo_digest: Option<String>,
}

impl DeployRecord {
    pub fn message(&self, subject: &str) -> String {
        let mut message = format!(
            "{subject}\n\n{SOURCE}: {}\n{ID}: {}\n{COMMAND}: {}\n",
            self.image, self.image_id, self.command
        );
        if let Some(digest) = &self.repo_digest {
            message.push_str(&format!("{DIGEST}: {digest}\n"));
        }
        message
    }

    /// The record in a commit message, or None for commits this plugin did not make. A
    /// message is anyone's to write (`git push`): the image must be a valid reference and the
    /// command a plain word, so that nothing read back holds a control character.
    pub fn parse(message: &str) -> Option<DeployRecord> {
        let trailer = |key: &str| {
            message.lines().rev().find_map(|line| {
                let value = line.strip_prefix(key)?.strip_prefix(": ")?;
                Some(value.trim().to_string())
            })
        };
        let image = trailer(SOURCE).filter(|image| Reference::parse(image).is_ok())?;
        Some(DeployRecord {
            image_id: ImageId::parse(&trailer(ID)?)?,
            image,
            command: trailer(COMMAND)
                .filter(|command| command.chars().all(|c| c.is_ascii_graphic()))
                .unwrap_or_default(),
            repo_digest: trailer(DIGEST)
                .filter(|digest| Reference::parse(digest).is_ok_and(|digest| digest.has_digest())),
        })
    }
}

/// One commit of the deploy branch's first-parent history, with its deploy record when this
/// plugin made it.
#[derive(Debug, Clone)]
pub struct Deploy {
    pub commit: CommitInfo,
    pub record: Option<DeployRecord>,
}

/// The deploy branch's commits, newest first (the first one is live); empty without a repo.
pub fn deploys(repo: &AppRepo, branch: &str) -> anyhow::Result<Vec<Deploy>> {
    Ok(repo
        .history(branch)?
        .into_iter()
        .map(|commit| Deploy {
            record: DeployRecord::parse(&commit.message),
            commit,
        })
        .collect())
}

/// The deploys of an app, read without the deploy lock: reading needs none.
pub fn app_deploys(host: &Host, app: &str) -> anyhow::Result<Vec<Deploy>> {
    match AppRepo::open(host, app) {
        Some(repo) => deploys(&repo, &crate::state::deploy_branch(host, app)?),
        None => Ok(Vec::new()),
    }
}

/// The record of the app's deploy under way, or killed before it ended (its pending commit).
pub fn pending(repo: &AppRepo) -> anyhow::Result<Option<DeployRecord>> {
    match repo.resolve(PENDING_REF)? {
        Some(commit) => Ok(DeployRecord::parse(&repo.commit_info(&commit)?.message)),
        None => Ok(None),
    }
}

/// A commit ID's first 12 hex digits, for people.
pub fn short_commit(id: &str) -> &str {
    &id[..id.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID_HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn round_trip() {
        let record = DeployRecord {
            image: "registry.example:5000/team/app:v1".into(),
            image_id: ImageId::from_hex(ID_HEX).unwrap(),
            command: "image:load".into(),
            repo_digest: None,
        };
        let message = record.message("Deploy registry.example:5000/team/app:v1");
        assert_eq!(DeployRecord::parse(&message), Some(record.clone()));
        let pulled = DeployRecord {
            repo_digest: Some(format!("registry.example:5000/team/app@sha256:{ID_HEX}")),
            ..record
        };
        assert_eq!(DeployRecord::parse(&pulled.message("Deploy")), Some(pulled));
    }

    #[test]
    fn other_commits_are_not_records() {
        assert_eq!(DeployRecord::parse("Fix the homepage"), None);
        assert_eq!(
            DeployRecord::parse("x\n\nImage-Source: a\nImage-Id: sha256:short\n"),
            None
        );
        assert_eq!(
            DeployRecord::parse(&format!(
                "x\n\nImage-Source: a\nImage-Id: sha256:{}\n",
                ID_HEX.to_uppercase()
            )),
            None
        );
        assert_eq!(
            DeployRecord::parse(&format!("x\n\nImage-Id: sha256:{ID_HEX}\n")),
            None
        );
    }

    #[test]
    fn pushed_trailers_with_control_characters_are_no_record_or_are_left_out() {
        let message = |source: &str, command: &str| {
            format!("x\n\nImage-Source: {source}\nImage-Id: sha256:{ID_HEX}\nImage-Command: {command}\nImage-Digest: a\u{1b}[31m\n")
        };
        assert_eq!(
            DeployRecord::parse(&message("app:1\u{1b}[2J", "image:from")),
            None
        );
        let record = DeployRecord::parse(&message("app:1", "image:from\r\u{1b}[2J")).unwrap();
        assert_eq!(record.image, "app:1");
        assert_eq!(record.command, "");
        assert_eq!(record.repo_digest, None);
    }

    #[test]
    fn short_commits() {
        assert_eq!(short_commit(&ID_HEX[..40]), "0123456789ab");
        assert_eq!(short_commit("abc"), "abc");
    }
}
