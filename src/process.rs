//! Running other programs (`git`, `$DOCKER_BIN`, `plugn`) through duct, with argument vectors
//! only. Every run is traced under `DOKKU_TRACE`, and a failure carries the command line, the
//! exit status and the captured stderr, so the user can act on it without rerunning anything.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::output;

/// How many [`Shield`]s live.
static SHIELDS: AtomicUsize = AtomicUsize::new(0);

/// While one lives, every child starts in a process group of its own, so that a signal to the
/// plugin's process group (a hang-up, `builds:cancel`) does not kill it half-way: the steps
/// that must not be cut in two, and their undo, run under one (`cancel::hold`).
#[must_use = "children are shielded only while this lives"]
pub struct Shield(());

/// Shields the children started from now until the returned value is dropped.
pub fn shield() -> Shield {
    SHIELDS.fetch_add(1, Ordering::SeqCst);
    Shield(())
}

impl Drop for Shield {
    fn drop(&mut self) {
        SHIELDS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A command not yet run.
#[derive(Debug, Clone)]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    env_remove: Vec<OsString>,
    dir: Option<PathBuf>,
    stdin: Option<Vec<u8>>,
}

/// A command that ran and failed.
#[derive(Debug)]
pub struct ProcessError {
    pub command: String,
    pub status: Option<ExitStatus>,
    pub stderr: String,
    /// Why it could not be started, kept whole (its kind too) as the error's source.
    pub not_started: Option<std::io::Error>,
}

impl fmt::Display for ProcessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` ", self.command)?;
        match self.status {
            Some(status) => match (
                status.code(),
                std::os::unix::process::ExitStatusExt::signal(&status),
            ) {
                (Some(code), _) => write!(f, "exited with status {code}")?,
                (None, Some(signal)) => write!(f, "was killed by signal {signal}")?,
                _ => write!(f, "failed")?,
            },
            None => write!(f, "could not be started")?,
        }
        let stderr = last_lines(&self.stderr, 3);
        if !stderr.is_empty() {
            write!(f, ": {stderr}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ProcessError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.not_started
            .as_ref()
            .map(|err| err as &(dyn std::error::Error + 'static))
    }
}

impl ProcessError {
    /// The exit status of the command, when it ran and exited.
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }
}

/// The meaningful tail of a child's stderr, on one line.
fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty()
                && !l.starts_with("DEPRECATED:")
                && !l.contains("legacy builder is deprecated")
        })
        .collect();
    let start = lines.len().saturating_sub(count);
    lines[start..].join(" / ")
}

impl Cmd {
    pub fn new(program: impl AsRef<OsStr>) -> Cmd {
        Cmd {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            env_remove: Vec::new(),
            dir: None,
            stdin: None,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Cmd {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Cmd {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Cmd {
        self.env_remove.push(key.as_ref().to_owned());
        self
    }

    pub fn dir(mut self, dir: impl AsRef<Path>) -> Cmd {
        self.dir = Some(dir.as_ref().to_owned());
        self
    }

    pub fn stdin_bytes(mut self, bytes: impl Into<Vec<u8>>) -> Cmd {
        self.stdin = Some(bytes.into());
        self
    }

    /// The command line, quoted for a shell, for traces and errors.
    pub fn display(&self) -> String {
        let words = std::iter::once(&self.program)
            .chain(&self.args)
            .map(|w| w.to_string_lossy().into_owned());
        shell_words::join(words)
    }

    /// The duct expression; stdio is left to the caller.
    fn expression(&self) -> duct::Expression {
        if output::tracing() {
            eprintln!("+ {}", self.display());
        }
        let mut expr = duct::cmd(&self.program, &self.args);
        for (key, value) in &self.env {
            expr = expr.env(key, value);
        }
        for key in &self.env_remove {
            expr = expr.env_remove(key);
        }
        if let Some(dir) = &self.dir {
            expr = expr.dir(dir);
        }
        if let Some(bytes) = &self.stdin {
            expr = expr.stdin_bytes(bytes.clone());
        }
        if SHIELDS.load(Ordering::SeqCst) > 0 {
            expr = expr.before_spawn(|command| {
                command.process_group(0);
                Ok(())
            });
        }
        expr
    }

    /// Runs to completion, capturing stdout and stderr, whatever the exit status.
    pub fn output(&self) -> anyhow::Result<Output> {
        self.expression()
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .run()
            .map_err(|err| self.not_started(err))
    }

    /// Runs to completion like [`Cmd::output`], stdin empty, keeping at most `max` bytes of
    /// stdout and of stderr each: a command that prints more is killed, and that is an error.
    /// For what another machine answers, which this one need not believe.
    pub fn output_bounded(&self, max: u64) -> anyhow::Result<Output> {
        let (stdout, stdout_in) = std::io::pipe()?;
        let (stderr, stderr_in) = std::io::pipe()?;
        let running =
            self.start_wired(None, Sink::Fd(stdout_in.into()), Sink::Fd(stderr_in.into()))?;
        // A reader that has read too much kills the command, so that the other one ends too.
        let read = |pipe: std::io::PipeReader| -> std::io::Result<Vec<u8>> {
            let mut kept = Vec::new();
            std::io::Read::read_to_end(&mut std::io::Read::take(pipe, max + 1), &mut kept)
                .inspect_err(|_| running.kill())?;
            if kept.len() as u64 > max {
                running.kill();
            }
            Ok(kept)
        };
        let (out, err) = std::thread::scope(|scope| {
            let err = scope.spawn(|| read(stderr));
            (read(stdout), err.join())
        });
        let err = err
            .map_err(|_| anyhow::anyhow!("reading the stderr of `{}` panicked", self.display()))?;
        let (out, err) = (out?, err?);
        let mut output = running.wait()?;
        if out.len() as u64 > max || err.len() as u64 > max {
            anyhow::bail!(
                "`{}` printed more than {} on stdout or stderr; stopped",
                self.display(),
                output::human_bytes(max)
            );
        }
        output.stdout = out;
        output.stderr = err;
        Ok(output)
    }

    /// Runs and returns stdout without its trailing newline; a non-zero exit is an error.
    pub fn read(&self) -> anyhow::Result<String> {
        let output = self.output()?;
        self.check(&output)?;
        let mut stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        while stdout.ends_with('\n') {
            stdout.pop();
        }
        Ok(stdout)
    }

    /// Runs with stdout and stderr passed through to the user; a non-zero exit is an error.
    pub fn run(&self) -> anyhow::Result<()> {
        let output = self
            .expression()
            .unchecked()
            .run()
            .map_err(|err| self.not_started(err))?;
        self.check(&output)
    }

    /// Runs with stdout passed through to the user unless `quiet`, stderr captured for the
    /// error; a non-zero exit is an error.
    pub fn run_showing_stdout(&self, quiet: bool) -> anyhow::Result<()> {
        let expression = self.expression().stderr_capture().unchecked();
        let expression = if quiet {
            expression.stdout_null()
        } else {
            expression
        };
        let output = expression.run().map_err(|err| self.not_started(err))?;
        self.check(&output)
    }

    /// Starts the command in the background, reading its stdin from `stdin` (the read end of
    /// a pipe, say), with stdout and stderr captured.
    pub fn start(&self, stdin: OwnedFd) -> anyhow::Result<Running> {
        self.start_wired(Some(stdin), Sink::Capture, Sink::Capture)
    }

    /// Starts the command in the background wired into a pipeline the caller builds: stdin
    /// from `stdin` (None: /dev/null), stdout and stderr as [`Sink`]s say.
    pub fn start_wired(
        &self,
        stdin: Option<OwnedFd>,
        stdout: Sink,
        stderr: Sink,
    ) -> anyhow::Result<Running> {
        let expression = match stdin {
            Some(fd) => self.expression().stdin_file(fd),
            None => self.expression().stdin_null(),
        };
        let expression = match stdout {
            Sink::Inherit => expression,
            Sink::Capture => expression.stdout_capture(),
            Sink::Fd(fd) => expression.stdout_file(fd),
        };
        let expression = match stderr {
            Sink::Inherit => expression,
            Sink::Capture => expression.stderr_capture(),
            Sink::Fd(fd) => expression.stderr_file(fd),
        };
        let handle = expression
            .unchecked()
            .start()
            .map_err(|err| self.not_started(err))?;
        Ok(Running {
            cmd: self.clone(),
            handle,
        })
    }

    /// Turns a finished run into an error when it failed.
    pub fn check(&self, output: &Output) -> anyhow::Result<()> {
        if output.status.success() {
            return Ok(());
        }
        Err(ProcessError {
            command: self.display(),
            status: Some(output.status),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            not_started: None,
        }
        .into())
    }

    fn not_started(&self, err: std::io::Error) -> anyhow::Error {
        ProcessError {
            command: self.display(),
            status: None,
            stderr: String::new(),
            not_started: Some(err),
        }
        .into()
    }
}

/// Where a started command's stdout or stderr goes.
#[derive(Debug)]
pub enum Sink {
    /// This process's own.
    Inherit,
    /// Into the [`Output`] of [`Running::wait`].
    Capture,
    /// A file or the write end of a pipe.
    Fd(OwnedFd),
}

/// A command started with [`Cmd::start`] or [`Cmd::start_wired`].
pub struct Running {
    cmd: Cmd,
    handle: duct::Handle,
}

impl Running {
    /// Kills the command (it may have exited already: then nothing happens).
    pub fn kill(&self) {
        let _ = self.handle.kill();
    }

    /// Kills the command and waits for it to end, when nothing it does matters any more.
    pub fn stop(self) {
        self.kill();
        let _ = self.wait();
    }

    /// Waits for the command to end and returns its output, whatever its exit status.
    pub fn wait(self) -> anyhow::Result<Output> {
        let output = self
            .handle
            .into_output()
            .map_err(|err| anyhow::anyhow!("`{}` did not finish: {err}", self.cmd.display()))?;
        Ok(output)
    }

    /// Waits for the command to end; a non-zero exit is an error with its stderr.
    pub fn finish(self) -> anyhow::Result<Output> {
        let cmd = self.cmd.clone();
        let output = self.wait()?;
        cmd.check(&output)?;
        Ok(output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_returns_stdout_without_trailing_newline() {
        let out = Cmd::new("printf").arg("a b\n\n").read().unwrap();
        assert_eq!(out, "a b");
    }

    #[test]
    fn failure_names_command_status_and_stderr() {
        let err = Cmd::new("sh")
            .args(["-c", "echo first >&2; echo 'it broke' >&2; exit 3", "x y"])
            .read()
            .unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("`sh -c "), "{text}");
        assert!(text.contains("'x y'"), "{text}");
        assert!(
            text.contains("exited with status 3: first / it broke"),
            "{text}"
        );
        let process = err.downcast_ref::<ProcessError>().unwrap();
        assert_eq!(process.code(), Some(3));
    }

    #[test]
    fn bounded_output_stops_a_command_that_prints_too_much() {
        let output = Cmd::new("sh")
            .args(["-c", "printf out; printf err >&2; exit 4"])
            .output_bounded(3)
            .unwrap();
        assert_eq!(
            (&output.stdout[..], &output.stderr[..]),
            (&b"out"[..], &b"err"[..])
        );
        assert_eq!(output.status.code(), Some(4));
        // Endless output on either stream, whatever the other one does.
        for script in ["yes", "yes >&2", "yes >&2 & yes"] {
            let err = Cmd::new("sh")
                .args(["-c", script])
                .output_bounded(1 << 16)
                .unwrap_err();
            assert!(
                err.to_string()
                    .ends_with("printed more than 64 KiB on stdout or stderr; stopped"),
                "{err}"
            );
        }
    }

    #[test]
    fn missing_program_is_an_error_not_a_panic() {
        let err = Cmd::new("/nonexistent/prog").read().unwrap_err();
        assert!(err.to_string().contains("could not be started"), "{err}");
        // The io error stays the source, with its kind.
        let io = err
            .chain()
            .find_map(|cause| cause.downcast_ref::<std::io::Error>());
        assert_eq!(
            io.map(std::io::Error::kind),
            Some(std::io::ErrorKind::NotFound)
        );
    }

    #[test]
    fn a_started_command_reads_its_pipe_and_reports_failure() {
        use std::io::Write;
        let (reader, mut writer) = std::io::pipe().unwrap();
        let running = Cmd::new("sh")
            .args(["-c", "cat; echo oops >&2; exit 4"])
            .start(reader.into())
            .unwrap();
        writer.write_all(b"through the pipe").unwrap();
        drop(writer);
        let err = running.finish().unwrap_err();
        let process = err.downcast_ref::<ProcessError>().unwrap();
        assert_eq!(process.code(), Some(4));
        assert_eq!(process.stderr.trim(), "oops");

        let (reader, _writer) = std::io::pipe().unwrap();
        let running = Cmd::new("cat").start(reader.into()).unwrap();
        running.kill();
        let output = running.wait().unwrap();
        assert!(!output.status.success());
    }

    #[test]
    fn a_command_that_cannot_start_names_itself() {
        let (reader, _writer) = std::io::pipe().unwrap();
        let err = Cmd::new("/nonexistent/loader")
            .start(reader.into())
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .starts_with("`/nonexistent/loader` could not be started"),
            "{err}"
        );
    }

    #[test]
    fn a_wired_command_writes_where_it_is_told() {
        use std::io::Read;
        let (mut out_reader, out_writer) = std::io::pipe().unwrap();
        let running = Cmd::new("sh")
            .args(["-c", "cat; echo to-stderr >&2"])
            .start_wired(None, Sink::Fd(out_writer.into()), Sink::Capture)
            .unwrap();
        let mut text = String::new();
        out_reader.read_to_string(&mut text).unwrap();
        assert_eq!(text, "", "stdin is /dev/null when none is given");
        let output = running.wait().unwrap();
        assert!(output.status.success());
        assert_eq!(output.stderr, b"to-stderr\n");
    }

    #[test]
    fn a_shielded_child_leads_a_process_group_of_its_own() {
        let shield = shield();
        let ids = Cmd::new("sh")
            .args(["-c", "echo $$ $(ps -o pgid= -p $$)"])
            .read()
            .unwrap();
        drop(shield);
        let ids: Vec<&str> = ids.split_whitespace().collect();
        assert_eq!(ids.len(), 2, "{ids:?}");
        assert_eq!(ids[0], ids[1], "pid and process group differ: {ids:?}");
    }

    #[test]
    fn stdin_and_env_reach_the_child() {
        let out = Cmd::new("sh")
            .args(["-c", "cat; printf %s \"$GREETING\""])
            .env("GREETING", "hi")
            .stdin_bytes("in-")
            .read()
            .unwrap();
        assert_eq!(out, "in-hi");
    }
}
