//! Counts the bytes written to the host and logs a `-----> Sent` line on stderr every
//! interval (`DOKKU_IMAGE_PROGRESS_INTERVAL`, default 5 s), one line each, so that the
//! client's stdout carries only the host's.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use crate::output;
use crate::progress::{log_interval_from_env, rate_line};

pub struct Meter<W> {
    inner: W,
    bytes: u64,
    started: Instant,
    last_report: Instant,
    interval: Duration,
}

impl<W: Write> Meter<W> {
    pub fn new(inner: W) -> Meter<W> {
        let now = Instant::now();
        Meter {
            inner,
            bytes: 0,
            started: now,
            last_report: now,
            interval: log_interval_from_env(),
        }
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl<W: Write> Write for Meter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let count = self.inner.write(buf)?;
        self.bytes += count as u64;
        let now = Instant::now();
        if now.duration_since(self.last_report) >= self.interval {
            self.last_report = now;
            output::note(rate_line("Sent", self.bytes, self.started.elapsed()));
        }
        Ok(count)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_reaches_the_inner_writer() {
        let mut inner = Vec::new();
        let mut meter = Meter::new(&mut inner);
        meter.write_all(b"hello ").unwrap();
        meter.write_all(b"world").unwrap();
        assert_eq!(meter.bytes(), 11);
        assert_eq!(inner, b"hello world");
    }
}
