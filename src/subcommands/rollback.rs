//! `image:rollback`: redeploy the image of an earlier image deploy, with that deploy's whole
//! tree, as a new commit (history only grows), through the normal deploy pipeline. A record
//! is a commit message, which any `git push` can write: the tag it names is re-pointed only
//! when the commit's Dockerfile label gives the same image ID, and never off an image another
//! app runs, keeps or rebuilds from (docs/tags.md).

use std::ffi::OsString;

use crate::args;
use crate::cancel::{self, Undo};
use crate::claims;
use crate::command::{Command, Deploys};
use crate::context::SOURCE_ID_LABEL;
use crate::deploy::{self, AppSession, Content, DeployRequest};
use crate::digest::ImageId;
use crate::docker::Docker;
use crate::host::Host;
use crate::output::{self, Status};
use crate::record::{self, short_commit, Deploy, DeployRecord};
use crate::reference::Reference;
use crate::repo::{AppRepo, Author};
use crate::retention;
use crate::trigger;

/// The image deploy to go back to: the one COMMIT names, or the first image deploy older than
/// the live commit (commits not made by the plugin are skipped).
fn pick_target<'d>(
    deploys: &'d [Deploy],
    wanted: Option<(&str, &str)>,
    app: &str,
    branch: &str,
) -> anyhow::Result<(&'d Deploy, &'d DeployRecord)> {
    let live = deploys.first().ok_or_else(|| {
        anyhow::anyhow!(
            "{app} has no deploys on its deploy branch {branch}; nothing to roll back to"
        )
    })?;
    match wanted {
        Some((revision, commit)) => {
            let deploy = deploys.iter().find(|d| d.commit.id == commit).ok_or_else(|| {
                anyhow::anyhow!(
                    "{revision} (commit {}) is not on the first-parent history of {app}'s deploy branch {branch}",
                    short_commit(commit)
                )
            })?;
            let record = deploy.record.as_ref().ok_or_else(|| {
                anyhow::anyhow!(
                    "commit {} of {app} is not an image deploy (it was not made by image:*); roll back to an image deploy (see image:history {app})",
                    short_commit(commit)
                )
            })?;
            Ok((deploy, record))
        }
        None => deploys[1..]
            .iter()
            .find_map(|d| d.record.as_ref().map(|record| (d, record)))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{app} has no image deploy before its live commit {}; nothing to roll back to",
                    short_commit(&live.commit.id)
                )
            }),
    }
}

/// The image ID the last `LABEL com.dokku.image-source-id=ID` line of a Dockerfile gives: the
/// line an image deploy appends.
fn labelled_id(dockerfile: &str) -> Option<ImageId> {
    let prefix = format!("LABEL {SOURCE_ID_LABEL}=");
    dockerfile
        .lines()
        .rev()
        .find_map(|line| line.trim().strip_prefix(&prefix))
        .and_then(|id| ImageId::parse(id.trim()))
}

/// Whether the Dockerfile of the deploy's tree labels its image with the recorded ID.
fn label_confirms(repo: &AppRepo, deploy: &Deploy, record: &DeployRecord) -> anyhow::Result<bool> {
    let dockerfile = repo.file_in_tree(&deploy.commit.tree, "Dockerfile")?;
    Ok(dockerfile
        .and_then(|text| labelled_id(&String::from_utf8_lossy(&text)))
        .is_some_and(|id| id == record.image_id))
}

/// The rule a rollback follows before it moves the recorded tag.
struct TagRule<'a> {
    host: &'a Host,
    app: &'a str,
    /// The deploy's commit labels its image with the recorded ID.
    label_confirms: bool,
}

impl TagRule<'_> {
    /// Refuses to move `image` (naming `current` now, if anything) unless the record is
    /// confirmed and no other app claims `current`.
    fn check(
        &self,
        docker: &Docker,
        record: &DeployRecord,
        commit: &str,
        current: Option<&ImageId>,
    ) -> anyhow::Result<()> {
        let image = &record.image;
        anyhow::ensure!(
            self.label_confirms,
            "deploy {} records {image} as image {}, but its Dockerfile's {SOURCE_ID_LABEL} label does not: its record was not written by image:*, so {image} is left as it is; cannot roll back",
            short_commit(commit),
            record.image_id.short()
        );
        let Some(current) = current else {
            return Ok(());
        };
        let Some(info) = docker.inspect(current.as_str())? else {
            return Ok(());
        };
        let tag = Reference::parse(image)?;
        if let Some(claim) = claims::claim_on(self.host, docker, self.app, &tag, &info)? {
            anyhow::bail!(
                "{image} names {}, {claim}: rolling back would move that tag; cannot roll back (deploy from a unique tag or a digest)",
                current.short()
            );
        }
        Ok(())
    }
}

/// Makes the recorded reference name the recorded image ID again, or fails with nothing changed.
/// When it moved the reference, returns how to point it back at what it named before (a
/// registered undo step), for a failed deploy or a signal.
fn restore_image(
    docker: &Docker,
    rule: &TagRule,
    record: &DeployRecord,
    commit: &str,
    recorded: fn(&str) -> Option<Deploys>,
) -> anyhow::Result<Option<Undo>> {
    let image = record.image.as_str();
    let wanted = &record.image_id;
    let current = docker.image_id(image)?;
    if current.as_ref() == Some(wanted) {
        return Ok(None);
    }
    // A digest reference cannot be re-pointed by a tag: only a pull can bring it back.
    let by_digest = Reference::parse(image)?.has_digest();
    if !by_digest {
        rule.check(docker, record, commit, current.as_ref())?;
    }
    if !by_digest && docker.image_id(wanted.as_str())?.is_some() {
        output::info(format!(
            "Pointing {image} at {} again (it names {} now)",
            wanted.short(),
            current.as_ref().map_or("nothing", ImageId::short)
        ));
        return repoint(docker, wanted, image, current);
    }

    let gone = format!(
        "image sha256:{} of deploy {} is no longer on the host",
        wanted.short(),
        short_commit(commit)
    );
    if recorded(&record.command).is_some_and(|deploys| deploys.from_archive) {
        anyhow::bail!(
            "{gone}, and it was loaded from an archive, so no registry can give it back; load it again with image:load (a deploy whose image is on the host, or was pulled from a registry, can be rolled back)"
        );
    }
    // The registry digest names exactly the recorded image, wherever the tag points now.
    let source = match &record.repo_digest {
        Some(digest) => digest.as_str(),
        None => image,
    };
    output::info(format!("Pulling {source}: {gone}"));
    // A pull of the reference itself moves it: from now on, point it back on the way out.
    let pulling = match (&current, source == image) {
        (Some(previous), true) => {
            let held = cancel::hold();
            held.proceed()?;
            Some(point_back_on_cancel(docker, previous, image))
        }
        _ => None,
    };
    docker.pull(source).map_err(|err| {
        anyhow::anyhow!("{gone} and cannot be pulled ({err:#}); cannot roll back")
    })?;
    let pulled = docker.image_id(source)?;
    if pulled.as_ref() == Some(wanted) {
        retention::note_brought(rule.host, wanted)?;
        if source != image {
            return repoint(docker, wanted, image, current);
        }
        return Ok(pulling);
    }
    // The pull moved the tag: point it back so that a refused rollback changes nothing.
    if let Some(step) = pulling {
        step.undo(&cancel::hold());
    }
    Err(anyhow::anyhow!(
        "{gone} and {source} now names sha256:{}; cannot roll back",
        pulled.as_ref().map_or("(nothing)", ImageId::short)
    ))
}

/// Points IMAGE at ID, and registers how to point it back at PREVIOUS (when it named
/// something), both under one hold: a signal never finds the tag moved without its undo.
fn repoint(
    docker: &Docker,
    id: &ImageId,
    image: &str,
    previous: Option<ImageId>,
) -> anyhow::Result<Option<Undo>> {
    let held = cancel::hold();
    held.proceed()?;
    docker.tag(id, image)?;
    Ok(previous.map(|previous| point_back_on_cancel(docker, &previous, image)))
}

/// The undo step that points IMAGE back at PREVIOUS.
fn point_back_on_cancel(docker: &Docker, previous: &ImageId, image: &str) -> Undo {
    let (docker, previous, image) = (docker.clone(), previous.clone(), image.to_string());
    cancel::on_cancel(move || point_back(&docker, &previous, &image))
}

/// `image:rollback`. RECORDED says what a deploy recorded under a command name deployed from
/// (the command table: an image loaded from an archive cannot be pulled back).
pub fn run(
    command: &Command,
    argv: Vec<OsString>,
    recorded: fn(&str) -> Option<Deploys>,
) -> anyhow::Result<Status> {
    let (app, parsed) = args::parse_for_app(argv, command)?;
    let mut positionals = parsed.positionals.into_iter();
    // An empty COMMIT means the default, so that an author can be given without one.
    let revision = positionals.next().filter(|r| !r.is_empty());
    let author = Author::new(positionals.next().as_deref(), positionals.next().as_deref())?;
    trigger::ensure_app(&app)?;

    let host = Host::from_env();
    let what = format!("the rollback of {app}");
    deploy::start(&host, &app, command, what, |session| {
        roll_back(&host, &session, command, revision, author, recorded)
    })
}

/// The rollback itself, under the app's lock.
fn roll_back(
    host: &Host,
    session: &AppSession,
    command: &Command,
    revision: Option<String>,
    author: Author,
    recorded: fn(&str) -> Option<Deploys>,
) -> anyhow::Result<()> {
    let app = session.app.as_str();
    let wanted = match &revision {
        Some(revision) => {
            let commit = session.repo.resolve(revision)?.ok_or_else(|| {
                anyhow::anyhow!("{revision} names no commit in the repo of {app}")
            })?;
            Some((revision.as_str(), commit))
        }
        None => None,
    };
    let deploys = record::deploys(&session.repo, &session.branch)?;
    let (target, record) = pick_target(
        &deploys,
        wanted.as_ref().map(|(r, c)| (*r, c.as_str())),
        app,
        &session.branch,
    )?;
    let commit = target.commit.id.as_str();
    claims::refuse_dokku_namespace(&Reference::parse(&record.image)?)?;
    if target.commit.tree == deploys[0].commit.tree {
        // Checked before the image is touched, so that a no-op changes nothing on the host.
        output::info(format!(
            "No changes detected, skipping deploy: {app} already runs the tree of deploy {}",
            short_commit(commit)
        ));
        return Ok(());
    }
    output::info(format!(
        "Rolling {app} back to {} ({}) of deploy {}",
        record.image,
        record.image_id.short(),
        short_commit(commit)
    ));

    let docker = &session.docker;
    let rule = TagRule {
        host,
        app,
        label_confirms: label_confirms(&session.repo, target, record)?,
    };
    let repointed = restore_image(docker, &rule, record, commit, recorded)?;
    let result = session.deploy(DeployRequest {
        image: record.image.clone(),
        image_id: record.image_id.clone(),
        repo_digest: record.repo_digest.clone(),
        content: Content::Tree(target.commit.tree.clone()),
        author,
        force: false,
        command: command.name,
        subject: format!(
            "Roll back to {} (deploy {})",
            record.image,
            short_commit(commit)
        ),
    });
    if let Some(step) = repointed {
        // Failed: the deploy changed nothing else, so the reference goes back too.
        let held = cancel::hold();
        match &result {
            Ok(_) => step.forget(&held),
            Err(_) => step.undo(&held),
        }
    }
    result
}

/// Points the reference back at the image it named before the rollback re-pointed it.
fn point_back(docker: &Docker, previous: &ImageId, image: &str) {
    if let Err(err) = docker.tag(previous, image) {
        output::warn(format!(
            "cannot point {image} back at {}: {err:#}",
            previous.short()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::CommitInfo;

    fn deploy(id: &str, image: Option<&str>) -> Deploy {
        let record = image.map(|image| DeployRecord {
            image: image.to_string(),
            image_id: ImageId::from_hex(&"cd".repeat(32)).unwrap(),
            command: "image:from".to_string(),
            repo_digest: None,
        });
        Deploy {
            commit: CommitInfo {
                id: id.to_string(),
                tree: format!("tree-{id}"),
                author_name: "Dokku".to_string(),
                author_email: "automated@dokku.sh".to_string(),
                date: "2026-01-01T00:00:00+00:00".to_string(),
                message: String::new(),
            },
            record,
        }
    }

    #[test]
    fn default_target_skips_pushes() {
        let deploys = [
            deploy("c4", Some("app:v3")),
            deploy("c3", None),
            deploy("c2", Some("app:v2")),
            deploy("c1", Some("app:v1")),
        ];
        let (target, record) = pick_target(&deploys, None, "app", "master").unwrap();
        assert_eq!(target.commit.id, "c2");
        assert_eq!(record.image, "app:v2");
        // With a push live, the latest image deploy is the one before it.
        let (target, _) = pick_target(&deploys[1..], None, "app", "master").unwrap();
        assert_eq!(target.commit.id, "c2");
    }

    #[test]
    fn named_targets_must_be_image_deploys_on_the_branch() {
        let deploys = [
            deploy("c3", Some("app:v2")),
            deploy("c2", None),
            deploy("c1", Some("app:v1")),
        ];
        let (target, _) = pick_target(&deploys, Some(("master~2", "c1")), "app", "master").unwrap();
        assert_eq!(target.commit.id, "c1");
        let err = pick_target(&deploys, Some(("c2", "c2")), "app", "master").unwrap_err();
        assert!(err.to_string().contains("not an image deploy"), "{err}");
        let err = pick_target(&deploys, Some(("x", "c9")), "app", "master").unwrap_err();
        assert!(err.to_string().contains("first-parent history"), "{err}");
    }

    #[test]
    fn the_label_an_image_deploy_appends_gives_the_id() {
        let id = format!("sha256:{}", "cd".repeat(32));
        let dockerfile = format!(
            "FROM x\nLABEL {SOURCE_ID_LABEL}=sha256:{}\nFROM app:1\nLABEL com.dokku.docker-image-labeler/alternate-tags=[\\\"app:1\\\"]\nLABEL {SOURCE_ID_LABEL}={id}\n",
            "ab".repeat(32)
        );
        assert_eq!(labelled_id(&dockerfile), ImageId::parse(&id));
        assert_eq!(labelled_id("FROM app:1\n"), None);
        assert_eq!(
            labelled_id(&format!("LABEL {SOURCE_ID_LABEL}=sha256:short\n")),
            None
        );
    }

    #[test]
    fn nothing_to_roll_back_to() {
        let err = pick_target(&[], None, "app", "master").unwrap_err();
        assert!(err.to_string().contains("no deploys"), "{err}");
        let err = pick_target(&[deploy("c1", Some("a:1"))], None, "app", "master").unwrap_err();
        assert!(err.to_string().contains("no image deploy before"), "{err}");
    }
}
