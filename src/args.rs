//! Argument parsing shared by the subcommands: flags anywhere, `--flag VALUE` and
//! `--flag=VALUE`, Dokku's global flags that may arrive after the command, and the app taken
//! from `DOKKU_APP_NAME` (`dokku --app APP image:from IMAGE`).

use std::ffi::OsString;
use std::path::PathBuf;

use crate::command::Command;

/// A subcommand's parsed arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub app: Option<String>,
    pub positionals: Vec<String>,
    pub build_dir: Option<PathBuf>,
    pub pull: bool,
    pub force: bool,
    pub format: Option<String>,
    /// Report field flags (`--image-…`), in order.
    pub fields: Vec<String>,
    /// `--global` stood in place of the app.
    pub global: bool,
}

/// Parses the arguments of a command that needs an app (from the argv, `--app` or
/// `DOKKU_APP_NAME`), and returns the app apart.
pub fn parse_for_app(argv: Vec<OsString>, command: &Command) -> anyhow::Result<(String, Parsed)> {
    let mut parsed = parse(argv, command, std::env::var("DOKKU_APP_NAME").ok())?;
    let app = parsed
        .app
        .take()
        .filter(|app| !app.is_empty())
        .ok_or_else(|| command.usage_error("APP is required"))?;
    Ok((app, parsed))
}

/// Parses `argv` (without the program name; a leading command name is dropped).
pub fn parse(
    argv: Vec<OsString>,
    command: &Command,
    env_app: Option<String>,
) -> anyhow::Result<Parsed> {
    let mut argv = argv;
    if argv.first().is_some_and(|a| a == command.name) {
        argv.remove(0);
    }
    let flags = &command.flags;
    let mut args = pico_args::Arguments::from_vec(argv);
    let usage = |message: String| command.usage_error(message);
    let mut parsed = Parsed::default();

    // Dokku sets the environment for these wherever they stand; here they only need removing.
    args.contains("--quiet");
    args.contains("--trace");
    let argv_app = flag_value(&mut args, "--app", "an app name").map_err(usage)?;

    if flags.build_dir {
        parsed.build_dir = flag_value(&mut args, "--build-dir", "a folder")
            .map_err(usage)?
            .map(PathBuf::from);
    }
    if flags.pull {
        parsed.pull = args.contains("--pull");
    }
    if flags.force {
        parsed.force = args.contains("--force");
    }
    if flags.global {
        parsed.global = args.contains("--global");
    }
    if flags.format {
        parsed.format = flag_value(&mut args, "--format", "a format").map_err(usage)?;
    }

    let rest: Vec<String> = args
        .finish()
        .into_iter()
        .map(|a| {
            a.into_string()
                .map_err(|a| usage(format!("argument {a:?} is not valid UTF-8")))
        })
        .collect::<Result<_, _>>()?;
    let mut positionals = Vec::new();
    let mut after_double_dash = false;
    for arg in rest {
        if !after_double_dash && arg == "--" {
            after_double_dash = true;
        } else if !after_double_dash && flags.fields && arg.starts_with("--") {
            parsed.fields.push(arg);
        } else if !after_double_dash && arg.starts_with('-') && arg.len() > 1 {
            return Err(usage(format!("unknown flag {arg:?}")));
        } else {
            positionals.push(arg);
        }
    }

    if parsed.global && argv_app.is_some() {
        return Err(usage("give --global or --app, not both".to_string()));
    }
    parsed.app = argv_app.or(env_app.filter(|a| !a.is_empty()));
    if parsed.global {
        parsed.app = None;
    }
    if flags.takes_app && !parsed.global && parsed.app.is_none() && !positionals.is_empty() {
        parsed.app = Some(positionals.remove(0));
    }
    if positionals.len() > flags.max_positionals {
        return Err(usage(format!(
            "unexpected argument {:?}",
            positionals[flags.max_positionals]
        )));
    }
    parsed.positionals = positionals;
    Ok(parsed)
}

/// The value of `--flag VALUE` or `--flag=VALUE`. An empty value, or one that starts with `-`,
/// is refused: `--build-dir --force` means a forgotten folder, not one named `--force`
/// (`--build-dir=./--force` still names it).
fn flag_value(
    args: &mut pico_args::Arguments,
    flag: &'static str,
    what: &str,
) -> Result<Option<String>, String> {
    let value: Option<String> = args.opt_value_from_str(flag).map_err(|e| match e {
        pico_args::Error::OptionWithoutAValue(_) => format!("{flag} needs {what}"),
        e => format!("{flag}: {e}"),
    })?;
    match value {
        Some(v) if v.is_empty() => Err(format!("{flag} needs {what}")),
        Some(v) if v.starts_with('-') => Err(format!("{flag} needs {what}, not {v:?}")),
        value => Ok(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::command::{Flags, Kind};

    const DEPLOY: Command = Command {
        name: "image:from",
        synopsis: "[--build-dir DIR] [--pull] [--force] APP IMAGE [USER_NAME [USER_EMAIL]]",
        description: "Deploy",
        kind: Kind::Subcommand,
        flags: Flags {
            build_dir: true,
            pull: true,
            force: true,
            max_positionals: 3,
            ..Flags::APP
        },
        run: |_, _| Ok(()),
    };

    fn run(args: &[&str], env_app: Option<&str>) -> anyhow::Result<Parsed> {
        parse(
            args.iter().map(OsString::from).collect(),
            &DEPLOY,
            env_app.map(str::to_string),
        )
    }

    #[test]
    fn flags_anywhere_in_both_spellings() {
        let p = run(
            &[
                "image:from",
                "app",
                "--pull",
                "img",
                "--build-dir=dir",
                "--force",
            ],
            None,
        )
        .unwrap();
        assert_eq!(p.app.as_deref(), Some("app"));
        assert_eq!(p.positionals, ["img"]);
        assert_eq!(p.build_dir, Some(PathBuf::from("dir")));
        assert!(p.pull && p.force);
        let p = run(&["--build-dir", "d", "app", "img", "Jane", "j@x"], None).unwrap();
        assert_eq!(p.build_dir, Some(PathBuf::from("d")));
        assert_eq!(p.positionals, ["img", "Jane", "j@x"]);
    }

    #[test]
    fn app_from_environment_or_global_flag() {
        let p = run(&["image:from", "img"], Some("app")).unwrap();
        assert_eq!(p.app.as_deref(), Some("app"));
        assert_eq!(p.positionals, ["img"]);
        let p = run(
            &["image:from", "--app", "other", "img", "--quiet", "--trace"],
            None,
        )
        .unwrap();
        assert_eq!(p.app.as_deref(), Some("other"));
        assert_eq!(p.positionals, ["img"]);
    }

    #[test]
    fn empty_author_values_are_positionals() {
        let p = run(&["app", "img", "", ""], None).unwrap();
        assert_eq!(p.positionals, ["img", "", ""]);
    }

    #[test]
    fn usage_errors() {
        for bad in [
            &["app", "img", "--nope"][..],
            &["app", "img", "a", "b", "c"],
            &["app", "-x"],
            &["app", "img", "--build-dir"],
            &["app", "img", "--build-dir="],
            &["app", "img", "--pull=yes"],
            &["app", "img", "--app="],
        ] {
            let err = run(bad, None).unwrap_err().to_string();
            assert!(err.contains("usage: dokku image:from"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn a_flag_is_never_taken_as_the_value_of_the_one_before() {
        for (bad, message) in [
            (
                &["app", "img", "--build-dir", "--force"][..],
                "--build-dir needs a folder, not \"--force\"",
            ),
            (
                &["--app", "--pull", "img"],
                "--app needs an app name, not \"--pull\"",
            ),
            (
                &["app", "img", "--build-dir="],
                "--build-dir needs a folder",
            ),
        ] {
            let err = run(bad, None).unwrap_err().to_string();
            assert!(err.starts_with(message), "{bad:?}: {err}");
        }
        let p = run(&["app", "img", "--build-dir=./--force"], None).unwrap();
        assert_eq!(p.build_dir, Some(PathBuf::from("./--force")));
        assert!(!p.force);
    }

    #[test]
    fn double_dash_ends_flags() {
        let p = run(&["app", "--", "-weird"], None).unwrap();
        assert_eq!(p.positionals, ["-weird"]);
    }
}
