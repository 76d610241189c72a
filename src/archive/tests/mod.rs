//! Unit tests of the archive reader: fixtures that build the archives each docker version
//! writes, and helpers that run [`forward`] on them. The tests are grouped by what they
//! exercise: layouts and what is learnt from them, hostile tar input, streams and limits.

mod layouts;
mod naming;
mod recipes;
mod slim;
mod streams;
mod tar_input;

use super::header::{header_path, padding, BLOCK, END_OF_ARCHIVE};
use super::input::CHUNK_SIZE;
use super::limits::{ARCHIVE_ENV, METADATA_ENV};
use super::platform::host_architecture;
use super::walker::METADATA_NAMES;
use super::*;
use super::{host_platform, ImageConfig};
use crate::digest::Digest;
use crate::reference::Reference;

use std::ffi::OsString;
use std::io::{self, Read, Write};

use anyhow::bail;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

use std::io::Cursor;

const ALL: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Bzip2,
    Compression::Xz,
    Compression::Zstd,
];

fn hex(n: u32) -> String {
    format!("{n:064x}")
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed | 1)
        .collect()
}

fn header(kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_mtime(1_700_000_000);
    h
}

fn file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
    let mut h = header(tar::EntryType::Regular, data.len() as u64);
    b.append_data(&mut h, path, data).unwrap();
}

fn dir(b: &mut tar::Builder<Vec<u8>>, path: &str) {
    let mut h = header(tar::EntryType::Directory, 0);
    b.append_data(&mut h, path, io::empty()).unwrap();
}

fn symlink(b: &mut tar::Builder<Vec<u8>>, path: &str, target: &str) {
    let mut h = header(tar::EntryType::Symlink, 0);
    b.append_link(&mut h, path, target).unwrap();
}

fn finish(b: tar::Builder<Vec<u8>>) -> Vec<u8> {
    b.into_inner().unwrap()
}

fn config_json() -> Vec<u8> {
    br#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"]},"rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec()
}

fn oci_manifest(config: &str, layers: &[&str]) -> Vec<u8> {
    let layers: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": format!("sha256:{l}"), "size": 1}))
        .collect();
    serde_json::to_vec_pretty(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{config}"), "size": 1},
        "layers": layers,
    }))
    .unwrap()
}

/// Engine <= 24: `<id>/layer.tar`, `<config>.json`, a shared layer as a symlink.
fn legacy() -> Vec<u8> {
    let (l1, cfg, l2) = (hex(1), hex(2), hex(3));
    let mut b = tar::Builder::new(Vec::new());
    dir(&mut b, &format!("{l1}/"));
    file(&mut b, &format!("{l1}/VERSION"), b"1.0");
    file(&mut b, &format!("{l1}/json"), b"{}");
    file(&mut b, &format!("{l1}/layer.tar"), &pattern(1, 3000));
    file(&mut b, &format!("{cfg}.json"), &config_json());
    dir(&mut b, &format!("{l2}/"));
    symlink(
        &mut b,
        &format!("{l2}/layer.tar"),
        &format!("../{l1}/layer.tar"),
    );
    let manifest = format!(
        r#"[{{"Config":"{cfg}.json","RepoTags":["app:1","app:latest"],"Layers":["{l1}/layer.tar","{l2}/layer.tar"]}}]"#
    );
    file(&mut b, "manifest.json", manifest.as_bytes());
    file(
        &mut b,
        "repositories",
        format!(r#"{{"app":{{"1":"{l2}"}}}}"#).as_bytes(),
    );
    finish(b)
}

/// Engine >= 25: OCI blobs, index.json and manifest.json side by side.
fn docker25(index_name: &str) -> Vec<u8> {
    let (layer, cfg, man) = (hex(10), hex(11), hex(12));
    let mut b = tar::Builder::new(Vec::new());
    dir(&mut b, "blobs/");
    dir(&mut b, "blobs/sha256/");
    file(&mut b, &format!("blobs/sha256/{layer}"), &pattern(2, 5000));
    file(&mut b, &format!("blobs/sha256/{cfg}"), &config_json());
    file(
        &mut b,
        &format!("blobs/sha256/{man}"),
        &oci_manifest(&cfg, &[&layer]),
    );
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": format!("sha256:{man}"), "size": 1,
        "annotations": {"io.containerd.image.name": index_name, "org.opencontainers.image.ref.name": "2"},
    }]});
    file(&mut b, "index.json", &serde_json::to_vec(&index).unwrap());
    let manifest = format!(
        r#"[{{"Config":"blobs/sha256/{cfg}","RepoTags":["web:2"],"Layers":["blobs/sha256/{layer}"]}}]"#
    );
    file(&mut b, "manifest.json", manifest.as_bytes());
    file(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    file(&mut b, "repositories", b"{}");
    finish(b)
}

/// skopeo/containerd style: index.json only, with a multi-platform nested index.
fn oci_only() -> Vec<u8> {
    let layer = hex(20);
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    file(&mut b, &format!("blobs/sha256/{layer}"), &pattern(3, 700));
    for (cfg, man) in [(21, 22), (23, 24), (26, 25), (31, 30)] {
        file(
            &mut b,
            &format!("blobs/sha256/{}", hex(cfg)),
            &config_json(),
        );
        file(
            &mut b,
            &format!("blobs/sha256/{}", hex(man)),
            &oci_manifest(&hex(cfg), &[&layer]),
        );
    }
    let nested = serde_json::json!({"schemaVersion": 2, "manifests": [
        {"digest": format!("sha256:{}", hex(24)), "platform": {"architecture": "other-arch", "os": "linux"}},
        {"digest": format!("sha256:{}", hex(22)), "platform": {"architecture": host_architecture(), "os": "linux"}},
        {"digest": format!("sha256:{}", hex(25)), "platform": {"architecture": "unknown", "os": "unknown"},
         "annotations": {"vnd.docker.reference.type": "attestation-manifest"}},
    ]});
    file(
        &mut b,
        &format!("blobs/sha256/{}", hex(27)),
        &serde_json::to_vec(&nested).unwrap(),
    );
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [
        {"digest": format!("sha256:{}", hex(27)), "annotations": {"org.opencontainers.image.ref.name": "ghcr.io/acme/tool:v3"}},
        {"digest": format!("sha256:{}", hex(22)), "annotations": {"org.opencontainers.image.ref.name": "latest"}},
        {"digest": format!("sha256:{}", hex(30)), "annotations": {"io.containerd.image.name": "docker.io/library/solo:1"}},
    ]});
    file(&mut b, "index.json", &serde_json::to_vec(&index).unwrap());
    finish(b)
}

fn compress(data: &[u8], compression: Compression) -> Vec<u8> {
    match compression {
        Compression::None => data.to_vec(),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Compression::Bzip2 => {
            let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Compression::Xz => {
            let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Compression::Zstd => zstd::stream::encode_all(data, 1).unwrap(),
    }
}

type Entry = (String, u8, Option<String>, Vec<u8>);

/// The entries of a complete tar but the metadata, sorted by path: what is forwarded as it
/// came (the metadata moves to the end and is rewritten).
fn data_entries(tar_bytes: &[u8]) -> Vec<Entry> {
    entries(tar_bytes)
        .into_iter()
        .filter(|(path, ..)| !METADATA_NAMES.contains(&path.as_str()))
        .collect()
}

/// The data of the entry `name` of a complete tar.
fn entry_data(tar_bytes: &[u8], name: &str) -> Option<Vec<u8>> {
    entries(tar_bytes)
        .into_iter()
        .find(|(path, ..)| path == name)
        .map(|(.., data)| data)
}

/// The entries of a complete tar, sorted by path (metadata moves to the end when forwarded).
fn entries(tar_bytes: &[u8]) -> Vec<Entry> {
    let mut archive = tar::Archive::new(tar_bytes);
    let mut out: Vec<Entry> = archive
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let kind = entry.header().entry_type().as_byte();
            let link = entry
                .link_name()
                .unwrap()
                .map(|l| l.to_string_lossy().into_owned());
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            (path, kind, link, data)
        })
        .collect();
    out.sort();
    out
}

fn run_with(
    input: &[u8],
    limits: &Limits,
    check: impl FnOnce(&Contents) -> Result<Choice>,
) -> (Result<Contents>, Vec<u8>) {
    let mut sink = Vec::new();
    let result = forward(input, &mut sink, limits, &mut NoContent, check)
        .map(|forwarded| forwarded.contents);
    (result, sink)
}

/// The choice of the tests that look at what is learnt, not at the name: the first image, by
/// its first tag, or by a name of its own when it has none.
fn first_choice(contents: &Contents) -> Result<Choice> {
    let Some(image) = contents.images.first() else {
        bail!("the archive holds no image");
    };
    let name = image
        .tags
        .first()
        .and_then(|tag| Reference::parse(tag).ok())
        .unwrap_or_else(|| reference("chosen:1"));
    Ok(Choice {
        image: image.clone(),
        name,
    })
}

fn run(input: &[u8]) -> (Result<Contents>, Vec<u8>) {
    run_with(input, &Limits::default(), first_choice)
}

fn error(input: &[u8]) -> String {
    let (result, sink) = run(input);
    assert_nothing_committed(&sink);
    format!("{:#}", result.expect_err("forward should fail"))
}

/// The loader must not have seen any metadata entry or the end-of-archive marker.
fn assert_nothing_committed(sink: &[u8]) {
    for name in METADATA_NAMES {
        let mut needle = name.as_bytes().to_vec();
        needle.push(0);
        assert!(
            !sink.windows(needle.len()).any(|w| w == needle.as_slice()),
            "{name} reached the sink"
        );
    }
    assert!(
        sink.len() < END_OF_ARCHIVE.len()
            || sink[sink.len() - END_OF_ARCHIVE.len()..]
                .iter()
                .any(|&b| b != 0),
        "the end-of-archive marker reached the sink"
    );
}

fn digest(n: u32) -> Digest {
    Digest::from_hex(&hex(n)).unwrap()
}

/// An image as the tests name it: its config digest's number and its tags.
type Named = (Digest, Vec<String>);

fn image(config: u32, tags: &[&str]) -> Named {
    (digest(config), tags.iter().map(|t| t.to_string()).collect())
}

/// The images of an archive, by config digest and tags.
fn named(images: &[ArchivedImage]) -> Vec<Named> {
    images
        .iter()
        .map(|image| (image.config.clone(), image.tags.clone()))
        .collect()
}

fn reference(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}
