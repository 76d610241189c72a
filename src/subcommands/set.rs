//! `image:set [--global|APP] KEY [VALUE]`: the plugin's settings, the Dokku way (a property
//! per app or `--global`; no value unsets). The one setting is `keep-images`
//! (docs/retention.md).

use std::ffi::OsString;

use crate::args;
use crate::command::Command;
use crate::host::Host;
use crate::output::{self, Status};
use crate::retention::Keep;
use crate::state::{GLOBAL, KEEP_IMAGES};
use crate::trigger;

pub fn run(command: &Command, argv: Vec<OsString>) -> anyhow::Result<Status> {
    let parsed = args::parse(argv, command, std::env::var("DOKKU_APP_NAME").ok())?;
    let scope = match (parsed.global, parsed.app.filter(|app| !app.is_empty())) {
        (true, _) => GLOBAL.to_string(),
        (false, Some(app)) => app,
        (false, None) => return Err(command.usage_error("APP or --global is required")),
    };
    let mut positionals = parsed.positionals.into_iter();
    let key = positionals
        .next()
        .ok_or_else(|| command.usage_error("KEY is required"))?;
    let value = positionals.next().filter(|value| !value.is_empty());
    if key != KEEP_IMAGES.key {
        return Err(command.usage_error(format!(
            "unknown setting {key:?} (image:set knows {})",
            KEEP_IMAGES.key
        )));
    }
    if scope != GLOBAL {
        trigger::ensure_app(&scope)?;
    }
    if let Some(value) = &value {
        Keep::parse(value)?;
    }
    let host = Host::from_env();
    KEEP_IMAGES.put(&host, &scope, value.as_deref())?;
    match value {
        Some(value) => output::info(format!("Setting {key} to {value}")),
        None => output::info(format!("Unsetting {key}")),
    }
    Ok(Status::SUCCESS)
}
