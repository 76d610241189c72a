//! Arbitrary bytes as a layer recipe, against an app that keeps one small layer:
//! `delta::recipe::rebuild` must never panic, never write more than the size its header declares
//! (nor anything when that is over the limit), and succeed only with exactly that many bytes
//! hashing to the declared diff ID. The first byte picks the form: 0, the bytes as they come (a
//! zstd stream, or not); else the bytes after it as the stream's content, compressed here, so
//! that the operations themselves get explored.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use dokku_image::delta::pack::{pack_layer, Packs};
use dokku_image::delta::recipe::{header, rebuild};
use dokku_image::digest::Digest;
use libfuzzer_sys::fuzz_target;

const LIMIT: u64 = 1 << 20;

/// The app's packs: one layer of a few files, some content repeated.
fn packs() -> &'static Packs {
    static PACKS: OnceLock<Packs> = OnceLock::new();
    PACKS.get_or_init(|| {
        let mut builder = tar::Builder::new(Vec::new());
        let mut state = 1u64;
        for (i, size) in [100_000usize, 5_000, 20_000].into_iter().enumerate() {
            let data: Vec<u8> = (0..size)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (state >> 56) as u8
                })
                .collect();
            let mut header = tar::Header::new_gnu();
            header.set_size(size as u64);
            header.set_mode(0o644);
            builder
                .append_data(&mut header, format!("f{i}"), &data[..])
                .unwrap();
        }
        let layer = builder.into_inner().unwrap();
        // Always the same layer, so runs side by side may commit its pack over each other.
        let dir: PathBuf = std::env::temp_dir().join("dokku-image-fuzz-delta-packs");
        pack_layer(&layer[..], &dir).unwrap().commit().unwrap();
        Packs::open(&dir).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&form, rest)) = data.split_first() else {
        return;
    };
    let recipe = match form {
        0 => rest.to_vec(),
        _ => zstd::encode_all(&[b"dokku-image-recipe 1\n", rest].concat()[..], 1).unwrap(),
    };
    let declared = header(&recipe[..]).ok();
    let mut out = Vec::new();
    let result = rebuild(&recipe[..], packs(), &mut out, LIMIT);
    if let Some(declared) = &declared {
        assert!(
            out.len() as u64 <= declared.size,
            "wrote past the declared size"
        );
        if declared.size > LIMIT {
            assert!(out.is_empty(), "wrote a layer over the limit");
        }
    }
    if let Ok(rebuilt) = result {
        let declared = declared.expect("a rebuilt recipe has a header");
        assert_eq!(rebuilt.size, out.len() as u64);
        assert_eq!(
            (rebuilt.size, &rebuilt.diff_id),
            (declared.size, &declared.diff_id)
        );
        assert_eq!(Digest::of(&out), rebuilt.diff_id);
    }
});
