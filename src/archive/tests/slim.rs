//! Slim archives: layers a manifest names that the archive leaves out are reported per image,
//! identified by diff ID and ChainID (`manifest.json`) or by blob digest (an OCI manifest).

use super::*;
use crate::digest::chain_ids;

/// A config whose diff IDs are digests 100, 101, … for `layers` layers.
fn config_with_layers(layers: u32) -> Vec<u8> {
    let diff_ids: Vec<String> = (100..100 + layers).map(|n| digest(n).to_string()).collect();
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap()
}

/// Engine 26's layout of a two-layer image (layers 40 and 41, config 42, manifest 43), without
/// the layer blobs at the positions in `dropped`.
fn docker26_without(dropped: &[usize]) -> Vec<u8> {
    let (layers, cfg, man) = ([hex(40), hex(41)], hex(42), hex(43));
    let mut b = tar::Builder::new(Vec::new());
    for (position, layer) in layers.iter().enumerate() {
        if !dropped.contains(&position) {
            file(&mut b, &format!("blobs/sha256/{layer}"), &pattern(7, 900));
        }
    }
    file(
        &mut b,
        &format!("blobs/sha256/{cfg}"),
        &config_with_layers(2),
    );
    let man_json = oci_manifest(&cfg, &[&layers[0], &layers[1]]);
    file(&mut b, &format!("blobs/sha256/{man}"), &man_json);
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "digest": format!("sha256:{man}"), "size": 1,
        "annotations": {"io.containerd.image.name": "docker.io/library/slim:1"},
    }]});
    file(&mut b, "index.json", &serde_json::to_vec(&index).unwrap());
    let manifest = format!(
        r#"[{{"Config":"blobs/sha256/{cfg}","RepoTags":["slim:1"],"Layers":["blobs/sha256/{}","blobs/sha256/{}"]}}]"#,
        layers[0], layers[1]
    );
    file(&mut b, "manifest.json", manifest.as_bytes());
    finish(b)
}

fn images_of(archive: &[u8]) -> Vec<ArchivedImage> {
    let (result, sink) = run(archive);
    assert!(sink.ends_with(&END_OF_ARCHIVE));
    result.unwrap().images
}

#[test]
fn a_full_archive_omits_nothing() {
    let (result, _) = run(&docker26_without(&[]));
    let contents = result.unwrap();
    assert!(!contents.is_slim());
    assert_eq!(contents.images[0].left_out, LeftOut::default());
}

#[test]
fn manifest_json_layers_left_out_are_known_by_diff_id_and_chain_id() {
    let chains = chain_ids(&[digest(100), digest(101)]);
    let image = &images_of(&docker26_without(&[0]))[0];
    assert_eq!(
        image.left_out.layers,
        vec![LeftOutLayer {
            position: 0,
            path: format!("blobs/sha256/{}", hex(40)),
            diff_id: digest(100),
            chain_id: chains[0].clone(),
        }]
    );
    assert_eq!(image.left_out.blobs, vec![digest(40)]);
    assert_eq!(image.blobs, vec![digest(40), digest(41)]);

    // Above a layer that is present, the ChainID still covers the whole stack below.
    let image = &images_of(&docker26_without(&[1]))[0];
    assert_eq!(image.left_out.layers[0].position, 1);
    assert_eq!(image.left_out.layers[0].diff_id, digest(101));
    assert_eq!(image.left_out.layers[0].chain_id, chains[1]);
    assert_ne!(chains[1], digest(101));
    assert_eq!(image.left_out.blobs, vec![digest(41)]);

    let (result, _) = run(&docker26_without(&[0, 1]));
    let contents = result.unwrap();
    assert!(contents.is_slim());
    assert_eq!(contents.images[0].left_out.layers.len(), 2);
    assert_eq!(
        contents.images[0].left_out.blobs,
        vec![digest(40), digest(41)]
    );
}

/// Engine 20's layout: `<v1id>/layer.tar` of layers 1 and 3, config 2 with two diff IDs.
fn legacy_without_layer_0(config: &[u8]) -> Vec<u8> {
    let (l1, cfg, l2) = (hex(1), hex(2), hex(3));
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, &format!("{l2}/layer.tar"), &pattern(1, 3000));
    file(&mut b, &format!("{cfg}.json"), config);
    let manifest = format!(
        r#"[{{"Config":"{cfg}.json","RepoTags":["app:1"],"Layers":["{l1}/layer.tar","./{l2}/layer.tar"]}}]"#
    );
    file(&mut b, "manifest.json", manifest.as_bytes());
    finish(b)
}

#[test]
fn a_legacy_layer_left_out_has_no_blob_digest() {
    let image = &images_of(&legacy_without_layer_0(&config_with_layers(2)))[0];
    assert_eq!(image.left_out.layers.len(), 1);
    assert_eq!(
        image.left_out.layers[0].path,
        format!("{}/layer.tar", hex(1))
    );
    assert_eq!(image.left_out.layers[0].diff_id, digest(100));
    assert_eq!(image.left_out.layers[0].chain_id, digest(100));
    assert!(image.left_out.blobs.is_empty());
    assert!(image.blobs.is_empty());
    assert!(image.targets.is_empty());
}

#[test]
fn a_layer_left_out_that_the_config_does_not_identify_is_refused_as_before() {
    let refused = format!(
        "manifest.json names {}/layer.tar, which the archive does not contain",
        hex(1)
    );
    // No diff IDs to read (a config that is no image config), or not one per layer.
    assert_eq!(error(&legacy_without_layer_0(b"{}")), refused);
    assert_eq!(
        error(&legacy_without_layer_0(&config_with_layers(3))),
        refused
    );
}

#[test]
fn oci_only_layers_left_out_are_known_by_blob_digest() {
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    file(
        &mut b,
        &format!("blobs/sha256/{}", hex(81)),
        &pattern(4, 600),
    );
    file(
        &mut b,
        &format!("blobs/sha256/{}", hex(82)),
        &config_with_layers(2),
    );
    file(
        &mut b,
        &format!("blobs/sha256/{}", hex(83)),
        &oci_manifest(&hex(82), &[&hex(80), &hex(81)]),
    );
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "digest": format!("sha256:{}", hex(83)),
        "annotations": {"io.containerd.image.name": "docker.io/library/oci:1"},
    }]});
    file(&mut b, "index.json", &serde_json::to_vec(&index).unwrap());
    let image = &images_of(&finish(b))[0];
    assert_eq!(image.targets, vec![digest(83)]);
    assert_eq!(image.left_out.blobs, vec![digest(80)]);
    assert_eq!(image.blobs, vec![digest(80), digest(81)]);
    assert!(image.left_out.layers.is_empty());
}
