use super::*;
use crate::digest::chain_ids;

fn digest(n: u8) -> Digest {
    Digest::of(&[n])
}

/// A pushed image: an index naming an image manifest for linux/amd64 (config 9, layers 1 and
/// 2, blobs 11 and 12) and an attestation manifest.
fn delivered() -> (Delivered, Digest) {
    let manifest = serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"digest": digest(9).to_string(), "size": 90},
        "layers": [
            {"digest": digest(11).to_string(), "size": 1000},
            {"digest": digest(12).to_string(), "size": 2000},
        ],
    })
    .to_string()
    .into_bytes();
    let attestation = br#"{"config":{"digest":"sha256:0"},"layers":[]}"#.to_vec();
    let index = serde_json::json!({
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"digest": Digest::of(&attestation).to_string(), "size": 1,
             "platform": {"os": "unknown", "architecture": "unknown"},
             "annotations": {"vnd.docker.reference.type": "attestation-manifest"}},
            {"digest": Digest::of(&manifest).to_string(), "size": 1,
             "platform": {"os": "linux", "architecture": "amd64"}},
        ],
    })
    .to_string()
    .into_bytes();
    let root = Digest::of(&index);
    let mut delivered = Delivered::default();
    for (media_type, bytes) in [
        ("application/vnd.oci.image.manifest.v1+json", manifest),
        ("application/vnd.oci.image.manifest.v1+json", attestation),
        ("application/vnd.oci.image.index.v1+json", index),
    ] {
        delivered.manifests.insert(
            Digest::of(&bytes),
            Manifest {
                media_type: media_type.into(),
                bytes,
            },
        );
    }
    delivered.root = Some(root.clone());
    (delivered, root)
}

fn learned() -> Learned {
    let (delivered, root) = delivered();
    let image = image_manifest(&delivered, &root, "linux/amd64").unwrap();
    Learned {
        manifests: delivered.manifests,
        root,
        image,
    }
}

#[test]
fn the_image_manifest_is_the_platforms_not_the_attestation() {
    let learned = learned();
    assert_eq!(learned.image.config.digest, digest(9).to_string());
    assert_eq!(learned.layers(), 2);
    let (delivered, root) = delivered();
    assert!(image_manifest(&delivered, &root, "linux/arm64").is_none());
}

#[test]
fn the_manifest_pairs_blobs_with_diff_ids_for_a_classic_host() {
    let learned = learned();
    let diff_ids = [digest(1), digest(2)];
    let chains = chain_ids(&diff_ids);
    // The host holds layer 1's chain: its blob 11 is present, blob 12 is not.
    let classic = Holds::Classic(HashSet::from([chains[0].clone(), diff_ids[1].clone()]));
    let present = learned.present(Some(&classic), &diff_ids);
    assert_eq!(present, HashSet::from([digest(11)]));
    let left_out = learned.left_out(&present);
    assert_eq!(
        (left_out.entries, left_out.bytes, left_out.hashed),
        (1, 1000, 0)
    );
    // Not one diff ID per layer: nothing can be paired, everything is sent.
    assert!(learned.present(Some(&classic), &diff_ids[..1]).is_empty());
    // A containerd host: the very blobs.
    let c8d = Holds::Containerd(HashSet::from([digest(12), digest(2)]));
    assert_eq!(
        learned.present(Some(&c8d), &diff_ids),
        HashSet::from([digest(12)])
    );
    assert!(learned.present(None, &diff_ids).is_empty());
}

#[test]
fn the_metadata_names_the_image_as_a_containerd_save_does() {
    let learned = learned();
    let entries = metadata("app:1", &learned, &Delivered::default());
    let names: Vec<&str> = entries.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names.len(), 6);
    assert!(names[..3]
        .iter()
        .all(|name| name.starts_with("blobs/sha256/")));
    assert_eq!(&names[3..], ["index.json", "manifest.json", "oci-layout"]);
    let index: serde_json::Value = serde_json::from_slice(&entries[3].1).unwrap();
    let descriptor = &index["manifests"][0];
    assert_eq!(descriptor["digest"], learned.root.to_string());
    assert_eq!(
        descriptor["annotations"]["io.containerd.image.name"],
        "docker.io/library/app:1"
    );
    assert_eq!(
        descriptor["annotations"]["org.opencontainers.image.ref.name"],
        "1"
    );
    let manifest: serde_json::Value = serde_json::from_slice(&entries[4].1).unwrap();
    assert_eq!(manifest[0]["Config"], digest(9).blob_path());
    assert_eq!(manifest[0]["RepoTags"][0], "app:1");
    assert_eq!(manifest[0]["Layers"][1], digest(12).blob_path());
}
