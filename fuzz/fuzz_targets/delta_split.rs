//! Arbitrary bytes as a layer tar: `delta::chunks::split` must never panic, hand pieces that give
//! back the input exactly, refuse only with InvalidData, and take every tar that Go's reader (the
//! engine's, modelled by `DockerView`) reads to its end, cutting into chunks exactly the data Go
//! gives each regular file.
#![no_main]

use std::io::{ErrorKind, Write};

use dokku_image::delta::chunks::{split, Piece, MAX_CHUNK};
use dokku_image::digest::Digest;
use dokku_image_fuzz::{fnv, DockerView, State, FNV_OFFSET};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut whole = Vec::with_capacity(data.len());
    // Each regular file's data as (length, hash): the chunks between two raw pieces.
    let mut files: Vec<(u64, u64)> = Vec::new();
    let mut in_file = false;
    let result = split(data, |piece| {
        match piece {
            Piece::Raw(bytes) => {
                whole.extend_from_slice(bytes);
                in_file = false;
            }
            Piece::Chunk {
                data: bytes,
                sha256,
            } => {
                assert!(!bytes.is_empty() && bytes.len() <= MAX_CHUNK as usize);
                assert_eq!(Digest::of(bytes), Digest::from_sha256(sha256));
                whole.extend_from_slice(bytes);
                if !in_file {
                    files.push((0, FNV_OFFSET));
                    in_file = true;
                }
                let file = files.last_mut().expect("a file was started");
                *file = (file.0 + bytes.len() as u64, fnv(file.1, bytes));
            }
        }
        Ok(())
    });
    let mut go = DockerView::new(true);
    go.write_all(data).expect("the model takes any bytes");
    match result {
        Ok(split) => {
            assert!(whole == data, "the pieces are not the input");
            assert_eq!(split.size, data.len() as u64);
            assert_eq!(split.diff_id, Digest::of(data));
        }
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::InvalidData, "{e}");
            assert!(
                data.starts_with(&whole),
                "the pieces before the error are not the input's"
            );
            assert_ne!(
                go.state,
                State::Ended,
                "Go's reader takes what split refused: {e}"
            );
            return;
        }
    }
    if go.state == State::Ended {
        let go_files: Vec<(u64, u64)> = go
            .entries
            .iter()
            .filter(|(_, kind, len, _)| matches!(kind, b'0' | b'7') && *len > 0)
            .map(|(_, _, len, hash)| (*len, *hash))
            .collect();
        assert_eq!(
            files, go_files,
            "the chunks are not the files' data as Go reads it"
        );
    }
});
