//! The app's bare git repo, `$DOKKU_ROOT/APP`, driven with plumbing only: no clone, no work
//! tree, so a deploy costs the same whatever the length of the app's history.

use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::context::{BuildContext, EntryKind};
use crate::host::Host;
use crate::process::Cmd;

/// Where an image deploy waits between its commit and a successful `receive-app`.
pub const PENDING_REF: &str = "refs/image/pending";

/// The name prefix of [`AppRepo::write_tree`]'s scratch folders.
const SCRATCH_PREFIX: &str = "image-tree-";

/// The author and committer of a deploy commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    pub name: String,
    pub email: String,
}

impl Default for Author {
    fn default() -> Author {
        Author {
            name: "Dokku".to_string(),
            email: "automated@dokku.sh".to_string(),
        }
    }
}

impl Author {
    /// Empty values mean the defaults; characters git cannot store in an ident are refused.
    pub fn new(name: Option<&str>, email: Option<&str>) -> anyhow::Result<Author> {
        let default = Author::default();
        let pick = |value: Option<&str>, fallback: String, what: &str| -> anyhow::Result<String> {
            match value.filter(|v| !v.is_empty()) {
                None => Ok(fallback),
                Some(v) if v.chars().any(|c| c.is_control() || c == '<' || c == '>') => {
                    anyhow::bail!(
                        "invalid {what} {v:?}: it may not hold '<', '>' or control characters"
                    )
                }
                Some(v) => Ok(v.to_string()),
            }
        };
        Ok(Author {
            name: pick(name, default.name, "USER_NAME")?,
            email: pick(email, default.email, "USER_EMAIL")?,
        })
    }
}

/// A commit of the deploy branch, as `image:history` and repairs need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    pub id: String,
    pub tree: String,
    pub author_name: String,
    pub author_email: String,
    /// Committer date, strict ISO 8601.
    pub date: String,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct AppRepo {
    path: PathBuf,
}

impl AppRepo {
    /// The app's repo, whether or not it exists yet: reads of a missing repo find nothing, and
    /// [`AppRepo::init_if_missing`] creates it when a deploy is about to commit.
    pub fn at(host: &Host, app: &str) -> AppRepo {
        AppRepo {
            path: host.app_repo(app),
        }
    }

    /// Core's test for an app repo is its `refs` folder.
    pub fn exists(&self) -> bool {
        self.path.join("refs").is_dir()
    }

    /// Creates and initialises the repo like core does when the app folder holds none.
    pub fn init_if_missing(&self, host: &Host, app: &str) -> anyhow::Result<()> {
        if !self.exists() {
            Cmd::new("git")
                .args(["init", "-q", "--bare"])
                .arg(&self.path)
                .read()?;
            self.write_pre_receive_hook(host, app)?;
            host.chown_to_system_user(&self.path);
        }
        Ok(())
    }

    /// Opens an existing repo, or None when the app has none yet.
    pub fn open(host: &Host, app: &str) -> Option<AppRepo> {
        let path = host.app_repo(app);
        path.join("refs").is_dir().then_some(AppRepo { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write_pre_receive_hook(&self, host: &Host, app: &str) -> anyhow::Result<()> {
        let hook = self.path.join("hooks").join("pre-receive");
        fs::create_dir_all(hook.parent().expect("hook has a parent"))?;
        let script = format!(
            "#!/usr/bin/env bash\nset -e\nset -o pipefail\n\ncat | DOKKU_ROOT=\"{}\" dokku git-hook {app}\n",
            host.dokku_root.display()
        );
        fs::write(&hook, script).with_context(|| format!("cannot write {}", hook.display()))?;
        fs::set_permissions(&hook, fs::Permissions::from_mode(0o755))?;
        Ok(())
    }

    /// `git --git-dir=REPO` with housekeeping that could race with Dokku turned off.
    pub fn git(&self) -> Cmd {
        Cmd::new("git")
            .arg(format!("--git-dir={}", self.path.display()))
            .args(["-c", "gc.auto=0", "-c", "core.hooksPath=/dev/null"])
    }

    /// The commit a ref or revision names, or None when it does not exist.
    pub fn resolve(&self, revision: &str) -> anyhow::Result<Option<String>> {
        if !self.exists() {
            return Ok(None);
        }
        let cmd = self
            .git()
            .args(["rev-parse", "-q", "--verify", "--end-of-options"])
            .arg(format!("{revision}^{{commit}}"));
        let output = cmd.output()?;
        if output.status.success() {
            return Ok(Some(
                String::from_utf8_lossy(&output.stdout).trim().to_string(),
            ));
        }
        // rev-parse -q --verify exits 1 quietly for a missing ref; anything else is a failure.
        if output.status.code() == Some(1) && output.stderr.is_empty() {
            return Ok(None);
        }
        cmd.check(&output)?;
        Ok(None)
    }

    pub fn branch_head(&self, branch: &str) -> anyhow::Result<Option<String>> {
        self.resolve(&format!("refs/heads/{branch}"))
    }

    pub fn commit_info(&self, commit: &str) -> anyhow::Result<CommitInfo> {
        let text = self
            .git()
            .args([
                "show",
                "-s",
                "--format=%H%x00%T%x00%an%x00%ae%x00%cI%x00%B",
                "--end-of-options",
            ])
            .arg(commit)
            .read()?;
        parse_commit_record(&text).with_context(|| format!("cannot read commit {commit}"))
    }

    /// The content of the file at `path` in `tree`, or None when the tree has no such file.
    pub fn file_in_tree(&self, tree: &str, path: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let cmd = self
            .git()
            .args(["cat-file", "blob", "--end-of-options"])
            .arg(format!("{tree}:{path}"));
        let output = cmd.output()?;
        if output.status.success() {
            return Ok(Some(output.stdout));
        }
        let listed = self
            .git()
            .args(["ls-tree", "--name-only", "--end-of-options", tree, "--"])
            .arg(path)
            .read()?;
        if listed.is_empty() {
            return Ok(None);
        }
        cmd.check(&output)?;
        Ok(None)
    }

    /// The commits of a branch, newest first, following first parents only.
    pub fn history(&self, branch: &str) -> anyhow::Result<Vec<CommitInfo>> {
        if self.branch_head(branch)?.is_none() {
            return Ok(Vec::new());
        }
        let text = self
            .git()
            .args([
                "log",
                "--first-parent",
                "-z",
                "--format=%H%x00%T%x00%an%x00%ae%x00%cI%x00%B%x00",
            ])
            .arg(format!("refs/heads/{branch}"))
            .arg("--")
            .read()?;
        let fields: Vec<&str> = text.split('\0').collect();
        let mut commits = Vec::new();
        // Each record is six fields and a terminator; -z adds one more NUL between records.
        let mut rest: &[&str] = &fields;
        while rest.len() >= 6 {
            let record = rest[..6].join("\0");
            commits.push(parse_commit_record(&record)?);
            rest = &rest[6..];
            while rest.first().is_some_and(|f| f.is_empty()) {
                rest = &rest[1..];
            }
        }
        Ok(commits)
    }

    /// Writes the context's files as git objects and returns the tree, without touching any ref.
    /// Its scratch files go to a fresh folder in `scratch_parent` (the app's plugin data dir, so
    /// that a deploy killed here leaves nothing in the system temp dir, and the next deploy
    /// removes what it left: see [`remove_stale_scratch`]).
    pub fn write_tree(
        &self,
        context: &BuildContext,
        scratch_parent: &Path,
    ) -> anyhow::Result<String> {
        let scratch = tempfile::Builder::new()
            .prefix(SCRATCH_PREFIX)
            .tempdir_in(scratch_parent)
            .with_context(|| {
                format!(
                    "cannot create a scratch folder in {}",
                    scratch_parent.display()
                )
            })?;
        // Symlink targets and the generated Dockerfile become files so one hash-object
        // process hashes everything.
        let mut paths = Vec::with_capacity(context.entries.len());
        for (index, entry) in context.entries.iter().enumerate() {
            match &entry.kind {
                EntryKind::File { source, .. } => paths.push(source.clone()),
                EntryKind::Symlink { target } => {
                    let path = scratch.path().join(format!("link-{index}"));
                    write_scratch(&path, target.as_os_str().as_bytes())?;
                    paths.push(path);
                }
                EntryKind::Generated { content } => {
                    let path = scratch.path().join(format!("generated-{index}"));
                    write_scratch(&path, content)?;
                    paths.push(path);
                }
            }
        }
        let mut stdin = Vec::new();
        for path in &paths {
            stdin.extend_from_slice(path.as_os_str().as_bytes());
            stdin.push(b'\n');
        }
        let hashes = self
            .git()
            .args(["hash-object", "-w", "--no-filters", "--stdin-paths"])
            .stdin_bytes(stdin)
            .read()?;
        let hashes: Vec<&str> = hashes.lines().collect();
        anyhow::ensure!(
            hashes.len() == context.entries.len(),
            "git hash-object returned {} ids for {} files",
            hashes.len(),
            context.entries.len()
        );
        let mut index_info = Vec::new();
        for (entry, hash) in context.entries.iter().zip(hashes) {
            write!(index_info, "{} {hash}\t", entry.mode())?;
            index_info.extend_from_slice(entry.path.as_bytes());
            index_info.push(0);
        }
        let index = scratch.path().join("index");
        self.git()
            .env("GIT_INDEX_FILE", &index)
            .args(["update-index", "-z", "--add", "--index-info"])
            .stdin_bytes(index_info)
            .read()?;
        self.git()
            .env("GIT_INDEX_FILE", &index)
            .arg("write-tree")
            .read()
    }

    pub fn commit_tree(
        &self,
        tree: &str,
        parent: Option<&str>,
        message: &str,
        author: &Author,
    ) -> anyhow::Result<String> {
        let mut cmd = self
            .git()
            .env("GIT_AUTHOR_NAME", &author.name)
            .env("GIT_AUTHOR_EMAIL", &author.email)
            .env("GIT_COMMITTER_NAME", &author.name)
            .env("GIT_COMMITTER_EMAIL", &author.email)
            .args(["commit-tree", "-F", "-", tree]);
        if let Some(parent) = parent {
            cmd = cmd.args(["-p", parent]);
        }
        cmd.stdin_bytes(message).read()
    }

    /// Moves a ref from `old` (None: it must not exist) to `new`, atomically, or fails when
    /// somebody else moved it first.
    pub fn update_ref(&self, name: &str, new: &str, old: Option<&str>) -> anyhow::Result<()> {
        self.git()
            .args(["update-ref", "--no-deref", name, new, old.unwrap_or("")])
            .read()
            .map(drop)
    }

    /// Deletes a ref, only when it still holds `old` (when given).
    pub fn delete_ref(&self, name: &str, old: Option<&str>) -> anyhow::Result<()> {
        let mut cmd = self.git().args(["update-ref", "--no-deref", "-d", name]);
        if let Some(old) = old {
            cmd = cmd.arg(old);
        }
        cmd.read().map(drop)
    }

    pub fn point_head_at(&self, branch: &str) -> anyhow::Result<()> {
        self.git()
            .args(["symbolic-ref", "HEAD"])
            .arg(format!("refs/heads/{branch}"))
            .read()
            .map(drop)
    }

    /// Git's housekeeping, which plumbing never triggers, without packing refs: Dokku reads the
    /// deploy branch as a loose file. A branch packed by someone else is written back loose.
    pub fn housekeep(&self, branch: &str) -> anyhow::Result<()> {
        Cmd::new("git")
            .arg(format!("--git-dir={}", self.path.display()))
            .args([
                "-c",
                "gc.autoDetach=false",
                "-c",
                "gc.packRefs=false",
                "gc",
                "--auto",
                "--quiet",
            ])
            .read()?;
        let loose = self.path.join("refs").join("heads").join(branch);
        if !loose.is_file() {
            if let Some(head) = self.branch_head(branch)? {
                let dir = loose.parent().expect("ref has a parent");
                fs::create_dir_all(dir)?;
                let mut file = tempfile::NamedTempFile::new_in(dir)?;
                writeln!(file, "{head}")?;
                file.persist(&loose)
                    .with_context(|| format!("cannot write {}", loose.display()))?;
            }
        }
        Ok(())
    }
}

fn write_scratch(path: &Path, content: &[u8]) -> anyhow::Result<()> {
    fs::write(path, content).with_context(|| format!("cannot write {}", path.display()))
}

/// Removes the scratch folders of [`AppRepo::write_tree`] left in `dir` by deploys that were
/// killed. Call it only while holding the app's deploy lock, so none of them is in use.
pub fn remove_stale_scratch(dir: &Path) -> anyhow::Result<()> {
    let listing = match fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", dir.display())),
    };
    for item in listing {
        let item = item.with_context(|| format!("cannot read {}", dir.display()))?;
        if item
            .file_name()
            .as_bytes()
            .starts_with(SCRATCH_PREFIX.as_bytes())
        {
            crate::host::remove_if_present(&item.path())?;
        }
    }
    Ok(())
}

fn parse_commit_record(text: &str) -> anyhow::Result<CommitInfo> {
    let mut fields = text.splitn(6, '\0');
    let mut next = |what: &str| {
        fields
            .next()
            .map(str::to_string)
            .with_context(|| format!("git output lacks the {what}"))
    };
    Ok(CommitInfo {
        id: next("commit id")?,
        tree: next("tree")?,
        author_name: next("author name")?,
        author_email: next("author email")?,
        date: next("date")?,
        message: next("message")?.trim_end().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn author_defaults_and_validation() {
        assert_eq!(Author::new(None, None).unwrap(), Author::default());
        assert_eq!(Author::new(Some(""), Some("")).unwrap(), Author::default());
        let jane = Author::new(Some("Jane Doe"), Some("jane@example.com")).unwrap();
        assert_eq!(jane.name, "Jane Doe");
        assert_eq!(jane.email, "jane@example.com");
        assert_eq!(
            Author::new(Some("Jane"), None).unwrap().email,
            "automated@dokku.sh"
        );
        assert!(Author::new(Some("a\nb"), None).is_err());
        assert!(Author::new(None, Some("<x>")).is_err());
    }

    #[test]
    fn write_tree_scratch_lives_in_the_given_folder_and_stale_ones_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let repo = AppRepo {
            path: dir.path().join("repo"),
        };
        Cmd::new("git")
            .args(["init", "-q", "--bare"])
            .arg(repo.path())
            .read()
            .unwrap();
        let data = dir.path().join("data");
        fs::create_dir_all(&data).unwrap();
        fs::write(data.join("deploy.lock"), "").unwrap();
        let context = BuildContext {
            entries: vec![crate::context::Entry {
                path: "link".into(),
                kind: EntryKind::Symlink {
                    target: "/outside".into(),
                },
            }],
        }
        .with_image("app:1", "sha256:1")
        .unwrap();
        let tree = repo.write_tree(&context, &data).unwrap();
        let listing = repo.git().args(["ls-tree", &tree]).read().unwrap();
        assert!(listing.contains("120000 blob"), "{listing}");
        let left: Vec<_> = fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["deploy.lock"]);

        // What a killed deploy leaves behind goes; nothing else does.
        fs::create_dir_all(data.join("image-tree-Ab12Cd")).unwrap();
        fs::write(data.join("image-tree-Ab12Cd/generated-0"), "FROM x").unwrap();
        remove_stale_scratch(&data).unwrap();
        let left: Vec<_> = fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["deploy.lock"]);
        remove_stale_scratch(&dir.path().join("missing")).unwrap();

        // A full disk is an error that says what could not be written.
        let err = repo
            .write_tree(&context, &dir.path().join("missing"))
            .unwrap_err();
        assert!(
            err.to_string().contains("cannot create a scratch folder"),
            "{err}"
        );
    }

    #[test]
    fn commit_record_parses_all_fields() {
        let info = parse_commit_record(
            "c1\0t1\0Jane\0j@x\0\x32026-01-01T00:00:00+00:00\0Subject\n\nBody\n",
        )
        .unwrap();
        assert_eq!(info.id, "c1");
        assert_eq!(info.tree, "t1");
        assert_eq!(info.author_name, "Jane");
        assert_eq!(info.message, "Subject\n\nBody");
        assert!(parse_commit_record("c1\0t1").is_err());
    }
}
