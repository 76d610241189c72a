//! Signals during a deploy (docs/deploy.md, "Signals"): SIGINT, SIGTERM, SIGHUP and SIGQUIT
//! (what `builds:cancel` sends) end a deploy as a failure does. The steps of a deploy that
//! change something register how to undo it ([`on_cancel`]); when a signal arrives, a thread
//! of its own stops the plugin's child processes (`docker image load` before its stdin closes,
//! so nothing is imported; `receive-app` and what it started), runs the undo steps newest
//! first, says what happened in one line and exits with 128 + the signal's number.
//!
//! A step that must not be cut in two (moving the branch once `receive-app` succeeded, and
//! dropping the undo steps it made pointless) runs under [`hold`]: the signal waits for it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};

use crate::output;

type Action = Box<dyn FnOnce() + Send>;

/// The undo steps registered and not yet dropped, by token.
static ACTIONS: Mutex<Vec<(u64, Action)>> = Mutex::new(Vec::new());
/// Held by the deploy's uncuttable steps, and by the signal thread while it undoes.
static CRITICAL: Mutex<()> = Mutex::new(());
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);
static DONE: AtomicBool = AtomicBool::new(false);
/// Set by the signal handler itself, before any child can have died of the same signal.
static REQUESTED: OnceLock<Arc<AtomicBool>> = OnceLock::new();
/// What the one line says, once installed: `the deploy of IMAGE to APP`.
static WHAT: OnceLock<Mutex<String>> = OnceLock::new();

/// A registered undo step; dropped, it is forgotten (the step completed, or the deploy's own
/// failure path undid it).
#[must_use = "the undo step is forgotten when this is dropped"]
pub struct Undo(u64);

impl Drop for Undo {
    fn drop(&mut self) {
        lock(&ACTIONS).retain(|(token, _)| *token != self.0);
    }
}

fn lock<T>(mutex: &'static Mutex<T>) -> MutexGuard<'static, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Registers how to undo a step, should a signal end the deploy while the returned token lives.
pub fn on_cancel(action: impl FnOnce() + Send + 'static) -> Undo {
    let token = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
    lock(&ACTIONS).push((token, Box::new(action)));
    Undo(token)
}

/// Keeps a signal from being handled until the guard is dropped.
pub fn hold() -> MutexGuard<'static, ()> {
    lock(&CRITICAL)
}

/// Names what a signal would end, for its one line: `the deploy of IMAGE to APP`.
pub fn describe(what: impl Into<String>) {
    *lock_what() = what.into();
}

fn lock_what() -> MutexGuard<'static, String> {
    WHAT.get_or_init(|| Mutex::new("the command".to_string()))
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Handles the four signals from now on. Idempotent.
pub fn install() -> anyhow::Result<()> {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    if INSTALLED.get().is_some() {
        return Ok(());
    }
    let requested = REQUESTED.get_or_init(|| Arc::new(AtomicBool::new(false)));
    for signal in [SIGINT, SIGTERM, SIGHUP, SIGQUIT] {
        signal_hook::flag::register(signal, Arc::clone(requested))?;
    }
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT])?;
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            cancel(signal);
        }
    });
    let _ = INSTALLED.set(());
    Ok(())
}

/// Whether a signal is ending the command: then its thread says what happened and exits, and
/// the main thread must neither report nor undo anything of its own.
pub fn requested() -> bool {
    REQUESTED
        .get()
        .is_some_and(|flag| flag.load(Ordering::SeqCst))
}

/// Where the main thread ends: when a signal is being handled, it waits for the signal's
/// thread to exit the process (its own failure was only the children being stopped).
pub fn settle() {
    if requested() {
        loop {
            std::thread::park();
        }
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        SIGHUP => "SIGHUP",
        SIGQUIT => "SIGQUIT",
        _ => "a signal",
    }
}

fn cancel(signal: i32) -> ! {
    let _critical = lock(&CRITICAL);
    stop_children();
    let actions = std::mem::take(&mut *lock(&ACTIONS));
    for (_, action) in actions.into_iter().rev() {
        action();
    }
    output::warn(message(&lock_what(), signal, DONE.load(Ordering::SeqCst)));
    std::process::exit(128 + signal);
}

fn message(what: &str, signal: i32, done: bool) -> String {
    let name = signal_name(signal);
    if done {
        format!("{name} came after {what} had succeeded")
    } else if signal == SIGQUIT {
        format!("{what} was canceled ({name}); nothing was changed")
    } else {
        format!("{what} was stopped by {name}; nothing was changed")
    }
}

/// Marks the deploy as done: a signal from now on changes nothing and says so.
pub fn done() {
    DONE.store(true, Ordering::SeqCst);
}

/// Every process below this one.
fn descendants() -> Vec<Pid> {
    descendants_of(std::process::id() as i32)
}

/// Every process below `root`, from /proc.
fn descendants_of(root: i32) -> Vec<Pid> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    if let Ok(listing) = std::fs::read_dir("/proc") {
        for entry in listing.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // The command name in parentheses may hold spaces: the fields follow its last ')'.
            let Some(ppid) = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|ppid| ppid.parse::<i32>().ok())
            else {
                continue;
            };
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut found = Vec::new();
    let mut seen = HashSet::new();
    let mut queue = vec![root];
    while let Some(parent) = queue.pop() {
        for &child in children.get(&parent).into_iter().flatten() {
            if seen.insert(child) {
                found.push(child);
                queue.push(child);
            }
        }
    }
    found.into_iter().filter_map(Pid::from_raw).collect()
}

/// SIGTERM to every descendant (so scripts run their traps), SIGKILL to those still there
/// after a few seconds.
fn stop_children() {
    let targets = descendants();
    for pid in &targets {
        let _ = rustix::process::kill_process(*pid, Signal::TERM);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let alive: Vec<Pid> = descendants();
        if alive.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            for pid in alive {
                let _ = rustix::process::kill_process(pid, Signal::KILL);
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_undo_step_is_forgotten() {
        let count = || lock(&ACTIONS).len();
        let before = count();
        let first = on_cancel(|| {});
        let second = on_cancel(|| {});
        assert_eq!(count(), before + 2);
        drop(first);
        assert_eq!(count(), before + 1);
        drop(second);
        assert_eq!(count(), before);
    }

    #[test]
    fn descendants_include_grandchildren() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .spawn()
            .unwrap();
        let root = child.id() as i32;
        let deadline = Instant::now() + Duration::from_secs(5);
        while descendants_of(root).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let found = descendants_of(root);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(descendants().contains(&Pid::from_raw(root).unwrap()));
        assert!(descendants().contains(&found[0]));
        for pid in found {
            let _ = rustix::process::kill_process(pid, Signal::KILL);
        }
        let _ = child.wait();
    }

    #[test]
    fn one_line_says_what_a_signal_ended() {
        assert_eq!(
            message("the deploy of a:1 to app", SIGQUIT, false),
            "the deploy of a:1 to app was canceled (SIGQUIT); nothing was changed"
        );
        assert_eq!(
            message("the deploy of a:1 to app", SIGTERM, false),
            "the deploy of a:1 to app was stopped by SIGTERM; nothing was changed"
        );
        assert_eq!(
            message("the deploy of a:1 to app", SIGHUP, true),
            "SIGHUP came after the deploy of a:1 to app had succeeded"
        );
    }
}
