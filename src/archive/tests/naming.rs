//! What the engine is given: the chosen image under IMAGE only, and nothing the check did not
//! see (entries behind links of the archive, entries given twice).

use super::*;

/// Forwards `input` choosing the image `wanted` names; the forwarded tar.
fn forwarded_as(input: &[u8], wanted: &str) -> (Result<Forwarded>, Vec<u8>) {
    let mut sink = Vec::new();
    let result = forward(
        input,
        &mut sink,
        &Limits::default(),
        &mut NoContent,
        |contents| contents.choose(&reference(wanted)),
    );
    (result, sink)
}

fn json(data: &[u8]) -> serde_json::Value {
    serde_json::from_slice(data).unwrap()
}

/// Two images in a docker save of Engine >= 25, each in manifest.json and index.json (with an
/// annotation of containerd's own on the second), the second also named `dokku/victim`.
fn two_images() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut items = Vec::new();
    let mut descriptors = Vec::new();
    for (cfg, man, tags) in [
        (61, 62, vec!["mine:1"]),
        (71, 72, vec!["other:2", "dokku/victim:latest"]),
    ] {
        file(
            &mut b,
            &format!("blobs/sha256/{}", hex(cfg)),
            &config_json(),
        );
        file(
            &mut b,
            &format!("blobs/sha256/{}", hex(man)),
            &oci_manifest(&hex(cfg), &[]),
        );
        items.push(serde_json::json!({
            "Config": format!("blobs/sha256/{}", hex(cfg)), "RepoTags": tags, "Layers": [],
        }));
        for tag in tags {
            descriptors.push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": format!("sha256:{}", hex(man)), "size": 1,
                "annotations": {
                    "io.containerd.image.name": format!("docker.io/library/{tag}"),
                    "org.opencontainers.image.ref.name": tag.split(':').next_back(),
                    "containerd.io/distribution.source.docker.io": "library/x",
                },
            }));
        }
    }
    let index = serde_json::json!({"schemaVersion": 2, "manifests": descriptors});
    file(&mut b, "index.json", &serde_json::to_vec(&index).unwrap());
    file(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&items).unwrap(),
    );
    file(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    file(
        &mut b,
        "repositories",
        br#"{"dokku/victim":{"latest":"x"}}"#,
    );
    finish(b)
}

#[test]
fn the_engine_gets_the_chosen_image_under_image_only() {
    for (wanted, cfg, man) in [("mine:1", 61, 62), ("docker.io/library/other:2", 71, 72)] {
        let original = two_images();
        let (result, sink) = forwarded_as(&original, wanted);
        let forwarded = result.unwrap();
        assert_eq!(forwarded.choice.image().config, digest(cfg));
        assert_eq!(data_entries(&sink), data_entries(&original));
        let name = reference(wanted).normalized();
        assert_eq!(
            json(&entry_data(&sink, "manifest.json").unwrap()),
            serde_json::json!([{
                "Config": format!("blobs/sha256/{}", hex(cfg)), "RepoTags": [name], "Layers": [],
            }])
        );
        let index = json(&entry_data(&sink, "index.json").unwrap());
        let descriptors = index["manifests"].as_array().unwrap();
        assert_eq!(descriptors.len(), 1, "{index}");
        // The digest the containerd store takes for the ID is the one a full load gives.
        assert_eq!(descriptors[0]["digest"], format!("sha256:{}", hex(man)));
        assert_eq!(descriptors[0]["size"], 1);
        let annotations = &descriptors[0]["annotations"];
        assert_eq!(annotations["io.containerd.image.name"], name);
        assert_eq!(
            annotations["org.opencontainers.image.ref.name"],
            reference(wanted).tag_or_default()
        );
        assert_eq!(
            annotations["containerd.io/distribution.source.docker.io"],
            "library/x"
        );
        assert_eq!(index["schemaVersion"], 2);
        assert!(entry_data(&sink, "oci-layout").is_some());
        // Read by an engine only without manifest.json: never forwarded.
        assert_eq!(entry_data(&sink, "repositories"), None);
    }
}

#[test]
fn the_names_left_out_are_listed() {
    let (result, _) = forwarded_as(&two_images(), "other:2");
    let forwarded = result.unwrap();
    assert_eq!(
        forwarded.contents.dropped_names(&forwarded.choice),
        ["dokku/victim:latest", "mine:1"]
    );
    let (result, _) = forwarded_as(&legacy(), "app:latest");
    let forwarded = result.unwrap();
    assert_eq!(
        forwarded.contents.dropped_names(&forwarded.choice),
        ["app:1"]
    );
    let names: Vec<String> = (0..25).map(|n| format!("n:{n:02}")).collect();
    assert!(listing(&names).ends_with("n:19 and 5 more"));
    assert_eq!(listing(&names[..2]), "n:00, n:01");
}

#[test]
fn an_image_the_archive_does_not_hold_is_refused_with_what_it_holds() {
    let (result, sink) = forwarded_as(&two_images(), "dokku/victim2:latest");
    assert_eq!(
        result.unwrap_err().to_string(),
        "the archive does not hold dokku/victim2:latest; it holds dokku/victim:latest, mine:1, other:2; nothing was loaded"
    );
    assert_nothing_committed(&sink);
}

#[test]
fn an_oci_layout_keeps_the_descriptor_of_the_chosen_name() {
    let original = oci_only();
    let (result, sink) = forwarded_as(&original, "solo:1");
    assert_eq!(result.unwrap().choice.image().config, digest(31));
    let index = json(&entry_data(&sink, "index.json").unwrap());
    assert_eq!(
        index["manifests"],
        serde_json::json!([{
            "digest": format!("sha256:{}", hex(30)),
            "annotations": {
                "io.containerd.image.name": "docker.io/library/solo:1",
                "org.opencontainers.image.ref.name": "1",
            },
        }])
    );
    assert_eq!(entry_data(&sink, "manifest.json"), None);
    // The nested index of a multi-platform image is the ID, not the manifest chosen in it.
    let (result, sink) = forwarded_as(&original, "ghcr.io/acme/tool:v3");
    result.unwrap();
    let index = json(&entry_data(&sink, "index.json").unwrap());
    assert_eq!(
        index["manifests"][0]["digest"],
        format!("sha256:{}", hex(27))
    );
    assert_eq!(
        index["manifests"][0]["annotations"]["io.containerd.image.name"],
        "ghcr.io/acme/tool:v3"
    );
}

#[test]
fn configs_are_hashed_as_read() {
    let (result, _) = run(&legacy());
    let facts = result.unwrap().images[0].facts.clone().unwrap();
    assert_eq!(facts.content, Digest::of(&config_json()));
}

/// `index.json` naming `app:1` beside `links`, then `manifest.json` through them naming
/// `dokku/victim:latest`: an engine that extracts the archive would read that manifest.
fn smuggled(links: &[(&str, &str)], manifest_path: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let (cfg, man) = (hex(81), hex(82));
    file(&mut b, &format!("blobs/sha256/{cfg}"), &config_json());
    file(
        &mut b,
        &format!("blobs/sha256/{man}"),
        &oci_manifest(&cfg, &[]),
    );
    for (name, target) in links {
        symlink(&mut b, name, target);
    }
    let manifest = format!(
        r#"[{{"Config":"blobs/sha256/{cfg}","RepoTags":["dokku/victim:latest"],"Layers":[]}}]"#
    );
    file(&mut b, manifest_path, manifest.as_bytes());
    let index = serde_json::json!({"manifests": [{"digest": format!("sha256:{man}"),
        "annotations": {"io.containerd.image.name": "docker.io/library/app:1"}}]});
    file(&mut b, "index.json", &serde_json::to_vec(&index).unwrap());
    finish(b)
}

#[test]
fn an_entry_behind_a_link_of_the_archive_is_refused_before_it_is_forwarded() {
    for (links, path, refused, link) in [
        (&[("x", ".")][..], "x/manifest.json", "x/manifest.json", "x"),
        (&[("x", ".")], "x/./manifest.json", "x/manifest.json", "x"),
        (
            &[("blobs/up", "../..")],
            "blobs/up/manifest.json",
            "blobs/up/manifest.json",
            "blobs/up",
        ),
        (&[("a", "."), ("a/b", ".")], "a/b/manifest.json", "a/b", "a"),
    ] {
        let input = smuggled(links, path);
        let (result, sink) = forwarded_as(&input, "app:1");
        let message = result.unwrap_err().to_string();
        assert!(
            message.starts_with(&format!(
                "archive entry {refused} runs through {link}, a link of the archive"
            )),
            "{message}"
        );
        assert_nothing_committed(&sink);
        assert!(
            !sink
                .windows(b"dokku/victim".len())
                .any(|w| w == b"dokku/victim"),
            "the smuggled manifest reached the engine"
        );
    }
    // A hard link is a link too.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = header(tar::EntryType::Link, 0);
    b.append_link(&mut h, "h", "blobs").unwrap();
    file(&mut b, "h/manifest.json", b"[]");
    assert!(error(&finish(b)).starts_with("archive entry h/manifest.json runs through h"));
}

#[test]
fn links_and_repeats_under_metadata_names_are_refused() {
    for name in METADATA_NAMES {
        for kind in [tar::EntryType::Symlink, tar::EntryType::Link] {
            let mut b = tar::Builder::new(Vec::new());
            file(&mut b, "blobs/sha256/evil", b"[]");
            let mut h = header(kind, 0);
            b.append_link(&mut h, name, "blobs/sha256/evil").unwrap();
            assert_eq!(
                error(&finish(b)),
                format!("archive entry {name} is not a regular file")
            );
        }
    }
    // A second entry of a name would replace what the check read.
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, &format!("blobs/sha256/{}", hex(1)), &config_json());
    file(&mut b, &format!("./blobs/sha256/{}", hex(1)), b"{}");
    assert_eq!(
        error(&finish(b)),
        format!("archive holds blobs/sha256/{} twice", hex(1))
    );
}

#[test]
fn a_legacy_layer_shared_through_a_symlink_still_loads() {
    // legacy() has `<l2>/layer.tar -> ../<l1>/layer.tar`, as docker save writes a repeated
    // layer.
    let original = legacy();
    let (result, sink) = forwarded_as(&original, "app:1");
    result.unwrap();
    let link = data_entries(&sink)
        .into_iter()
        .find(|(path, ..)| path == &format!("{}/layer.tar", hex(3)))
        .unwrap();
    assert_eq!(link.1, tar::EntryType::Symlink.as_byte());
    assert_eq!(link.2, Some(format!("../{}/layer.tar", hex(1))));
}
