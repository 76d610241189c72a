//! Docker image references: parsing, validation, normalisation.
//!
//! The grammar is the one of Docker's `distribution/reference`:
//!
//! ```text
//! reference := name [ ":" tag ] [ "@" digest ]
//! name      := [ domain "/" ] path-component ( "/" path-component )*
//! domain    := host [ ":" port ]      host: DNS name, IPv4, or "[" IPv6 "]"
//! path-component := [a-z0-9]+ ( separator [a-z0-9]+ )*
//! separator := "." | "_" | "__" | "-"+
//! tag       := [\w][\w.-]{0,127}
//! digest    := algorithm ":" hex      (sha256: 64, sha384: 96, sha512: 128 lowercase hex)
//! ```
//!
//! As in Docker, the first component is a domain only when it contains `.` or `:` or is
//! `localhost`; otherwise the image lives on `docker.io`, and single-component names there get the
//! `library/` prefix. The fully qualified name may not exceed 255 characters.

use std::fmt;

use anyhow::{anyhow, Result};

use crate::digest::is_lower_hex;

const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";
const DOKKU_NAMESPACE: &str = "dokku/";
const NAME_TOTAL_LENGTH_MAX: usize = 255;
/// The annotations by which an OCI index names an image: the containerd store reads the first
/// (the whole name), other tools the second (the tag alone).
pub const CONTAINERD_NAME_ANNOTATION: &str = "io.containerd.image.name";
pub const OCI_REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
const TAG_LENGTH_MAX: usize = 128;

/// A parsed and validated Docker image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    original: String,
    /// Normalised domain (`docker.io` when none was given).
    domain: String,
    /// Normalised repository path (`library/` added for official images).
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl Reference {
    /// Parses and validates `input`.
    ///
    /// Errors read `invalid image reference "X": <reason>` on one line, with `X` quoted and escaped
    /// so that newlines and control characters stay visible.
    pub fn parse(input: &str) -> Result<Reference> {
        parse_parts(input).map_err(|reason| anyhow!("invalid image reference {input:?}: {reason}"))
    }

    pub fn has_digest(&self) -> bool {
        self.digest.is_some()
    }

    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The tag as given, `None` when absent.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The tag, `latest` when absent.
    pub fn tag_or_default(&self) -> &str {
        self.tag().unwrap_or(DEFAULT_TAG)
    }

    /// The app, when the repository is in Dokku's own namespace, `dokku/` on Docker Hub, where
    /// Dokku tags each app's release image `dokku/APP:latest`.
    pub fn dokku_app(&self) -> Option<&str> {
        self.path
            .strip_prefix(DOKKU_NAMESPACE)
            .filter(|_| self.domain == DEFAULT_DOMAIN)
    }

    /// The fully qualified form: `docker.io/library/alpine:latest`,
    /// `docker.io/library/alpine@sha256:…`, or `name:tag@digest` when both were given. The default
    /// tag `latest` is added only when there is no digest.
    /// The annotations an index descriptor carries to name this image (containerd's `save`).
    pub fn name_annotations(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut annotations = serde_json::Map::new();
        annotations.insert(CONTAINERD_NAME_ANNOTATION.into(), self.normalized().into());
        annotations.insert(OCI_REF_NAME_ANNOTATION.into(), self.tag_or_default().into());
        annotations
    }

    pub fn normalized(&self) -> String {
        let mut out = format!("{}/{}", self.domain, self.path);
        match (&self.tag, &self.digest) {
            (Some(tag), _) => {
                out.push(':');
                out.push_str(tag);
            }
            (None, None) => {
                out.push(':');
                out.push_str(DEFAULT_TAG);
            }
            (None, Some(_)) => {}
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(digest);
        }
        out
    }

    /// The normalised repository, `docker.io/library/alpine`, without tag or digest.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The one of `repo_digests` (`NAME@sha256:…`, as `docker image inspect` lists them) that
    /// is in this reference's repository.
    pub fn digest_among<'d>(&self, repo_digests: &'d [String]) -> Option<&'d str> {
        repo_digests
            .iter()
            .find(|digest| {
                Reference::parse(digest).is_ok_and(|parsed| {
                    parsed.has_digest() && parsed.repository() == self.repository()
                })
            })
            .map(String::as_str)
    }

    /// True when both name the same repository and the same tag/digest once normalised, so
    /// `alpine`, `alpine:latest`, `docker.io/library/alpine:latest` and
    /// `index.docker.io/library/alpine:latest` are all the same.
    pub fn same_as(&self, other: &Reference) -> bool {
        self.normalized() == other.normalized()
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

fn parse_parts(input: &str) -> Result<Reference, String> {
    if input.is_empty() {
        return Err("the reference is empty".into());
    }
    if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains whitespace or a control character".into());
    }
    // Docker refuses a bare image ID where a reference is expected: it would be ambiguous.
    if is_lower_hex(input, 64) {
        return Err("a 64-character hexadecimal string is an image ID, not a reference".into());
    }

    let (rest, digest) = match input.split_once('@') {
        Some((rest, digest)) => {
            validate_digest(digest)?;
            (rest, Some(digest.to_string()))
        }
        None => (input, None),
    };

    // A colon after the last slash starts the tag; one before it belongs to the domain's port.
    let tag_start = match (rest.rfind(':'), rest.rfind('/')) {
        (Some(colon), Some(slash)) if colon > slash => Some(colon),
        (Some(colon), None) => Some(colon),
        _ => None,
    };
    let (name, tag) = match tag_start {
        Some(colon) => {
            let tag = &rest[colon + 1..];
            validate_tag(tag)?;
            (&rest[..colon], Some(tag.to_string()))
        }
        None => (rest, None),
    };
    if name.is_empty() {
        return Err("the repository name is empty".into());
    }

    let (domain, path) = match name.split_once('/') {
        Some((first, remainder))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            validate_domain(first)?;
            (Some(first), remainder)
        }
        _ => (None, name),
    };
    validate_path(path)?;

    let domain = match domain {
        None | Some(LEGACY_DEFAULT_DOMAIN) => DEFAULT_DOMAIN,
        Some(domain) => domain,
    };
    let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
        format!("{OFFICIAL_REPO_PREFIX}{path}")
    } else {
        path.to_string()
    };
    if domain.len() + 1 + path.len() > NAME_TOTAL_LENGTH_MAX {
        return Err(format!(
            "the repository name is longer than {NAME_TOTAL_LENGTH_MAX} characters"
        ));
    }

    Ok(Reference {
        original: input.to_string(),
        domain: domain.to_string(),
        path,
        tag,
        digest,
    })
}

fn validate_tag(tag: &str) -> Result<(), String> {
    if tag.is_empty() {
        return Err("the tag is empty".into());
    }
    if tag.len() > TAG_LENGTH_MAX {
        return Err(format!(
            "the tag is longer than {TAG_LENGTH_MAX} characters"
        ));
    }
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    if !word(bytes[0]) || !bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-') {
        return Err(format!(
            "invalid tag {tag:?}: tags are letters, digits, '_', '.' and '-', not starting with '.' or '-'"
        ));
    }
    Ok(())
}

fn validate_digest(digest: &str) -> Result<(), String> {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return Err(format!("invalid digest {digest:?}: expected ALGORITHM:HEX"));
    };
    let expected = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err(format!("unsupported digest algorithm {algorithm:?}")),
    };
    if !is_lower_hex(hex, expected) {
        return Err(format!(
            "invalid {algorithm} digest: expected {expected} lowercase hexadecimal digits"
        ));
    }
    Ok(())
}

fn validate_domain(domain: &str) -> Result<(), String> {
    let invalid = || Err(format!("invalid registry domain {domain:?}"));
    let (host, port) = if let Some(inner) = domain.strip_prefix('[') {
        // IPv6 literal, as loose as Docker's own pattern.
        let Some((ip, after)) = inner.split_once(']') else {
            return invalid();
        };
        if ip.is_empty() || !ip.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return invalid();
        }
        match after {
            "" => (None, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (None, Some(port)),
                None => return invalid(),
            },
        }
    } else {
        match domain.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(domain), None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "invalid registry domain {domain:?}: the port must be a number"
            ));
        }
    }
    if let Some(host) = host {
        let component_ok = |c: &str| {
            !c.is_empty()
                && !c.starts_with('-')
                && !c.ends_with('-')
                && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if !host.split('.').all(component_ok) {
            return invalid();
        }
    }
    Ok(())
}

fn validate_path(path: &str) -> Result<(), String> {
    if path.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err("repository name must be lowercase".into());
    }
    for component in path.split('/') {
        validate_component(component)?;
    }
    Ok(())
}

fn validate_component(component: &str) -> Result<(), String> {
    if component.is_empty() {
        return Err("the repository name has an empty path component".into());
    }
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if let Some(c) = component
        .chars()
        .find(|&c| !(c.is_ascii() && (alnum(c as u8) || matches!(c, '.' | '_' | '-'))))
    {
        return Err(format!(
            "invalid character {c:?} in repository name component {component:?}"
        ));
    }
    let bytes = component.as_bytes();
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return Err(format!(
            "repository name component {component:?} must start and end with a letter or digit"
        ));
    }
    // Runs of separators must be ".", "_", "__" or dashes only.
    for run in component.split(|c: char| c.is_ascii_alphanumeric()) {
        let ok = matches!(run, "" | "." | "_" | "__") || run.bytes().all(|b| b == b'-');
        if !ok {
            return Err(format!(
                "invalid separator {run:?} in repository name component {component:?}"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX64: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn ok(input: &str) -> Reference {
        Reference::parse(input).unwrap_or_else(|e| panic!("{input:?} should parse: {e:#}"))
    }

    fn err(input: &str) -> String {
        match Reference::parse(input) {
            Ok(r) => panic!("{input:?} should be rejected, got {r:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn dokku_namespace() {
        for (input, app) in [
            ("dokku/web:latest", Some("web")),
            ("dokku/web", Some("web")),
            ("docker.io/dokku/web:1", Some("web")),
            ("index.docker.io/dokku/web", Some("web")),
            ("dokku/a/b", Some("a/b")),
            ("dokku", None),
            ("dokkuweb:1", None),
            ("registry.example:5000/dokku/web", None),
            ("library/dokku", None),
        ] {
            assert_eq!(ok(input).dokku_app(), app, "{input}");
        }
        assert_eq!(ok("web").tag_or_default(), "latest");
        assert_eq!(ok("web:2").tag_or_default(), "2");
    }

    #[test]
    fn simple_names_normalise() {
        assert_eq!(ok("alpine").normalized(), "docker.io/library/alpine:latest");
        assert_eq!(
            ok("alpine:3.19").normalized(),
            "docker.io/library/alpine:3.19"
        );
        assert_eq!(ok("user/app").normalized(), "docker.io/user/app:latest");
        assert_eq!(
            ok("docker.io/alpine").normalized(),
            "docker.io/library/alpine:latest"
        );
        assert_eq!(
            ok("index.docker.io/library/alpine:edge").normalized(),
            "docker.io/library/alpine:edge"
        );
        assert_eq!(ok("a/b/c/d").normalized(), "docker.io/a/b/c/d:latest");
    }

    #[test]
    fn tag_accessor_keeps_what_was_given() {
        assert_eq!(ok("alpine").tag(), None);
        assert_eq!(ok("alpine:3").tag(), Some("3"));
        assert_eq!(ok("alpine:Latest_1.0-rc").tag(), Some("Latest_1.0-rc"));
    }

    #[test]
    fn display_is_the_input() {
        for input in [
            "alpine",
            "index.docker.io/library/alpine:3",
            "localhost:5000/x",
        ] {
            assert_eq!(ok(input).to_string(), input);
        }
    }

    #[test]
    fn equivalences() {
        let forms = [
            "alpine",
            "alpine:latest",
            "library/alpine",
            "docker.io/library/alpine:latest",
            "docker.io/alpine:latest",
            "index.docker.io/library/alpine:latest",
            "index.docker.io/alpine",
        ];
        for a in forms {
            for b in forms {
                assert!(ok(a).same_as(&ok(b)), "{a} should equal {b}");
            }
        }
        assert!(!ok("alpine").same_as(&ok("alpine:3")));
        assert!(!ok("alpine").same_as(&ok("other/alpine")));
        assert!(!ok("alpine").same_as(&ok("ghcr.io/library/alpine")));
        assert!(!ok("alpine").same_as(&ok(&format!("alpine@sha256:{HEX64}"))));
        assert!(!ok("localhost/alpine").same_as(&ok("alpine")));
    }

    #[test]
    fn the_repo_digest_of_the_same_repository() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let digests = vec![
            format!("other/app@{digest}"),
            format!("127.0.0.1:5000/team/app@{digest}"),
            format!("app@{digest}"),
        ];
        assert_eq!(
            ok("127.0.0.1:5000/team/app:v1").digest_among(&digests),
            Some(digests[1].as_str())
        );
        assert_eq!(
            ok("docker.io/library/app").digest_among(&digests),
            Some(digests[2].as_str())
        );
        assert_eq!(ok("third:1").digest_among(&digests), None);
        assert_eq!(ok("app").repository(), "docker.io/library/app");
    }

    #[test]
    fn domains_and_ports() {
        assert_eq!(ok("localhost/app").normalized(), "localhost/app:latest");
        assert_eq!(
            ok("localhost:5000/app:v1").normalized(),
            "localhost:5000/app:v1"
        );
        assert_eq!(ok("localhost:5000/app").tag(), None);
        assert_eq!(
            ok("registry.example.com/team/app").normalized(),
            "registry.example.com/team/app:latest"
        );
        assert_eq!(
            ok("Registry.Example.com/app").normalized(),
            "Registry.Example.com/app:latest"
        );
        assert_eq!(
            ok("10.0.0.1:443/app").normalized(),
            "10.0.0.1:443/app:latest"
        );
        assert_eq!(ok("[::1]:5000/app").normalized(), "[::1]:5000/app:latest");
        assert_eq!(ok("[fe80::1]/app").normalized(), "[fe80::1]/app:latest");
        assert_eq!(
            ok("my-registry.io/app").normalized(),
            "my-registry.io/app:latest"
        );
        // Without a slash, "localhost:5000" is name "localhost", tag "5000".
        let r = ok("localhost:5000");
        assert_eq!(r.tag(), Some("5000"));
        assert_eq!(r.normalized(), "docker.io/library/localhost:5000");

        assert!(err("localhost:port/app").contains("port must be a number"));
        assert!(err("localhost:/app").contains("port must be a number"));
        assert!(err("-bad.io/app").contains("invalid registry domain"));
        assert!(err("bad-.io/app").contains("invalid registry domain"));
        assert!(err("a..io/app").contains("invalid registry domain"));
        assert!(err("a_b.io/app").contains("invalid registry domain"));
        assert!(err("[::g]/app").contains("invalid registry domain"));
        assert!(err("[::1/app").contains("invalid registry domain"));
        assert!(err("[::1]x/app").contains("invalid registry domain"));
    }

    #[test]
    fn digests() {
        let with_digest = format!("alpine@sha256:{HEX64}");
        let r = ok(&with_digest);
        assert!(r.has_digest());
        assert_eq!(r.digest(), Some(&*format!("sha256:{HEX64}")));
        assert_eq!(r.tag(), None);
        assert_eq!(
            r.normalized(),
            format!("docker.io/library/alpine@sha256:{HEX64}")
        );

        let both = ok(&format!("alpine:3@sha256:{HEX64}"));
        assert_eq!(both.tag(), Some("3"));
        assert_eq!(
            both.normalized(),
            format!("docker.io/library/alpine:3@sha256:{HEX64}")
        );

        let port = ok(&format!("localhost:5000/app@sha256:{HEX64}"));
        assert_eq!(port.tag(), None);
        assert_eq!(
            port.normalized(),
            format!("localhost:5000/app@sha256:{HEX64}")
        );

        ok(&format!("a@sha512:{HEX64}{HEX64}"));
        ok(&format!("a@sha384:{}", &format!("{HEX64}{HEX64}")[..96]));
        assert!(!ok("alpine").has_digest());

        assert!(err(&format!("alpine@sha256:{}", &HEX64[..63])).contains("64 lowercase"));
        assert!(err(&format!("alpine@sha256:{HEX64}0")).contains("64 lowercase"));
        assert!(err(&format!("alpine@sha256:{}", HEX64.to_uppercase())).contains("64 lowercase"));
        assert!(err(&format!("alpine@md5:{HEX64}")).contains("unsupported digest algorithm"));
        assert!(err("alpine@sha256").contains("invalid digest"));
        assert!(err("alpine@").contains("invalid digest"));
        assert!(err(&format!("alpine@sha256:{HEX64}@sha256:{HEX64}")).contains("64 lowercase"));
        assert!(err(&format!("@sha256:{HEX64}")).contains("name is empty"));
    }

    #[test]
    fn tags() {
        ok(&format!("a:{}", "t".repeat(128)));
        ok("a:_x");
        assert!(err(&format!("a:{}", "t".repeat(129))).contains("longer than 128"));
        assert!(err("a:").contains("tag is empty"));
        assert!(err("a:.x").contains("invalid tag"));
        assert!(err("a:-x").contains("invalid tag"));
        assert!(err("a:x+y").contains("invalid tag"));
        assert!(err("a:b:c").contains("invalid character ':'"));
    }

    #[test]
    fn path_components() {
        for good in [
            "a",
            "a.b",
            "a_b",
            "a__b",
            "a-b",
            "a---b",
            "a1.b2_c3__d4-e5",
            "0",
        ] {
            ok(good);
        }
        assert!(err("a___b").contains("invalid separator"));
        assert!(err("a._b").contains("invalid separator"));
        assert!(err("a-.b").contains("invalid separator"));
        assert!(err(".a").contains("must start and end"));
        assert!(err("a-").contains("must start and end"));
        assert!(err("_a").contains("must start and end"));
        assert!(err("a//b").contains("empty path component"));
        assert!(err("a/").contains("empty path component"));
        assert!(err("/a").contains("empty path component"));
        assert!(err("localhost/").contains("empty path component"));
        assert!(err("é").contains("invalid character"));
    }

    #[test]
    fn uppercase_is_refused_in_the_path() {
        assert!(err("Alpine").contains("must be lowercase"));
        assert!(err("user/App").contains("must be lowercase"));
        assert!(err("ghcr.io/User/app").contains("must be lowercase"));
        // No dot, colon or localhost: "Foo" is a path component, not a domain.
        assert!(err("Foo/bar").contains("must be lowercase"));
    }

    #[test]
    fn shell_metacharacters_and_whitespace() {
        for bad in [
            "alpine;rm -rf /",
            "alpine&&true",
            "alpine|cat",
            "$(id)",
            "`id`",
            "alpine>x",
            "a'b",
            "a\"b",
            "a*",
            "a?",
            "a\\b",
            "~/x",
            "a#b",
            "a!b",
            "a=b",
            "a,b",
            "a%b",
        ] {
            let message = err(bad);
            assert!(
                message.starts_with("invalid image reference \""),
                "{message}"
            );
        }
        for bad in [
            "alpine latest",
            " alpine",
            "alpine\n",
            "a\tb",
            "a\rb",
            "a\u{0}b",
            "a\u{7f}b",
        ] {
            let message = err(bad);
            assert!(
                message.contains("whitespace or a control character"),
                "{message}"
            );
            assert!(
                !message.contains('\n') && !message.contains('\r'),
                "{message:?}"
            );
        }
        assert_eq!(
            err("evil\nname"),
            "invalid image reference \"evil\\nname\": contains whitespace or a control character"
        );
    }

    #[test]
    fn empty_and_image_ids() {
        assert_eq!(
            err(""),
            "invalid image reference \"\": the reference is empty"
        );
        assert!(err(":tag").contains("name is empty"));
        assert!(err(HEX64).contains("image ID"));
        // With a namespace or tag it is an ordinary (if odd) name.
        ok(&format!("{HEX64}:tag"));
        ok(&format!("user/{HEX64}"));
    }

    #[test]
    fn name_length() {
        // "docker.io/" + 245 = 255.
        ok(&format!("u/{}", "a".repeat(243)));
        assert!(err(&format!("u/{}", "a".repeat(244))).contains("longer than 255"));
        // Normalisation counts: "docker.io/library/" takes 18 characters.
        ok(&"a".repeat(237));
        assert!(err(&"a".repeat(238)).contains("longer than 255"));
        ok(&format!("r.io/{}", "a".repeat(250)));
        assert!(err(&format!("r.io/{}", "a".repeat(251))).contains("longer than 255"));
        // The tag does not count toward the name.
        ok(&format!("{}:{}", "a".repeat(237), "t".repeat(128)));
    }
}
