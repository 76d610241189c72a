//! The deploy pipeline shared by every `image:*` command (docs/deploy.md): under the app's lock, commit the build context on top of the deploy branch under a
//! pending ref, let Dokku build and release it, and only then move the branch. Whatever fails
//! on the way, the branch and the `source-image` property are left as they were.

use anyhow::Context;

use crate::builds;
use crate::cancel;
use crate::command::Command;
use crate::content;
use crate::context::BuildContext;
use crate::digest::ImageId;
use crate::docker::Docker;
use crate::host::Host;
use crate::lock::{DeployLock, DokkuLock};
use crate::output::{self, Status};
use crate::record::{short_commit, DeployRecord};
use crate::repo::{self, AppRepo, Author, PENDING_REF};
use crate::retention;
use crate::state::{self, SOURCE_IMAGE};
use crate::trigger;

/// An app held for a deploy: its lock, its repo (created at the first commit) and its deploy branch.
#[derive(Debug)]
pub struct AppSession<'h> {
    pub host: &'h Host,
    pub app: String,
    pub repo: AppRepo,
    pub branch: String,
    /// The app's docker client (its registry credentials).
    pub docker: Docker,
    _lock: DeployLock,
    /// Dokku's lock, let go of when `receive-app` is fired.
    dokku_lock: std::cell::RefCell<DokkuLock>,
}

/// What a deploy asks for.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    /// The reference as the user wrote it.
    pub image: String,
    pub image_id: ImageId,
    /// `REPOSITORY@sha256:…` when the image was pulled.
    pub repo_digest: Option<String>,
    /// What to commit.
    pub content: Content,
    pub author: Author,
    /// Deploy even when nothing changed.
    pub force: bool,
    /// The subcommand, recorded in the commit (`image:from`, `image:load`, `image:rollback`).
    pub command: &'static str,
    /// The commit subject.
    pub subject: String,
}

/// The tree a deploy commits.
#[derive(Debug, Clone)]
pub enum Content {
    /// Build-dir files (maybe none); the Dockerfile lines for the image are appended.
    Context(BuildContext),
    /// An existing tree, as is (a rollback reuses an earlier deploy's tree).
    Tree(String),
}

/// How every deploying command starts once its arguments are checked, then deploys with
/// DEPLOY: inside a build record of the app (`builds::capture`; then the captured run's status
/// is the command's), with signals handled (`cancel`, WHAT naming the deploy in the signal's
/// line), under the app's locks and repaired (`AppSession::open`).
pub fn start(
    host: &Host,
    app: &str,
    command: &Command,
    what: String,
    deploy: impl FnOnce(AppSession) -> anyhow::Result<()>,
) -> anyhow::Result<Status> {
    if let Some(status) = builds::capture(host, app, command.deploys().build_source)? {
        return Ok(status);
    }
    cancel::install()?;
    cancel::describe(what);
    deploy(AppSession::open(host, app)?)?;
    Ok(Status::SUCCESS)
}

impl<'h> AppSession<'h> {
    /// Takes the app's deploy lock and repairs what a killed deploy
    /// left behind.
    pub fn open(host: &'h Host, app: &str) -> anyhow::Result<AppSession<'h>> {
        let lock = DeployLock::acquire(host, app)?;
        let dokku_lock = DokkuLock::acquire(host, app)?;
        // Under the lock, scratch folders in the app's data dir belong to killed deploys.
        repo::remove_stale_scratch(&state::app_data(host, app))?;
        let repo = AppRepo::at(host, app);
        let session = AppSession {
            host,
            app: app.to_string(),
            branch: state::deploy_branch(host, app)?,
            repo,
            docker: Docker::for_app(host, app),
            _lock: lock,
            dokku_lock: std::cell::RefCell::new(dokku_lock),
        };
        session.repair()?;
        Ok(session)
    }

    /// A pending ref means a deploy died between its commit and its end: drop the commit and
    /// make `source-image` match the branch again.
    fn repair(&self) -> anyhow::Result<()> {
        let Some(pending) = self.repo.resolve(PENDING_REF)? else {
            return Ok(());
        };
        self.repo.delete_ref(PENDING_REF, Some(&pending))?;
        let head_image = self.head_record()?.map(|record| record.image);
        SOURCE_IMAGE.put(self.host, &self.app, head_image.as_deref())?;
        output::warn(format!(
            "An earlier deploy of {} was interrupted: dropped its commit {} and set source-image back to {}",
            self.app,
            short_commit(&pending),
            head_image.as_deref().unwrap_or("(none)")
        ));
        Ok(())
    }

    /// The deploy record of the branch head, when the head is an image deploy.
    pub fn head_record(&self) -> anyhow::Result<Option<DeployRecord>> {
        match self.repo.branch_head(&self.branch)? {
            Some(head) => Ok(DeployRecord::parse(&self.repo.commit_info(&head)?.message)),
            None => Ok(None),
        }
    }

    /// Steps 5 to 10 of the deploy: veto, commit, build and release, then record.
    pub fn deploy(&self, request: DeployRequest) -> anyhow::Result<()> {
        self.veto(&request)?;
        self.repo.init_if_missing(self.host, &self.app)?;
        let head = self.repo.branch_head(&self.branch)?;
        let Some(rev) = self.commit(&request, head.as_deref())? else {
            return Ok(());
        };
        self.release_and_record(&request, &rev, head.as_deref())?;
        self.finish(&request, &rev)
    }

    /// `pre-image-deploy` may refuse the deploy before anything changes.
    fn veto(&self, request: &DeployRequest) -> anyhow::Result<()> {
        trigger::fire_or(
            "pre-image-deploy",
            &[&self.app, &request.image, request.image_id.as_str()],
            |code| {
                anyhow::anyhow!(
                    "the pre-image-deploy trigger refused the deploy of {} (exit status {code}); nothing was changed",
                    request.image
                )
            },
        )
    }

    /// The commit to release on top of HEAD: a new one, HEAD itself for a forced deploy of
    /// the same tree, or None when nothing changed.
    fn commit(
        &self,
        request: &DeployRequest,
        head: Option<&str>,
    ) -> anyhow::Result<Option<String>> {
        let tree = match &request.content {
            Content::Context(context) => {
                let context = context
                    .clone()
                    .with_image(&request.image, request.image_id.as_str())?;
                self.repo
                    .write_tree(&context, &state::app_data(self.host, &self.app))?
            }
            Content::Tree(tree) => tree.clone(),
        };
        let head_tree = match head {
            Some(head) => Some(self.repo.commit_info(head)?.tree),
            None => None,
        };
        Ok(match (head, head_tree.as_deref() == Some(tree.as_str())) {
            (Some(head), true) if request.force => {
                output::info(format!(
                    "No changes detected, deploying {} again (--force)",
                    request.image
                ));
                Some(head.to_string())
            }
            (Some(_), true) => {
                output::info("No changes detected, skipping deploy");
                None
            }
            _ => {
                let record = DeployRecord {
                    image: request.image.clone(),
                    image_id: request.image_id.clone(),
                    command: request.command.to_string(),
                    repo_digest: request.repo_digest.clone(),
                };
                Some(self.repo.commit_tree(
                    &tree,
                    head,
                    &record.message(&request.subject),
                    &request.author,
                )?)
            }
        })
    }

    /// Marks REV pending with its undo registered, releases it and records it; on a failure or
    /// a signal the undo runs, so the branch and `source-image` stay as they were.
    fn release_and_record(
        &self,
        request: &DeployRequest,
        rev: &str,
        head: Option<&str>,
    ) -> anyhow::Result<()> {
        let previous_source = SOURCE_IMAGE.get(self.host, &self.app)?;
        let on_signal = {
            let held = cancel::hold();
            held.proceed()?;
            self.repo
                .update_ref(PENDING_REF, rev, None)
                .context("cannot record the pending deploy")?;
            let (host, repo, app, rev) = (
                self.host.clone(),
                self.repo.clone(),
                self.app.clone(),
                rev.to_string(),
            );
            cancel::on_cancel(move || undo(&host, &repo, &app, &rev, previous_source.as_deref()))
        };
        let released = self.release(request, rev);
        // Whether it failed on its own or because a signal stopped `receive-app`, the outcome
        // is settled under the hold: a signal waits, then finds the step undone or final.
        let held = cancel::hold();
        if let Err(err) = released.and_then(|()| self.record(&held, rev, head)) {
            on_signal.undo(&held);
            return Err(err);
        }
        on_signal.forget(&held);
        cancel::done();
        Ok(())
    }

    /// After the deploy is recorded: `deploy-source-set`, git housekeeping, the line saying so,
    /// and the removal of old deploys' images (their failures only warn).
    fn finish(&self, request: &DeployRequest, rev: &str) -> anyhow::Result<()> {
        let app = self.app.as_str();
        trigger::fire("deploy-source-set", &[app, "docker-image", &request.image]).with_context(
            || {
                format!(
                    "{app} was deployed from {}, but the deploy-source-set trigger failed",
                    request.image
                )
            },
        )?;
        if let Err(err) = self.repo.housekeep(&self.branch) {
            output::warn(format!(
                "git housekeeping of {app} failed (the deploy succeeded): {err:#}"
            ));
        }
        output::info(format!(
            "Deployed {} ({}) to {app} as commit {}",
            request.image,
            request.image_id.short(),
            short_commit(rev)
        ));
        if let Err(err) = retention::clean(self.host, app, &self.docker) {
            output::warn(format!(
                "cannot remove the images of old deploys of {app} (the deploy succeeded): {err:#}"
            ));
        }
        if let Err(err) = content::prune_with_images(self.host, app, &self.docker) {
            output::warn(format!(
                "cannot remove the kept content of old deploys of {app} (the deploy succeeded): {err:#}"
            ));
        }
        Ok(())
    }

    /// Writes `source-image`, then has Dokku build and release REV.
    fn release(&self, request: &DeployRequest, rev: &str) -> anyhow::Result<()> {
        let app = self.app.as_str();
        {
            let held = cancel::hold();
            held.proceed()?;
            SOURCE_IMAGE.set(self.host, app, &request.image)?;
        }
        self.dokku_lock.borrow_mut().release();
        trigger::fire_or("receive-app", &[app, rev], |code| {
            anyhow::anyhow!(
                "the deploy of {} to {app} failed (receive-app exited with status {code}); the app repo and source-image are left as they were",
                request.image
            )
        })
    }

    /// Records the released REV, under the hold: moves the branch to it with a
    /// compare-and-swap, points HEAD at the branch and drops the pending ref.
    fn record(
        &self,
        _held: &cancel::Critical,
        rev: &str,
        head: Option<&str>,
    ) -> anyhow::Result<()> {
        if head != Some(rev) {
            let branch_ref = format!("refs/heads/{}", self.branch);
            self.repo
                .update_ref(&branch_ref, rev, head)
                .with_context(|| {
                    format!(
                        "the {} branch of {} moved during the deploy; the deploy is not recorded",
                        self.branch, self.app
                    )
                })?;
        }
        self.repo.point_head_at(&self.branch)?;
        self.repo.delete_ref(PENDING_REF, Some(rev))
    }
}

/// Drops the pending commit and restores `source-image`, after a failure or a signal; failures
/// here are reported, not raised, so the original error reaches the user.
fn undo(host: &Host, repo: &AppRepo, app: &str, rev: &str, previous_source: Option<&str>) {
    if let Err(err) = repo.delete_ref(PENDING_REF, Some(rev)) {
        output::warn(format!("cannot drop the pending deploy ref: {err:#}"));
    }
    if let Err(err) = SOURCE_IMAGE.put(host, app, previous_source) {
        output::warn(format!("cannot restore source-image: {err:#}"));
    }
}
