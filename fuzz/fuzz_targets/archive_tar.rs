//! Structure-aware: the fuzz input describes a docker-save-like archive (entries with names from
//! a small pool of digests, manifest.json / index.json / OCI blobs that refer to them, odd entry
//! types, long names, PAX headers, size fields that lie), which is built with `tar::Builder`,
//! maybe damaged or truncated, maybe compressed, and forwarded. The archive invariants of the
//! `archive` target apply, and an archive that passes must reach docker with the same entries.
#![no_main]

use std::io::Write;

use dokku_image_fuzz::{run_forward, DockerView, State};

const METADATA: [&str; 4] = ["manifest.json", "index.json", "repositories", "oci-layout"];
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

const MAX_ENTRIES: usize = 24;

#[derive(Arbitrary, Debug)]
struct ArchiveSpec {
    entries: Vec<EntrySpec>,
    manifest: Option<ManifestSpec>,
    index: Option<IndexSpec>,
    repositories: Option<Vec<u8>>,
    oci_layout: bool,
    /// Where the metadata entries go among the others (docker writes them last).
    metadata_at: u8,
    end: EndSpec,
    compression: u8,
    /// Split the compressed stream in two concatenated streams here.
    split: Option<u16>,
    damage: Option<(u16, u8)>,
    truncate: Option<u16>,
}

#[derive(Arbitrary, Debug, Clone)]
enum NameSpec {
    /// `<hex>/layer.tar` (legacy layout).
    Layer(u8),
    /// `<hex>.json` (legacy config).
    Config(u8),
    /// `blobs/sha256/<hex>`.
    Blob(u8),
    /// `<hex>/` and friends.
    Dir(u8),
    Metadata(u8),
    /// The same name with a `./` in front.
    DotSlash(u8, bool),
    /// A name over 100 bytes (GNU long name or PAX path).
    Long(u8, u8),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum KindSpec {
    Regular,
    Directory,
    Symlink(NameSpec),
    HardLink(NameSpec),
    Fifo,
    Other(u8),
}

#[derive(Arbitrary, Debug)]
enum DataSpec {
    Bytes(Vec<u8>),
    Zeros(u16),
    ConfigJson,
    OciManifest { config: u8, layers: Vec<u8> },
    OciIndex(Vec<DescriptorSpec>),
}

#[derive(Arbitrary, Debug)]
struct EntrySpec {
    name: NameSpec,
    kind: KindSpec,
    data: DataSpec,
    /// Give the path in a PAX header instead of the ustar/GNU fields.
    pax_path: bool,
    /// Write this size in the header (or a PAX `size` record) instead of the real one.
    size_lie: Option<SizeLie>,
    /// Extension headers (PAX local or global, GNU long names) written before this entry.
    extensions: Vec<ExtensionSpec>,
    /// Changes to the raw header block.
    tweaks: Vec<Tweak>,
}

#[derive(Arbitrary, Debug)]
enum ExtensionSpec {
    Pax {
        global: bool,
        records: Vec<(KeySpec, ValueSpec)>,
    },
    LongName(NameSpec),
}

#[derive(Arbitrary, Debug)]
enum KeySpec {
    Pool(u8),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum ValueSpec {
    Name(NameSpec),
    Number(u32),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Tweak {
    /// The ustar prefix field.
    Prefix(NameSpec),
    Magic(u8),
    Version([u8; 2]),
    /// The `tar\0` trailer of star headers.
    StarTrailer,
    Byte(u16, u8),
}

const PAX_KEYS: [&str; 12] = [
    "path",
    "size",
    "linkpath",
    "mtime",
    "comment",
    "GNU.sparse.name",
    "GNU.sparse.major",
    "GNU.sparse.minor",
    "GNU.sparse.map",
    "GNU.sparse.size",
    "GNU.sparse.realsize",
    "uid",
];

/// One PAX record: `LEN key=value\n`, LEN counting the whole record.
fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let body = key.len() + value.len() + 3;
    let mut len = body + 1;
    while len.to_string().len() + body != len {
        len += 1;
    }
    out.extend_from_slice(format!("{len} {key}=").as_bytes());
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn extension(out: &mut Vec<u8>, spec: &ExtensionSpec) {
    let (kind, data) = match spec {
        ExtensionSpec::Pax { global, records } => {
            let mut data = Vec::new();
            for (key, value) in records.iter().take(8) {
                let key = match key {
                    KeySpec::Pool(n) => PAX_KEYS[*n as usize % PAX_KEYS.len()].to_string(),
                    KeySpec::Raw(raw) => raw.clone(),
                };
                let value = match value {
                    ValueSpec::Name(n) => name(n),
                    ValueSpec::Number(n) => n.to_string(),
                    ValueSpec::Raw(raw) => raw.clone(),
                };
                pax_record(&mut data, &key, value.as_bytes());
            }
            let kind = if *global {
                tar::EntryType::XGlobalHeader
            } else {
                tar::EntryType::XHeader
            };
            (kind, data)
        }
        ExtensionSpec::LongName(n) => {
            let mut data = name(n).into_bytes();
            data.push(0);
            (tar::EntryType::GNULongName, data)
        }
    };
    let h = raw_header("././@Extension", kind, data.len() as u64);
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(&data);
    pad(out);
}

fn tweak(h: &mut tar::Header, spec: &Tweak) {
    let block = h.as_mut_bytes();
    match spec {
        Tweak::Prefix(n) => {
            let prefix = name(n).into_bytes();
            let len = prefix.len().min(155);
            block[345..500].fill(0);
            block[345..345 + len].copy_from_slice(&prefix[..len]);
        }
        Tweak::Magic(n) => {
            let magic: &[u8; 6] = match n % 3 {
                0 => b"ustar\0",
                1 => b"ustar ",
                _ => b"\0\0\0\0\0\0",
            };
            block[257..263].copy_from_slice(magic);
        }
        Tweak::Version(v) => block[263..265].copy_from_slice(v),
        Tweak::StarTrailer => block[508..512].copy_from_slice(b"tar\0"),
        Tweak::Byte(at, byte) => {
            let at = *at as usize % 512;
            if !(148..156).contains(&at) {
                block[at] = *byte;
            }
        }
    }
}

#[derive(Arbitrary, Debug)]
enum SizeLie {
    Header(u64),
    Pax(String),
    Base256(u64),
}

#[derive(Arbitrary, Debug)]
enum ManifestSpec {
    Raw(Vec<u8>),
    Items(Vec<ManifestItemSpec>),
}

#[derive(Arbitrary, Debug)]
struct ManifestItemSpec {
    config: NameSpec,
    tags: Option<Vec<TagSpec>>,
    layers: Vec<NameSpec>,
}

#[derive(Arbitrary, Debug)]
enum TagSpec {
    Pool(u8),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum IndexSpec {
    Raw(Vec<u8>),
    Manifests(Vec<DescriptorSpec>),
}

#[derive(Arbitrary, Debug)]
struct DescriptorSpec {
    digest: DigestSpec,
    image_name: Option<TagSpec>,
    ref_name: Option<TagSpec>,
    platform: Option<(u8, u8)>,
    attestation: bool,
}

#[derive(Arbitrary, Debug)]
enum DigestSpec {
    Pool(u8),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum EndSpec {
    Marker,
    MarkerAndPadding(u8),
    OneZeroBlock,
    Nothing,
    Trailing(Vec<u8>),
}

const TAGS: [&str; 8] = [
    "app:1",
    "app:latest",
    "alpine",
    "docker.io/library/alpine:latest",
    "localhost:5000/team/web:v2",
    "ghcr.io/acme/tool:v3",
    "latest",
    "Bad Tag",
];
const ARCHES: [&str; 4] = ["amd64", "arm64", "unknown", "s390x"];
const OSES: [&str; 3] = ["linux", "unknown", "windows"];

fn hex(n: u8) -> String {
    format!("{:064x}", n % 8)
}

fn name(spec: &NameSpec) -> String {
    match spec {
        NameSpec::Layer(n) => format!("{}/layer.tar", hex(*n)),
        NameSpec::Config(n) => format!("{}.json", hex(*n)),
        NameSpec::Blob(n) => format!("blobs/sha256/{}", hex(*n)),
        NameSpec::Dir(n) => match n % 3 {
            0 => format!("{}/", hex(*n)),
            1 => "blobs/".to_string(),
            _ => "blobs/sha256/".to_string(),
        },
        NameSpec::Metadata(n) => {
            ["manifest.json", "index.json", "repositories", "oci-layout"][*n as usize % 4].into()
        }
        NameSpec::DotSlash(n, blob) => {
            if *blob {
                format!("./blobs/sha256/{}", hex(*n))
            } else {
                format!("./{}/layer.tar", hex(*n))
            }
        }
        NameSpec::Long(n, len) => format!("{}/{}/layer.tar", "d".repeat(*len as usize), hex(*n)),
        NameSpec::Raw(raw) => raw.chars().take(300).collect(),
    }
}

fn tag(spec: &TagSpec) -> String {
    match spec {
        TagSpec::Pool(n) => TAGS[*n as usize % TAGS.len()].to_string(),
        TagSpec::Raw(raw) => raw.clone(),
    }
}

fn digest(spec: &DigestSpec) -> String {
    match spec {
        DigestSpec::Pool(n) => format!("sha256:{}", hex(*n)),
        DigestSpec::Raw(raw) => raw.clone(),
    }
}

fn descriptor(spec: &DescriptorSpec) -> Value {
    let mut d = json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": digest(&spec.digest),
        "size": 1,
    });
    let mut annotations = serde_json::Map::new();
    if let Some(name) = &spec.image_name {
        annotations.insert("io.containerd.image.name".into(), tag(name).into());
    }
    if let Some(name) = &spec.ref_name {
        annotations.insert("org.opencontainers.image.ref.name".into(), tag(name).into());
    }
    if spec.attestation {
        annotations.insert(
            "vnd.docker.reference.type".into(),
            "attestation-manifest".into(),
        );
    }
    if !annotations.is_empty() {
        d["annotations"] = Value::Object(annotations);
    }
    if let Some((arch, os)) = spec.platform {
        d["platform"] = json!({
            "architecture": ARCHES[arch as usize % ARCHES.len()],
            "os": OSES[os as usize % OSES.len()],
        });
    }
    d
}

fn data(spec: &DataSpec) -> Vec<u8> {
    match spec {
        DataSpec::Bytes(bytes) => bytes.clone(),
        DataSpec::Zeros(n) => vec![0; *n as usize],
        DataSpec::ConfigJson => {
            br#"{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec()
        }
        DataSpec::OciManifest { config, layers } => serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"digest": format!("sha256:{}", hex(*config)), "size": 1},
            "layers": layers.iter().take(8).map(|l| json!({"digest": format!("sha256:{}", hex(*l)), "size": 1})).collect::<Vec<_>>(),
        }))
        .unwrap(),
        DataSpec::OciIndex(manifests) => serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "manifests": manifests.iter().take(8).map(descriptor).collect::<Vec<_>>(),
        }))
        .unwrap(),
    }
}

fn manifest(spec: &ManifestSpec) -> Vec<u8> {
    match spec {
        ManifestSpec::Raw(bytes) => bytes.clone(),
        ManifestSpec::Items(items) => {
            let items: Vec<Value> = items
                .iter()
                .take(8)
                .map(|item| {
                    json!({
                        "Config": name(&item.config),
                        "RepoTags": item.tags.as_ref().map(|tags| tags.iter().take(8).map(tag).collect::<Vec<_>>()),
                        "Layers": item.layers.iter().take(8).map(name).collect::<Vec<_>>(),
                    })
                })
                .collect();
            serde_json::to_vec(&items).unwrap()
        }
    }
}

fn header(kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_mtime(1_700_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn pad(out: &mut Vec<u8>) {
    let len = out.len().next_multiple_of(512);
    out.resize(len, 0);
}

/// A header whose name field is written as is (for names the builder refuses).
fn raw_header(path: &str, kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = header(kind, size);
    let bytes = path.as_bytes();
    let n = bytes.len().min(100);
    h.as_old_mut().name[..n].copy_from_slice(&bytes[..n]);
    h.set_cksum();
    h
}

fn append(b: &mut tar::Builder<Vec<u8>>, spec: &EntrySpec) {
    let path = name(&spec.name);
    let kind = match &spec.kind {
        KindSpec::Regular => tar::EntryType::Regular,
        KindSpec::Directory => tar::EntryType::Directory,
        KindSpec::Symlink(_) => tar::EntryType::Symlink,
        KindSpec::HardLink(_) => tar::EntryType::Link,
        KindSpec::Fifo => tar::EntryType::Fifo,
        KindSpec::Other(byte) => tar::EntryType::new(*byte),
    };
    let body = if matches!(kind, tar::EntryType::Regular) || matches!(spec.kind, KindSpec::Other(_))
    {
        data(&spec.data)
    } else {
        Vec::new()
    };
    let mut pax: Vec<(&str, Vec<u8>)> = Vec::new();
    if spec.pax_path {
        pax.push(("path", path.clone().into_bytes()));
    }
    let mut size_field = body.len() as u64;
    let mut base256 = None;
    match &spec.size_lie {
        None => {}
        Some(SizeLie::Header(n)) => size_field = *n % (1 << 33),
        Some(SizeLie::Pax(text)) => pax.push(("size", text.clone().into_bytes())),
        Some(SizeLie::Base256(n)) => base256 = Some(*n),
    }
    if !pax.is_empty() {
        let records: Vec<(&str, &[u8])> = pax.iter().map(|(k, v)| (*k, v.as_slice())).collect();
        b.append_pax_extensions(records).unwrap();
    }
    let link = match &spec.kind {
        KindSpec::Symlink(target) | KindSpec::HardLink(target) => Some(name(target)),
        _ => None,
    };
    for ext in spec.extensions.iter().take(4) {
        extension(b.get_mut(), ext);
    }
    // The builder would normalise the name and type of odd entries: those are written by hand.
    let lies = spec.size_lie.is_some()
        || !spec.tweaks.is_empty()
        || matches!(spec.kind, KindSpec::Other(_));
    if !lies && !spec.pax_path {
        let mut h = header(kind, body.len() as u64);
        let done = match &link {
            Some(target) => b.append_link(&mut h, &path, target).is_ok(),
            None => b.append_data(&mut h, &path, body.as_slice()).is_ok(),
        };
        if done {
            return;
        }
    }
    // The hard way: a header written by hand, maybe with a size that does not match the data.
    let header_path = if spec.pax_path {
        "pax-placeholder"
    } else {
        &path
    };
    let mut h = raw_header(header_path, kind, size_field);
    if let Some(target) = &link {
        let _ = h.set_link_name(target.chars().take(100).collect::<String>());
    }
    for t in spec.tweaks.iter().take(4) {
        tweak(&mut h, t);
    }
    if let Some(n) = base256 {
        let field = &mut h.as_mut_bytes()[124..136];
        field[0] = 0x80;
        field[1..4].fill(0);
        field[4..].copy_from_slice(&n.to_be_bytes());
    }
    h.set_cksum();
    let out = b.get_mut();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(&body);
    pad(out);
}

fn metadata_file(b: &mut tar::Builder<Vec<u8>>, path: &str, body: &[u8]) {
    let mut h = header(tar::EntryType::Regular, body.len() as u64);
    b.append_data(&mut h, path, body).unwrap();
}

fn build(spec: &ArchiveSpec) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let entries: Vec<&EntrySpec> = spec.entries.iter().take(MAX_ENTRIES).collect();
    let metadata_at = spec.metadata_at as usize % (entries.len() + 1);
    for (i, entry) in entries.iter().enumerate() {
        if i == metadata_at {
            append_metadata(&mut b, spec);
        }
        append(&mut b, entry);
    }
    if metadata_at == entries.len() {
        append_metadata(&mut b, spec);
    }
    let mut out = b.into_inner().unwrap();
    out.truncate(out.len() - 1024);
    match &spec.end {
        EndSpec::Marker => out.extend_from_slice(&[0; 1024]),
        EndSpec::MarkerAndPadding(blocks) => {
            out.resize(out.len() + 1024 + 512 * (*blocks as usize % 20), 0)
        }
        EndSpec::OneZeroBlock => out.extend_from_slice(&[0; 512]),
        EndSpec::Nothing => {}
        EndSpec::Trailing(bytes) => {
            out.extend_from_slice(&[0; 1024]);
            out.extend_from_slice(bytes);
        }
    }
    out
}

fn append_metadata(b: &mut tar::Builder<Vec<u8>>, spec: &ArchiveSpec) {
    if spec.oci_layout {
        metadata_file(b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    }
    if let Some(index) = &spec.index {
        let body = match index {
            IndexSpec::Raw(bytes) => bytes.clone(),
            IndexSpec::Manifests(manifests) => serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "manifests": manifests.iter().take(8).map(descriptor).collect::<Vec<_>>(),
            }))
            .unwrap(),
        };
        metadata_file(b, "index.json", &body);
    }
    if let Some(manifest_spec) = &spec.manifest {
        metadata_file(b, "manifest.json", &manifest(manifest_spec));
    }
    if let Some(repositories) = &spec.repositories {
        metadata_file(b, "repositories", repositories);
    }
}

fn compress(plain: &[u8], how: u8) -> Vec<u8> {
    match how % 5 {
        0 => plain.to_vec(),
        1 => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(plain).unwrap();
            e.finish().unwrap()
        }
        2 => zstd::stream::encode_all(plain, 1).unwrap(),
        3 => {
            let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
            e.write_all(plain).unwrap();
            e.finish().unwrap()
        }
        _ => {
            let mut e = liblzma::write::XzEncoder::new(Vec::new(), 0);
            e.write_all(plain).unwrap();
            e.finish().unwrap()
        }
    }
}

fuzz_target!(|spec: ArchiveSpec| {
    let plain = build(&spec);
    let mut input = match spec.split {
        Some(at) if !spec.compression.is_multiple_of(5) => {
            let at = at as usize % (plain.len() + 1);
            let mut input = compress(&plain[..at], spec.compression);
            input.extend(compress(&plain[at..], spec.compression));
            input
        }
        _ => compress(&plain, spec.compression),
    };
    if let Some((at, xor)) = spec.damage {
        if !input.is_empty() {
            let at = at as usize % input.len();
            input[at] ^= xor;
        }
    }
    if let Some(at) = spec.truncate {
        input.truncate(at as usize % (input.len() + 1));
    }
    let pristine = spec.damage.is_none() && spec.truncate.is_none();

    let run = run_forward(&input, true, true);
    let rejected = run_forward(&input, false, false);
    assert_eq!(run.checked.is_some(), rejected.checked.is_some());
    if run.result.is_ok() && pristine {
        // What passes reaches docker entry for entry, as docker would have read the archive
        // itself, but the metadata, which moves to the end and names the chosen image only.
        let mut direct = DockerView::new(true);
        direct.write_all(&plain).unwrap();
        if !matches!(direct.state, State::Broken(_)) && run.view.state == State::Ended {
            let data = |entries: Vec<(String, u8, u64, u64)>| -> Vec<(String, u8, u64, u64)> {
                entries
                    .into_iter()
                    .filter(|(name, ..)| !METADATA.contains(&name.as_str()))
                    .collect()
            };
            let mut expected = data(direct.entries);
            let mut got = data(run.view.entries);
            expected.sort();
            got.sort();
            assert_eq!(got, expected, "forwarded entries differ");
        }
    }
});
