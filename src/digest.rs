//! Content digests as Docker writes them, `sha256:` and 64 lowercase hex digits: image IDs,
//! config, manifest, index and layer digests. One type, one spelling check.

use std::fmt;

/// A `sha256:<64 lowercase hex>` digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

/// What `docker image inspect` calls an image's ID: its config digest on the classic store,
/// its manifest's or index's digest on the containerd store.
pub type ImageId = Digest;

impl Digest {
    /// `sha256:<hex>`, or None for anything else (uppercase hex included).
    pub fn parse(text: &str) -> Option<Digest> {
        Digest::from_hex(text.strip_prefix("sha256:")?)
    }

    /// The digest of 64 lowercase hex digits.
    pub fn from_hex(hex: &str) -> Option<Digest> {
        is_lower_hex(hex, 64).then(|| Digest(format!("sha256:{hex}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 64 hex digits.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    /// The first 12 hex digits, for people.
    pub fn short(&self) -> &str {
        &self.hex()[..12]
    }

    /// `blobs/sha256/<hex>`, where an OCI layout keeps this blob.
    pub fn blob_path(&self) -> String {
        format!("blobs/sha256/{}", self.hex())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Digest {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// True when `text` is exactly `len` lowercase hex digits.
pub fn is_lower_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn only_sha256_with_64_lowercase_hex_digits() {
        let digest = Digest::parse(&format!("sha256:{HEX}")).unwrap();
        assert_eq!(digest.hex(), HEX);
        assert_eq!(digest.short(), "0123456789ab");
        assert_eq!(digest.to_string(), format!("sha256:{HEX}"));
        assert_eq!(digest.blob_path(), format!("blobs/sha256/{HEX}"));
        assert_eq!(Digest::from_hex(HEX), Some(digest));
        for bad in [
            HEX.to_string(),
            format!("sha256:{}", HEX.to_uppercase()),
            format!("sha256:{}", &HEX[1..]),
            format!("sha256:{HEX}0"),
            format!("sha512:{HEX}"),
            format!("sha256:{}g", &HEX[1..]),
            String::new(),
        ] {
            assert_eq!(Digest::parse(&bad), None, "{bad}");
        }
    }
}
