//! The client as a docker CLI plugin: `docker dokku push IMAGE DEST APP` (docs/clients.md).
//! The docker CLI finds `docker-dokku` in `$DOCKER_CONFIG/cli-plugins` (`~/.docker/…`), asks
//! it `docker-cli-plugin-metadata` for one JSON object, and runs it with its own arguments:
//! the global options it was given, the plugin's name, then the rest
//! (`--context prod dokku push …`). It names itself in `DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND`,
//! and (docker CLI 25 and later) passes a socket in `DOCKER_CLI_PLUGIN_SOCKET` that it closes to
//! ask the plugin to stop, when it got a signal and its output is not a terminal.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Read};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{SocketAddr, UnixStream};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::docker::Docker;
use crate::version;

/// The command the plugin adds to the docker CLI.
const NAME: &str = "dokku";
/// Its file name in `cli-plugins`.
const BINARY: &str = "docker-dokku";
/// What the CLI asks every plugin before it lists or runs it.
pub const METADATA_COMMAND: &str = "docker-cli-plugin-metadata";
const ORIGINAL_CLI: &str = "DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND";
const SOCKET: &str = "DOCKER_CLI_PLUGIN_SOCKET";
/// The docker CLI's global options that take the next word as their value.
const OPTIONS_WITH_VALUE: [&str; 10] = [
    "--config",
    "-c",
    "--context",
    "-H",
    "--host",
    "-l",
    "--log-level",
    "--tlscacert",
    "--tlscert",
    "--tlskey",
];

/// The answer to `docker-cli-plugin-metadata`, in the CLI's schema 0.1.0.
pub fn metadata() -> String {
    serde_json::json!({
        "SchemaVersion": "0.1.0",
        "Vendor": "Dokku image plugin",
        "Version": version::VERSION,
        "ShortDescription": "Deploy an image to a Dokku app, sending only the layers the host lacks",
    })
    .to_string()
}

/// How the docker CLI ran this program as its plugin.
#[derive(Debug, PartialEq, Eq)]
pub struct Invocation {
    /// The CLI's global options, for the client's own docker calls.
    pub global_args: Vec<String>,
    /// The plugin's arguments, after its name (`push IMAGE DEST APP`).
    pub args: Vec<OsString>,
}

impl Invocation {
    /// When the docker CLI runs PROGRAM as `docker-dokku` with ARGV; None otherwise (the CLI
    /// sets its variable for a run, never for the metadata question).
    pub fn detect(program: &OsStr, argv: &[OsString]) -> Option<Invocation> {
        let is_plugin = Path::new(program).file_name() == Some(OsStr::new(BINARY));
        (is_plugin && std::env::var_os(ORIGINAL_CLI).is_some()).then(|| Invocation::split(argv))
    }

    /// `[GLOBAL OPTIONS] dokku ARGS…`; `help dokku` is `docker help dokku`.
    fn split(argv: &[OsString]) -> Invocation {
        let mut global_args = Vec::new();
        let mut words = argv.iter();
        while let Some(word) = words.next() {
            let text = word.to_string_lossy();
            if text == NAME {
                return Invocation {
                    global_args,
                    args: words.cloned().collect(),
                };
            }
            if text == "help" {
                return Invocation {
                    global_args,
                    args: vec![OsString::from("help")],
                };
            }
            global_args.push(text.to_string());
            if OPTIONS_WITH_VALUE.contains(&text.as_ref()) {
                if let Some(value) = words.next() {
                    global_args.push(value.to_string_lossy().to_string());
                }
            }
        }
        Invocation {
            global_args,
            args: Vec::new(),
        }
    }

    /// The docker client for the push: the CLI that ran this plugin, with its global options.
    pub fn docker(&self) -> Docker {
        let cli = std::env::var(ORIGINAL_CLI)
            .ok()
            .filter(|cli| !cli.is_empty())
            .unwrap_or_else(|| "docker".to_string());
        Docker::cli(cli, self.global_args.clone())
    }
}

/// Ends this process as SIGTERM would once the CLI closes its socket: what a signal to a
/// `dokku-image push` does, the CLI asks of its plugin this way.
pub fn stop_when_the_cli_asks() {
    let Some(address) = std::env::var_os(SOCKET) else {
        return;
    };
    let Ok(stream) = connect(&address) else {
        return;
    };
    std::thread::spawn(move || {
        wait_for_close(stream);
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::TERM);
    });
}

/// `@name` is an abstract socket (Linux), anything else a path.
fn connect(address: &OsStr) -> io::Result<UnixStream> {
    match address.as_bytes().strip_prefix(b"@") {
        Some(name) => UnixStream::connect_addr(&SocketAddr::from_abstract_name(name)?),
        None => UnixStream::connect(address),
    }
}

/// Returns once the CLI's end is closed; what it might send is ignored.
fn wait_for_close(mut stream: UnixStream) {
    let mut buffer = [0u8; 64];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return,
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// `dokku-image install-docker-plugin`: copies this program to `cli-plugins/docker-dokku` of
/// the docker CLI's config folder (`$DOCKER_CONFIG`, else `~/.docker`, from `$HOME`: a static
/// build cannot ask the system for a home folder). Returns where it went.
pub fn install() -> anyhow::Result<PathBuf> {
    let config = match std::env::var_os("DOCKER_CONFIG").filter(|dir| !dir.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => std::env::var_os("HOME")
            .filter(|home| !home.is_empty())
            .map(|home| PathBuf::from(home).join(".docker"))
            .context(
                "neither DOCKER_CONFIG nor HOME is set: no docker config folder to install into",
            )?,
    };
    let dir = config.join("cli-plugins");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let exe = std::env::current_exe().context("cannot find the running binary")?;
    let target = dir.join(BINARY);
    // Through a temp file and a rename: a docker CLI running the plugin meanwhile never sees
    // half a file, and copying the installed plugin onto itself works.
    let temporary = dir.join(format!(".{BINARY}.{}", std::process::id()));
    let installed = fs::copy(&exe, &temporary)
        .and_then(|_| fs::set_permissions(&temporary, fs::Permissions::from_mode(0o755)))
        .and_then(|()| fs::rename(&temporary, &target));
    if let Err(err) = installed {
        let _ = fs::remove_file(&temporary);
        return Err(err)
            .with_context(|| format!("cannot copy {} to {}", exe.display(), target.display()));
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    fn words(text: &[&str]) -> Vec<OsString> {
        text.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_global_options_come_before_the_plugin_name() {
        let split = Invocation::split(&words(&[
            "--context",
            "dokku",
            "-D",
            "-H=unix:///x.sock",
            "--tlscert",
            "c.pem",
            "dokku",
            "push",
            "img",
            "dokku@host",
            "app",
        ]));
        assert_eq!(
            split,
            Invocation {
                global_args: [
                    "--context",
                    "dokku",
                    "-D",
                    "-H=unix:///x.sock",
                    "--tlscert",
                    "c.pem"
                ]
                .map(String::from)
                .to_vec(),
                args: words(&["push", "img", "dokku@host", "app"]),
            }
        );
        assert_eq!(
            Invocation::split(&words(&["dokku", "--help"])).args,
            words(&["--help"])
        );
        assert_eq!(
            Invocation::split(&words(&["help", "dokku"])).args,
            words(&["help"])
        );
    }

    #[test]
    fn metadata_in_the_clis_schema() {
        let value: serde_json::Value = serde_json::from_str(&metadata()).unwrap();
        assert_eq!(value["SchemaVersion"], "0.1.0");
        assert_eq!(value["Version"], version::VERSION);
        assert!(!value["Vendor"].as_str().unwrap().is_empty());
    }

    #[test]
    fn the_socket_closed_by_the_cli_is_noticed() {
        let name = format!("dokku-image-test-{}", std::process::id());
        let listener =
            UnixListener::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        let stream = connect(OsStr::new(&format!("@{name}"))).unwrap();
        let (server_end, _) = listener.accept().unwrap();
        let waiter = std::thread::spawn(move || wait_for_close(stream));
        drop(server_end);
        waiter.join().unwrap();
    }
}
