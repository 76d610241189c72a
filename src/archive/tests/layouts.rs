//! Layouts: what the reader learns from each archive layout, and what it forwards.

use super::*;

#[test]
fn legacy_layout_in_every_compression() {
    let original = legacy();
    for compression in ALL {
        let (result, sink) = run(&compress(&original, compression));
        let contents = result.unwrap();
        assert_eq!(contents.compression, compression);
        assert_eq!(contents.format, Format::DockerSave);
        assert_eq!(
            named(&contents.images),
            vec![image(2, &["app:1", "app:latest"])]
        );
        assert_eq!(
            data_entries(&sink),
            data_entries(&original),
            "{compression}"
        );
        assert!(sink.ends_with(&END_OF_ARCHIVE));
    }
}

#[test]
fn docker25_layout_in_every_compression() {
    let original = docker25("docker.io/library/web:2");
    for compression in ALL {
        let (result, sink) = run(&compress(&original, compression));
        let contents = result.unwrap();
        assert_eq!(contents.format, Format::DockerSave);
        assert_eq!(named(&contents.images), vec![image(11, &["web:2"])]);
        assert_eq!(
            data_entries(&sink),
            data_entries(&original),
            "{compression}"
        );
    }
}

#[test]
fn manifest_json_is_authoritative_over_index_json() {
    let (result, _) = run(&docker25("docker.io/library/other:9"));
    let contents = result.unwrap();
    assert_eq!(contents.all_tags(), vec!["web:2"]);
    assert!(contents.find(&reference("other:9")).is_none());
}

#[test]
fn oci_only_layout_resolves_config_digests() {
    let original = oci_only();
    for compression in ALL {
        let (result, sink) = run(&compress(&original, compression));
        let contents = result.unwrap();
        assert_eq!(contents.format, Format::OciLayout);
        assert_eq!(
            named(&contents.images),
            vec![
                image(21, &["ghcr.io/acme/tool:v3"]),
                image(31, &["docker.io/library/solo:1"]),
            ]
        );
        assert_eq!(
            data_entries(&sink),
            data_entries(&original),
            "{compression}"
        );
    }
}

#[test]
fn find_normalises_names() {
    let (result, _) = run(&legacy());
    let contents = result.unwrap();
    let wanted = contents
        .find(&reference("docker.io/library/app:1"))
        .unwrap();
    assert_eq!(wanted.config.hex(), hex(2));
    assert!(contents.find(&reference("app")).is_some());
    assert!(contents
        .find(&reference("index.docker.io/library/app:latest"))
        .is_some());
    assert!(contents.find(&reference("app:2")).is_none());
    assert!(contents.find(&reference("other/app:1")).is_none());
    assert_eq!(contents.all_tags(), vec!["app:1", "app:latest"]);

    let (result, _) = run(&oci_only());
    let contents = result.unwrap();
    // sorted, not in the archive's order
    assert_eq!(
        contents.all_tags(),
        vec!["docker.io/library/solo:1", "ghcr.io/acme/tool:v3"]
    );
    assert!(contents.find(&reference("solo:1")).is_some());
    assert!(contents.find(&reference("ghcr.io/acme/tool:v3")).is_some());
    // A bare ref.name tag names no repository.
    assert!(contents.find(&reference("latest")).is_none());

    let odd = Contents {
        images: vec![ArchivedImage {
            config: digest(5),
            tags: vec!["Not A Reference".into(), "ok:1".into()],
            targets: Vec::new(),
            facts: None,
            blobs: Vec::new(),
            left_out: LeftOut::default(),
        }],
        compression: Compression::None,
        format: Format::DockerSave,
        oci_layout: false,
        recipes: Vec::new(),
    };
    assert!(odd.find(&reference("ok:1")).is_some());
}

#[test]
fn check_sees_contents_and_rejection_commits_nothing() {
    for compression in ALL {
        for original in [legacy(), docker25("web:2"), oci_only()] {
            let input = compress(&original, compression);
            let mut seen = None;
            let (result, sink) = run_with(&input, &Limits::default(), |contents| {
                seen = Some(contents.clone());
                bail!("archive does not hold the image")
            });
            assert_eq!(
                result.unwrap_err().to_string(),
                "archive does not hold the image"
            );
            assert!(!seen.unwrap().images.is_empty());
            assert_nothing_committed(&sink);
            assert!(!sink.is_empty(), "layers are forwarded before the check");
        }
    }
}

#[test]
fn metadata_rules() {
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, "layer.tar", b"data");
    assert_eq!(
        error(&finish(b)),
        "archive holds no manifest.json or index.json: not a docker image archive"
    );

    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, &format!("{}.json", hex(1)), b"{}");
    file(
        &mut b,
        "manifest.json",
        format!(
            r#"[{{"Config":"{}.json","RepoTags":null,"Layers":["x/layer.tar"]}}]"#,
            hex(1)
        )
        .as_bytes(),
    );
    assert_eq!(
        error(&finish(b)),
        "manifest.json names x/layer.tar, which the archive does not contain"
    );

    let mut b = tar::Builder::new(Vec::new());
    file(
        &mut b,
        "manifest.json",
        format!(r#"[{{"Config":"{}.json","RepoTags":null}}]"#, hex(1)).as_bytes(),
    );
    assert_eq!(
        error(&finish(b)),
        format!(
            "manifest.json names {}.json, which the archive does not contain",
            hex(1)
        )
    );

    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, "manifest.json", br#"[{"Config":"config.json"}]"#);
    assert!(error(&finish(b)).contains("which is not a sha256 digest"));

    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, "manifest.json", b"not json");
    assert!(error(&finish(b)).starts_with("manifest.json is not a valid docker image manifest"));

    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, "manifest.json", b"[]");
    file(&mut b, "manifest.json", b"[]");
    assert_eq!(error(&finish(b)), "archive holds manifest.json twice");

    let mut b = tar::Builder::new(Vec::new());
    symlink(&mut b, "manifest.json", "elsewhere.json");
    assert_eq!(
        error(&finish(b)),
        "archive entry manifest.json is not a regular file"
    );

    // OCI: an index naming a blob that is absent.
    let mut b = tar::Builder::new(Vec::new());
    let index = format!(r#"{{"manifests":[{{"digest":"sha256:{}"}}]}}"#, hex(7));
    file(&mut b, "index.json", index.as_bytes());
    assert_eq!(
        error(&finish(b)),
        format!(
            "index.json names blobs/sha256/{}, which the archive does not contain",
            hex(7)
        )
    );
}

#[test]
fn null_repo_tags_and_dot_slash_names() {
    let cfg = hex(4);
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, &format!("./{cfg}.json"), b"{}");
    file(&mut b, "./l/layer.tar", b"layer");
    let manifest =
        format!(r#"[{{"Config":"{cfg}.json","RepoTags":null,"Layers":["l/layer.tar"]}}]"#);
    file(&mut b, "./manifest.json", manifest.as_bytes());
    let (result, sink) = run(&finish(b));
    let contents = result.unwrap();
    assert_eq!(named(&contents.images), vec![image(4, &[])]);
    assert!(contents.all_tags().is_empty());
    assert!(sink.ends_with(&END_OF_ARCHIVE));
}

// Found by fuzzing (fuzz/fuzz_targets/archive_tar.rs): RepoTags listing a tag twice gave
// it twice in `tags`, while tags merged from another item were deduplicated; and the
// deduplication was quadratic (a 16 MiB manifest of one-tag items took minutes).
#[test]
fn regression_tags_are_listed_once_in_linear_time() {
    let cfg = hex(5);
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, &format!("{cfg}.json"), b"{}");
    let mut items = vec![format!(
        r#"{{"Config":"{cfg}.json","RepoTags":["a:1","a:1","b:2","a:1"]}}"#
    )];
    // Many items of the same image, with one new tag each.
    items.extend(
        (0..20_000).map(|i| format!(r#"{{"Config":"{cfg}.json","RepoTags":["c:{i}","b:2"]}}"#)),
    );
    file(
        &mut b,
        "manifest.json",
        format!("[{}]", items.join(",")).as_bytes(),
    );
    // No timed assertion: a quadratic merge would make this test take minutes, which
    // shows without one.
    let (result, _) = run(&finish(b));
    let contents = result.unwrap();
    assert_eq!(contents.images.len(), 1);
    let tags = &contents.images[0].tags;
    assert_eq!(tags[..4], ["a:1", "b:2", "c:0", "c:1"]);
    assert_eq!(tags.len(), 2 + 20_000);
}

#[test]
fn index_targets_and_config_facts_are_learnt() {
    let (result, _) = run(&legacy());
    let legacy = &result.unwrap().images[0];
    assert_eq!(legacy.targets, vec![]);
    let facts = legacy.facts.as_ref().expect("the legacy config is read");
    assert_eq!(facts.platform, "linux/amd64");
    assert_eq!(facts.diff_ids, vec![]);

    let (result, _) = run(&docker25("docker.io/library/web:2"));
    let docker25 = &result.unwrap().images[0];
    assert_eq!(docker25.targets, vec![digest(12)]);
    assert!(docker25.facts.is_some());

    let (result, _) = run(&oci_only());
    let images = result.unwrap().images;
    assert_eq!(images[0].targets, vec![digest(27), digest(22)]);
    assert_eq!(images[1].targets, vec![digest(30)]);
}

#[test]
fn a_config_with_diff_ids_and_created_is_read() {
    let config = br#"{"architecture":"arm64","os":"linux","created":"2026-12-01T22:41:48.641642843Z","rootfs":{"type":"layers","diff_ids":["sha256:00000000000000000000000000000000000000000000000000000000000000aa"]}}"#;
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, &format!("{}/layer.tar", hex(1)), &pattern(1, 100));
    file(&mut b, &format!("{}.json", hex(2)), config);
    let manifest = format!(
        r#"[{{"Config":"{}.json","RepoTags":["arm:1"],"Layers":["{}/layer.tar"]}}]"#,
        hex(2),
        hex(1)
    );
    file(&mut b, "manifest.json", manifest.as_bytes());
    let (result, _) = run(&finish(b));
    let facts = result.unwrap().images[0].facts.clone().unwrap();
    assert_eq!(
        facts,
        ImageConfig {
            platform: "linux/arm64".into(),
            created: Some("2026-12-01T22:41:48.641642843Z".into()),
            diff_ids: vec![digest(0xaa)],
            content: Digest::of(config),
        }
    );
}

/// An OCI layout whose index names a multi-platform index of the given platforms (each an
/// image manifest of its own), beside an attestation manifest, tagged `multi:1`.
fn multi_platform(platforms: &[&str]) -> Vec<u8> {
    let layer = hex(50);
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    file(&mut b, &format!("blobs/sha256/{layer}"), &pattern(5, 700));
    let mut manifests = Vec::new();
    for (n, platform) in (60..).zip(platforms) {
        let mut parts = platform.split('/');
        let (os, architecture, variant) = (parts.next(), parts.next(), parts.next());
        file(&mut b, &format!("blobs/sha256/{}", hex(n)), &config_json());
        file(
            &mut b,
            &format!("blobs/sha256/{}", hex(n + 100)),
            &oci_manifest(&hex(n), &[&layer]),
        );
        let mut platform = serde_json::json!({"architecture": architecture, "os": os});
        if let Some(variant) = variant {
            platform["variant"] = variant.into();
        }
        manifests.push(
            serde_json::json!({"digest": format!("sha256:{}", hex(n + 100)),
            "platform": platform}),
        );
    }
    manifests.push(serde_json::json!({"digest": format!("sha256:{}", hex(59)),
        "platform": {"architecture": "unknown", "os": "unknown"},
        "annotations": {"vnd.docker.reference.type": "attestation-manifest"}}));
    file(&mut b, &format!("blobs/sha256/{}", hex(58)), &config_json());
    file(
        &mut b,
        &format!("blobs/sha256/{}", hex(59)),
        &oci_manifest(&hex(58), &[&layer]),
    );
    let nested = serde_json::json!({"schemaVersion": 2, "manifests": manifests});
    file(
        &mut b,
        &format!("blobs/sha256/{}", hex(57)),
        &serde_json::to_vec(&nested).unwrap(),
    );
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [
        {"digest": format!("sha256:{}", hex(57)), "annotations": {"io.containerd.image.name": "docker.io/library/multi:1"}},
    ]});
    file(&mut b, "index.json", &serde_json::to_vec(&index).unwrap());
    finish(b)
}

#[test]
fn a_multi_platform_index_gives_the_hosts_image() {
    let host = host_platform();
    let (result, _) = run(&multi_platform(&["linux/arm/v7", &host, "linux/s390x"]));
    let images = result.unwrap().images;
    assert_eq!(images.len(), 1);
    // the host's manifest is the second platform: config 61, manifest 161
    assert_eq!(images[0].config, digest(61));
    assert_eq!(images[0].targets, vec![digest(57), digest(161)]);
}

#[test]
fn an_index_of_foreign_platforms_only_is_refused_naming_them() {
    let err = error(&multi_platform(&["linux/s390x", "linux/arm/v7"]));
    assert_eq!(
        err,
        format!(
            "the archive holds docker.io/library/multi:1 only for linux/arm/v7, linux/s390x, not for this host's platform {}; nothing was loaded",
            host_platform()
        )
    );
    // one foreign image alone is refused too
    let err = error(&multi_platform(&["linux/s390x"]));
    assert!(err.contains("only for linux/s390x, not for"), "{err}");
}

// An index.json of 200,000 manifests beside a manifest.json of 20,000 images: each descriptor
// was resolved anew, then looked up among all the images one by one (about two minutes here;
// 4,000 images and 40,000 descriptors took 4.7 s). No timed assertion: quadratic work would
// make this test take minutes, which shows without one.
#[test]
fn regression_an_index_of_200_000_manifests_is_read_in_linear_time() {
    const CONFIGS: u32 = 20_000;
    const DESCRIPTORS: usize = 200_000;
    let mut b = tar::Builder::new(Vec::new());
    for n in 0..CONFIGS {
        file(&mut b, &format!("{}.json", hex(100_000 + n)), b"x");
    }
    let last = hex(100_000 + CONFIGS - 1);
    file(&mut b, &format!("blobs/sha256/{last}"), b"x");
    let man = hex(7);
    file(
        &mut b,
        &format!("blobs/sha256/{man}"),
        &oci_manifest(&last, &[]),
    );
    let items: Vec<String> = (0..CONFIGS)
        .map(|n| {
            let cfg = hex(100_000 + n);
            format!(r#"{{"Config":"{cfg}.json","RepoTags":["many:{n}"]}}"#)
        })
        .collect();
    file(
        &mut b,
        "manifest.json",
        format!("[{}]", items.join(",")).as_bytes(),
    );
    let descriptors = vec![format!(r#"{{"digest":"sha256:{man}"}}"#); DESCRIPTORS];
    file(
        &mut b,
        "index.json",
        format!(r#"{{"manifests":[{}]}}"#, descriptors.join(",")).as_bytes(),
    );
    let limits = Limits {
        max_metadata_entry: 64 * MIB,
        ..Limits::default()
    };
    let (result, _) = run_with(&finish(b), &limits, first_choice);
    let images = result.unwrap().images;
    assert_eq!(images.len(), CONFIGS as usize);
    let targeted: Vec<&ArchivedImage> = images.iter().filter(|i| !i.targets.is_empty()).collect();
    assert_eq!(targeted.len(), 1);
    assert_eq!(targeted[0].config.hex(), last);
    assert_eq!(targeted[0].targets, vec![digest(7)]);
}
