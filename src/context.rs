//! The build context of a deploy: the files of `--build-dir` (if any) and a Dockerfile that ends
//! with `FROM IMAGE` and the labels Dokku and this plugin read back.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The label Dokku's image labeler reads to retag the built image with the source reference.
pub const ALTERNATE_TAGS_LABEL: &str = "com.dokku.docker-image-labeler/alternate-tags";
/// The label that makes "same tag, new content" a change of the repo's tree.
pub const SOURCE_ID_LABEL: &str = "com.dokku.image-source-id";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    File { source: PathBuf, executable: bool },
    Symlink { target: PathBuf },
    Generated { content: Vec<u8> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the repo, `/`-separated.
    pub path: String,
    pub kind: EntryKind,
}

impl Entry {
    /// The git file mode.
    pub fn mode(&self) -> &'static str {
        match self.kind {
            EntryKind::File {
                executable: true, ..
            } => "100755",
            EntryKind::Symlink { .. } => "120000",
            _ => "100644",
        }
    }
}

/// Everything a deploy commits, sorted by path.
#[derive(Debug, Clone, Default)]
pub struct BuildContext {
    pub entries: Vec<Entry>,
}

impl BuildContext {
    /// Reads `--build-dir` (checked before any side effect): every file but a `.git` folder;
    /// symlinks as symlinks, never followed; `.gitignore` has no say. A folder that resolves
    /// (symlinks followed) inside one of the `private` folders, or holds one, is refused: it
    /// would copy other apps' or the host's private files into the deploy.
    pub fn from_build_dir(dir: &Path, private: &[PathBuf]) -> anyhow::Result<BuildContext> {
        anyhow::ensure!(
            !dir.as_os_str().as_bytes().contains(&b'\n'),
            "--build-dir {dir:?} holds a newline"
        );
        let meta = fs::metadata(dir).with_context(|| format!("--build-dir {}", dir.display()))?;
        anyhow::ensure!(
            meta.is_dir(),
            "--build-dir {} is not a directory",
            dir.display()
        );
        // What is checked is what is read: the resolved path, not DIR again.
        let real =
            fs::canonicalize(dir).with_context(|| format!("--build-dir {}", dir.display()))?;
        refuse_private(dir, &real, private)?;
        fs::read_dir(&real)
            .with_context(|| format!("--build-dir {} cannot be read", dir.display()))?;
        let mut context = BuildContext::default();
        walk(&real, "", &mut context.entries)?;
        context.entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(context)
    }

    /// Appends the `FROM` and label lines to the context's Dockerfile, creating it if absent.
    pub fn with_image(mut self, image: &str, image_id: &str) -> anyhow::Result<BuildContext> {
        let mut dockerfile = Vec::new();
        if let Some(position) = self.entries.iter().position(|e| e.path == "Dockerfile") {
            let entry = self.entries.remove(position);
            match entry.kind {
                EntryKind::File { source, .. } => {
                    dockerfile = fs::read(&source)
                        .with_context(|| format!("cannot read {}", source.display()))?;
                }
                _ => anyhow::bail!("the Dockerfile in --build-dir must be a regular file"),
            }
            if !dockerfile.is_empty() && !dockerfile.ends_with(b"\n") {
                dockerfile.push(b'\n');
            }
        }
        dockerfile.extend_from_slice(dockerfile_lines(image, image_id).as_bytes());
        self.entries.push(Entry {
            path: "Dockerfile".to_string(),
            kind: EntryKind::Generated {
                content: dockerfile,
            },
        });
        self.entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(self)
    }
}

/// Fails when the resolved build dir `real` lies inside a private folder, or holds one.
fn refuse_private(dir: &Path, real: &Path, private: &[PathBuf]) -> anyhow::Result<()> {
    for root in private {
        let root = fs::canonicalize(root).unwrap_or_else(|_| root.clone());
        let relation = if real.starts_with(&root) {
            "inside"
        } else if root.starts_with(real) {
            "which holds"
        } else {
            continue;
        };
        anyhow::bail!(
            "--build-dir {} is refused: it resolves to {}, {relation} {}, where the host keeps its apps' and its own private files",
            dir.display(),
            real.display(),
            root.display()
        );
    }
    Ok(())
}

/// The lines appended to the Dockerfile. The alternate-tags value is escaped as Dokku writes
/// it (`[\"IMAGE\"]`), so Docker's LABEL parser reads the JSON array `["IMAGE"]`.
pub fn dockerfile_lines(image: &str, image_id: &str) -> String {
    format!(
        "FROM {image}\nLABEL {ALTERNATE_TAGS_LABEL}=[\\\"{image}\\\"]\nLABEL {SOURCE_ID_LABEL}={image_id}\n"
    )
}

fn walk(dir: &Path, prefix: &str, entries: &mut Vec<Entry>) -> anyhow::Result<()> {
    let listing = fs::read_dir(dir)
        .with_context(|| format!("cannot read build-dir folder {}", dir.display()))?;
    for item in listing {
        let item =
            item.with_context(|| format!("cannot read build-dir folder {}", dir.display()))?;
        let name = item.file_name();
        if name == OsStr::new(".git") {
            continue;
        }
        let name = name
            .to_str()
            .with_context(|| format!("build-dir file name {:?} is not UTF-8", item.path()))?;
        anyhow::ensure!(
            !name.contains('\n'),
            "build-dir file name {:?} holds a newline, which this plugin cannot store",
            item.path()
        );
        let path = item.path();
        let repo_path = format!("{prefix}{name}");
        let meta = fs::symlink_metadata(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let file_type = meta.file_type();
        if file_type.is_symlink() {
            let target = fs::read_link(&path)
                .with_context(|| format!("cannot read symlink {}", path.display()))?;
            entries.push(Entry {
                path: repo_path,
                kind: EntryKind::Symlink { target },
            });
        } else if file_type.is_dir() {
            walk(&path, &format!("{repo_path}/"), entries)?;
        } else if file_type.is_file() {
            // Opening now turns an unreadable file into a clear error before anything changes.
            fs::File::open(&path).with_context(|| format!("cannot read {}", path.display()))?;
            entries.push(Entry {
                path: repo_path,
                kind: EntryKind::File {
                    source: path,
                    executable: meta.permissions().mode() & 0o111 != 0,
                },
            });
        } else {
            anyhow::bail!(
                "{} is not a regular file, folder or symlink; a build dir cannot hold it",
                path.display()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn dockerfile_lines_match_dokku() {
        assert_eq!(
            dockerfile_lines("repo/app:1", "sha256:abc"),
            "FROM repo/app:1\nLABEL com.dokku.docker-image-labeler/alternate-tags=[\\\"repo/app:1\\\"]\nLABEL com.dokku.image-source-id=sha256:abc\n"
        );
    }

    #[test]
    fn no_build_dir_means_only_a_dockerfile() {
        let context = BuildContext::default()
            .with_image("app", "sha256:1")
            .unwrap();
        assert_eq!(context.entries.len(), 1);
        assert_eq!(context.entries[0].path, "Dockerfile");
        assert_eq!(context.entries[0].mode(), "100644");
    }

    #[test]
    fn build_dir_keeps_modes_symlinks_dotfiles_and_skips_git() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join(".env"), "x").unwrap();
        fs::write(root.join("Dockerfile"), "ARG X=1").unwrap();
        fs::create_dir_all(root.join("sub/deeper")).unwrap();
        fs::write(root.join("sub/deeper/run.sh"), "#!/bin/sh").unwrap();
        fs::set_permissions(
            root.join("sub/deeper/run.sh"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        symlink("/etc/passwd", root.join("outside")).unwrap();
        fs::create_dir_all(root.join(".git/objects")).unwrap();
        fs::write(root.join(".git/HEAD"), "ref").unwrap();
        fs::write(root.join(".gitignore"), ".env\n").unwrap();

        let context = BuildContext::from_build_dir(root, &[])
            .unwrap()
            .with_image("app:1", "sha256:1")
            .unwrap();
        let paths: Vec<&str> = context.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                ".env",
                ".gitignore",
                "Dockerfile",
                "outside",
                "sub/deeper/run.sh"
            ]
        );
        let find = |p: &str| context.entries.iter().find(|e| e.path == p).unwrap();
        assert_eq!(find("sub/deeper/run.sh").mode(), "100755");
        assert_eq!(find("outside").mode(), "120000");
        match &find("Dockerfile").kind {
            EntryKind::Generated { content } => {
                let text = String::from_utf8(content.clone()).unwrap();
                assert!(text.starts_with("ARG X=1\nFROM app:1\n"), "{text}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_build_dir_in_or_around_a_private_folder_is_refused_whatever_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("home/dokku");
        fs::create_dir_all(private.join("victim/refs")).unwrap();
        fs::create_dir_all(dir.path().join("mine")).unwrap();
        symlink(private.join("victim"), dir.path().join("mine/link")).unwrap();
        let roots = [private.clone()];
        for (given, relation) in [
            (private.join("victim"), "inside"),
            (dir.path().join("mine/link"), "inside"),
            (dir.path().join("mine/../home/dokku/victim/refs"), "inside"),
            (dir.path().join("home"), "which holds"),
        ] {
            let err = BuildContext::from_build_dir(&given, &roots)
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("--build-dir {} is refused: ", given.display()))
                    && err.contains(&format!(", {relation} {}, ", private.display())),
                "{err}"
            );
        }
        assert!(BuildContext::from_build_dir(&dir.path().join("mine"), &roots).is_ok());
    }

    #[test]
    fn build_dir_that_is_a_file_or_missing_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, "x").unwrap();
        let err = BuildContext::from_build_dir(&file, &[]).unwrap_err();
        assert!(err.to_string().contains("is not a directory"), "{err}");
        assert!(BuildContext::from_build_dir(&dir.path().join("missing"), &[]).is_err());
    }
}
