//! The Dokku lifecycle triggers the plugin implements for its own state. That state is small on
//! purpose: the app repo is the record, and the plugin keeps only a lock file per app under
//! `$DOKKU_LIB_ROOT/data/image/APP` (with the scratch folder of a deploy in flight, or of a
//! killed one until the next deploy), plus the pending ref of a deploy in flight.

use std::ffi::OsString;

use crate::command::Command;
use crate::deploy::AppSession;
use crate::host::{self, Host};
use crate::output::Status;
use crate::repo::{AppRepo, PENDING_REF};
use crate::state;

/// A trigger's argument; one that is missing or not UTF-8 is empty (no valid app name is).
fn arg(args: &[OsString], index: usize) -> &str {
    args.get(index)
        .and_then(|arg| arg.to_str())
        .unwrap_or_default()
}

/// `uninstall NAME`: fired for whichever plugin is being uninstalled; only `image` is ours.
pub fn uninstall(_: &Command, args: Vec<OsString>) -> anyhow::Result<Status> {
    if arg(&args, 0) != state::PLUGIN {
        return Ok(Status::SUCCESS);
    }
    let host = Host::from_env();
    host::remove_if_present(&state::plugin_data(&host))?;
    Ok(Status::SUCCESS)
}

/// `post-delete APP [IMAGE_TAG]`: the app is gone, so is its lock file.
pub fn post_delete(_: &Command, args: Vec<OsString>) -> anyhow::Result<Status> {
    let app = arg(&args, 0);
    // Never build a path from a name Dokku would not accept (`..`, empty, slashes).
    if !host::is_valid_app_name(app) {
        return Ok(Status::SUCCESS);
    }
    host::remove_if_present(&state::app_data(&Host::from_env(), app))?;
    Ok(Status::SUCCESS)
}

/// `post-app-rename-setup OLD NEW` and `post-app-clone-setup OLD NEW`: Dokku copied
/// `$DOKKU_ROOT/OLD` wholesale, pending ref included. That ref belongs to a deploy of OLD, never
/// of NEW, so NEW drops it and gets its `source-image` back in line with its branch (the repair
/// every `image:*` command does, run now rather than on NEW's first deploy).
pub fn copy_setup(_: &Command, args: Vec<OsString>) -> anyhow::Result<Status> {
    let new = arg(&args, 1);
    if !host::is_valid_app_name(new) {
        return Ok(Status::SUCCESS);
    }
    let host = Host::from_env();
    let Some(repo) = AppRepo::open(&host, new) else {
        return Ok(Status::SUCCESS);
    };
    if repo.resolve(PENDING_REF)?.is_some() {
        AppSession::open(&host, new)?;
    }
    Ok(Status::SUCCESS)
}
