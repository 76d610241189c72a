//! Dokku 0.38's report convention (docs/report.md), as core's `plugins/common` prints every
//! `PLUGIN:report`: `--format stdout|json`, one `--PLUGIN-KEY` flag for one value alone, the
//! block sorted by flag with labels made from the flags, JSON keys without the `PLUGIN-` head.
//! The plugin says which keys a report has and computes their values; this module checks
//! the call and prints.

use std::collections::BTreeMap;

use crate::output;

/// One key of a report, named without the plugin's head (`source-image`).
pub trait Key: Copy {
    fn name(self) -> &'static str;
}

/// Core's labels are at least this wide, colon included (longer flags widen the column).
const MIN_LABEL_WIDTH: usize = 31;

/// The one `--PLUGIN-KEY` flag of a call, if any. Core refuses two ("allows only a single
/// flag"); its commands then exit 0 without a word, which this does not copy.
pub fn single_flag<'a>(plugin: &str, flags: &'a [String]) -> anyhow::Result<Option<&'a str>> {
    match flags {
        [] => Ok(None),
        [flag] => Ok(Some(flag)),
        _ => anyhow::bail!("{plugin}:report command allows only a single flag"),
    }
}

fn flag(plugin: &str, key: &str) -> String {
    format!("--{plugin}-{key}")
}

/// `--image-source-id` → `Image source id:`, as core makes a label from a flag.
fn label(flag: &str) -> String {
    let words = flag.trim_start_matches("--").replace(['-', '.'], " ");
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => format!("{}{}:", first.to_uppercase(), chars.as_str()),
        None => ":".to_string(),
    }
}

/// What a report prints: the `=====>` header (none for a value alone or JSON) and the lines.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Printed {
    pub section: Option<String>,
    pub lines: Vec<String>,
}

impl Printed {
    /// On stdout: the header unless quiet; the lines always, as Dokku prints them.
    pub fn print(&self) {
        if let Some(section) = &self.section {
            output::section(section);
        }
        for line in &self.lines {
            println!("{line}");
        }
    }
}

/// The report of SUBJECT (an app, or `--global`) with these keys, in FORMAT (none: stdout),
/// or the value of FLAG alone. Checks the call first, with core's messages, and asks `value`
/// only for the keys it prints.
pub fn render<K: Key>(
    plugin: &str,
    subject: &str,
    format: Option<&str>,
    flag_asked: Option<&str>,
    keys: &[K],
    mut value: impl FnMut(K) -> anyhow::Result<String>,
) -> anyhow::Result<Printed> {
    let json = match format.unwrap_or("stdout") {
        "stdout" => false,
        "json" => true,
        other => anyhow::bail!("Format must be \"stdout\" or \"json\": {other:?}"),
    };
    if let Some(asked) = flag_asked {
        anyhow::ensure!(
            !json,
            "--format flag cannot be specified when specifying an info flag"
        );
        let key = keys
            .iter()
            .find(|key| flag(plugin, key.name()) == asked)
            .ok_or_else(|| invalid_flag(plugin, keys))?;
        return Ok(Printed {
            section: None,
            lines: vec![value(*key)?],
        });
    }
    let mut values = BTreeMap::new();
    for key in keys {
        values.insert(flag(plugin, key.name()), (key.name(), value(*key)?));
    }
    if json {
        let object: BTreeMap<&str, &str> = values
            .values()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        return Ok(Printed {
            section: None,
            lines: vec![serde_json::to_string(&object)?],
        });
    }
    let width = values
        .keys()
        .map(String::len)
        .max()
        .unwrap_or(0)
        .max(MIN_LABEL_WIDTH);
    Ok(Printed {
        section: Some(format!("{subject} {plugin} information")),
        lines: values
            .iter()
            .map(|(flag, (_, value))| format!("       {:<width$}{value}", label(flag)))
            .collect(),
    })
}

fn invalid_flag<K: Key>(plugin: &str, keys: &[K]) -> anyhow::Error {
    let mut flags: Vec<String> = keys.iter().map(|key| flag(plugin, key.name())).collect();
    flags.sort_unstable();
    anyhow::anyhow!("Invalid flag passed, valid flags: {}", flags.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy)]
    struct Name(&'static str);

    impl Key for Name {
        fn name(self) -> &'static str {
            self.0
        }
    }

    #[test]
    fn labels_as_core_makes_them() {
        assert_eq!(label("--image-source-id"), "Image source id:");
        assert_eq!(
            label("--image-computed-keep-images"),
            "Image computed keep images:"
        );
        assert_eq!(
            label("--storage-annotations.first"),
            "Storage annotations first:"
        );
    }

    #[test]
    fn one_flag_at_most() {
        assert_eq!(single_flag("image", &[]).unwrap(), None);
        let one = ["--image-deploys".to_string()];
        assert_eq!(single_flag("image", &one).unwrap(), Some("--image-deploys"));
        let two = ["--image-deploys".to_string(), "--image-x".to_string()];
        assert_eq!(
            single_flag("image", &two).unwrap_err().to_string(),
            "image:report command allows only a single flag"
        );
    }

    #[test]
    fn refusals_with_core_messages() {
        let keys = [Name("b-key"), Name("a-key")];
        let fail = |format: Option<&str>, asked: Option<&str>| {
            render("image", "app", format, asked, &keys, |_| Ok(String::new()))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            fail(Some("yaml"), None),
            "Format must be \"stdout\" or \"json\": \"yaml\""
        );
        assert_eq!(
            fail(Some("json"), Some("--image-a-key")),
            "--format flag cannot be specified when specifying an info flag"
        );
        assert_eq!(
            fail(None, Some("--image-nope")),
            "Invalid flag passed, valid flags: --image-a-key, --image-b-key"
        );
    }

    #[test]
    fn one_value_is_the_only_one_computed() {
        let keys = [Name("a"), Name("b")];
        let mut asked = Vec::new();
        let printed = render("image", "app", None, Some("--image-b"), &keys, |key| {
            asked.push(key.name());
            Ok("v".to_string())
        })
        .unwrap();
        assert_eq!(asked, ["b"]);
        assert_eq!(
            printed,
            Printed {
                section: None,
                lines: vec!["v".to_string()]
            }
        );
    }

    /// What core prints for `git:report --global` with these values: sorted by flag, labels
    /// padded to the longest flag (32 characters here), the value right after.
    #[test]
    fn the_block_as_core_prints_it() {
        let keys = [
            Name("global-deploy-branch"),
            Name("computed-deploy-branch"),
            Name("computed-archive-max-files"),
        ];
        let printed = render("git", "--global", None, None, &keys, |key| {
            Ok(match key.name() {
                "global-deploy-branch" => String::new(),
                "computed-deploy-branch" => "master".to_string(),
                _ => "10000".to_string(),
            })
        })
        .unwrap();
        assert_eq!(printed.section.as_deref(), Some("--global git information"));
        assert_eq!(
            printed.lines,
            [
                "       Git computed archive max files: 10000",
                "       Git computed deploy branch:     master",
                "       Git global deploy branch:       ",
            ]
        );
        // shorter flags: the column is 31 wide
        let printed = render("image", "app", None, None, &[Name("deploys")], |_| {
            Ok("2".to_string())
        })
        .unwrap();
        assert_eq!(printed.lines, [format!("       {:<31}2", "Image deploys:")]);
    }

    #[test]
    fn json_keys_without_the_head_sorted_compact() {
        let keys = [Name("source-image"), Name("deploys")];
        let printed = render("image", "app", Some("json"), None, &keys, |key| {
            Ok(match key.name() {
                "deploys" => "2".to_string(),
                _ => "my \"app\":1".to_string(),
            })
        })
        .unwrap();
        assert_eq!(
            printed,
            Printed {
                section: None,
                lines: vec![r#"{"deploys":"2","source-image":"my \"app\":1"}"#.to_string()]
            }
        );
    }
}
