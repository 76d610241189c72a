//! One archive to the host: `docker image save IMAGE` → the filter → zstd → the remote
//! shell's stdin, running `image:load` there. The host's stdout and stderr pass through live;
//! its stderr is also watched for the refusals of a slim archive and of a layer recipe.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::thread;

use anyhow::Context;

use crate::client::filter::{filter, LeftOutTotals};
use crate::client::held::LeftOutPlan;
use crate::client::meter::Meter;
use crate::client::recipes::Recipes;
use crate::client::transport::Remote;
use crate::docker::Docker;
use crate::process::{Running, Sink};
use crate::protocol;

/// zstd's level: fast, and most of a layer's gain.
const ZSTD_LEVEL: i32 = 3;

/// How one archive went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// The remote shell's exit status: the host's, or the shell's own (255 for ssh).
    pub status: i32,
    /// The host refused the archive because it left out layers the host lacks.
    pub refused: bool,
    /// The host refused a layer recipe of the archive.
    pub recipe_refused: bool,
    pub left_out: LeftOutTotals,
    /// Compressed, as written to the remote shell.
    pub bytes: u64,
}

/// `docker image save IMAGE`, started ahead of the stream that reads it: a classic-store
/// engine writes the whole archive to its own disk before the first byte comes out, and the
/// questions to the host fit in that time.
pub struct Save {
    running: Running,
    archive: io::PipeReader,
}

impl Save {
    pub fn start(docker: &Docker, image: &str) -> anyhow::Result<Save> {
        let (archive, save_in) = io::pipe()?;
        let running = docker
            .command()
            .args(["image", "save", "--", image])
            .start_wired(None, Sink::Fd(save_in.into()), Sink::Capture)?;
        Ok(Save { running, archive })
    }

    /// Stops a save nothing will read.
    pub fn abandon(self) {
        self.running.stop();
    }
}

/// Streams the archive of `save`, without what `plan` leaves out and with changed layers as
/// `recipes` make them, into `image:load` on the host: into `opened`, a session started
/// earlier, or a new one.
pub fn send(
    save: Save,
    (opened, remote, load): (Option<(Session, io::PipeWriter)>, &Remote, &[String]),
    image: &str,
    plan: &LeftOutPlan,
    recipes: Option<&mut Recipes>,
) -> anyhow::Result<Sent> {
    let Save { running, archive } = save;
    let opened = match opened {
        Some(opened) => Ok(opened),
        None => Session::start(remote, load),
    };
    let (session, to_host) = match opened {
        Ok(started) => {
            started.0.release();
            started
        }
        Err(err) => {
            Save { running, archive }.abandon();
            return Err(err);
        }
    };
    let streamed = stream(archive, to_host, plan, recipes);
    if streamed.is_err() {
        running.kill();
    }
    let display = session.display().to_string();
    let (status, refusals) = session.wait()?;
    if status != 0 {
        // The host's verdict stands: it has said why; a save we stopped is no news.
        running.stop();
        return Ok(Sent {
            status,
            refused: refusals.slim,
            recipe_refused: refusals.recipe,
            left_out: streamed.as_ref().map(|s| s.0).unwrap_or_default(),
            bytes: streamed.as_ref().map(|s| s.1).unwrap_or_default(),
        });
    }
    running.finish()?;
    let (left_out, bytes) = streamed.with_context(|| format!("sending {image} to `{display}`"))?;
    Ok(Sent {
        status,
        refused: refusals.slim,
        recipe_refused: refusals.recipe,
        left_out,
        bytes,
    })
}

/// The remote `image:load`, its stdin a pipe this process writes, its stdout passed through
/// and its stderr passed through line by line and watched for the refusal.
pub struct Session {
    host: Running,
    watcher: thread::JoinHandle<io::Result<Refusals>>,
    gate: Arc<AtomicU8>,
    display: String,
}

/// What the watcher does with the host's stderr: pass it through ([`LIVE`]), keep it until
/// the session is used or dropped ([`HELD`], a session opened ahead of its archive), or drop
/// it ([`QUIET`], an abandoned session).
const LIVE: u8 = 0;
const HELD: u8 = 1;
const QUIET: u8 = 2;

/// The most of the host's stderr a held session keeps; beyond it, lines pass through.
const MAX_HELD: usize = 1 << 20;

impl Session {
    /// Starts `load` on the host; returns the session and the write end of its stdin.
    pub fn start(remote: &Remote, load: &[String]) -> anyhow::Result<(Session, io::PipeWriter)> {
        Session::start_gated(remote, load, LIVE)
    }

    /// Starts `load` ahead of knowing whether an archive will go to it: what the host says
    /// waits for [`Session::release`], and [`Session::abandon`] drops it.
    pub fn start_early(
        remote: &Remote,
        load: &[String],
    ) -> anyhow::Result<(Session, io::PipeWriter)> {
        Session::start_gated(remote, load, HELD)
    }

    /// From now on the host's stderr passes through, what was held first.
    pub fn release(&self) {
        let _ = self
            .gate
            .compare_exchange(HELD, LIVE, Ordering::SeqCst, Ordering::SeqCst);
    }

    fn start_gated(
        remote: &Remote,
        load: &[String],
        gate: u8,
    ) -> anyhow::Result<(Session, io::PipeWriter)> {
        let (host_in, to_host) = io::pipe()?;
        let (host_err, host_err_in) = io::pipe()?;
        let load_cmd = remote.command(load);
        let host = load_cmd.start_wired(
            Some(host_in.into()),
            Sink::Inherit,
            Sink::Fd(host_err_in.into()),
        )?;
        let gate = Arc::new(AtomicU8::new(gate));
        let watching = Arc::clone(&gate);
        let watcher = thread::spawn(move || pass_stderr_through(host_err, &watching));
        Ok((
            Session {
                host,
                watcher,
                gate,
                display: load_cmd.display(),
            },
            to_host,
        ))
    }

    /// Waits for the host; returns its exit status and what it refused.
    pub fn wait(self) -> anyhow::Result<(i32, Refusals)> {
        self.release();
        let output = self.host.wait()?;
        let refused = self.watcher.join().map_err(|_| {
            anyhow::anyhow!("the thread passing the host's stderr through panicked")
        })??;
        Ok((output.status.code().unwrap_or(1), refused))
    }

    /// The remote command, for messages.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// Ends a session whose archive will not be finished: the host sees its stdin cut short
    /// and loads nothing; what it says about that is not shown.
    pub fn abandon(self) {
        self.gate.store(QUIET, Ordering::SeqCst);
        self.host.stop();
        let _ = self.watcher.join();
    }
}

/// zstd over the meter, on every core: what goes into a session's stdin.
pub fn compressor(
    to_host: io::PipeWriter,
) -> io::Result<zstd::stream::write::Encoder<'static, Meter<io::PipeWriter>>> {
    let threads = thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    let mut encoder = zstd::stream::write::Encoder::new(Meter::new(to_host), ZSTD_LEVEL)?;
    encoder.multithread(threads)?;
    Ok(encoder)
}

/// The filter and the compressor between the two pipes; returns what was left out and the
/// bytes written. Closes the host's stdin at the end, whatever happened.
fn stream(
    archive: io::PipeReader,
    to_host: io::PipeWriter,
    plan: &LeftOutPlan,
    recipes: Option<&mut Recipes>,
) -> io::Result<(LeftOutTotals, u64)> {
    let encoder = compressor(to_host)?;
    let (left_out, encoder) = filter(
        BufReader::with_capacity(1 << 20, archive),
        encoder,
        plan,
        recipes,
    )?;
    let mut meter = encoder.finish()?;
    meter.flush()?;
    Ok((left_out, meter.bytes()))
}

/// The longest piece of the host's stderr held at once: a line longer than this is passed on
/// in pieces, so a host that never ends a line cannot fill this machine's memory.
const MAX_LINE: u64 = 64 << 10;

/// What the host's stderr said it refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refusals {
    /// A slim archive that left out layers the host lacks.
    pub slim: bool,
    /// A layer recipe.
    pub recipe: bool,
}

/// Copies the host's stderr to ours line by line as it comes, and notes its refusals.
fn pass_stderr_through(host_err: io::PipeReader, gate: &AtomicU8) -> io::Result<Refusals> {
    let mut reader = BufReader::new(host_err);
    let mut line = Vec::new();
    let mut held = Vec::new();
    let mut refused = Refusals::default();
    loop {
        line.clear();
        let end = (&mut reader).take(MAX_LINE).read_until(b'\n', &mut line)? == 0;
        let text = String::from_utf8_lossy(&line);
        refused.slim |= protocol::is_refusal(&text);
        refused.recipe |= protocol::is_recipe_refusal(&text);
        match gate.load(Ordering::SeqCst) {
            QUIET => {}
            HELD if held.len() < MAX_HELD => held.extend_from_slice(&line),
            _ => {
                let mut stderr = io::stderr().lock();
                stderr.write_all(&std::mem::take(&mut held))?;
                stderr.write_all(&line)?;
                stderr.flush()?;
            }
        }
        if end {
            return Ok(refused);
        }
    }
}
