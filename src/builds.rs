//! Dokku 0.38's build records (docs/dokku-builds.md): every `image:*` deploy is one record
//! with its whole output in the record's log, finalized with the deploy's exit status, refused
//! and vetoed deploys included. On a host without the `builds` plugin nothing changes.
//!
//! As core's `dokku_setup_build_capture` does for its scripts: the plugin gets an id from
//! `builds-generate-id`, fires `builds-record-start APP ID PID SOURCE` with its own pid (the
//! one `builds:cancel` signals the process group of), and runs the deploy again as a child
//! with `DOKKU_BUILD_ID`, `DOKKU_BUILD_SOURCE`, `DOKKU_BUILD_LOG_FILE` and
//! `DOKKU_REDIRECT_OUTPUT=true` exported, copying the child's stdout and stderr to its own and
//! to the log. `receive-app` then records nothing of its own (its capture sees
//! `DOKKU_REDIRECT_OUTPUT`) and writes our id into Dokku's deploy lock. When the child ends,
//! `builds-record-finalize APP ID STATUS`.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};

use crate::host::{self, Host};
use crate::output::{self, Status};
use crate::state;
use crate::trigger;

/// Where the output already goes to a build log (a capture further up, or ours).
const REDIRECTED: &str = "DOKKU_REDIRECT_OUTPUT";

/// Runs the rest of the command inside a build record of APP (SOURCE: the core command it
/// stands for), when the host keeps them and no capture runs yet: then it returns the
/// deploy's status, which is the command's. Otherwise (no `builds` plugin, or already
/// captured) it returns None and the command goes on.
pub fn capture(host: &Host, app: &str, source: &str) -> anyhow::Result<Option<Status>> {
    if std::env::var(REDIRECTED).is_ok_and(|v| v == "true") || !state::plugin_has(host, "builds") {
        return Ok(None);
    }
    let id = build_id()?;
    let log_dir = state::build_logs(host, app);
    host::create_dirs(&log_dir)?;
    let log_path = log_dir.join(format!("{id}.log"));
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open the build log {}", log_path.display()))?;
    host.chown_to_system_user(&log_path);
    let pid = std::process::id().to_string();
    if let Err(err) = trigger::fire("builds-record-start", &[app, &id, &pid, source]) {
        output::warn(format!("cannot start the build record of {app}: {err:#}"));
    }
    let status = run_captured(&id, source, &log_path, log)?;
    if let Err(err) = trigger::fire("builds-record-finalize", &[app, &id, &status.to_string()]) {
        output::warn(format!(
            "cannot finalize the build record of {app}: {err:#}"
        ));
    }
    Ok(Some(Status(status)))
}

/// A new id from `builds-generate-id`, else `pid-$DOKKU_PID` as core does.
fn build_id() -> anyhow::Result<String> {
    if let Ok(id) = std::env::var("DOKKU_BUILD_ID") {
        if !id.is_empty() {
            return Ok(id);
        }
    }
    let generated = trigger::command::<&str>("builds-generate-id", &[])
        .read()
        .unwrap_or_default();
    let id = generated
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Ok(id);
    }
    let dokku_pid = std::env::var("DOKKU_PID").unwrap_or_else(|_| std::process::id().to_string());
    Ok(format!("pid-{dokku_pid}"))
}

/// Runs this same command again as a child whose output goes to ours and to the log; returns
/// its exit status (128 + N when a signal killed it). Signals that reach this process are
/// passed on to the child, which undoes its deploy; this process waits for it, so the record
/// is finalized with what happened.
fn run_captured(id: &str, source: &str, log_path: &PathBuf, log: File) -> anyhow::Result<i32> {
    let exe = std::env::current_exe().context("cannot find the plugin's own binary")?;
    // Handled from before the child starts, so that no signal ends this process unrecorded;
    // one that came first ends the deploy before it begins.
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT])?;
    if let Some(signal) = signals.pending().next() {
        return Ok(128 + signal);
    }
    let mut args = std::env::args_os();
    // The same name too: the program serves the entry its name names.
    let program = args.next().unwrap_or_default();
    let mut child = Command::new(&exe)
        .arg0(program)
        .args(args)
        .env(REDIRECTED, "true")
        .env("DOKKU_BUILD_ID", id)
        .env("DOKKU_BUILD_SOURCE", source)
        .env("DOKKU_BUILD_LOG_FILE", log_path)
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    let child_pid = child.id();
    let forwarder = signals.handle();
    std::thread::spawn(move || {
        for signal in signals.forever() {
            // A signal to the whole process group reached the child too; one to this
            // process alone is passed on.
            if let Some(pid) = rustix::process::Pid::from_raw(child_pid as i32) {
                let _ = rustix::process::kill_process(
                    pid,
                    rustix::process::Signal::from_named_raw(signal)
                        .unwrap_or(rustix::process::Signal::TERM),
                );
            }
        }
    });
    let log = Arc::new(Mutex::new(log));
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let copies = [
        copy_to(stdout, io::stdout(), Arc::clone(&log)),
        copy_to(stderr, io::stderr(), Arc::clone(&log)),
    ];
    let status = child.wait().context("the captured deploy did not finish")?;
    for copy in copies {
        let _ = copy.join();
    }
    forwarder.close();
    Ok(status.code().unwrap_or_else(|| {
        128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(1)
    }))
}

/// Copies a child's stream to one of ours and to the log, as it comes.
fn copy_to(
    mut from: impl Read + Send + 'static,
    mut to: impl Write + Send + 'static,
    log: Arc<Mutex<File>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 8192];
        loop {
            let n = match from.read(&mut buffer) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let _ = to.write_all(&buffer[..n]);
            let _ = to.flush();
            if let Ok(mut log) = log.lock() {
                let _ = log.write_all(&buffer[..n]);
            }
        }
    })
}
