//! The filter on small archives built in memory: an OCI layout as classic engines and
//! containerd-store clients write it, and the legacy layout.

use std::collections::HashSet;
use std::io::{Read, Write};

use super::*;

/// Bytes that do not repeat, so that sizes and digests mean something.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 56) as u8
        })
        .collect()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// An entry: its name, data, and PAX records to put before it.
struct Spec {
    name: String,
    data: Vec<u8>,
    pax: bool,
}

fn spec(name: impl Into<String>, data: Vec<u8>) -> Spec {
    Spec {
        name: name.into(),
        data,
        pax: false,
    }
}

fn archive(specs: &[Spec]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for spec in specs {
        if spec.pax {
            let record = b"30 comment=about the next one\n";
            let mut header = tar::Header::new_ustar();
            header.set_entry_type(tar::EntryType::XHeader);
            header.set_path("PaxHeaders.0/next").unwrap();
            header.set_size(record.len() as u64);
            header.set_cksum();
            builder.append(&header, &record[..]).unwrap();
        }
        let mut header = tar::Header::new_ustar();
        header.set_path(&spec.name).unwrap();
        header.set_size(spec.data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        header.set_cksum();
        builder.append(&header, &spec.data[..]).unwrap();
    }
    builder.into_inner().unwrap()
}

/// Every entry of an archive, extension headers included: (header bytes, data).
fn raw_entries(bytes: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut archive = tar::Archive::new(bytes);
    archive
        .entries()
        .unwrap()
        .raw(true)
        .map(|entry| {
            let mut entry = entry.unwrap();
            let header = entry.header().as_bytes().to_vec();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            (header, data)
        })
        .collect()
}

fn run(input: &[u8], plan: &LeftOutPlan) -> (LeftOutTotals, Vec<u8>) {
    filter(input, Vec::new(), plan, None).unwrap()
}

/// The output holds the input's entries but those of `dropped` (by name, with their
/// extension headers), byte for byte and in order.
fn assert_kept(specs: &[Spec], output: &[u8], dropped: &[&str]) {
    let kept: Vec<Spec> = specs
        .iter()
        .filter(|s| !dropped.contains(&s.name.as_str()))
        .map(|s| Spec {
            name: s.name.clone(),
            data: s.data.clone(),
            pax: s.pax,
        })
        .collect();
    assert_eq!(raw_entries(output), raw_entries(&archive(&kept)));
}

fn hex(digest: &Digest) -> String {
    digest.hex().to_string()
}

#[test]
fn classic_host_leaves_out_held_layers_by_name_and_by_hash() {
    let (layer0, layer1, layer2) = (noise(0, 300_000), noise(1, 200_000), noise(2, 150_000));
    let (d0, d1, d2) = (
        Digest::of(&layer0),
        Digest::of(&layer1),
        Digest::of(&layer2),
    );
    // layer 2 as a containerd-store client writes it: gzip, named by the compressed digest
    let gz2 = gzip(&layer2);
    let blob2 = Digest::of(&gz2);
    let specs = [
        Spec {
            pax: true,
            ..spec(d0.blob_path(), layer0.clone())
        },
        spec(d1.blob_path(), layer1.clone()),
        spec(blob2.blob_path(), gz2),
        spec(
            format!("blobs/sha256/{}", hex(&Digest::of(b"{}"))),
            b"{}".to_vec(),
        ),
        Spec {
            pax: true,
            ..spec("index.json", b"{\"schemaVersion\":2}".to_vec())
        },
        spec("manifest.json", b"[]".to_vec()),
        spec("oci-layout", b"{\"imageLayoutVersion\":\"1.0.0\"}".to_vec()),
    ];
    let input = archive(&specs);

    let plan = LeftOutPlan {
        diff_ids: HashSet::from([d0.clone(), d2.clone()]),
        blobs: HashSet::new(),
        ..LeftOutPlan::default()
    };
    let (left_out, output) = run(&input, &plan);
    assert_eq!(
        left_out,
        LeftOutTotals {
            entries: 2,
            bytes: layer0.len() as u64 + specs[2].data.len() as u64,
            hashed: 1,
        }
    );
    assert_kept(&specs, &output, &[&d0.blob_path(), &blob2.blob_path()]);

    // nothing to leave out: the archive as it was, entry for entry
    let (left_out, output) = run(&input, &LeftOutPlan::default());
    assert_eq!(left_out, LeftOutTotals::default());
    assert_kept(&specs, &output, &[]);

    // a held diff ID the archive does not have changes nothing either
    let plan = LeftOutPlan {
        diff_ids: HashSet::from([Digest::of(b"elsewhere")]),
        blobs: HashSet::new(),
        ..LeftOutPlan::default()
    };
    assert_kept(&specs, &run(&input, &plan).1, &[]);
    let _ = d1;
}

#[test]
fn containerd_host_leaves_out_only_the_very_blobs_it_holds() {
    let layer0 = noise(3, 100_000);
    let gz0 = gzip(&layer0);
    let (diff0, blob0) = (Digest::of(&layer0), Digest::of(&gz0));
    let layer1 = noise(4, 100_000);
    let d1 = Digest::of(&layer1);
    let specs = [
        spec(blob0.blob_path(), gz0),
        spec(d1.blob_path(), layer1.clone()),
        spec("index.json", b"{}".to_vec()),
    ];
    let input = archive(&specs);
    let plan = LeftOutPlan {
        diff_ids: HashSet::new(),
        // the host holds layer 0 uncompressed (not this gzip blob) and layer 1's blob
        blobs: HashSet::from([diff0, d1.clone()]),
        ..LeftOutPlan::default()
    };
    let (left_out, output) = run(&input, &plan);
    assert_eq!(
        left_out,
        LeftOutTotals {
            entries: 1,
            bytes: layer1.len() as u64,
            hashed: 0,
        }
    );
    assert_kept(&specs, &output, &[&d1.blob_path()]);
}

fn legacy_specs() -> (Vec<Spec>, Digest, Digest) {
    let (layer0, layer1) = (noise(5, 120_000), noise(6, 90_000));
    let (d0, d1) = (Digest::of(&layer0), Digest::of(&layer1));
    let specs = vec![
        spec("aaaa/VERSION", b"1.0".to_vec()),
        spec("aaaa/json", b"{}".to_vec()),
        spec("aaaa/layer.tar", layer0),
        spec("bbbb/VERSION", b"1.0".to_vec()),
        spec("bbbb/json", b"{}".to_vec()),
        spec("bbbb/layer.tar", layer1),
        spec("cfg.json", b"{}".to_vec()),
        spec("manifest.json", b"[]".to_vec()),
        spec("repositories", b"{}".to_vec()),
    ];
    (specs, d0, d1)
}

#[test]
fn legacy_layers_are_matched_by_hash_on_classic_hosts_only() {
    let (specs, d0, _) = legacy_specs();
    let input = archive(&specs);
    let classic = LeftOutPlan {
        diff_ids: HashSet::from([d0.clone()]),
        blobs: HashSet::new(),
        ..LeftOutPlan::default()
    };
    let (left_out, output) = run(&input, &classic);
    assert_eq!(
        left_out,
        LeftOutTotals {
            entries: 1,
            bytes: 120_000,
            hashed: 1,
        }
    );
    assert_kept(&specs, &output, &["aaaa/layer.tar"]);

    // a containerd host cannot take a slim legacy archive (docs/engines.md §5)
    let containerd = LeftOutPlan {
        diff_ids: HashSet::new(),
        blobs: HashSet::from([d0]),
        ..LeftOutPlan::default()
    };
    let (left_out, output) = run(&input, &containerd);
    assert_eq!(left_out, LeftOutTotals::default());
    assert_kept(&specs, &output, &[]);
}

#[test]
fn what_follows_the_end_marker_is_read_not_left_in_the_pipe() {
    let specs = [spec("manifest.json", b"[]".to_vec())];
    let mut input = archive(&specs);
    input.extend([0u8; 10240]);
    let mut reader = &input[..];
    let (_, output) = filter(&mut reader, Vec::new(), &LeftOutPlan::default(), None).unwrap();
    assert!(reader.is_empty(), "{} bytes left unread", reader.len());
    assert_kept(&specs, &output, &[]);
}

#[test]
fn small_layers_pass_without_a_spool() {
    let small = noise(7, 1000);
    let specs = [
        spec("cccc/layer.tar", small.clone()),
        spec("manifest.json", b"[]".to_vec()),
    ];
    let plan = LeftOutPlan {
        diff_ids: HashSet::from([Digest::of(&small)]),
        blobs: HashSet::new(),
        ..LeftOutPlan::default()
    };
    let (left_out, output) = run(&archive(&specs), &plan);
    assert_eq!(left_out, LeftOutTotals::default());
    assert_kept(&specs, &output, &[]);
}

#[test]
fn a_blob_that_only_looks_compressed_is_sent() {
    let mut fake = GZIP_MAGIC.to_vec();
    fake.extend(noise(8, 100_000));
    let specs = [spec(Digest::of(&fake).blob_path(), fake)];
    let plan = LeftOutPlan {
        diff_ids: HashSet::from([Digest::of(b"some layer")]),
        blobs: HashSet::new(),
        ..LeftOutPlan::default()
    };
    let (left_out, output) = run(&archive(&specs), &plan);
    assert_eq!(
        left_out,
        LeftOutTotals {
            hashed: 1,
            ..LeftOutTotals::default()
        }
    );
    assert_kept(&specs, &output, &[]);
}

#[test]
fn legacy_layers_known_by_their_v1_id_are_not_hashed() {
    use crate::client::legacy::fixture::{diff_ids, BOTTOM, BOTTOM_JSON, TOP, TOP_JSON};
    // contents that hash to neither diff ID: only the directories' json can tell the layers
    let specs = vec![
        spec(format!("{TOP}/VERSION"), b"1.0".to_vec()),
        spec(format!("{TOP}/json"), TOP_JSON.as_bytes().to_vec()),
        spec(format!("{TOP}/layer.tar"), noise(7, 100_000)),
        spec(format!("{BOTTOM}/VERSION"), b"1.0".to_vec()),
        spec(format!("{BOTTOM}/json"), BOTTOM_JSON.as_bytes().to_vec()),
        spec(format!("{BOTTOM}/layer.tar"), noise(8, 110_000)),
        spec("manifest.json", b"[]".to_vec()),
    ];
    let layers = diff_ids();
    let plan = LeftOutPlan {
        diff_ids: HashSet::from([layers[0].clone()]),
        image_layers: layers,
        ..LeftOutPlan::default()
    };
    let (left_out, output) = run(&archive(&specs), &plan);
    assert_eq!(
        left_out,
        LeftOutTotals {
            entries: 1,
            bytes: 110_000,
            hashed: 0,
        }
    );
    assert_kept(&specs, &output, &[&format!("{BOTTOM}/layer.tar")]);
}

#[test]
fn a_legacy_archive_for_a_containerd_host_goes_in_the_oci_form_its_store_would_make() {
    use crate::client::legacy::fixture::{diff_ids, BOTTOM, BOTTOM_JSON, TOP, TOP_JSON};
    let config = b"{\"rootfs\":{}}".to_vec();
    let config_hex = hex(&Digest::of(&config));
    let manifest = format!(
        r#"[{{"Config":"{config_hex}.json","RepoTags":["app:2"],"Layers":["{BOTTOM}/layer.tar","{TOP}/layer.tar"]}}]"#
    );
    let specs = vec![
        spec(format!("{BOTTOM}/VERSION"), b"1.0".to_vec()),
        spec(format!("{BOTTOM}/json"), BOTTOM_JSON.as_bytes().to_vec()),
        spec(format!("{BOTTOM}/layer.tar"), noise(8, 110_000)),
        spec(format!("{TOP}/VERSION"), b"1.0".to_vec()),
        spec(format!("{TOP}/json"), TOP_JSON.as_bytes().to_vec()),
        spec(format!("{TOP}/layer.tar"), noise(7, 100_000)),
        spec(format!("{config_hex}.json"), config.clone()),
        spec("manifest.json", manifest.into_bytes()),
        spec("repositories", b"{}".to_vec()),
    ];
    let layers = diff_ids();
    // the host's content store holds the bottom layer's uncompressed blob
    let plan = LeftOutPlan {
        blobs: HashSet::from([layers[0].clone()]),
        image_layers: layers.clone(),
        to_oci: true,
        ..LeftOutPlan::default()
    };
    let (left_out, output) = run(&archive(&specs), &plan);
    assert_eq!(
        left_out,
        LeftOutTotals {
            entries: 1,
            bytes: 110_000,
            hashed: 0,
        }
    );
    let mut read = tar::Archive::new(&output[..]);
    let entries: Vec<(String, Vec<u8>)> = read
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            (name, data)
        })
        .collect();
    let names: Vec<String> = entries.iter().map(|(name, _)| name.clone()).collect();
    assert_eq!(names[0], layers[1].blob_path());
    assert_eq!(entries[0].1, noise(7, 100_000));
    assert_eq!(names[1], format!("blobs/sha256/{config_hex}"));
    assert_eq!(entries[1].1, config);
    assert_eq!(&names[3..], ["index.json", "manifest.json", "oci-layout"]);
    let index: serde_json::Value = serde_json::from_slice(&entries[3].1).unwrap();
    assert_eq!(
        names[2],
        Digest::parse(index["manifests"][0]["digest"].as_str().unwrap())
            .unwrap()
            .blob_path()
    );
    let schema2: serde_json::Value = serde_json::from_slice(&entries[2].1).unwrap();
    assert_eq!(schema2["layers"][0]["digest"], layers[0].to_string());
    assert_eq!(schema2["layers"][0]["size"], 110_000);
    assert_eq!(schema2["config"]["size"], config.len());

    // the config's name may sort before the layers' directories
    let mut config_first: Vec<Spec> = specs
        .iter()
        .map(|s| Spec {
            name: s.name.clone(),
            data: s.data.clone(),
            pax: s.pax,
        })
        .collect();
    let config_spec = config_first.remove(6);
    config_first.insert(0, config_spec);
    assert_eq!(config_first[0].name, format!("{config_hex}.json"));
    let (again, reordered) = run(&archive(&config_first), &plan);
    assert_eq!(again, left_out);
    assert!(reordered.len() < archive(&config_first).len() - 100_000);

    // an OCI archive (classic engines 25 and later) passes as before
    let oci = vec![
        spec(layers[1].blob_path(), noise(9, 1000)),
        spec("index.json", b"{}".to_vec()),
    ];
    let (_, output) = run(&archive(&oci), &plan);
    assert_kept(&oci, &output, &[]);
}
