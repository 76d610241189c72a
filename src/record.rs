//! How an image deploy is written into, and read back from, a commit message. The trailers
//! carry the reference as the user wrote it and the full image ID, so `image:history` and
//! `image:rollback` need nothing but the app repo.

const SOURCE: &str = "Image-Source";
const ID: &str = "Image-Id";
const COMMAND: &str = "Image-Command";

/// An image deploy as recorded in its commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployRecord {
    pub image: String,
    pub image_id: String,
    pub command: String,
}

impl DeployRecord {
    pub fn message(&self, subject: &str) -> String {
        format!(
            "{subject}\n\n{SOURCE}: {}\n{ID}: {}\n{COMMAND}: {}\n",
            self.image, self.image_id, self.command
        )
    }

    /// The record in a commit message, or None for commits this plugin did not make.
    pub fn parse(message: &str) -> Option<DeployRecord> {
        let trailer = |key: &str| {
            message.lines().rev().find_map(|line| {
                let value = line.strip_prefix(key)?.strip_prefix(": ")?;
                Some(value.trim().to_string())
            })
        };
        let image_id = trailer(ID)?;
        let valid_id = image_id
            .strip_prefix("sha256:")
            .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
        if !valid_id {
            return None;
        }
        Some(DeployRecord {
            image: trailer(SOURCE)?,
            image_id,
            command: trailer(COMMAND).unwrap_or_default(),
        })
    }
}

/// A commit ID's first 12 hex digits, for people.
pub fn short_commit(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// An image ID's first 12 hex digits, without `sha256:`, for people.
pub fn short_id(id: &str) -> &str {
    short_commit(id.strip_prefix("sha256:").unwrap_or(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID_HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn round_trip() {
        let record = DeployRecord {
            image: "registry.example:5000/team/app:v1".into(),
            image_id: format!("sha256:{ID_HEX}"),
            command: "image:load".into(),
        };
        let message = record.message("Deploy registry.example:5000/team/app:v1");
        assert_eq!(DeployRecord::parse(&message), Some(record));
    }

    #[test]
    fn other_commits_are_not_records() {
        assert_eq!(DeployRecord::parse("Fix the homepage"), None);
        assert_eq!(
            DeployRecord::parse("x\n\nImage-Source: a\nImage-Id: sha256:short\n"),
            None
        );
        assert_eq!(
            DeployRecord::parse(&format!("x\n\nImage-Id: sha256:{ID_HEX}\n")),
            None
        );
    }

    #[test]
    fn short_ids() {
        assert_eq!(short_id(&format!("sha256:{ID_HEX}")), "0123456789ab");
        assert_eq!(short_id("abc"), "abc");
        assert_eq!(short_commit(&ID_HEX[..40]), "0123456789ab");
        assert_eq!(short_commit("abc"), "abc");
    }
}
