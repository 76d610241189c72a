//! Progress of a long upload on stderr: bytes received and the rate. On a terminal one line
//! updates in place; otherwise (over SSH) one line every few seconds once the stream has run
//! that long, so logs stay readable; nothing under `DOKKU_QUIET_OUTPUT`.
//!
//! The log interval is 5 s; `DOKKU_IMAGE_PROGRESS_INTERVAL` (seconds, decimals allowed) sets
//! another, so that tests need not sit through it.

use std::io::{self, IsTerminal, Read, Write};
use std::time::{Duration, Instant};

use crate::output::{self, human_bytes};

const LOG_INTERVAL: Duration = Duration::from_secs(5);
const INTERVAL_ENV: &str = "DOKKU_IMAGE_PROGRESS_INTERVAL";
const TERMINAL_INTERVAL: Duration = Duration::from_millis(250);

/// A reader that counts what passes through it and reports now and then.
#[derive(Debug)]
pub struct Progress<R> {
    inner: R,
    bytes: u64,
    started: Instant,
    last_report: Instant,
    mode: Mode,
    log_interval: Duration,
    reported: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Silent,
    Terminal,
    Log,
}

impl<R: Read> Progress<R> {
    pub fn new(inner: R) -> Progress<R> {
        let mode = if output::quiet() {
            Mode::Silent
        } else if io::stderr().is_terminal() {
            Mode::Terminal
        } else {
            Mode::Log
        };
        let now = Instant::now();
        Progress {
            inner,
            bytes: 0,
            started: now,
            last_report: now,
            mode,
            log_interval: log_interval_from_env(),
            reported: false,
        }
    }

    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// Ends the updating line on a terminal, with the final figures.
    pub fn finish(&mut self) {
        if self.mode == Mode::Terminal && self.reported {
            self.report();
            eprintln!();
        }
    }

    fn tick(&mut self) {
        let now = Instant::now();
        let due = match self.mode {
            Mode::Silent => false,
            Mode::Terminal => now.duration_since(self.last_report) >= TERMINAL_INTERVAL,
            Mode::Log => now.duration_since(self.last_report) >= self.log_interval,
        };
        if due {
            self.last_report = now;
            self.report();
        }
    }

    fn report(&mut self) {
        self.reported = true;
        let line = status_line(self.bytes, self.started.elapsed());
        let mut stderr = io::stderr().lock();
        let _ = match self.mode {
            Mode::Terminal => write!(stderr, "\r\x1b[K-----> {line}"),
            _ => writeln!(stderr, "-----> {line}"),
        };
    }
}

impl<R: Read> Read for Progress<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let count = self.inner.read(buf)?;
        self.bytes += count as u64;
        self.tick();
        Ok(count)
    }
}

/// The log interval `DOKKU_IMAGE_PROGRESS_INTERVAL` asks for.
pub fn log_interval_from_env() -> Duration {
    log_interval(std::env::var(INTERVAL_ENV).ok().as_deref())
}

/// The log interval a setting asks for; unset, empty or not a positive number of seconds
/// means the default (progress is never worth failing a deploy over).
fn log_interval(setting: Option<&str>) -> Duration {
    setting
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|seconds| *seconds > 0.0)
        .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
        .unwrap_or(LOG_INTERVAL)
}

/// "Received 1.5 GiB in 12s (128.0 MiB/s)".
pub fn status_line(bytes: u64, elapsed: Duration) -> String {
    rate_line("Received", bytes, elapsed)
}

/// "VERB 1.5 GiB in 12s (128.0 MiB/s)"; tenths of a second under 10 s, so that short
/// intervals do not all read "in 0s".
pub fn rate_line(verb: &str, bytes: u64, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    let rate = if seconds > 0.0 {
        bytes as f64 / seconds
    } else {
        0.0
    };
    let time = if elapsed < Duration::from_secs(10) {
        format!("{:.1}", (seconds * 10.0).floor() / 10.0)
    } else {
        elapsed.as_secs().to_string()
    };
    format!(
        "{verb} {} in {time}s ({}/s)",
        human_bytes(bytes),
        human_bytes(rate as u64)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_has_bytes_time_and_rate() {
        let line = status_line(200 * 1024 * 1024, Duration::from_secs(20));
        assert_eq!(line, "Received 200 MiB in 20s (10 MiB/s)");
        let line = status_line(1024, Duration::from_millis(2990));
        assert_eq!(line, "Received 1 KiB in 2.9s (342 B/s)");
    }

    #[test]
    fn log_interval_setting() {
        assert_eq!(log_interval(None), LOG_INTERVAL);
        assert_eq!(log_interval(Some("")), LOG_INTERVAL);
        assert_eq!(log_interval(Some("0")), LOG_INTERVAL);
        assert_eq!(log_interval(Some("-1")), LOG_INTERVAL);
        assert_eq!(log_interval(Some("soon")), LOG_INTERVAL);
        assert_eq!(log_interval(Some("0.25")), Duration::from_millis(250));
        assert_eq!(log_interval(Some("2")), Duration::from_secs(2));
        assert_eq!(log_interval(Some("1e30")), LOG_INTERVAL);
        assert_eq!(log_interval(Some("inf")), LOG_INTERVAL);
        assert_eq!(log_interval(Some("NaN")), LOG_INTERVAL);
    }

    #[test]
    fn counts_every_byte() {
        let mut progress = Progress::new(&b"hello world"[..]);
        let mut out = Vec::new();
        progress.read_to_end(&mut out).unwrap();
        assert_eq!(progress.bytes_read(), 11);
        assert_eq!(out, b"hello world");
    }
}
