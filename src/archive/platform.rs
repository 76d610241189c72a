//! Platforms: this host's, and the choice of an image from a multi-platform index.

use super::layout::{Descriptor, Platform};

/// A multi-platform index without an image for this host.
#[derive(Debug)]
pub(super) struct NoHostPlatform {
    pub(super) path: String,
    /// What it does hold, for the message.
    pub(super) platforms: String,
}

impl std::fmt::Display for NoHostPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} holds no image for this host's platform {}; it holds {}",
            self.path,
            host_platform(),
            self.platforms
        )
    }
}

impl std::error::Error for NoHostPlatform {}

/// A multi-platform index's image manifests: BuildKit attaches attestations as extra
/// manifests with an "unknown" platform.
pub(crate) fn images_of(manifests: &[Descriptor]) -> impl Iterator<Item = &Descriptor> {
    manifests.iter().filter(|d| {
        d.annotations
            .get("vnd.docker.reference.type")
            .is_none_or(|t| t != "attestation-manifest")
            && d.platform.as_ref().is_none_or(|p| p.os != "unknown")
    })
}

/// Of a multi-platform index's manifests, the only image without a platform, or the one for
/// this host.
pub(super) fn choose_platform(manifests: &[Descriptor]) -> Option<&Descriptor> {
    let images: Vec<&Descriptor> = images_of(manifests).collect();
    if let [only] = images.as_slice() {
        if only.platform.is_none() {
            return Some(only);
        }
    }
    images.into_iter().find(|d| {
        d.platform
            .as_ref()
            .is_some_and(|p| p.os == "linux" && p.architecture == host_architecture())
    })
}

/// The platforms of an index's images, for messages: `linux/arm64, linux/arm/v7`.
pub(super) fn platforms(manifests: &[Descriptor]) -> String {
    let mut names: Vec<String> = images_of(manifests)
        .map(|d| {
            d.platform
                .as_ref()
                .map_or("an image of no platform".into(), Platform::to_string)
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        "no image at all".to_string()
    } else {
        names.join(", ")
    }
}

/// This host's platform as OCI writes it: `linux/amd64`.
pub fn host_platform() -> String {
    format!("linux/{}", host_architecture())
}

/// The host's architecture in the OCI (Go) spelling.
pub(super) fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}
