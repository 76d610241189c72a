//! `image:client`: writes the plugin's program, which is the `dokku-image` client too, to
//! stdout, so a CI machine gets the client that matches the host with `ssh dokku@host image:client > dokku-image`.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;

use crate::args;
use crate::command::Command;
use crate::output::Status;

/// The client's file name, as the message suggests it.
const CLIENT: &str = "dokku-image";

pub fn run(command: &Command, argv: Vec<OsString>) -> anyhow::Result<Status> {
    args::parse(argv, command, None)?;
    let mut stdout = io::stdout().lock();
    anyhow::ensure!(
        !stdout.is_terminal(),
        "{} writes a binary to stdout; redirect it to a file: ssh dokku@HOST {} > {CLIENT}",
        command.name,
        command.name
    );
    // The plugin's one program is the client too.
    let path = own_binary()?;
    let mut client =
        File::open(&path).with_context(|| format!("cannot read {}", path.display()))?;
    io::copy(&mut client, &mut stdout)
        .with_context(|| format!("cannot write {} to stdout", path.display()))?;
    stdout
        .flush()
        .context("cannot write the client to stdout")?;
    Ok(Status::SUCCESS)
}

/// The running program's file, wherever the links Dokku ran lead.
fn own_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the running binary")?;
    exe.canonicalize()
        .with_context(|| format!("cannot resolve {}", exe.display()))
}
