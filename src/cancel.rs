//! Signals during a deploy (docs/deploy.md, "Signals"): SIGINT, SIGTERM, SIGHUP and SIGQUIT
//! (what `builds:cancel` sends) end a deploy as a failure does. The steps of a deploy that
//! change something register how to undo it ([`on_cancel`]); when a signal arrives, a thread
//! of its own stops the plugin's child processes (`docker image load` before its stdin closes,
//! so nothing is imported; `receive-app` and what it started), runs the undo steps newest
//! first, says what happened in one line and exits with 128 + the signal's number.
//!
//! What keeps an undo step from being lost, whichever thread gets there first (a signal to the
//! whole process group kills the children the main thread waits for, so the main thread's
//! failure path and the signal's thread race):
//! - A step that changes something, and the registration of its undo, run under [`hold`]
//!   after [`Critical::proceed`]: once a signal is requested nothing more changes, and the
//!   signal's thread, which takes the same lock, never sees a step without its undo.
//! - Once a signal is requested, dropping an [`Undo`] leaves the step to the signal's thread.
//!   The main thread's failure path undoes a step with [`Undo::undo`] under the hold; a step
//!   made final is forgotten with [`Undo::forget`] under the hold that made it final.
//! - Children started under a hold run in a process group of their own
//!   ([`process::shield`]), so a signal to the deploy's group cannot cut such a step, or an
//!   undo, in two.
//! - Once the deploy is [`done`] (its branch moved), a signal undoes nothing.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};

use crate::output;
use crate::process::{self, Shield};

type Action = Box<dyn FnOnce() + Send>;

/// The undo steps registered and not yet dropped, by token.
static ACTIONS: Mutex<Vec<(u64, Action)>> = Mutex::new(Vec::new());
/// Held by the deploy's steps that change something, and by the signal thread while it undoes.
static CRITICAL: Mutex<()> = Mutex::new(());
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);
static DONE: AtomicBool = AtomicBool::new(false);
/// Set by the signal handler itself, before any child can have died of the same signal.
static REQUESTED: OnceLock<Arc<AtomicBool>> = OnceLock::new();
/// What the one line says, once installed: `the deploy of IMAGE to APP`.
static WHAT: OnceLock<Mutex<String>> = OnceLock::new();

/// A registered undo step. Dropped, it is forgotten, unless a signal is being handled: then
/// the signal's thread runs it.
#[must_use = "the undo step is forgotten when this is dropped"]
pub struct Undo(u64);

impl Undo {
    /// Takes the step's action out of the registry, if it is still there.
    fn take(&self) -> Option<Action> {
        let mut actions = lock(&ACTIONS);
        let index = actions.iter().position(|(token, _)| *token == self.0)?;
        Some(actions.remove(index).1)
    }

    /// The step is final (the deploy it belongs to succeeded): forget how to undo it.
    pub fn forget(self, _held: &Critical) {
        drop(self.take());
    }

    /// The command failed: undo the step now, under the hold, so that a signal arriving
    /// meanwhile waits and then finds it done.
    pub fn undo(self, _held: &Critical) {
        if let Some(action) = self.take() {
            action();
        }
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        if !requested() {
            drop(self.take());
        }
    }
}

fn lock<T>(mutex: &'static Mutex<T>) -> MutexGuard<'static, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Registers how to undo a step, should a signal end the deploy while the returned token
/// lives. Register it under the same [`hold`] as the step it undoes.
pub fn on_cancel(action: impl FnOnce() + Send + 'static) -> Undo {
    let token = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
    lock(&ACTIONS).push((token, Box::new(action)));
    Undo(token)
}

/// A step that must not be cut in two: a signal waits until it is dropped, and the children
/// it starts are shielded from signals to the deploy's process group.
pub struct Critical {
    _guard: MutexGuard<'static, ()>,
    _shield: Shield,
}

impl Critical {
    /// Fails once a signal is being handled: the command changes nothing more (its error is
    /// never shown; the signal's thread undoes what was registered and says what happened).
    pub fn proceed(&self) -> anyhow::Result<()> {
        anyhow::ensure!(!requested(), "stopped by a signal");
        Ok(())
    }
}

/// Keeps a signal from being handled until the returned guard is dropped.
pub fn hold() -> Critical {
    Critical {
        _guard: lock(&CRITICAL),
        _shield: process::shield(),
    }
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
/// the main thread must neither report nor change anything more.
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
    let _critical = hold();
    stop_children();
    let done = DONE.load(Ordering::SeqCst);
    let actions = std::mem::take(&mut *lock(&ACTIONS));
    if !done {
        for (_, action) in actions.into_iter().rev() {
            action();
        }
    }
    output::warn(message(&lock_what(), signal, done));
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

/// Marks the deploy as done (call it under the hold that made it so): a signal from now on
/// undoes nothing and says so.
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

    /// The tests that use the registry and the signal flag, one at a time.
    static SERIAL: Mutex<()> = Mutex::new(());

    fn registered(undo: &Undo) -> bool {
        lock(&ACTIONS).iter().any(|(token, _)| *token == undo.0)
    }

    fn set_requested(value: bool) {
        REQUESTED
            .get_or_init(|| Arc::new(AtomicBool::new(false)))
            .store(value, Ordering::SeqCst);
    }

    #[test]
    fn without_a_signal_a_dropped_step_is_forgotten_and_undo_runs_it_once() {
        let _serial = lock(&SERIAL);
        let ran = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&ran);
        let first = on_cancel(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        let second = on_cancel(|| {});
        assert!(registered(&first) && registered(&second));
        let held = hold();
        held.proceed().unwrap();
        first.undo(&held);
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        drop(held);
        let token = second.0;
        drop(second);
        assert!(!lock(&ACTIONS).iter().any(|(t, _)| *t == token));
        let third = on_cancel(|| panic!("a forgotten step never runs"));
        let token = third.0;
        third.forget(&hold());
        assert!(!lock(&ACTIONS).iter().any(|(t, _)| *t == token));
    }

    #[test]
    fn once_a_signal_is_requested_nothing_changes_and_no_step_is_dropped() {
        let _serial = lock(&SERIAL);
        let step = on_cancel(|| {});
        let token = step.0;
        set_requested(true);
        let refused = hold().proceed();
        // The main thread's failure path returns, dropping what it holds: the step stays
        // for the signal's thread.
        drop(step);
        let kept = lock(&ACTIONS).iter().any(|(t, _)| *t == token);
        set_requested(false);
        lock(&ACTIONS).retain(|(t, _)| *t != token);
        assert!(refused.is_err());
        assert!(kept, "a step dropped once a signal was requested was lost");
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
