//! The remote shell to the Dokku host: `COMMAND [-p PORT] [-o OPT]… DEST REMOTE_COMMAND`,
//! run through duct with an argument vector. REMOTE_COMMAND is the dokku command line quoted
//! for the remote shell: sshd hands it to Dokku as SSH_ORIGINAL_COMMAND, which Dokku splits
//! honouring quotes, so a user name with a space stays one argument.

use crate::client::args::{split_ssh, Dest, Push};
use crate::process::Cmd;

/// The remote shell used when neither `--ssh` nor this variable names another.
const SSH_ENV: &str = "DOKKU_IMAGE_SSH";

/// How to reach the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    shell: Vec<String>,
    options: Vec<String>,
    dest: Dest,
}

impl Remote {
    /// From `--ssh`, else `DOKKU_IMAGE_SSH`, else `ssh`.
    pub fn for_push(push: &Push) -> anyhow::Result<Remote> {
        let shell = if !push.ssh.is_empty() {
            push.ssh.clone()
        } else {
            match std::env::var(SSH_ENV) {
                Ok(text) if !text.trim().is_empty() => split_ssh(&text, SSH_ENV)?,
                _ => vec!["ssh".to_string()],
            }
        };
        Ok(Remote {
            shell,
            options: push.ssh_options.clone(),
            dest: push.dest.clone(),
        })
    }

    /// The command that runs the dokku command line `words` on the host.
    pub fn command<S: AsRef<str>>(&self, words: &[S]) -> Cmd {
        let mut args: Vec<String> = self.shell[1..].to_vec();
        if let Some(port) = self.dest.port {
            args.extend(["-p".to_string(), port.to_string()]);
        }
        for option in &self.options {
            args.extend(["-o".to_string(), option.clone()]);
        }
        args.push(self.dest.target.clone());
        args.push(remote_command(words));
        Cmd::new(&self.shell[0]).args(args)
    }
}

/// The dokku command line, quoted for the remote shell.
pub fn remote_command<S: AsRef<str>>(words: &[S]) -> String {
    shell_words::join(words.iter().map(AsRef::as_ref))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(ssh: &[&str], options: &[&str], dest: &str) -> Remote {
        Remote {
            shell: ssh.iter().map(|s| s.to_string()).collect(),
            options: options.iter().map(|s| s.to_string()).collect(),
            dest: Dest::parse(dest).unwrap(),
        }
    }

    #[test]
    fn quotes_what_the_remote_shell_would_split() {
        assert_eq!(remote_command(&["image:layers", "app"]), "image:layers app");
        let line = remote_command(&["image:load", "app", "img:1", "Jane Doe", "it's@x; rm -rf /"]);
        assert_eq!(
            line,
            "image:load app img:1 'Jane Doe' 'it'\\''s@x; rm -rf /'"
        );
        assert_eq!(
            shell_words::split(&line).unwrap(),
            ["image:load", "app", "img:1", "Jane Doe", "it's@x; rm -rf /"]
        );
        assert_eq!(
            remote_command(&["image:load", "app", "img", ""]),
            "image:load app img ''"
        );
    }

    #[test]
    fn the_shell_gets_port_options_dest_and_one_remote_command() {
        let cmd = remote(&["ssh", "-i", "my key"], &["BatchMode=yes"], "dokku@h:2222").command(&[
            "image:load",
            "app",
            "img",
            "Jane Doe",
        ]);
        assert_eq!(
            cmd.display(),
            "ssh -i 'my key' -p 2222 -o 'BatchMode=yes' dokku@h 'image:load app img '\\''Jane Doe'\\'''"
        );
        let cmd = remote(&["ssh"], &[], "dokku@h").command(&["image:layers", "app"]);
        assert_eq!(cmd.display(), "ssh dokku@h 'image:layers app'");
    }
}
