//! The plugin's version and what its binaries were built for: `dokku-image --version` says
//! both, `image:layers` hands the version to the client, which compares it with its own.

/// Cargo.toml's version, which `scripts/package` checks against plugin.toml's.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The target triple of the build (build.rs).
pub const TARGET: &str = env!("DOKKU_IMAGE_TARGET");

/// `0.1.0 (x86_64-unknown-linux-gnu, static)`: a static build (`make package`) runs on any
/// Linux of its architecture; a dynamic one (a plain `cargo build`) needs the build machine's
/// libc or newer.
pub fn describe() -> String {
    let linking = if cfg!(target_feature = "crt-static") {
        "static"
    } else {
        "dynamic"
    };
    format!("{VERSION} ({TARGET}, {linking})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_version_and_the_target() {
        let text = describe();
        assert!(text.starts_with(&format!("{VERSION} (")), "{text}");
        assert!(text.contains("-linux-"), "{text}");
        assert!(
            text.ends_with(", static)") || text.ends_with(", dynamic)"),
            "{text}"
        );
    }
}
