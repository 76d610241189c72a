//! The `image:layers APP` session (docs/protocol.md): the client reads the answer line and,
//! when the host takes recipes (docs/delta.md), greets it and keeps the session open to ask
//! which chunks of its layers the host keeps, while the archive streams. Greeting only after
//! the answer, the client never waits on a host that waits on it, whatever buffers between. The host's
//! stderr is kept, bounded, for the message of a failure.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::process::{ExitStatus, Output};
use std::thread;

use crate::client::transport::Remote;
use crate::delta::chunks::Key;
use crate::output::human_bytes;
use crate::process::{Cmd, Running, Sink};
use crate::protocol;

/// The most `image:layers` may print on stderr, or in its answer line: some hundred thousand
/// digests, far more than a host holds.
pub const MAX_ANSWER: u64 = 16 << 20;

pub struct LayersSession {
    cmd: Cmd,
    running: Running,
    to_host: io::PipeWriter,
    from_host: BufReader<io::PipeReader>,
    stderr: thread::JoinHandle<io::Result<Vec<u8>>>,
}

/// How the session ended.
pub struct Ended {
    cmd: Cmd,
    pub status: ExitStatus,
    pub stderr: Vec<u8>,
}

impl Ended {
    /// A failed session as an error naming the command, its status and its stderr.
    pub fn check(&self) -> anyhow::Result<()> {
        self.cmd.check(&Output {
            status: self.status,
            stdout: Vec::new(),
            stderr: self.stderr.clone(),
        })
    }
}

impl LayersSession {
    pub fn start(remote: &Remote, app: &str) -> anyhow::Result<LayersSession> {
        let cmd = remote.command(&[protocol::LAYERS, app]);
        let (host_in, to_host) = io::pipe()?;
        let (from_host, host_out) = io::pipe()?;
        let (host_err, host_err_in) = io::pipe()?;
        let running = cmd.start_wired(
            Some(host_in.into()),
            Sink::Fd(host_out.into()),
            Sink::Fd(host_err_in.into()),
        )?;
        // Read to its end, what is kept bounded: a host that says too much is not blocked.
        let stderr = thread::spawn(move || {
            let mut host_err = host_err;
            let mut kept = Vec::new();
            (&mut host_err).take(MAX_ANSWER).read_to_end(&mut kept)?;
            io::copy(&mut host_err, &mut io::sink())?;
            Ok(kept)
        });
        Ok(LayersSession {
            cmd,
            running,
            to_host,
            from_host: BufReader::new(from_host),
            stderr,
        })
    }

    /// The answer line; None when the host printed none. An answer longer than
    /// [`MAX_ANSWER`] is an error, and the session is ended.
    pub fn answer_line(&mut self) -> anyhow::Result<Option<String>> {
        let mut line = Vec::new();
        (&mut self.from_host)
            .take(MAX_ANSWER)
            .read_until(b'\n', &mut line)?;
        if line.last() == Some(&b'\n') {
            return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
        }
        if line.len() as u64 >= MAX_ANSWER {
            self.running.kill();
            anyhow::bail!(
                "`{}` printed more than {} on stdout or stderr; stopped",
                self.cmd.display(),
                human_bytes(MAX_ANSWER)
            );
        }
        Ok(None)
    }

    /// Tells the host this client will ask chunk queries.
    pub fn greet(&mut self) -> io::Result<()> {
        self.to_host
            .write_all(protocol::QUERIES_GREETING.as_bytes())?;
        self.to_host.flush()
    }

    /// The two ways of the session, for queries asked on one thread while another reads the
    /// answers.
    pub fn halves(&mut self) -> (&mut io::PipeWriter, &mut BufReader<io::PipeReader>) {
        (&mut self.to_host, &mut self.from_host)
    }

    /// Asks which of `keys` the host keeps; its answer's two bitmaps (kept, follows).
    pub fn ask(&mut self, keys: &[Key]) -> io::Result<(Vec<u8>, Vec<u8>)> {
        protocol::write_query(&mut self.to_host, keys)?;
        protocol::read_have(&mut self.from_host, keys.len())
    }

    /// Closes this side and waits for the host to end; what it would print more on stdout
    /// goes nowhere.
    pub fn finish(self) -> anyhow::Result<Ended> {
        let LayersSession {
            cmd,
            running,
            to_host,
            from_host,
            stderr,
        } = self;
        drop(to_host);
        drop(from_host);
        let stderr = stderr
            .join()
            .map_err(|_| anyhow::anyhow!("reading the host's stderr panicked"))?
            .unwrap_or_default();
        let output = running.wait()?;
        Ok(Ended {
            cmd,
            status: output.status,
            stderr,
        })
    }
}
