//! What "same image" means after a load, on each image store (docs/engines.md):
//!
//! - classic store: the image ID is the config digest, which every archive layout names;
//! - containerd store: the image ID is the digest of the manifest or index the archive's
//!   `index.json` names for the image; an archive without one (a legacy `docker save` of
//!   Engine 24 or older) makes the engine write a manifest of its own, so the image is
//!   recognised by what its config says: its layers, platform and creation time.
//!
//! Nothing else passes: a local image that merely has IMAGE's name is never taken for the
//! archive's.
//!
//! Before the import, [`expected_id`] says which ID the engine will give the image, where that
//! can be known, so that a load that leaves IMAGE where it is moves nothing.

use crate::archive::{ArchivedImage, Contents, Format};
use crate::digest::ImageId;
use crate::docker::{ImageInfo, Store};

/// The ID the engine will give the archive's image, when it can be told before the import.
/// Classic store: the config's digest, when the archive holds `manifest.json` (what that store
/// loads) and the config's bytes hash to it (the engine hashes the bytes, whatever the file is
/// named). Containerd store: the digest of the image's `index.json` descriptor, when the archive
/// has an `oci-layout` (without one the engine writes a manifest of its own).
pub fn expected_id(contents: &Contents, image: &ArchivedImage, store: Store) -> Option<ImageId> {
    match store {
        Store::Classic => (contents.format == Format::DockerSave
            && image
                .facts
                .as_ref()
                .is_some_and(|facts| facts.content == image.config))
        .then(|| image.config.clone()),
        Store::Containerd => image
            .targets
            .first()
            .filter(|_| contents.oci_layout)
            .cloned(),
    }
}

/// Whether the engine's image is the archive's. `store` is asked only when the answer
/// depends on it.
pub fn is_archived(
    loaded: &ImageInfo,
    archived: &ArchivedImage,
    store: impl FnOnce() -> anyhow::Result<Store>,
) -> anyhow::Result<bool> {
    if loaded.id == archived.config || archived.targets.contains(&loaded.id) {
        return Ok(true);
    }
    let Some(facts) = archived
        .facts
        .as_ref()
        .filter(|_| archived.targets.is_empty())
    else {
        return Ok(false);
    };
    Ok(store()? == Store::Containerd
        && loaded.diff_ids == facts.diff_ids
        && loaded.platform == facts.platform
        && loaded.created == facts.created)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::ImageConfig;
    use crate::digest::Digest;

    fn digest(n: u32) -> Digest {
        Digest::from_hex(&format!("{n:064x}")).unwrap()
    }

    fn archived(targets: Vec<Digest>) -> ArchivedImage {
        ArchivedImage {
            config: digest(1),
            tags: vec!["app:1".into()],
            targets,
            facts: Some(ImageConfig {
                platform: "linux/amd64".into(),
                created: Some("2026-12-01T22:41:48.641642843Z".into()),
                diff_ids: vec![digest(10), digest(11)],
                content: digest(1),
            }),
            blobs: Vec::new(),
            left_out: Default::default(),
        }
    }

    fn loaded(id: Digest) -> ImageInfo {
        ImageInfo {
            id,
            repo_tags: vec!["app:1".into()],
            repo_digests: Vec::new(),
            size: 1,
            platform: "linux/amd64".into(),
            created: Some("2026-12-01T22:41:48.641642843Z".into()),
            diff_ids: vec![digest(10), digest(11)],
        }
    }

    fn contents(format: Format, oci_layout: bool) -> Contents {
        Contents {
            images: Vec::new(),
            compression: crate::archive::Compression::None,
            format,
            oci_layout,
            recipes: Vec::new(),
        }
    }

    #[test]
    fn the_id_a_load_gives_is_known_before_it_where_the_archive_says() {
        let saved = contents(Format::DockerSave, true);
        let mut image = archived(vec![digest(3), digest(4)]);
        // Classic: the config's digest, once its bytes are known to hash to it.
        assert_eq!(expected_id(&saved, &image, Store::Classic), Some(digest(1)));
        // Containerd, with an oci-layout: the index.json descriptor's digest.
        assert_eq!(
            expected_id(&saved, &image, Store::Containerd),
            Some(digest(3))
        );
        let no_layout = contents(Format::DockerSave, false);
        assert_eq!(expected_id(&no_layout, &image, Store::Containerd), None);
        assert_eq!(
            expected_id(&contents(Format::OciLayout, true), &image, Store::Classic),
            None
        );
        // A config whose bytes are not what its name says, or which was not read.
        image.facts.as_mut().unwrap().content = digest(2);
        assert_eq!(expected_id(&saved, &image, Store::Classic), None);
        image.facts = None;
        assert_eq!(expected_id(&saved, &image, Store::Classic), None);
        assert_eq!(
            expected_id(&saved, &archived(vec![]), Store::Containerd),
            None
        );
    }

    fn never() -> anyhow::Result<Store> {
        panic!("the store was asked though the IDs decide")
    }

    #[test]
    fn the_config_digest_or_an_index_target_is_the_image() {
        assert!(is_archived(&loaded(digest(1)), &archived(vec![]), never).unwrap());
        let targets = vec![digest(3), digest(4)];
        assert!(is_archived(&loaded(digest(3)), &archived(targets.clone()), never).unwrap());
        assert!(is_archived(&loaded(digest(4)), &archived(targets), never).unwrap());
    }

    #[test]
    fn with_an_index_entry_nothing_else_passes() {
        let other = loaded(digest(9));
        assert!(!is_archived(&other, &archived(vec![digest(3)]), never).unwrap());
    }

    #[test]
    fn an_engine_made_manifest_passes_by_the_config_facts_on_containerd_only() {
        let made = loaded(digest(9));
        let containerd = || Ok(Store::Containerd);
        assert!(is_archived(&made, &archived(vec![]), containerd).unwrap());
        assert!(!is_archived(&made, &archived(vec![]), || Ok(Store::Classic)).unwrap());
        let mut fewer_layers = loaded(digest(9));
        fewer_layers.diff_ids.pop();
        let mut foreign = loaded(digest(9));
        foreign.platform = "linux/arm64".into();
        let mut undated = loaded(digest(9));
        undated.created = None;
        for other in [fewer_layers, foreign, undated] {
            assert!(
                !is_archived(&other, &archived(vec![]), containerd).unwrap(),
                "{other:?}"
            );
        }
        let mut unread = archived(vec![]);
        unread.facts = None;
        assert!(!is_archived(&made, &unread, containerd).unwrap());
    }
}
