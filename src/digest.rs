//! Content digests as Docker writes them, `sha256:` and 64 lowercase hex digits: image IDs,
//! config, manifest, index and layer digests. One type, one spelling check.

use std::fmt;

use sha2::{Digest as _, Sha256};

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

/// The ChainIDs of a stack of layers given bottom first by their diff IDs: the first layer's is
/// its diff ID, each next one `sha256("<parent ChainID> <diff ID>")`. The classic store keys its
/// layers by them, so a layer is the same on two hosts only with the same layers below it.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut chains: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let chain = match chains.last() {
            None => diff_id.clone(),
            Some(parent) => Digest::of(format!("{parent} {diff_id}").as_bytes()),
        };
        chains.push(chain);
    }
    chains
}

impl Digest {
    /// The sha256 digest of `data`.
    pub fn of(data: &[u8]) -> Digest {
        Digest::from_sha256(Sha256::digest(data).into())
    }

    /// The digest a finished hasher holds.
    pub fn from_sha256(bytes: [u8; 32]) -> Digest {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Digest(format!("sha256:{hex}"))
    }

    /// The 32 bytes the hex digits spell, as a hasher gives them (`from_sha256` undone).
    pub fn sha256(&self) -> [u8; 32] {
        let nibble = |digit: u8| match digit {
            b'0'..=b'9' => digit - b'0',
            _ => digit - b'a' + 10,
        };
        let mut bytes = [0; 32];
        for (byte, pair) in bytes.iter_mut().zip(self.hex().as_bytes().chunks(2)) {
            *byte = nibble(pair[0]) << 4 | nibble(pair[1]);
        }
        bytes
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
        assert_eq!(Digest::from_sha256(digest.sha256()), digest);
        assert_eq!(digest.sha256()[..2], [0x01, 0x23]);
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

    #[test]
    fn chain_ids_follow_the_layers_below() {
        // `printf '' | sha256sum` and the chain of two layers as `docker` computes it.
        let empty = Digest::of(b"");
        assert_eq!(
            empty.hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let a = Digest::from_hex(HEX).unwrap();
        let chains = chain_ids(&[a.clone(), empty.clone()]);
        assert_eq!(chains[0], a);
        assert_eq!(chains[1], Digest::of(format!("{a} {empty}").as_bytes()));
        assert_ne!(chain_ids(&[empty.clone(), a.clone()])[1], chains[1]);
        assert!(chain_ids(&[]).is_empty());
    }
}
