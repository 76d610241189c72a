//! Hostile tar input: truncation, garbage, unsafe paths, extension headers, as docker reads them.

use super::*;

#[test]
fn truncated_plain_archives_fail_at_every_offset() {
    let original = legacy();
    let end_marker_start = original.len() - END_OF_ARCHIVE.len();
    let mut cuts: Vec<usize> = (0..end_marker_start + BLOCK).step_by(97).collect();
    cuts.extend((0..end_marker_start + BLOCK).step_by(BLOCK));
    cuts.push(end_marker_start + BLOCK - 1);
    for cut in cuts {
        let (result, sink) = run(&original[..cut]);
        assert!(result.is_err(), "cut at {cut} should fail");
        assert_nothing_committed(&sink);
        let message = format!("{:#}", result.unwrap_err());
        assert!(
            message.starts_with("archive is truncated after")
                || message.starts_with("empty input")
                || message.starts_with("input is not a tar archive"),
            "cut at {cut}: {message}"
        );
    }
    assert_eq!(
        error(&original[..end_marker_start]),
        format!("archive is truncated after {end_marker_start} bytes (no end-of-archive marker)")
    );
    assert_eq!(
        error(&original[..5000]),
        "archive is truncated after 5000 bytes"
    );
}

#[test]
fn end_marker_may_be_short_or_padded() {
    let original = legacy();
    let end = original.len();
    for cut in [end - BLOCK, end - 100] {
        run(&original[..cut]).0.unwrap();
    }
    let mut padded = original.clone();
    padded.extend_from_slice(&[0; 10 * 1024 + 7]);
    let (result, sink) = run(&padded);
    result.unwrap();
    assert_eq!(sink.len() % BLOCK, 0);
    assert_eq!(data_entries(&sink), data_entries(&original));
    // A lone zero block followed by a header is not an end marker.
    let mut lone = original[..end - 2 * BLOCK].to_vec();
    lone.extend_from_slice(&[0; BLOCK]);
    lone.extend_from_slice(&legacy());
    assert!(error(&lone).contains("a header follows a single zero block"));
}

#[test]
fn truncated_compressed_archives_fail() {
    let original = legacy();
    for compression in [
        Compression::Gzip,
        Compression::Bzip2,
        Compression::Xz,
        Compression::Zstd,
    ] {
        let input = compress(&original, compression);
        for cut in [
            10,
            input.len() / 3,
            input.len() / 2,
            input.len() - 4,
            input.len() - 1,
        ] {
            assert_eq!(
                error(&input[..cut]),
                format!(
                    "archive is truncated after {cut} bytes (the {compression} stream ends early)"
                )
            );
        }
    }
}

#[test]
fn garbage_and_empty_input() {
    assert_eq!(
        error(b""),
        "empty input: expected a tar archive (docker image save output) on stdin"
    );
    let garbage_message = "input is not a tar archive (or a gzip/bzip2/xz/zstd-compressed one)";
    assert_eq!(error(b"hello"), garbage_message);
    assert_eq!(error(b"<html>not found</html>\n"), garbage_message);
    assert_eq!(error(&pattern(9, 100_000)), garbage_message);
    assert_eq!(
        error(&compress(&pattern(9, 100_000), Compression::Gzip)),
        "the gzip stream does not hold a tar archive"
    );
    assert_eq!(
        error(&compress(b"", Compression::Zstd)),
        "the zstd stream is empty: expected a tar archive"
    );
    let mut bad_gzip = compress(&legacy(), Compression::Gzip);
    for byte in &mut bad_gzip[20..60] {
        *byte ^= 0x55;
    }
    assert!(error(&bad_gzip).starts_with("corrupt gzip stream: "));
    let mut bad_xz = compress(&legacy(), Compression::Xz);
    let middle = bad_xz.len() / 2;
    bad_xz[middle] ^= 0xff;
    assert!(error(&bad_xz).starts_with("corrupt xz stream: "));
}

#[test]
fn corrupt_header_mid_archive() {
    let mut original = legacy();
    original[BLOCK + 10] ^= 0x20;
    assert_eq!(
        error(&original),
        "corrupt tar archive: bad header checksum at offset 512"
    );
}

/// A ustar header with a name the tar crate's builder would refuse.
fn raw_entry(name: &[u8], kind: tar::EntryType, data: &[u8]) -> Vec<u8> {
    let mut h = header(kind, data.len() as u64);
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len() + padding(data.len() as u64) as usize, 0);
    out
}

#[test]
fn unsafe_paths_are_refused() {
    for name in [
        &b"../evil"[..],
        b"/etc/passwd",
        b"a/../../b",
        b"blobs/..",
        b"./../x",
    ] {
        let mut input = raw_entry(b"ok.txt", tar::EntryType::Regular, b"fine");
        input.extend(raw_entry(name, tar::EntryType::Regular, b"x"));
        input.extend_from_slice(&END_OF_ARCHIVE);
        let message = error(&input);
        assert_eq!(
            message,
            format!(
                "archive entry has an unsafe path: {:?}",
                String::from_utf8_lossy(name)
            )
        );
    }
    let mut input = raw_entry(b"sparse", tar::EntryType::GNUSparse, b"x");
    input.extend_from_slice(&END_OF_ARCHIVE);
    assert_eq!(
        error(&input),
        "archive entry sparse is a GNU sparse file, which docker image archives never hold"
    );
    // A dot-dot inside a name is harmless.
    let mut input = raw_entry(b"a..b", tar::EntryType::Regular, b"x");
    input.extend_from_slice(&END_OF_ARCHIVE);
    assert!(error(&input).starts_with("archive holds no manifest.json"));
}

#[test]
fn long_names_pax_and_gnu() {
    let cfg = hex(8);
    let long_dir = "d".repeat(150);
    let gnu_path = format!("{long_dir}/gnu/layer.tar");
    let pax_path = format!("{long_dir}/pax/layer.tar");
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, &format!("{cfg}.json"), b"{}");
    // append_data falls back to a GNU 'L' entry for names over 100 bytes.
    file(&mut b, &gnu_path, &pattern(4, 1500));
    let data = pattern(5, 2100);
    b.append_pax_extensions([
        ("path", pax_path.as_bytes()),
        ("size", data.len().to_string().as_bytes()),
        ("mtime", b"1700000000.5".as_slice()),
    ])
    .unwrap();
    // The header's own size is wrong on purpose: the PAX size wins.
    let mut h = header(tar::EntryType::Regular, 0);
    h.set_path("placeholder").unwrap();
    h.set_cksum();
    let mut raw = finish(b);
    raw.truncate(raw.len() - END_OF_ARCHIVE.len());
    raw.extend_from_slice(h.as_bytes());
    raw.extend_from_slice(&data);
    raw.resize(raw.len() + padding(data.len() as u64) as usize, 0);
    let layers_end = raw.len();
    let mut b = tar::Builder::new(raw);
    b.append_pax_extensions([("comment", b"global".as_slice())])
        .unwrap();
    let manifest = format!(
        r#"[{{"Config":"{cfg}.json","RepoTags":["long:1"],"Layers":["{gnu_path}","{pax_path}"]}}]"#
    );
    file(&mut b, "manifest.json", manifest.as_bytes());
    let original = finish(b);
    let (result, sink) = run(&original);
    assert_eq!(named(&result.unwrap().images), vec![image(8, &["long:1"])]);
    // Byte for byte up to the held-back manifest, which is rewritten (without the global
    // header in front of it, which docker ignores).
    assert!(
        sink[..layers_end] == original[..layers_end],
        "forwarded byte for byte"
    );
    assert_eq!(data_entries(&sink), data_entries(&original));
    assert!(sink.ends_with(&END_OF_ARCHIVE));
}

// Found by fuzzing (fuzz/fuzz_targets/archive_tar.rs): a PAX or base-256 size near
// u64::MAX overflowed `size + padding` (a panic in debug builds, a wrong length in release).
#[test]
fn regression_huge_entry_size_is_refused() {
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([("size", b"18446744073709551615".as_slice())])
        .unwrap();
    file(&mut b, "layer.tar", b"x");
    assert_eq!(
        error(&finish(b)),
        "corrupt tar archive: bad entry size at offset 1024: 18446744073709551615 bytes"
    );
    let mut h = header(tar::EntryType::Regular, u64::MAX);
    h.set_path("layer.tar").unwrap();
    h.set_cksum();
    let mut input = h.as_bytes().to_vec();
    input.extend_from_slice(&END_OF_ARCHIVE);
    assert_eq!(
        error(&input),
        "corrupt tar archive: bad entry size at offset 0: 18446744073709551615 bytes"
    );
}

/// PAX extended header data holding `records`.
fn pax_data(records: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in records {
        let body = key.len() + value.len() + 3;
        let mut len = body + 1;
        while len.to_string().len() + body != len {
            len += 1;
        }
        out.extend_from_slice(format!("{len} {key}={value}\n").as_bytes());
    }
    out
}

// Found by fuzzing (fuzz/fuzz_targets/archive_tar.rs): with a GNU long name and a PAX path
// for one entry this reader took the last, docker (Go's archive/tar) the long name, so
// docker saw a metadata entry this reader forwarded as a layer. Go also keeps only the last
// of two PAX headers (a size in the first changed where this reader thought the entry
// ended) and drops both at a global header. These combinations are now refused.
#[test]
fn regression_conflicting_extension_headers_are_refused() {
    let long_name = || {
        raw_entry(
            b"././@LongLink",
            tar::EntryType::GNULongName,
            b"manifest.json\0",
        )
    };
    let pax =
        |records: &[(&str, &str)]| raw_entry(b"pax", tar::EntryType::XHeader, &pax_data(records));
    let global = raw_entry(
        b"pax",
        tar::EntryType::XGlobalHeader,
        &pax_data(&[("comment", "g")]),
    );
    let cases: [(Vec<Vec<u8>>, &str); 5] = [
        (
            vec![long_name(), pax(&[("path", "a/layer.tar")])],
            "a PAX path and a GNU long name for one entry",
        ),
        (
            vec![pax(&[("path", "a/layer.tar")]), long_name()],
            "a PAX path and a GNU long name for one entry",
        ),
        (
            vec![pax(&[("size", "1024")]), pax(&[("comment", "x")])],
            "two PAX headers for one entry",
        ),
        (
            vec![long_name(), long_name()],
            "two GNU long names for one entry",
        ),
        (
            vec![pax(&[("size", "1024")]), global.clone()],
            "a global PAX header after an entry's extension headers",
        ),
    ];
    for (headers, conflict) in cases {
        let mut input = headers.concat();
        input.extend(raw_entry(b"a/layer.tar", tar::EntryType::Regular, b""));
        input.extend_from_slice(&END_OF_ARCHIVE);
        assert_eq!(
            error(&input),
            format!("corrupt tar archive: {conflict} at offset 1024")
        );
    }
    // One of each, and a global header before them, are fine.
    let mut b = tar::Builder::new(global);
    b.append_pax_extensions([("path", b"x/layer.tar".as_slice())])
        .unwrap();
    file(&mut b, "placeholder", b"data");
    let mut input = finish(b);
    input.truncate(input.len() - END_OF_ARCHIVE.len());
    input.extend(long_name());
    input.extend(raw_entry(b"manifest.json", tar::EntryType::Regular, b"[]"));
    input.extend_from_slice(&END_OF_ARCHIVE);
    assert_eq!(error(&input), "manifest.json lists no images");
}

// Found by fuzzing (fuzz/fuzz_targets/archive_tar.rs): with the magic `ustar\0` but
// another version field, the tar crate ignores the prefix field and docker does not, so
// `manifest.json` + `.` passed as an ordinary entry named `.` and docker extracted a
// manifest.json that was never checked (and `blobs/sha256` + `index.json` was held back as
// metadata that docker saw as a blob).
#[test]
fn regression_prefix_field_is_read_as_docker_reads_it() {
    let with_prefix = |prefix: &[u8], name: &[u8], version: &[u8; 2], star: bool| {
        let mut h = header(tar::EntryType::Regular, 2);
        let block = h.as_mut_bytes();
        block[..name.len()].copy_from_slice(name);
        block[257..263].copy_from_slice(b"ustar\0");
        block[263..265].copy_from_slice(version);
        block[345..345 + prefix.len()].copy_from_slice(prefix);
        if star {
            block[508..].copy_from_slice(b"tar\0");
        }
        h.set_cksum();
        let block: [u8; BLOCK] = h.as_bytes()[..].try_into().unwrap();
        (block, h)
    };
    for version in [b"00", b" \0", b"xx"] {
        let (block, _) = with_prefix(b"blobs/sha256", b"index.json", version, false);
        assert_eq!(header_path(&block), b"blobs/sha256/index.json");
    }
    // A star header's prefix is 131 bytes; what follows is its access time.
    let long_prefix = [b'p'; 131];
    let (block, _) = with_prefix(&long_prefix, b"x", b"00", true);
    assert_eq!(header_path(&block), [&long_prefix[..], b"/x"].concat());
    let (block, _) = with_prefix(&long_prefix, b"x", b"00", false);
    assert_eq!(header_path(&block), [&long_prefix[..], b"/x"].concat());

    let (_, smuggled) = with_prefix(b"manifest.json", b".", b" \0", false);
    let mut input = legacy();
    input.truncate(input.len() - END_OF_ARCHIVE.len());
    input.extend_from_slice(smuggled.as_bytes());
    input.extend_from_slice(b"[]");
    input.resize(input.len() + BLOCK - 2, 0);
    input.extend_from_slice(&END_OF_ARCHIVE);
    assert_eq!(error(&input), "archive holds manifest.json twice");
}

// Found by fuzzing (fuzz/fuzz_targets/archive_tar.rs): PAX records of a GNU sparse file
// (format 1.0) make docker name the entry after `GNU.sparse.name`, so a layer named
// `a/layer.tar` here reached docker as `manifest.json`. Sparse files are refused in PAX
// form too.
#[test]
fn regression_pax_sparse_files_are_refused() {
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([
        ("GNU.sparse.major", b"1".as_slice()),
        ("GNU.sparse.minor", b"0"),
        ("GNU.sparse.realsize", b"2"),
        ("GNU.sparse.name", b"manifest.json"),
    ])
    .unwrap();
    let mut data = b"1\n0\n2\n".to_vec();
    data.resize(BLOCK, 0);
    data.extend_from_slice(b"[]");
    file(&mut b, "a/layer.tar", &data);
    let mut input = finish(b);
    input.truncate(input.len() - END_OF_ARCHIVE.len());
    input.extend(legacy());
    assert_eq!(
        error(&input),
        "archive entry a/layer.tar is a GNU sparse file, which docker image archives never hold"
    );
}

// Found while checking the fuzz target's model of docker's reader against Go's
// archive/tar: an entry of the old type `\0` whose name ends in `/` is a directory to
// docker, so its "data" was read as headers there, and a manifest.json hidden in it reached
// docker unchecked while this reader forwarded it as file data.
#[test]
fn regression_old_type_with_trailing_slash_is_a_directory() {
    // A header of type `\0` (the tar crate writes `0` for a regular file).
    let old_type = |name: &[u8], size: u64| {
        let mut h = header(tar::EntryType::Regular, size);
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.as_mut_bytes()[156] = 0;
        h.set_cksum();
        h.as_bytes().to_vec()
    };
    let mut hidden = raw_entry(b"manifest.json", tar::EntryType::Regular, b"[]");
    hidden.extend_from_slice(&[0; BLOCK]);
    let mut input = old_type(b"x/", hidden.len() as u64);
    input.extend_from_slice(&hidden);
    input.extend_from_slice(&END_OF_ARCHIVE);
    // Now the hidden header is an entry of its own, held back like any manifest.
    assert_eq!(error(&input), "manifest.json lists no images");
    // The same type without the slash is a file with data.
    let mut input = old_type(b"x", 4);
    input.extend_from_slice(b"data");
    input.resize(2 * BLOCK, 0);
    input.extend_from_slice(&END_OF_ARCHIVE);
    assert!(error(&input).starts_with("archive holds no manifest.json"));
}
