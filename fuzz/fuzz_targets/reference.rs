//! `Reference::parse` on arbitrary text. A reference that parses must display as the input,
//! normalise to a reference that parses again and names the same image, and be safe to hand to
//! the docker CLI as one argument.
#![no_main]

use dokku_image::reference::Reference;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = match Reference::parse(input) {
        Ok(parsed) => parsed,
        Err(error) => {
            let message = error.to_string();
            assert!(message.starts_with("invalid image reference "), "{message}");
            assert!(
                !message.contains('\n') && !message.contains('\r'),
                "{message:?}"
            );
            return;
        }
    };
    assert_eq!(parsed.to_string(), input, "Display is the input");
    assert!(
        !input.starts_with('-'),
        "{input:?} would read as a docker flag"
    );
    assert!(
        !input.chars().any(|c| c.is_whitespace() || c.is_control()),
        "{input:?} holds whitespace or a control character"
    );
    assert_eq!(parsed.digest().is_some(), parsed.has_digest());
    if let Some(tag) = parsed.tag() {
        assert!(!tag.is_empty() && tag.len() <= 128, "tag {tag:?}");
    }

    let normalized = parsed.normalized();
    let again = Reference::parse(&normalized)
        .unwrap_or_else(|e| panic!("{input:?} normalises to {normalized:?}, which fails: {e:#}"));
    assert!(again.same_as(&parsed), "{input:?} vs {normalized:?}");
    assert!(parsed.same_as(&again), "same_as is symmetric");
    assert_eq!(
        again.normalized(),
        normalized,
        "normalisation is idempotent"
    );
    let expected_tag = match (parsed.tag(), parsed.has_digest()) {
        (None, false) => Some("latest"),
        (tag, _) => tag,
    };
    assert_eq!(again.tag(), expected_tag, "{input:?} vs {normalized:?}");
    assert_eq!(again.digest(), parsed.digest());
    assert!(parsed.same_as(&parsed.clone()));
});
