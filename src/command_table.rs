//! The plugin's table of commands: every subcommand, fallback and trigger, described once.
//! It feeds dispatch ([`main`]: the one program serves the entry its name names, or is the
//! client), `dokku help`, `image:help` and the usage line of every error.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use crate::command::{Command, Deploys, Flags, Kind};
use crate::host::Host;
use crate::output::{self, Status};
use crate::{access, cancel, client, lifecycle, protocol, state, subcommands};

const FROM: Flags = Flags {
    build_dir: true,
    pull: true,
    force: true,
    max_positionals: 3,
    ..Flags::APP
};
const LOAD: Flags = Flags {
    pull: false,
    ..FROM
};
const FROM_SYNOPSIS: &str =
    "[--build-dir DIR] [--pull] [--force] APP IMAGE [USER_NAME [USER_EMAIL]]";
const LOAD_SYNOPSIS: &str = "[--build-dir DIR] [--force] APP IMAGE [USER_NAME [USER_EMAIL]]";
const FROM_DESCRIPTION: &str =
    "Deploy an app from a Docker image reference (pulled only when not on the host)";
const LOAD_DESCRIPTION: &str =
    "Deploy an app from an image archive on stdin (docker image save; plain/gzip/bzip2/xz/zstd)";
/// `image:from`, `git:from-image` and `image:rollback`: the image is on the host or in a
/// registry.
const FROM_IMAGE: Deploys = Deploys {
    build_source: "git:from-image",
    from_archive: false,
};
/// `image:load`, `git:load-image`: the image comes from an archive on stdin.
const LOAD_IMAGE: Deploys = Deploys {
    build_source: "git:load-image",
    from_archive: true,
};
/// Triggers take their arguments as Dokku fires them; no flags.
const TRIGGER: Flags = Flags {
    takes_app: false,
    ..Flags::APP
};

const DESCRIPTION: &str =
    "Deploy apps from Docker images, by reference or from an archive streamed on stdin";

/// Every command, in the order help lists them.
pub const COMMANDS: &[Command] = &[
    Command {
        name: "image:from",
        synopsis: FROM_SYNOPSIS,
        description: FROM_DESCRIPTION,
        kind: Kind::Subcommand,
        flags: FROM,
        deploys: Some(FROM_IMAGE),
        run: subcommands::from::run,
    },
    Command {
        name: protocol::LOAD,
        synopsis: LOAD_SYNOPSIS,
        description: LOAD_DESCRIPTION,
        kind: Kind::Subcommand,
        flags: LOAD,
        deploys: Some(LOAD_IMAGE),
        run: subcommands::load::run,
    },
    Command {
        name: "image:history",
        synopsis: "APP [--format json]",
        description: "List the app's deploys newest first: commit/date/author/image/image ID/live",
        kind: Kind::Subcommand,
        flags: Flags {
            format: true,
            ..Flags::APP
        },
        deploys: None,
        run: subcommands::history::run,
    },
    Command {
        name: "image:rollback",
        synopsis: "APP [COMMIT] [USER_NAME [USER_EMAIL]]",
        description:
            "Redeploy the image of an earlier image deploy (default: the one before the live one)",
        kind: Kind::Subcommand,
        flags: Flags {
            max_positionals: 3,
            ..Flags::APP
        },
        deploys: Some(FROM_IMAGE),
        run: |command, argv| subcommands::rollback::run(command, argv, recorded_deploys),
    },
    Command {
        name: "image:report",
        synopsis: "[APP|--global] [--format stdout|json] [--image-KEY]",
        description:
            "Display the image report of one app (all apps without APP) or of the global settings",
        kind: Kind::Subcommand,
        flags: Flags {
            fields: true,
            format: true,
            global: true,
            ..Flags::APP
        },
        deploys: None,
        run: subcommands::report::run,
    },
    Command {
        name: "image:set",
        synopsis: "[--global|APP] keep-images [N]",
        description: "Set how many earlier image deploys keep their source image (no N: unset)",
        kind: Kind::Subcommand,
        flags: Flags {
            global: true,
            max_positionals: 2,
            ..Flags::APP
        },
        deploys: None,
        run: subcommands::set::run,
    },
    Command {
        name: protocol::LAYERS,
        synopsis: "APP",
        description: "Print the layers the host holds as JSON (what a slim archive may leave out)",
        kind: Kind::Subcommand,
        flags: Flags::APP,
        deploys: None,
        run: subcommands::layers::run,
    },
    Command {
        name: "image:client",
        synopsis: "",
        description: "Write the dokku-image client binary to stdout (redirect it to a file)",
        kind: Kind::Subcommand,
        flags: TRIGGER,
        deploys: None,
        run: subcommands::client::run,
    },
    Command {
        name: "image:help",
        synopsis: "",
        description: "Show this help",
        kind: Kind::Subcommand,
        flags: TRIGGER,
        deploys: None,
        run: |_, _| {
            print!("{}", usage_page());
            Ok(Status::SUCCESS)
        },
    },
    Command {
        name: "git:from-image",
        synopsis: FROM_SYNOPSIS,
        description: FROM_DESCRIPTION,
        kind: Kind::Fallback { core: "from-image" },
        flags: FROM,
        deploys: Some(FROM_IMAGE),
        run: subcommands::from::run,
    },
    Command {
        name: "git:load-image",
        synopsis: LOAD_SYNOPSIS,
        description: LOAD_DESCRIPTION,
        kind: Kind::Fallback { core: "load-image" },
        flags: LOAD,
        deploys: Some(LOAD_IMAGE),
        run: subcommands::load::run,
    },
    Command {
        name: "commands",
        synopsis: "COMMAND [ARGS…]",
        description: "Dokku's entry for help and commands no subcommand file answers",
        kind: Kind::Entry,
        flags: TRIGGER,
        deploys: None,
        run: commands_entry,
    },
    Command {
        name: "report",
        synopsis: "APP",
        description: "The image block of `dokku report APP`",
        kind: Kind::Trigger,
        flags: TRIGGER,
        deploys: None,
        run: subcommands::report::trigger,
    },
    Command {
        name: "post-delete",
        synopsis: "APP [IMAGE_TAG]",
        description: "Remove the plugin's state of a deleted app",
        kind: Kind::Trigger,
        flags: TRIGGER,
        deploys: None,
        run: lifecycle::post_delete,
    },
    Command {
        name: "post-app-rename-setup",
        synopsis: "OLD NEW",
        description: "Drop the pending deploy Dokku copied into the renamed app",
        kind: Kind::Trigger,
        flags: TRIGGER,
        deploys: None,
        run: lifecycle::copy_setup,
    },
    Command {
        name: "post-app-clone-setup",
        synopsis: "OLD NEW",
        description: "Drop the pending deploy Dokku copied into the cloned app",
        kind: Kind::Trigger,
        flags: TRIGGER,
        deploys: None,
        run: lifecycle::copy_setup,
    },
    Command {
        name: "uninstall",
        synopsis: "PLUGIN",
        description: "Remove the plugin's state when the plugin is uninstalled",
        kind: Kind::Trigger,
        flags: TRIGGER,
        deploys: None,
        run: lifecycle::uninstall,
    },
];

/// The entry named NAME.
pub fn find(name: &str) -> Option<&'static Command> {
    COMMANDS.iter().find(|command| command.name == name)
}

/// What a deploy recorded under the command NAME deployed from (a rollback asks of an earlier
/// deploy); None for a name that never deployed.
fn recorded_deploys(name: &str) -> Option<Deploys> {
    find(name).and_then(|command| command.deploys)
}

/// The program's `main`, whatever name it runs under, as Dokku's Go plugins do: run as a file
/// of the plugin (`subcommands/NAME`, a trigger, `commands`: links to `bin/dokku-image`, or
/// `exec -a`), it runs that entry with the process's arguments and gives Dokku's status;
/// under any other name it is the client.
pub fn main() -> ExitCode {
    let program = std::env::args_os().next().unwrap_or_default();
    let Some(command) = entry_for(Path::new(&program)) else {
        return client::main();
    };
    let argv: Vec<OsString> = std::env::args_os().skip(1).collect();
    let result = run(command, argv);
    cancel::settle();
    output::finish(result)
}

/// The entry a program path names: `subcommands/NAME` is `image:NAME` (`default`, Dokku's
/// `dokku image`, is `image:help`), and a file at the plugin's root a trigger or `commands`.
/// None for any other name.
pub fn entry_for(program: &Path) -> Option<&'static Command> {
    let name = program.file_name()?.to_str()?;
    let folder = program
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let in_subcommands = match folder.file_name() {
        Some(folder) => folder == "subcommands",
        // `.` or `..`: the folder it stands for.
        None => folder
            .canonicalize()
            .ok()
            .is_some_and(|folder| folder.ends_with("subcommands")),
    };
    let subcommand = match name {
        "default" => "help",
        name => name,
    };
    let wanted = |command: &&Command| match command.kind {
        Kind::Subcommand => {
            in_subcommands && command.name.strip_prefix("image:") == Some(subcommand)
        }
        Kind::Trigger | Kind::Entry => !in_subcommands && command.name == name,
        Kind::Fallback { .. } => false,
    };
    COMMANDS.iter().find(wanted)
}

/// Runs a command, once the access check has seen the app it acts on.
fn run(command: &Command, argv: Vec<OsString>) -> anyhow::Result<Status> {
    access::check(command, &argv)?;
    (command.run)(command, argv)
}

/// The `commands` entry: `dokku help` lines, `image:help`, and core's
/// `git:from-image`/`git:load-image` where core lacks them; exit 10 for anything not ours.
fn commands_entry(_: &Command, argv: Vec<OsString>) -> anyhow::Result<Status> {
    let name = argv.first().and_then(|a| a.to_str()).unwrap_or_default();
    if name == "help" {
        print!("{}", help_lines());
        return Ok(Status::SUCCESS);
    }
    let ours = find(name).filter(|command| match command.kind {
        Kind::Subcommand => true,
        Kind::Fallback { core } => !core_has(core),
        Kind::Trigger | Kind::Entry => false,
    });
    match ours {
        Some(command) => run(command, argv),
        None => Ok(Status::NOT_IMPLEMENTED),
    }
}

/// Whether the core git plugin answers `git:NAME` itself (then the command is not ours).
fn core_has(subcommand: &str) -> bool {
    state::plugin_has(
        &Host::from_env(),
        Path::new("git/subcommands").join(subcommand),
    )
}

fn listed() -> impl Iterator<Item = &'static Command> {
    COMMANDS
        .iter()
        .filter(|command| command.kind == Kind::Subcommand)
}

/// The lines of `dokku help`: four spaces, command, comma, description.
pub fn help_lines() -> String {
    listed().map(|c| format!("{}\n", c.help_line())).collect()
}

/// `image:help` and `dokku image`: Dokku's usage page, with the descriptions in one column.
pub fn usage_page() -> String {
    let calls: Vec<(String, &str)> = listed()
        .map(|c| (c.usage()["dokku ".len()..].to_string(), c.description))
        .collect();
    let width = calls.iter().map(|(call, _)| call.len()).max().unwrap_or(0);
    let mut page =
        format!("Usage: dokku image[:COMMAND]\n\n{DESCRIPTION}\n\nAdditional commands:\n");
    for (call, description) in calls {
        page.push_str(&format!("    {call:<width$}  {description}\n"));
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lines_follow_dokku_format() {
        let text = help_lines();
        assert_eq!(text.lines().count(), 9);
        for line in text.lines() {
            assert!(line.starts_with("    image:"), "{line}");
            // `dokku help` splits each line into columns on its commas: exactly one.
            assert_eq!(line.matches(',').count(), 1, "{line}");
        }
        assert!(text.contains(
            "    image:from [--build-dir DIR] [--pull] [--force] APP IMAGE [USER_NAME [USER_EMAIL]], Deploy"
        ));
    }

    #[test]
    fn usage_page_lists_every_subcommand() {
        let page = usage_page();
        assert!(page.starts_with("Usage: dokku image[:COMMAND]\n\n"));
        assert!(page.contains("\nAdditional commands:\n"));
        assert_eq!(
            page.lines().filter(|l| l.starts_with("    image:")).count(),
            listed().count()
        );
    }

    /// Each subcommand and trigger is a link to the one program, which serves the entry the
    /// link's path names: a missing link would leave the command to the `commands` fallback,
    /// or unanswered.
    #[test]
    fn every_subcommand_and_trigger_has_its_link_to_the_one_program() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for command in COMMANDS {
            let link = match command.kind {
                Kind::Subcommand => {
                    format!("subcommands/{}", command.name.trim_start_matches("image:"))
                }
                Kind::Trigger => command.name.to_string(),
                Kind::Fallback { .. } | Kind::Entry => continue,
            };
            let target = std::fs::read_link(root.join(&link)).unwrap_or_default();
            assert!(
                target.ends_with("bin/dokku-image"),
                "{link} should link to bin/dokku-image, not {}",
                target.display()
            );
            let served = entry_for(&root.join(&link)).map(|c| c.name);
            assert_eq!(served, Some(command.name), "{link}");
        }
        let served = |path: &str| entry_for(Path::new(path)).map(|c| c.name);
        assert_eq!(served("/p/image/subcommands/default"), Some("image:help"));
        assert_eq!(served("/p/image/subcommands/report"), Some("image:report"));
        assert_eq!(served("/p/image/report"), Some("report"));
        assert_eq!(served("/p/image/commands"), Some("commands"));
        // a subcommand's name at the root, a trigger's in subcommands/, the client's
        assert_eq!(served("/p/image/from"), None);
        assert_eq!(served("/p/image/subcommands/post-delete"), None);
        assert_eq!(served("/p/image/subcommands/commands"), None);
        assert_eq!(served("/usr/local/bin/dokku-image"), None);
        assert_eq!(served("docker-dokku"), None);
    }

    /// The build record's source follows core's commands; only loads come from an archive.
    #[test]
    fn deploying_commands_say_what_they_deploy_from() {
        let deploys = |name| find(name).unwrap().deploys;
        for name in ["image:from", "image:rollback", "git:from-image"] {
            assert_eq!(
                deploys(name).unwrap().build_source,
                "git:from-image",
                "{name}"
            );
            assert_eq!(recorded_deploys(name).map(|d| d.from_archive), Some(false));
        }
        for name in ["image:load", "git:load-image"] {
            assert_eq!(
                deploys(name).unwrap().build_source,
                "git:load-image",
                "{name}"
            );
            assert_eq!(recorded_deploys(name).map(|d| d.from_archive), Some(true));
        }
        assert_eq!(deploys("image:history"), None);
        assert_eq!(recorded_deploys("git:push"), None);
    }

    #[test]
    fn names_are_unique_and_usage_errors_name_the_command() {
        for (index, command) in COMMANDS.iter().enumerate() {
            assert_eq!(find(command.name).map(|c| c.name), Some(command.name));
            assert!(COMMANDS[..index].iter().all(|c| c.name != command.name));
        }
        let err = find("git:load-image")
            .unwrap()
            .usage_error("IMAGE is required");
        assert_eq!(
            err.to_string(),
            "IMAGE is required; usage: dokku git:load-image [--build-dir DIR] [--force] APP IMAGE [USER_NAME [USER_EMAIL]]"
        );
    }
}
