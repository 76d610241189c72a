//! Firing Dokku triggers through `plugn trigger`, the only way a plugin reaches the others.

use crate::process::{Cmd, ProcessError};

/// The command that fires trigger NAME with ARGS on every enabled plugin.
pub fn command<S: AsRef<str>>(name: &str, args: &[S]) -> Cmd {
    Cmd::new("plugn")
        .args(["trigger", name])
        .args(args.iter().map(AsRef::as_ref))
}

/// Fires a trigger with its output going to the user; a non-zero status is an error that names
/// the trigger and the status.
pub fn fire<S: AsRef<str>>(name: &str, args: &[S]) -> anyhow::Result<()> {
    command(name, args).run()
}

/// The exit status of a failed trigger, for messages.
pub fn failed_status(err: &anyhow::Error) -> Option<i32> {
    err.downcast_ref::<ProcessError>()
        .and_then(ProcessError::code)
}
