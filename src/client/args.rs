//! `dokku-image`'s command line: `push [--ssh COMMAND] [--ssh-option OPT]… [--whole-layers]
//! IMAGE DEST APP [USER_NAME [USER_EMAIL]]` and `help`. Usage errors are one line and exit 1.

use std::ffi::OsString;

use crate::output::Exit;

pub const USAGE: &str = "usage: dokku-image push [--ssh COMMAND] [--ssh-option OPT]... [--whole-layers] IMAGE DEST APP [USER_NAME [USER_EMAIL]]";

const HELP: &str = "\
dokku-image push [--ssh COMMAND] [--ssh-option OPT]... [--whole-layers] IMAGE DEST APP [USER_NAME [USER_EMAIL]]
    Deploys the local image IMAGE to APP on the Dokku host DEST (dokku@host[:port]) with
    image:load, sending only the layers the host does not hold, compressed with zstd; a
    changed layer goes as a recipe of what the host keeps of APP's earlier layers and the
    bytes it lacks, when the host takes recipes.
    --ssh COMMAND     the remote shell (default: $DOKKU_IMAGE_SSH, else ssh), split like a shell
    --ssh-option OPT  passed to it as -o OPT (repeatable)
    --whole-layers    send every changed layer whole, not as a recipe
dokku-image install-docker-plugin
    Installs this program as the docker CLI plugin docker-dokku ($DOCKER_CONFIG/cli-plugins,
    else ~/.docker/cli-plugins): `docker dokku push IMAGE DEST APP` is then the same push,
    with the docker CLI's context (--context, DOCKER_HOST, docker context use) for its
    docker calls.
dokku-image --version
    The version, and the platform this program was built for.
dokku-image help
    This text.";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Help,
    Version,
    InstallDockerPlugin,
    Push(Push),
}

/// The arguments of `push`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// The remote shell's words; empty when `--ssh` was not given.
    pub ssh: Vec<String>,
    pub ssh_options: Vec<String>,
    pub image: String,
    pub dest: Dest,
    pub app: String,
    /// USER_NAME and USER_EMAIL, passed on to `image:load`.
    pub user: Vec<String>,
    /// `--whole-layers`: no layer recipes.
    pub whole_layers: bool,
}

/// `[login@]host[:port]`; an IPv6 host in brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dest {
    /// `login@host` as ssh takes it.
    pub target: String,
    pub port: Option<u16>,
}

impl Dest {
    pub fn parse(text: &str) -> Result<Dest, String> {
        let bad = |why: &str| format!("DEST {text:?} {why}; expected dokku@host[:port]");
        let (login, rest) = match text.rsplit_once('@') {
            // ssh would take a DEST starting with `-` for an option (`-oProxyCommand=…`).
            Some((login, _)) if login.starts_with('-') => {
                return Err(bad("has a login starting with -"))
            }
            Some((login, rest)) if !login.is_empty() => (Some(login), rest),
            Some(_) => return Err(bad("has an empty login")),
            None => (None, text),
        };
        let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| bad("lacks the closing ]"))?;
            match after {
                "" => (host, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => return Err(bad("has text after ]")),
                },
            }
        } else {
            match rest.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        if host.is_empty() || host.starts_with('-') || host.contains(char::is_whitespace) {
            return Err(bad("has no valid host"));
        }
        let port = match port {
            None => None,
            Some(port) => Some(
                port.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| bad("has no valid port"))?,
            ),
        };
        let target = match login {
            Some(login) => format!("{login}@{host}"),
            None => host.to_string(),
        };
        Ok(Dest { target, port })
    }
}

/// As the user wrote it (without brackets), for messages.
impl std::fmt::Display for Dest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.target),
            None => f.write_str(&self.target),
        }
    }
}

/// Parses the arguments after the program name.
pub fn parse(argv: Vec<OsString>) -> anyhow::Result<Request> {
    let mut args = pico_args::Arguments::from_vec(argv);
    if args.contains(["-h", "--help"]) {
        return Ok(Request::Help);
    }
    if args.contains("--version") {
        expect_nothing_more(args)?;
        return Ok(Request::Version);
    }
    let command: Option<String> = args
        .opt_free_from_str()
        .map_err(|err| usage(err.to_string()))?;
    match command.as_deref() {
        Some("help") => {
            expect_nothing_more(args)?;
            Ok(Request::Help)
        }
        Some("push") => parse_push(args).map(Request::Push),
        Some("install-docker-plugin") => {
            expect_nothing_more(args)?;
            Ok(Request::InstallDockerPlugin)
        }
        Some(other) => Err(usage(format!("unknown command {other:?}"))),
        None => Err(usage("a command is required".into())),
    }
}

fn parse_push(mut args: pico_args::Arguments) -> anyhow::Result<Push> {
    let ssh: Option<String> = args
        .opt_value_from_str("--ssh")
        .map_err(|err| usage(err.to_string()))?;
    let ssh = match ssh {
        None => Vec::new(),
        Some(text) => split_ssh(&text, "--ssh")?,
    };
    let ssh_options: Vec<String> = args
        .values_from_str("--ssh-option")
        .map_err(|err| usage(err.to_string()))?;
    let whole_layers = args.contains("--whole-layers");
    let mut rest = strings(args.finish())?;
    if let Some(flag) = rest.iter().find(|a| a.starts_with('-')) {
        return Err(usage(format!("unknown flag {flag}")));
    }
    if rest.len() < 3 {
        let missing = ["IMAGE", "DEST", "APP"][rest.len()..].join(" and ");
        return Err(usage(format!("{missing} required")));
    }
    if rest.len() > 5 {
        return Err(usage(format!("unexpected argument {:?}", rest[5])));
    }
    let user = rest.split_off(3);
    let [image, dest, app]: [String; 3] = rest.try_into().expect("three arguments");
    if image.is_empty() || app.is_empty() {
        return Err(usage("IMAGE and APP must not be empty".into()));
    }
    let dest = Dest::parse(&dest).map_err(usage)?;
    Ok(Push {
        ssh,
        ssh_options,
        image,
        dest,
        app,
        user,
        whole_layers,
    })
}

/// A remote shell command (`--ssh` or `DOKKU_IMAGE_SSH`) split into words, as a shell would.
pub fn split_ssh(text: &str, source: &str) -> anyhow::Result<Vec<String>> {
    let words = shell_words::split(text)
        .map_err(|err| usage(format!("{source} {text:?} cannot be split: {err}")))?;
    if words.is_empty() {
        return Err(usage(format!("{source} names no command")));
    }
    Ok(words)
}

fn expect_nothing_more(args: pico_args::Arguments) -> anyhow::Result<()> {
    match strings(args.finish())?.first() {
        Some(extra) => Err(usage(format!("unexpected argument {extra:?}"))),
        None => Ok(()),
    }
}

fn strings(args: Vec<OsString>) -> anyhow::Result<Vec<String>> {
    args.into_iter()
        .map(|a| {
            a.into_string()
                .map_err(|a| usage(format!("argument {a:?} is not valid UTF-8")))
        })
        .collect()
}

/// One line: what is wrong, then the usage.
fn usage(message: String) -> anyhow::Error {
    Exit {
        code: 1,
        message: format!("{message}; {USAGE}"),
    }
    .into()
}

pub fn help() -> &'static str {
    HELP
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    fn push(words: &[&str]) -> Push {
        match parse(argv(words)).unwrap() {
            Request::Push(push) => push,
            other => panic!("{other:?}"),
        }
    }

    fn error(words: &[&str]) -> String {
        let err = parse(argv(words)).unwrap_err();
        assert_eq!(crate::output::exit_code(&err), 1);
        let text = err.to_string();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.ends_with(USAGE), "{text}");
        text
    }

    #[test]
    fn push_with_flags_anywhere() {
        let parsed = push(&[
            "push",
            "--ssh",
            "ssh -i 'my key'",
            "img:1",
            "dokku@host:2222",
            "--ssh-option",
            "BatchMode=yes",
            "app",
            "Jane Doe",
            "--ssh-option=Compression=no",
            "jane@example.com",
        ]);
        assert_eq!(parsed.ssh, ["ssh", "-i", "my key"]);
        assert_eq!(parsed.ssh_options, ["BatchMode=yes", "Compression=no"]);
        assert_eq!(parsed.image, "img:1");
        assert_eq!(
            parsed.dest,
            Dest {
                target: "dokku@host".into(),
                port: Some(2222)
            }
        );
        assert_eq!(parsed.app, "app");
        assert_eq!(parsed.user, ["Jane Doe", "jane@example.com"]);

        let plain = push(&["push", "img", "dokku@host", "app"]);
        assert!(plain.ssh.is_empty() && plain.ssh_options.is_empty() && plain.user.is_empty());
        assert_eq!(plain.dest.port, None);
        assert!(!plain.whole_layers);
        assert!(push(&["push", "img", "--whole-layers", "dokku@host", "app"]).whole_layers);
    }

    #[test]
    fn version_and_install_take_nothing_more() {
        assert_eq!(parse(argv(&["--version"])).unwrap(), Request::Version);
        assert_eq!(
            parse(argv(&["install-docker-plugin"])).unwrap(),
            Request::InstallDockerPlugin
        );
        assert!(error(&["--version", "push"]).starts_with("unexpected argument \"push\""));
        assert!(error(&["install-docker-plugin", "x"]).starts_with("unexpected argument"));
    }

    #[test]
    fn help_forms() {
        for words in [&["help"][..], &["--help"], &["-h"], &["push", "--help"]] {
            assert_eq!(parse(argv(words)).unwrap(), Request::Help, "{words:?}");
        }
    }

    #[test]
    fn usage_errors_are_one_line() {
        assert!(error(&[]).starts_with("a command is required"));
        assert!(error(&["pull"]).starts_with("unknown command \"pull\""));
        assert!(error(&["push"]).starts_with("IMAGE and DEST and APP required"));
        assert!(error(&["push", "img", "dokku@h"]).starts_with("APP required"));
        assert!(error(&["push", "--force", "img", "dokku@h", "app"])
            .starts_with("unknown flag --force"));
        assert!(error(&["push", "img", "dokku@h", "app", "a", "b", "c"])
            .starts_with("unexpected argument \"c\""));
        assert!(error(&["push", "img", "dokku@h", "app", "--ssh"]).contains("--ssh"));
        assert!(error(&["push", "--ssh", "", "img", "dokku@h", "app"])
            .starts_with("--ssh names no command"));
        assert!(error(&["push", "--ssh", "ssh 'x", "img", "dokku@h", "app"])
            .contains("cannot be split"));
        assert!(error(&["push", "img", "dokku@h:x", "app"]).contains("no valid port"));
        assert!(error(&["help", "extra"]).starts_with("unexpected argument"));
    }

    #[test]
    fn dest_forms() {
        let dest = |text| Dest::parse(text);
        assert_eq!(
            dest("dokku@example.com").unwrap(),
            Dest {
                target: "dokku@example.com".into(),
                port: None
            }
        );
        assert_eq!(dest("dokku@127.0.0.1:22").unwrap().port, Some(22));
        assert_eq!(
            dest("dokku@127.0.0.1:22").unwrap().to_string(),
            "dokku@127.0.0.1:22"
        );
        assert_eq!(dest("host").unwrap().target, "host");
        let v6 = dest("dokku@[::1]:2200").unwrap();
        assert_eq!((v6.target.as_str(), v6.port), ("dokku@::1", Some(2200)));
        assert_eq!(dest("dokku@[::1]").unwrap().port, None);
        for bad in [
            "",
            "dokku@",
            "@host",
            "dokku@host:",
            "dokku@host:0",
            "dokku@host:65536",
            "dokku@-oProxyCommand=x",
            "-oProxyCommand=touch@host",
            "-oProxyCommand=x",
            "-p@host:22",
            "dokku@[::1",
            "dokku@[::1]x",
            "dokku@ho st",
        ] {
            assert!(dest(bad).is_err(), "{bad}");
        }
    }
}
