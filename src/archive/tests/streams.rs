//! Streams and limits: compression, sizes, sink errors, memory that does not grow.

use super::*;

#[test]
fn oversize_metadata_is_refused() {
    let limits = Limits {
        max_metadata_entry: 100,
        ..Limits::default()
    };
    let (result, sink) = run_with(&legacy(), &limits, first_choice);
    assert_eq!(
        result.unwrap_err().to_string(),
        "manifest.json is larger than the 100 B limit (DOKKU_IMAGE_MAX_METADATA_BYTES)"
    );
    assert_nothing_committed(&sink);
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, "index.json", &vec![b' '; (16 * MIB + 1) as usize]);
    assert_eq!(
        error(&finish(b)),
        "index.json is larger than the 16 MiB limit (DOKKU_IMAGE_MAX_METADATA_BYTES)"
    );
}

#[test]
fn total_size_limit() {
    let limits = Limits {
        max_total_bytes: 4096,
        ..Limits::default()
    };
    for compression in ALL {
        let input = compress(&legacy(), compression);
        let (result, sink) = run_with(&input, &limits, first_choice);
        assert_eq!(
            result.unwrap_err().to_string(),
            "archive exceeds the size limit of 4096 bytes (DOKKU_IMAGE_MAX_ARCHIVE_BYTES)"
        );
        assert_nothing_committed(&sink);
    }
    // The limit counts decompressed bytes, trailing padding included.
    let mut padded = legacy();
    let exact = Limits {
        max_total_bytes: padded.len() as u64,
        ..Limits::default()
    };
    run_with(&padded, &exact, first_choice).0.unwrap();
    padded.extend_from_slice(&[0; BLOCK]);
    assert!(run_with(&padded, &exact, first_choice).0.is_err());
}

#[test]
fn the_engine_never_gets_more_than_its_disk_can_take() {
    // 64 MiB of free space less a 40 MiB reserve: room for 12 MiB of tar, which the engine
    // holds twice while it imports.
    let limits = Limits {
        disk_free: Some(64 * MIB),
        disk_reserve: 40 * MIB,
        ..Limits::default()
    };
    let mut b = tar::Builder::new(Vec::new());
    // Repetitive: zstd makes it a few KiB, the engine would get all of it.
    file(
        &mut b,
        &format!("{}/layer.tar", hex(1)),
        &pattern(7, 20 << 20),
    );
    let layer = finish(b);
    for compression in [Compression::None, Compression::Zstd] {
        let input = compress(&layer, compression);
        let mut sink = Vec::new();
        let result = forward(&input[..], &mut sink, &limits, &mut NoContent, first_choice);
        assert_eq!(
            result.unwrap_err().to_string(),
            "the engine has no room on disk for this archive: 64 MiB is free where it keeps images, less a reserve of 40 MiB (DOKKU_IMAGE_DISK_RESERVE_BYTES), and it holds 2 copies of what it loads while it imports, so it can take 12 MiB of archive; nothing was loaded"
        );
        assert_nothing_committed(&sink);
        assert!(
            sink.len() as u64 <= 12 * MIB,
            "{} bytes forwarded",
            sink.len()
        );
    }
    // What fits loads; a reserve larger than the free space leaves no room at all.
    run_with(&legacy(), &limits, first_choice).0.unwrap();
    let full = Limits {
        disk_free: Some(MIB),
        disk_reserve: 2 * MIB,
        ..Limits::default()
    };
    assert!(run_with(&legacy(), &full, first_choice).0.is_err());
}

#[test]
fn sink_errors_are_reported() {
    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::new(io::ErrorKind::BrokenPipe, "broken pipe"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let error = forward(
        &legacy()[..],
        Broken,
        &Limits::default(),
        &mut NoContent,
        first_choice,
    )
    .unwrap_err();
    assert_eq!(
        format!("{error:#}"),
        "forwarding the archive to docker image load failed: broken pipe"
    );
    // The io::Error is kept, so image:load can tell a loader that stopped reading.
    assert!(error.chain().any(|cause| cause
        .downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)));
}

#[test]
fn limits_from_variables() {
    let none = |_: &str| None;
    assert_eq!(Limits::from_lookup(none).unwrap(), Limits::default());
    assert_eq!(Limits::default().max_metadata_entry, 16 * MIB);
    assert_eq!(Limits::default().max_total_bytes, 256 * GIB);
    let set = |name: &str| match name {
        METADATA_ENV => Some(OsString::from("1024")),
        ARCHIVE_ENV => Some(OsString::from("")),
        _ => None,
    };
    assert_eq!(
        Limits::from_lookup(set).unwrap(),
        Limits {
            max_metadata_entry: 1024,
            ..Limits::default()
        }
    );
    assert_eq!(Limits::default().disk_reserve, GIB);
    let reserve = |value: &'static str| {
        Limits::from_lookup(move |name: &str| {
            (name == DISK_RESERVE_ENV).then(|| OsString::from(value))
        })
    };
    assert_eq!(reserve("0").unwrap().disk_reserve, 0);
    assert_eq!(reserve("").unwrap().disk_reserve, GIB);
    assert_eq!(
        reserve("1G").unwrap_err().to_string(),
        "DOKKU_IMAGE_DISK_RESERVE_BYTES must be a whole number of bytes, not \"1G\""
    );
    for bad in ["0", "-1", "16M", " 5", "1e9", "99999999999999999999999"] {
        let lookup = |name: &str| (name == ARCHIVE_ENV).then(|| OsString::from(bad));
        assert_eq!(
            Limits::from_lookup(lookup).unwrap_err().to_string(),
            format!("DOKKU_IMAGE_MAX_ARCHIVE_BYTES must be a positive whole number of bytes, not {bad:?}")
        );
    }
}

#[test]
fn compression_detection_and_names() {
    assert_eq!(Compression::detect(&[0x1f, 0x8b, 8]), Compression::Gzip);
    assert_eq!(Compression::detect(b"BZh91AY"), Compression::Bzip2);
    assert_eq!(
        Compression::detect(&[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]),
        Compression::Xz
    );
    assert_eq!(
        Compression::detect(&[0xfd, 0x37, 0x7a, 0x58, 0x5a]),
        Compression::None
    );
    assert_eq!(
        Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd]),
        Compression::Zstd
    );
    assert_eq!(Compression::detect(b"ustar"), Compression::None);
    let names: Vec<String> = ALL.iter().map(|c| c.to_string()).collect();
    assert_eq!(names, ["plain tar", "gzip", "bzip2", "xz", "zstd"]);
}

#[test]
fn concatenated_compressed_streams() {
    let original = legacy();
    let (first, second) = original.split_at(original.len() / 2);
    for compression in [
        Compression::Gzip,
        Compression::Bzip2,
        Compression::Xz,
        Compression::Zstd,
    ] {
        let mut input = compress(first, compression);
        input.extend(compress(second, compression));
        let (result, sink) = run(&input);
        result.unwrap_or_else(|e| panic!("{compression}: {e:#}"));
        assert_eq!(data_entries(&sink), data_entries(&original));
    }
}

/// Yields `len` bytes of a pattern without holding them.
struct Generated {
    remaining: u64,
    position: u64,
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.remaining) as usize;
        for byte in &mut buf[..n] {
            *byte = (self.position % 251) as u8 | 1;
            self.position += 1;
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Checks the stream it receives without keeping it.
struct CheckingSink {
    written: u64,
    largest_write: usize,
    layer_sum: u64,
}

impl Write for CheckingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for (i, &byte) in buf.iter().enumerate() {
            let at = self.written + i as u64;
            if (BLOCK as u64..BLOCK as u64 + 64 * MIB).contains(&at) {
                self.layer_sum += u64::from(byte);
            }
        }
        self.written += buf.len() as u64;
        self.largest_write = self.largest_write.max(buf.len());
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn streams_a_large_layer_in_constant_memory() {
    let layer_len = 64 * MIB;
    let layer = hex(40);
    let cfg = hex(41);
    let mut h = header(tar::EntryType::Regular, layer_len);
    h.set_path(format!("blobs/sha256/{layer}")).unwrap();
    h.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, &format!("blobs/sha256/{cfg}"), &config_json());
    let manifest = format!(
        r#"[{{"Config":"blobs/sha256/{cfg}","RepoTags":["big:1"],"Layers":["blobs/sha256/{layer}"]}}]"#
    );
    file(&mut b, "manifest.json", manifest.as_bytes());
    let tail = finish(b);
    let input = Cursor::new(h.as_bytes().to_vec())
        .chain(Generated {
            remaining: layer_len,
            position: 0,
        })
        .chain(Cursor::new(tail.clone()));
    let mut sink = CheckingSink {
        written: 0,
        largest_write: 0,
        layer_sum: 0,
    };
    let contents = forward(
        input,
        &mut sink,
        &Limits::default(),
        &mut NoContent,
        first_choice,
    )
    .unwrap()
    .contents;
    assert_eq!(named(&contents.images), vec![image(41, &["big:1"])]);
    assert_eq!(sink.written, BLOCK as u64 + layer_len + tail.len() as u64);
    assert!(sink.largest_write <= CHUNK_SIZE, "{}", sink.largest_write);
    let mut expected = Generated {
        remaining: layer_len,
        position: 0,
    };
    let mut expected_sum = 0u64;
    let mut buffer = vec![0; CHUNK_SIZE];
    loop {
        let n = expected.read(&mut buffer).unwrap();
        if n == 0 {
            break;
        }
        expected_sum += buffer[..n].iter().map(|&b| u64::from(b)).sum::<u64>();
    }
    assert_eq!(sink.layer_sum, expected_sum);
}

#[test]
fn regression_xz_stream_asking_for_too_much_memory_is_refused() {
    let mut options = liblzma::stream::LzmaOptions::new_preset(1).unwrap();
    options.dict_size(1536 * 1024 * 1024);
    let mut filters = liblzma::stream::Filters::new();
    filters.lzma2(&options);
    let stream =
        liblzma::stream::Stream::new_stream_encoder(&filters, liblzma::stream::Check::Crc64)
            .unwrap();
    let mut encoder = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
    encoder.write_all(&[0u8; 4096]).unwrap();
    let input = encoder.finish().unwrap();
    let mut sink = Vec::new();
    let err = forward(
        &input[..],
        &mut sink,
        &Limits::default(),
        &mut NoContent,
        first_choice,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("more than 256 MiB of memory"),
        "{err}"
    );
    assert!(sink.is_empty());
}
