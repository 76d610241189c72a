//! `image:load`: deploy an app from an image archive streamed on stdin. The archive is checked
//! while it streams into `docker image load`, and the load is aborted, importing nothing, when
//! the archive does not hold IMAGE.

use std::ffi::OsString;
use std::io::{self, IsTerminal};

use anyhow::Context;

use crate::archive::{self, Contents, Limits};
use crate::args::Spec;
use crate::deploy::AppSession;
use crate::docker::Docker;
use crate::host::{self, Host};
use crate::process::ProcessError;
use crate::progress::Progress;
use crate::record::short_id;
use crate::reference::Reference;
use crate::subcommands::from;
use crate::trigger;

pub const SPEC: Spec = Spec {
    build_dir: true,
    force: true,
    max_positionals: 3,
    ..Spec::new(
        "image:load",
        "[--build-dir DIR] [--force] APP IMAGE [USER_NAME [USER_EMAIL]]",
    )
};

/// `image:load`, or `git:load-image` on hosts whose core git plugin lacks it (same behaviour;
/// COMMAND is what the user typed, recorded in the commit).
pub fn run(argv: Vec<OsString>, command: &'static str) -> anyhow::Result<()> {
    if io::stdin().is_terminal() {
        anyhow::bail!("Expecting tar archive containing docker image on STDIN");
    }
    let host = Host::from_env();
    let spec = Spec { command, ..SPEC };
    let request = from::validate(argv, &spec)?;
    if request.reference.has_digest() {
        return Err(spec.usage_error(format!(
            "{command} takes a tag reference (NAME[:TAG]), not {}: loaded images have no digest",
            request.image
        )));
    }
    let limits = Limits::from_env()?;
    let session = AppSession::open(&host, &request.app)?;
    let docker = Docker::for_app(&host, &request.app);

    let image_id = load(&docker, &request.reference, &limits)?;
    trigger::fire(
        "post-image-load",
        &[request.app.as_str(), &request.image, &image_id],
    )
    .context("the post-image-load trigger failed")?;

    session.deploy(request.into_deploy(image_id, command, " (loaded from an archive)"))?;
    Ok(())
}

/// Streams stdin into `docker image load`, and returns the ID of IMAGE once the engine holds
/// exactly the image the archive named.
pub fn load(docker: &Docker, image: &Reference, limits: &Limits) -> anyhow::Result<String> {
    host::info(format!("Loading {image} from the archive on stdin"));
    let command = docker.load_command();
    let (reader, mut writer) = io::pipe().context("cannot create a pipe to docker image load")?;
    let handle = command
        .expression()
        .stdin_file(reader)
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .start()
        .with_context(|| format!("cannot start `{}`", command.display()))?;

    let mut input = Progress::new(io::stdin());
    let mut wanted_id = None;
    let forwarded = archive::forward(&mut input, &mut writer, limits, |contents: &Contents| {
        let found = contents
            .find(image)
            .with_context(|| not_in_archive(image, contents))?;
        wanted_id = Some(found.id.clone());
        Ok(())
    });
    input.finish();

    if let Err(err) = forwarded {
        // The engine imports only after the end of the archive, which it never got: killing
        // the load before its stdin closes leaves the engine as it was.
        let _ = handle.kill();
        drop(writer);
        let docker_stderr = handle
            .wait()
            .map(|output| String::from_utf8_lossy(&output.stderr).trim().to_string())
            .unwrap_or_default();
        if is_broken_pipe(&err) {
            anyhow::bail!("docker image load stopped reading the archive: {docker_stderr}");
        }
        return Err(err);
    }
    drop(writer);
    let output = handle.wait().context("docker image load did not finish")?;
    command
        .check(output)
        .map_err(|err| match err.downcast::<ProcessError>() {
            Ok(process) => anyhow::anyhow!("docker image load failed: {}", process.stderr.trim()),
            Err(other) => other,
        })?;

    let wanted_id = wanted_id.context("the archive check did not run")?;
    let loaded_id = docker
        .image_id(&image.to_string())?
        .with_context(|| format!("{image} is not on the host after loading the archive"))?;
    anyhow::ensure!(
        loaded_id == wanted_id,
        "after the load {image} is {}, not {} as the archive says",
        short_id(&loaded_id),
        short_id(&wanted_id)
    );
    host::info(format!(
        "Loaded {image} ({}), {} read",
        short_id(&loaded_id),
        crate::progress::human_bytes(input.bytes_read() as f64)
    ));
    Ok(loaded_id)
}

fn not_in_archive(image: &Reference, contents: &Contents) -> String {
    let tags = contents.all_tags();
    if tags.is_empty() {
        format!("the archive does not hold {image}: it has no tagged images; nothing was loaded")
    } else {
        format!(
            "the archive does not hold {image}; it holds {}; nothing was loaded",
            tags.join(", ")
        )
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}
