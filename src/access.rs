//! The app a command acts on is the app the access check saw (docs/dokku-host.md,
//! "Dispatch"). Before running a command, Dokku fires `user-auth SSH_USER SSH_NAME COMMAND
//! ARGS…`, and access-control plugins (dokku-acl) allow a per-app command by the first word
//! after it. When the app comes from `--app` or `DOKKU_APP_NAME` instead (or Dokku put it
//! first, for a `git:*` fallback), that check saw another word: `user-auth` is fired again,
//! with the command line the plugin acts on, `COMMAND APP WORDS…`, before anything happens,
//! and a refusal ends the command as Dokku ends it.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::Path;

use crate::args;
use crate::command::{Command, Kind};
use crate::host::Host;
use crate::output::Exit;
use crate::trigger;

/// The plugin whose `user-auth` Dokku does not count (it logs, it never refuses).
const EVENTS_PLUGIN: &str = "20_events";

/// Fails with Dokku's ` !     Access denied` (status 1) when `user-auth` refuses the command
/// line the command will act on, for an app that the check Dokku made did not see. Arguments
/// the command will refuse anyway, and commands without an app, are left to the command.
pub fn check(command: &Command, argv: &[OsString]) -> anyhow::Result<()> {
    if !matches!(command.kind, Kind::Subcommand | Kind::Fallback { .. }) || !command.flags.takes_app
    {
        return Ok(());
    }
    let Ok(parsed) = args::parse(argv.to_vec(), command, std::env::var("DOKKU_APP_NAME").ok())
    else {
        return Ok(());
    };
    let Some(app) = parsed.app.filter(|_| parsed.app_apart) else {
        return Ok(());
    };
    if !user_auth_fires(&Host::from_env().enabled_plugins) {
        return Ok(());
    }
    let mut line = vec![user(), name(), command.name.to_string(), app];
    line.extend(parsed.words);
    trigger::fire("user-auth", &line).map_err(|err| match trigger::failed_status(&err) {
        Some(_) => Exit {
            code: 1,
            message: "Access denied".to_string(),
        }
        .into(),
        None => err.context("cannot fire the user-auth trigger"),
    })
}

/// Whether Dokku fires `user-auth` at all: when an enabled plugin other than `20_events`
/// has it. A folder that cannot be read counts as one that has it (the check is made).
fn user_auth_fires(enabled: &Path) -> bool {
    match fs::read_dir(enabled) {
        Ok(plugins) => plugins.flatten().any(|plugin| {
            plugin.file_name() != EVENTS_PLUGIN && plugin.path().join("user-auth").exists()
        }),
        Err(err) => err.kind() != io::ErrorKind::NotFound,
    }
}

/// `SSH_USER` as Dokku exports it (`root` for root on the host), else `USER`.
fn user() -> String {
    first_set(&["SSH_USER", "USER"]).unwrap_or_default()
}

/// `SSH_NAME` as Dokku exports it (the key's name, from sshcommand's `NAME`), else `default`.
fn name() -> String {
    first_set(&["SSH_NAME", "NAME"]).unwrap_or_else(|| "default".to_string())
}

fn first_set(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|value| !value.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_auth_fires_unless_only_the_events_plugin_has_it() {
        let dir = tempfile::tempdir().unwrap();
        let enabled = dir.path().join("enabled");
        assert!(!user_auth_fires(&enabled), "no plugins folder");
        for plugin in ["00_dokku-standard", "20_events", "image"] {
            fs::create_dir_all(enabled.join(plugin)).unwrap();
        }
        assert!(!user_auth_fires(&enabled));
        fs::write(enabled.join("20_events/user-auth"), "").unwrap();
        assert!(!user_auth_fires(&enabled));
        fs::create_dir_all(enabled.join("acl")).unwrap();
        fs::write(enabled.join("acl/user-auth"), "").unwrap();
        assert!(user_auth_fires(&enabled));
    }
}
