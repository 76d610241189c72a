//! One entry of the plugin's command table (`command_table.rs`): how a command is named, called
//! and described, what arguments it takes, and the function that runs it. Usage errors and
//! help lines are made from the entry, so a command is described once.

use std::ffi::OsString;
use std::fmt;

use crate::output::Status;

/// What kind of entry point a command is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `dokku image:NAME`: a file of `subcommands/`, listed by `dokku help`.
    Subcommand,
    /// `dokku git:NAME`, answered through `commands` only when core's git plugin lacks
    /// `subcommands/NAME` (Dokku before 0.24 or 0.30).
    Fallback { core: &'static str },
    /// A trigger file at the plugin's root, fired by `plugn trigger`.
    Trigger,
    /// The `commands` file itself, which Dokku runs for help and unknown commands.
    Entry,
}

/// The flags and positionals a command accepts besides Dokku's global flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flags {
    pub build_dir: bool,
    pub pull: bool,
    pub force: bool,
    pub format: bool,
    /// Report field flags (`--image-…`).
    pub fields: bool,
    /// `--global` in place of the app (`image:set --global KEY VALUE`).
    pub global: bool,
    /// Whether the first positional is the app (unless `--app`/`DOKKU_APP_NAME` gives it).
    pub takes_app: bool,
    /// Positionals after the app.
    pub max_positionals: usize,
}

impl Flags {
    /// An app and nothing else; set what a command does take with struct update syntax.
    pub const APP: Flags = Flags {
        build_dir: false,
        pull: false,
        force: false,
        format: false,
        fields: false,
        global: false,
        takes_app: true,
        max_positionals: 0,
    };
}

/// What differs between the commands that deploy an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deploys {
    /// The build record's source (`builds-record-start`): the core command it stands for.
    pub build_source: &'static str,
    /// The image comes from an archive on stdin: no registry can give it back, and the commit
    /// subject says so.
    pub from_archive: bool,
}

/// The function that runs a command, given its entry and its argv (without the program);
/// its status is the process's.
pub type Handler = fn(&Command, Vec<OsString>) -> anyhow::Result<Status>;

/// One entry of the command table.
pub struct Command {
    /// As typed (`image:from`, `git:from-image`) or as fired (`post-delete`).
    pub name: &'static str,
    /// What follows the name in its usage line.
    pub synopsis: &'static str,
    pub description: &'static str,
    pub kind: Kind,
    pub flags: Flags,
    /// What the command deploys from, when it deploys.
    pub deploys: Option<Deploys>,
    pub run: Handler,
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command").field("name", &self.name).finish()
    }
}

impl Command {
    /// What the command deploys from; only deploying commands ask.
    pub fn deploys(&self) -> Deploys {
        self.deploys
            .unwrap_or_else(|| panic!("{} is not a deploying command", self.name))
    }

    /// `dokku NAME SYNOPSIS`.
    pub fn usage(&self) -> String {
        if self.synopsis.is_empty() {
            format!("dokku {}", self.name)
        } else {
            format!("dokku {} {}", self.name, self.synopsis)
        }
    }

    /// A usage error, one line: what is wrong, then how the command is called.
    pub fn usage_error(&self, message: impl fmt::Display) -> anyhow::Error {
        anyhow::anyhow!("{message}; usage: {}", self.usage())
    }

    /// The line `dokku help` shows: four spaces, name and synopsis, one comma, description.
    pub fn help_line(&self) -> String {
        let call = self.usage();
        format!("    {}, {}", &call["dokku ".len()..], self.description)
    }
}
