//! What the user sees: Dokku's log lines (`-----> `, `=====> `, seven spaces, ` !     ` on
//! stderr), the quiet and trace switches, and exit codes. Like Dokku's `common.Log*`, this
//! module uses nothing else of the crate, so every other module may use it.

use std::fmt;
use std::io::{self, Write};

/// Dokku's exit status for a missing app.
pub const EXIT_MISSING_APP: i32 = 20;
/// Dokku's "not mine" status for `commands` entries.
pub const EXIT_NOT_IMPLEMENTED: i32 = 10;

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

/// `       message` on stdout, unless quiet.
pub fn detail(message: impl fmt::Display) {
    if !quiet() {
        println!("       {message}");
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

/// Every main ends here: print the error once, with its causes, and exit with Dokku's code.
pub fn exit_on_error(result: anyhow::Result<()>) -> ! {
    match result {
        Ok(()) => std::process::exit(0),
        Err(err) => {
            let code = exit_code(&err);
            let mut message = err.to_string();
            for cause in err.chain().skip(1) {
                message.push_str(&format!(": {cause}"));
            }
            warn(message);
            std::process::exit(code);
        }
    }
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
