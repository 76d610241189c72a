//! Argument parsing shared by the subcommands: flags anywhere, `--flag VALUE` and
//! `--flag=VALUE`, Dokku's global flags that may arrive after the command, and the app taken
//! from `DOKKU_APP_NAME` (`dokku --app APP image:from IMAGE`), which Dokku also puts first in
//! the argv of a core plugin's command (the `git:*-image` fallbacks).

use std::ffi::OsString;
use std::path::PathBuf;

use crate::command::{Command, Kind};

/// A subcommand's parsed arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub app: Option<String>,
    /// The app came from `--app` or `DOKKU_APP_NAME`, not from the first word after the
    /// command: the access check Dokku made before running the command did not see it.
    pub app_apart: bool,
    /// The words after the command as typed, but `--app X` and an app Dokku put first: after
    /// the command and the app, the rest of the command line the plugin acts on.
    pub words: Vec<String>,
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
    let env_app = env_app.filter(|a| !a.is_empty());
    // Dokku inserts DOKKU_APP_NAME as the first argument of a core plugin's command.
    let inserted = match command.kind {
        Kind::Fallback { .. } if env_app.is_some() && !argv.is_empty() => Some(argv.remove(0)),
        _ => None,
    };
    let words = without_app_flag(&argv);
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
    let inserted = inserted
        .map(|app| {
            app.into_string()
                .map_err(|app| usage(format!("app {app:?} is not valid UTF-8")))
        })
        .transpose()?;
    parsed.app = inserted.or(argv_app).or(env_app).filter(|_| !parsed.global);
    parsed.app_apart = parsed.app.is_some();
    parsed.words = words;
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

/// The arguments but `--app X` and `--app=X` (before a `--`), as text.
fn without_app_flag(argv: &[OsString]) -> Vec<String> {
    let mut words = Vec::new();
    let mut arguments = argv.iter();
    let mut flags_end = false;
    while let Some(argument) = arguments.next() {
        let text = argument.to_string_lossy();
        if !flags_end && text == "--app" {
            arguments.next();
        } else if flags_end || !text.starts_with("--app=") {
            flags_end |= text == "--";
            words.push(text.into_owned());
        }
    }
    words
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

    use crate::command::Flags;

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
        deploys: None,
        run: |_, _| Ok(crate::output::Status::SUCCESS),
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
    fn an_app_from_the_flag_or_the_environment_is_apart_from_the_words() {
        let p = run(&["image:from", "mine", "--app", "victim"], None).unwrap();
        assert_eq!(p.app.as_deref(), Some("victim"));
        assert!(p.app_apart);
        assert_eq!(p.positionals, ["mine"]);
        assert_eq!(p.words, ["mine"]);
        let p = run(&["image:from", "--app=victim", "--pull", "mine"], None).unwrap();
        assert!(p.app_apart);
        assert_eq!(p.words, ["--pull", "mine"]);
        let p = run(&["image:from", "mine"], Some("victim")).unwrap();
        assert_eq!((p.app.as_deref(), p.app_apart), (Some("victim"), true));
        let p = run(&["image:from", "mine", "img", "--build-dir", "d"], None).unwrap();
        assert_eq!((p.app.as_deref(), p.app_apart), (Some("mine"), false));
        assert_eq!(p.words, ["mine", "img", "--build-dir", "d"]);
    }

    #[test]
    fn a_fallback_takes_the_app_dokku_puts_first() {
        let fallback = Command {
            name: "git:from-image",
            kind: Kind::Fallback { core: "from-image" },
            ..DEPLOY
        };
        let parse_fallback = |args: &[&str], env: Option<&str>| {
            parse(
                args.iter().map(OsString::from).collect(),
                &fallback,
                env.map(str::to_string),
            )
        };
        // `dokku git:from-image mine --app victim` on a Dokku whose git plugin lacks it
        let p = parse_fallback(
            &["git:from-image", "victim", "mine", "--app", "victim"],
            Some("victim"),
        )
        .unwrap();
        assert_eq!(p.app.as_deref(), Some("victim"));
        assert!(p.app_apart);
        assert_eq!(p.positionals, ["mine"]);
        assert_eq!(p.words, ["mine"]);
        let p = parse_fallback(&["git:from-image", "mine", "img"], None).unwrap();
        assert_eq!((p.app.as_deref(), p.app_apart), (Some("mine"), false));
        assert_eq!(p.positionals, ["img"]);
    }

    #[test]
    fn double_dash_ends_flags() {
        let p = run(&["app", "--", "-weird"], None).unwrap();
        assert_eq!(p.positionals, ["-weird"]);
    }
}
