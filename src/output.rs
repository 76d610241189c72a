//! What the user sees: Dokku's log lines (`-----> `, `=====> `, seven spaces, ` !     ` on
//! stderr), the quiet and trace switches, and exit codes. Like Dokku's `common.Log*`, this
//! module uses nothing else of the crate, so every other module may use it.

use std::fmt;
use std::io::{self, Write};
use std::process::ExitCode;

/// Dokku's exit status for a missing app.
pub const EXIT_MISSING_APP: i32 = 20;

/// How a command that did not fail ends: the exit status its main gives ([`finish`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub i32);

impl Status {
    pub const SUCCESS: Status = Status(0);
    /// Dokku's "not mine" status for `commands` entries.
    pub const NOT_IMPLEMENTED: Status = Status(10);
}

/// An error that ends the command with a given exit status. Anything else exits 1.
#[derive(Debug)]
pub struct Exit {
    pub code: i32,
    pub message: String,
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

fn env_flag(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

/// `DOKKU_QUIET_OUTPUT` (from `--quiet`) silences info lines.
pub fn quiet() -> bool {
    env_flag("DOKKU_QUIET_OUTPUT")
}

/// `DOKKU_TRACE` (from `--trace`) traces every external command.
pub fn tracing() -> bool {
    env_flag("DOKKU_TRACE")
}

/// `-----> message` on stdout, unless quiet.
pub fn info(message: impl fmt::Display) {
    if !quiet() {
        println!("-----> {message}");
    }
}

/// `=====> message` on stdout, unless quiet.
pub fn section(message: impl fmt::Display) {
    if !quiet() {
        println!("=====> {message}");
    }
}

/// `-----> message` on stderr, unless quiet: for a program whose stdout is another's.
pub fn note(message: impl fmt::Display) {
    if !quiet() {
        eprintln!("-----> {message}");
    }
}

/// ` !     message` on stderr, always.
pub fn warn(message: impl fmt::Display) {
    let text = message.to_string();
    let mut stderr = io::stderr().lock();
    for line in text.lines() {
        let _ = writeln!(stderr, " !     {line}");
    }
}

/// Characters that would act on a terminal rather than show: C0 and C1 controls (ESC, CR, the
/// one-character CSI) and the bidirectional overrides that reorder a line.
fn acts_on_terminal(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Text from outside (a commit's author, which any `git push` writes) made safe to print on
/// a terminal: such characters are shown as Rust escapes (`\u{1b}`, `\r`).
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if acts_on_terminal(c) {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// JSON made safe to print the same way, and still the same JSON: such characters, which
/// serde_json leaves as they are above U+001F, become `\uXXXX` escapes (the line breaks of
/// pretty printing stay).
pub fn printable_json(json: &str) -> String {
    json.chars()
        .map(|c| {
            if acts_on_terminal(c) && c != '\n' {
                format!("\\u{:04x}", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Binary units, exact multiples without a decimal: "512 B", "16 MiB", "1.5 KiB", "3.2 GiB".
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let (mut scale, mut unit) = (1024u64, UNITS[0]);
    for next in &UNITS[1..] {
        if bytes / scale < 1024 {
            break;
        }
        scale *= 1024;
        unit = next;
    }
    if bytes.is_multiple_of(scale) {
        format!("{} {unit}", bytes / scale)
    } else {
        format!("{:.1} {unit}", bytes as f64 / scale as f64)
    }
}

/// The exit status an error maps to: its own for `Exit`, 1 otherwise.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    err.chain()
        .find_map(|cause| cause.downcast_ref::<Exit>())
        .map_or(1, |exit| exit.code)
}

/// Every main ends here: prints an error once, with its causes, and gives Dokku's status.
pub fn finish(result: anyhow::Result<Status>) -> ExitCode {
    let code = match result {
        Ok(Status(code)) => code,
        Err(err) => {
            let mut message = err.to_string();
            for cause in err.chain().skip(1) {
                message.push_str(&format!(": {cause}"));
            }
            warn(message);
            exit_code(&err)
        }
    };
    // As exit(2) keeps it: the low eight bits.
    ExitCode::from(code as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn exit_code_follows_the_chain() {
        let missing = || -> anyhow::Error {
            Exit {
                code: EXIT_MISSING_APP,
                message: "App x does not exist".into(),
            }
            .into()
        };
        assert_eq!(exit_code(&missing()), 20);
        assert_eq!(
            exit_code(
                &Err::<(), _>(missing())
                    .context("while deploying")
                    .unwrap_err()
            ),
            20
        );
        assert_eq!(exit_code(&anyhow::anyhow!("plain")), 1);
    }

    #[test]
    fn outside_text_cannot_act_on_the_terminal() {
        assert_eq!(printable("Jane \u{1b}[2JDoe\r"), "Jane \\u{1b}[2JDoe\\r");
        assert_eq!(printable("a\u{9b}31mb\u{202e}c"), "a\\u{9b}31mb\\u{202e}c");
        assert_eq!(printable("Zoë <z@x>"), "Zoë <z@x>");
        let json = "[\n  \"a\u{7f}\u{9b}\u{202e}b\"\n]";
        let safe = printable_json(json);
        assert_eq!(safe, "[\n  \"a\\u007f\\u009b\\u202eb\"\n]");
        let value: String = serde_json::from_str::<Vec<String>>(&safe)
            .unwrap()
            .remove(0);
        assert_eq!(value, "a\u{7f}\u{9b}\u{202e}b");
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1 KiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(16 << 20), "16 MiB");
        assert_eq!(human_bytes(200 << 20), "200 MiB");
        assert_eq!(human_bytes((1 << 30) + (1 << 29)), "1.5 GiB");
        assert_eq!(human_bytes(3 << 30), "3 GiB");
        assert_eq!(human_bytes(1023 << 20), "1023 MiB");
    }
}
