//! Firing Dokku triggers through `plugn trigger`, the only way a plugin reaches the others,
//! and the app checks that go through them: whether an app exists for the current user.

use crate::host;
use crate::output::{Exit, EXIT_MISSING_APP};
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

/// Fires a trigger that may refuse what the plugin is about to do: a refusal (a non-zero exit)
/// becomes `refused(status)`, a trigger that cannot be fired at all keeps its own error.
pub fn fire_or<S: AsRef<str>>(
    name: &str,
    args: &[S],
    refused: impl FnOnce(i32) -> anyhow::Error,
) -> anyhow::Result<()> {
    fire(name, args).map_err(|err| match failed_status(&err) {
        Some(code) => refused(code),
        None => err.context(format!("cannot fire the {name} trigger")),
    })
}

/// Dokku's missing-app error and status. A name with control characters is quoted and
/// escaped, so the message stays one line.
pub fn missing_app(app: &str) -> anyhow::Error {
    let message = if app.chars().any(char::is_control) {
        format!("App {app:?} does not exist")
    } else {
        format!("App {app} does not exist")
    };
    Exit {
        code: EXIT_MISSING_APP,
        message,
    }
    .into()
}

/// Fails with Dokku's message and status unless APP names an app the current user may see
/// (core's `app-exists`, which access-control plugins filter). An invalid name is never handed
/// to a trigger.
pub fn ensure_app(app: &str) -> anyhow::Result<()> {
    if !host::is_valid_app_name(app) {
        return Err(missing_app(app));
    }
    let output = command("app-exists", &[app]).output()?;
    if output.status.success() {
        Ok(())
    } else {
        Err(missing_app(app))
    }
}

/// The apps the current user may see (core's `app-list` trigger, which access-control
/// plugins filter), sorted; lines that are no valid app name are left out.
pub fn app_list() -> anyhow::Result<Vec<String>> {
    let listed = command::<&str>("app-list", &[]).read()?;
    let mut apps: Vec<String> = listed
        .lines()
        .map(str::trim)
        .filter(|app| host::is_valid_app_name(app))
        .map(str::to_string)
        .collect();
    apps.sort();
    apps.dedup();
    Ok(apps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_app_message_is_one_line_with_dokkus_status() {
        assert_eq!(missing_app("a b").to_string(), "App a b does not exist");
        assert_eq!(
            missing_app("a\nb").to_string(),
            "App \"a\\nb\" does not exist"
        );
        assert_eq!(crate::output::exit_code(&missing_app("x")), 20);
    }
}
