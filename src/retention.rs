//! A disk that stays bounded (docs/retention.md): after a successful deploy, the source images
//! of the app's older deploys that this plugin brought onto the host (pulled or loaded) are
//! removed, keeping the live deploy's and those of the last `keep-images` image deploys before
//! it. An image is never removed while another app's retained deploys, a deploy under way (or
//! killed) of any app, a container, or a tag outside the plugin's deploys still use it.

use std::collections::HashSet;
use std::fs;

use anyhow::Context;

use crate::digest::ImageId;
use crate::docker::{Docker, ImageInfo};
use crate::host::{self, Host};
use crate::layers;
use crate::output;
use crate::record::{self, Deploy};
use crate::reference::Reference;
use crate::repo::AppRepo;
use crate::state::{self, GLOBAL, KEEP_IMAGES};

/// Image deploys kept besides the live one, when nothing is set.
pub const DEFAULT_KEEP: usize = 5;

/// How many earlier image deploys keep their source image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// `0`: nothing is ever removed.
    All,
    /// The live deploy and this many image deploys before it.
    Last(usize),
}

impl Keep {
    /// A setting's value: a whole number, `0` meaning keep everything.
    pub fn parse(text: &str) -> anyhow::Result<Keep> {
        match text.parse::<usize>() {
            Ok(0) if text.bytes().all(|b| b.is_ascii_digit()) => Ok(Keep::All),
            Ok(n) if text.bytes().all(|b| b.is_ascii_digit()) => Ok(Keep::Last(n)),
            _ => anyhow::bail!(
                "{} takes a whole number of image deploys (0 keeps every image), not {text:?}",
                KEEP_IMAGES.key
            ),
        }
    }
}

/// An app's setting, the global one, and what applies (the app's, else the global, else 5).
pub fn keep_images(
    host: &Host,
    app: &str,
) -> anyhow::Result<(Option<String>, Option<String>, Keep)> {
    let own = KEEP_IMAGES.get(host, app)?;
    let global = KEEP_IMAGES.get(host, GLOBAL)?;
    let computed = match own.as_deref().or(global.as_deref()) {
        Some(text) => Keep::parse(text)
            .with_context(|| format!("the {} setting of {app} is broken", KEEP_IMAGES.key))?,
        None => Keep::Last(DEFAULT_KEEP),
    };
    Ok((own, global, computed))
}

/// Notes that the plugin pulled or loaded this image: only such images are ever removed.
pub fn note_brought(host: &Host, id: &ImageId) -> anyhow::Result<()> {
    let dir = state::brought_dir(host);
    host::create_dirs(&dir)?;
    let path = dir.join(id.hex());
    fs::write(&path, b"").with_context(|| format!("cannot write {}", path.display()))?;
    host.chown_to_system_user(&path);
    Ok(())
}

fn was_brought(host: &Host, id: &ImageId) -> bool {
    state::brought_dir(host).join(id.hex()).is_file()
}

/// The image is gone: so are its notes (the containerd store's blob note too, which would
/// otherwise wait for the next `image:layers` to be pruned).
fn forget_brought(host: &Host, id: &ImageId) {
    let _ = host::remove_if_present(&state::brought_dir(host).join(id.hex()));
    layers::forget_blobs(host, id);
}

/// The source images a deploy history keeps: those of the first `keep + 1` image deploys,
/// newest first (the live one and `keep` before it), each once.
pub fn retained(deploys: &[Deploy], keep: Keep) -> Vec<ImageId> {
    let limit = match keep {
        Keep::All => usize::MAX,
        Keep::Last(n) => n.saturating_add(1),
    };
    let mut ids: Vec<ImageId> = Vec::new();
    for record in deploys.iter().filter_map(|d| d.record.as_ref()).take(limit) {
        if !ids.contains(&record.image_id) {
            ids.push(record.image_id.clone());
        }
    }
    ids
}

/// What every app with an image deploy keeps (its retained deploys, and the one it has
/// pending: `receive-app` builds from that image), and the references the plugin deployed,
/// read from every app's repo (whatever the current user may see: no image another app needs
/// may go).
struct HostWide {
    retained: HashSet<ImageId>,
    references: HashSet<String>,
}

fn host_wide(host: &Host) -> anyhow::Result<HostWide> {
    let mut wide = HostWide {
        retained: HashSet::new(),
        references: HashSet::new(),
    };
    for app in host.every_app()? {
        let Some(repo) = AppRepo::open(host, &app) else {
            continue;
        };
        let deploys = record::deploys(&repo, &state::deploy_branch(host, &app)?)?;
        let keep = keep_images(host, &app).map_or(Keep::All, |(_, _, keep)| keep);
        wide.retained.extend(retained(&deploys, keep));
        wide.retained
            .extend(record::pending(&repo)?.map(|record| record.image_id));
        for record in deploys.iter().filter_map(|d| d.record.as_ref()) {
            if let Ok(reference) = Reference::parse(&record.image) {
                wide.references.insert(reference.normalized());
            }
        }
    }
    Ok(wide)
}

/// Why an image stays, or None when it may go.
fn keeps(docker: &Docker, info: &ImageInfo, wide: &HostWide) -> anyhow::Result<Option<String>> {
    if wide.retained.contains(&info.id) {
        return Ok(Some("another deploy keeps it".into()));
    }
    let foreign_tag = info.repo_tags.iter().find(|tag| {
        Reference::parse(tag).map_or(true, |tag| !wide.references.contains(&tag.normalized()))
    });
    if let Some(tag) = foreign_tag {
        return Ok(Some(format!("the tag {tag} is not the plugin's")));
    }
    if docker.has_containers(&info.id)? {
        return Ok(Some("a container uses it".into()));
    }
    Ok(None)
}

/// Removes the source images of APP's deploys that fell out of its retention; reports what it
/// removed. Failures are the caller's to report: the deploy has succeeded already.
pub fn clean(host: &Host, app: &str, docker: &Docker) -> anyhow::Result<()> {
    let (_, _, keep) = keep_images(host, app)?;
    if keep == Keep::All {
        return Ok(());
    }
    let deploys = record::app_deploys(host, app)?;
    let kept = retained(&deploys, keep);
    let mut candidates: Vec<ImageId> = Vec::new();
    for record in deploys.iter().filter_map(|d| d.record.as_ref()) {
        let id = &record.image_id;
        if !kept.contains(id) && !candidates.contains(id) && was_brought(host, id) {
            candidates.push(id.clone());
        }
    }
    if candidates.is_empty() {
        return Ok(());
    }
    let wide = host_wide(host)?;
    let mut removed = 0;
    for id in &candidates {
        let Some(info) = docker.inspect(id.as_str())? else {
            forget_brought(host, id);
            continue;
        };
        if let Some(reason) = keeps(docker, &info, &wide)? {
            if output::tracing() {
                output::warn(format!("keeping image {}: {reason}", id.short()));
            }
            continue;
        }
        match remove(docker, &info) {
            Ok(()) => {
                forget_brought(host, id);
                removed += 1;
            }
            Err(err) => output::warn(format!(
                "cannot remove image {} of an old deploy of {app}: {err:#}",
                id.short()
            )),
        }
    }
    if removed > 0 {
        let Keep::Last(n) = keep else {
            unreachable!("keep-images 0 removes nothing")
        };
        output::info(format!(
            "Removed {removed} source image{} of {app}'s deploys older than the last {} ({KEEP_IMAGES} {n})",
            if removed == 1 { "" } else { "s" },
            n + 1
        ));
    }
    Ok(())
}

/// Removes an image's tags, then the image itself when no tag removal took it along.
fn remove(docker: &Docker, info: &ImageInfo) -> anyhow::Result<()> {
    for tag in &info.repo_tags {
        docker.remove(tag)?;
    }
    if docker.image_id(info.id.as_str())?.is_some() {
        docker.remove(info.id.as_str())?;
    }
    Ok(())
}

/// What the retained images of APP take on disk, as docker counts each image.
pub fn retained_size(host: &Host, app: &str, docker: &Docker) -> anyhow::Result<u64> {
    let (_, _, keep) = keep_images(host, app)?;
    let mut total = 0;
    for id in retained(&record::app_deploys(host, app)?, keep) {
        if let Some(info) = docker.inspect(id.as_str())? {
            total += info.size;
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::DeployRecord;
    use crate::repo::{Author, CommitInfo, PENDING_REF};

    fn deploy(n: u32, image: Option<u32>) -> Deploy {
        Deploy {
            commit: CommitInfo {
                id: format!("{n:040x}"),
                tree: format!("tree-{n}"),
                author_name: "Dokku".into(),
                author_email: "automated@dokku.sh".into(),
                date: "2026-01-01T00:00:00+00:00".into(),
                message: String::new(),
            },
            record: image.map(|id| DeployRecord {
                image: format!("app:{id}"),
                image_id: ImageId::from_hex(&format!("{id:064x}")).unwrap(),
                command: "image:from".into(),
                repo_digest: None,
            }),
        }
    }

    fn ids(numbers: &[u32]) -> Vec<ImageId> {
        numbers
            .iter()
            .map(|n| ImageId::from_hex(&format!("{n:064x}")).unwrap())
            .collect()
    }

    #[test]
    fn the_image_of_a_pending_deploy_of_any_app_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::under(dir.path());
        let id = ids(&[7]).remove(0);
        let repo = AppRepo::at(&host, "other");
        repo.init_if_missing(&host, "other").unwrap();
        assert!(!host_wide(&host).unwrap().retained.contains(&id));
        // A deploy of `other` that has committed but not yet ended (or was killed).
        let tree = repo.git().arg("mktree").stdin_bytes("").read().unwrap();
        let record = deploy(1, Some(7)).record.unwrap();
        let commit = repo
            .commit_tree(&tree, None, &record.message("Deploy"), &Author::default())
            .unwrap();
        repo.update_ref(PENDING_REF, &commit, None).unwrap();
        let wide = host_wide(&host).unwrap();
        assert!(wide.retained.contains(&id));
    }

    #[test]
    fn settings() {
        assert_eq!(Keep::parse("0").unwrap(), Keep::All);
        assert_eq!(Keep::parse("3").unwrap(), Keep::Last(3));
        for bad in ["-1", "three", "", "+3", " 3"] {
            let err = Keep::parse(bad).unwrap_err().to_string();
            assert!(
                err.starts_with("keep-images takes a whole number"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn the_live_deploy_and_the_last_n_before_it_are_kept() {
        let history: Vec<Deploy> = (1..=12).rev().map(|n| deploy(n, Some(n))).collect();
        assert_eq!(retained(&history, Keep::Last(3)), ids(&[12, 11, 10, 9]));
        assert_eq!(retained(&history, Keep::Last(0)), ids(&[12]));
        assert_eq!(retained(&history, Keep::All).len(), 12);
    }

    #[test]
    fn pushes_are_skipped_and_a_redeployed_image_counts_once() {
        let history = vec![
            deploy(6, Some(2)),
            deploy(5, None),
            deploy(4, Some(3)),
            deploy(3, Some(2)),
            deploy(2, Some(1)),
            deploy(1, Some(0)),
        ];
        assert_eq!(retained(&history, Keep::Last(2)), ids(&[2, 3]));
        assert_eq!(retained(&history, Keep::Last(3)), ids(&[2, 3, 1]));
    }
}
