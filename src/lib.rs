//! The `image` Dokku plugin: deploy apps from Docker images, recorded in the app's git repo.
//! `docs/architecture.md` maps the modules.

pub mod access;
pub mod archive;
pub mod args;
pub mod builds;
pub mod cancel;
pub mod claims;
pub mod client;
pub mod command;
pub mod command_table;
pub mod content;
pub mod context;
pub mod delta;
pub mod deploy;
pub mod digest;
pub mod docker;
pub mod dokku_report;
pub mod host;
pub mod identity;
pub mod layers;
pub mod lifecycle;
pub mod lock;
pub mod output;
pub mod process;
pub mod progress;
pub mod protocol;
pub mod record;
pub mod reference;
pub mod repo;
pub mod request;
pub mod retention;
pub mod room;
pub mod state;
pub mod subcommands;
pub mod trigger;
pub mod version;
