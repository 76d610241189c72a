//! Arbitrary bytes as the stdin of `image:load`: `archive::forward` must never panic, never let
//! docker see the metadata or the end-of-archive marker when it fails, and stay within its limits.
//! Each input runs twice, with a check that accepts every archive and one that rejects every
//! archive; the two runs must agree on how far the input got.
#![no_main]

use dokku_image_fuzz::run_forward;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let accepted = run_forward(data, true, false);
    let rejected = run_forward(data, false, false);
    // Deterministic: the rejecting check runs exactly when the accepting one does.
    assert_eq!(
        accepted.checked.is_some(),
        rejected.checked.is_some(),
        "accepting run: {:?}",
        accepted.result.as_ref().err()
    );
    assert_eq!(accepted.checked, rejected.checked);
    if let (Err(a), Err(b), None) = (&accepted.result, &rejected.result, &accepted.checked) {
        assert_eq!(
            a.to_string(),
            b.to_string(),
            "the same input failed differently"
        );
    }
});
