//! `dokku-image push`: ask the host what it holds, send the image's archive without it, and
//! send the whole archive when the host cannot say or refuses the slim one.

use std::collections::HashSet;
use std::io;
use std::thread;
use std::time::Instant;

use anyhow::Context;

use crate::client::args::Push;
use crate::client::engine::{Fallback, ThroughEngine};
use crate::client::held::{Holds, LeftOutPlan};
use crate::client::layers_session::LayersSession;
use crate::client::recipes::{RecipeTotals, Recipes};
use crate::client::send::{send, Save, Sent, Session};
use crate::client::transport::Remote;
use crate::delta::recipe::Format;
use crate::digest::Digest;
use crate::docker::{Docker, ImageInfo};
use crate::output::{self, human_bytes, Status, EXIT_MISSING_APP};
use crate::protocol;
use crate::version::VERSION;

/// Runs a push; returns the exit status for the process: the host's.
pub fn run(push: &Push, docker: &Docker) -> anyhow::Result<Status> {
    let remote = Remote::for_push(push)?;
    // The host is asked what it holds, and the engine its store, while the image is inspected.
    let asking = Asking::start(&remote, &push.app);
    let (store, image) = thread::scope(|scope| {
        let store = scope.spawn(|| docker.store());
        let image = docker.inspect(&push.image);
        (store.join().ok().and_then(Result::ok), image)
    });
    let image = image?.with_context(|| {
        format!(
            "no image {} on this machine (docker image inspect)",
            push.image
        )
    })?;
    let started = Instant::now();
    let mut load = vec![
        protocol::LOAD.to_string(),
        push.app.clone(),
        push.image.clone(),
    ];
    load.extend(push.user.iter().cloned());
    // For a push through the engine the load's session opens while the image is tagged, and
    // the first push, which only learns the manifests, runs while the host is asked.
    let mut opened = if ThroughEngine::applies(store, &image) {
        Some(Session::start_early(&remote, &load)?)
    } else {
        None
    };
    let Some(engine) = ThroughEngine::prepare(docker, store, &push.image, &image) else {
        return save_path(
            push,
            docker,
            (&remote, asking, opened),
            &load,
            &image,
            started,
        );
    };
    let (asked, learned) = thread::scope(|scope| {
        let learning = scope.spawn(|| engine.learn(&image));
        let asked = asking.answer();
        let learned = learning
            .join()
            .unwrap_or_else(|_| Err(Fallback("the push's thread panicked".to_string())));
        (asked, learned)
    });
    let (asked, session) = match asked {
        Ok(asked) => asked,
        Err(err) => {
            abandon(opened);
            return Err(err);
        }
    };
    let held = match asked {
        Asked::Holds(held) => Some(held),
        Asked::CannotSay => None,
        Asked::MissingApp => {
            abandon(opened);
            return Ok(Status(EXIT_MISSING_APP));
        }
    };
    let (why, paired) = match learned {
        Ok(learned) => {
            let layers = learned.layers();
            let mut present = learned.present(held.as_ref(), &image.diff_ids);
            let what = match held {
                Some(_) => format!("the host holds {} of {layers} layers", present.len()),
                None => format!("sending all {layers} layers"),
            };
            output::note(format!(
                "Pushing {} to {} for {}: {what}; this machine's engine pushes the others to the client",
                push.image, push.dest, push.app
            ));
            let paired = present.clone();
            // A classic host takes a layer uncompressed in place of its compressed blob, so
            // the engine's layers may go as recipes; a containerd host needs the very blob.
            let mut recipes = match (&held, session) {
                (Some(Holds::Classic(_)), Some((session, format))) if !push.whole_layers => {
                    Some(Recipes::new(session, format))
                }
                _ => None,
            };
            let mut bytes = 0;
            let why = loop {
                let again = !present.is_empty();
                match engine.send(
                    opened.take(),
                    &remote,
                    &load,
                    &push.image,
                    &learned,
                    present.clone(),
                    recipes.take(),
                )? {
                    Ok((sent, _)) if sent.recipe_refused => {
                        output::note(RECIPE_REFUSED);
                        bytes += sent.bytes;
                    }
                    Ok((sent, _)) if sent.refused && again => {
                        output::note(
                            "The host no longer holds every layer left out; sending them all",
                        );
                        bytes += sent.bytes;
                        present = HashSet::new();
                    }
                    Ok((sent, totals)) => {
                        return Ok(finish(&sent, bytes + sent.bytes, layers, started, totals))
                    }
                    Err(Fallback(why)) => break why,
                }
            };
            (why, Some(paired))
        }
        Err(Fallback(why)) => (why, None),
    };
    drop(engine);
    output::warn(format!("{why}; saving the image instead"));
    let save = Save::start(docker, &push.image)?;
    let plan = match paired {
        // The engine's manifest paired the blobs with diff IDs: left out by name, unhashed.
        Some(blobs) => Plan {
            leave_out: LeftOutPlan {
                blobs,
                ..LeftOutPlan::default()
            },
            paired: true,
        },
        None => Plan::of(held.as_ref(), &image.diff_ids),
    };
    send_save(
        push,
        docker,
        (&remote, opened, None),
        &load,
        &image,
        &plan,
        held.as_ref(),
        save,
        started,
    )
}

/// Today's path for a classic-store engine: `docker image save` started while the host is
/// asked; into `opened`, the session a push through the engine that could not start opened.
fn save_path(
    push: &Push,
    docker: &Docker,
    (remote, asking, opened): (&Remote, Asking, Option<(Session, io::PipeWriter)>),
    load: &[String],
    image: &ImageInfo,
    started: Instant,
) -> anyhow::Result<Status> {
    let save = match Save::start(docker, &push.image) {
        Ok(save) => save,
        Err(err) => {
            abandon(opened);
            return Err(err);
        }
    };
    let (held, session) = match asking.answer() {
        Ok((Asked::Holds(held), session)) => (Some(held), session),
        Ok((Asked::CannotSay, _)) => (None, None),
        Ok((Asked::MissingApp, _)) => {
            save.abandon();
            abandon(opened);
            return Ok(Status(EXIT_MISSING_APP));
        }
        Err(err) => {
            save.abandon();
            abandon(opened);
            return Err(err);
        }
    };
    let plan = Plan::of(held.as_ref(), &image.diff_ids);
    let recipes = match session {
        Some((session, format)) if !push.whole_layers => Some(Recipes::new(session, format)),
        _ => None,
    };
    send_save(
        push,
        docker,
        (remote, opened, recipes),
        load,
        image,
        &plan,
        held.as_ref(),
        save,
        started,
    )
}

/// Ends a session opened early that no archive will go to.
fn abandon(opened: Option<(Session, io::PipeWriter)>) {
    if let Some((session, to_host)) = opened {
        drop(to_host);
        session.abandon();
    }
}

/// What the save path leaves out, and whether the engine's manifest said it.
struct Plan {
    leave_out: LeftOutPlan,
    paired: bool,
}

impl Plan {
    fn of(held: Option<&Holds>, diff_ids: &[Digest]) -> Plan {
        Plan {
            leave_out: LeftOutPlan::plan(held, diff_ids),
            paired: false,
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn send_save(
    push: &Push,
    docker: &Docker,
    (remote, opened, mut recipes): (&Remote, Option<(Session, io::PipeWriter)>, Option<Recipes>),
    load: &[String],
    image: &ImageInfo,
    plan: &Plan,
    held: Option<&Holds>,
    save: Save,
    started: Instant,
) -> anyhow::Result<Status> {
    let layers = image.diff_ids.len();
    let Plan {
        leave_out: plan,
        paired,
    } = plan;
    let what = match held {
        Some(_) if *paired => format!(
            "the host holds {} of {layers} layers, paired with their blobs by the engine's manifest",
            plan.blobs.len()
        ),
        Some(Holds::Classic(_)) => format!("the host holds {} of {layers} layers", plan.diff_ids.len()),
        Some(Holds::Containerd(blobs)) => format!(
            "the host's content store holds {} layer blobs, matched by digest against the {layers} layers' blobs as the archive streams",
            blobs.len()
        ),
        None => format!("sending all {layers} layers"),
    };
    output::note(format!(
        "Pushing {} to {} for {}: {what}",
        push.image, push.dest, push.app
    ));
    let mut sent = send(
        save,
        (opened, remote, load),
        &push.image,
        plan,
        recipes.as_mut(),
    )?;
    let mut bytes = sent.bytes;
    let mut recipe_totals = recipes.map(Recipes::finish).unwrap_or_default();
    if sent.recipe_refused {
        output::note(RECIPE_REFUSED);
        let save = Save::start(docker, &push.image)?;
        sent = send(save, (None, remote, load), &push.image, plan, None)?;
        bytes += sent.bytes;
        recipe_totals = RecipeTotals::default();
    }
    if sent.refused && !plan.is_empty() {
        output::note("The host no longer holds every layer left out; sending the whole archive");
        let save = Save::start(docker, &push.image)?;
        sent = send(
            save,
            (None, remote, load),
            &push.image,
            &LeftOutPlan::default(),
            None,
        )?;
        bytes += sent.bytes;
        recipe_totals = RecipeTotals::default();
    }
    Ok(finish(&sent, bytes, layers, started, recipe_totals))
}

const RECIPE_REFUSED: &str = "The host cannot use a layer recipe; sending the changed layers whole";

/// "1 layer of 52428800 bytes went as a recipe: 31457 bytes literal, 52397343 referenced":
/// exact counts for scripts.
fn recipe_summary(totals: &RecipeTotals) -> String {
    format!(
        "{} {} of {} bytes went as {}: {} bytes literal, {} referenced",
        totals.layers,
        if totals.layers == 1 {
            "layer"
        } else {
            "layers"
        },
        totals.literal + totals.referenced,
        if totals.layers == 1 {
            "a recipe"
        } else {
            "recipes"
        },
        totals.literal,
        totals.referenced
    )
}

/// The summary lines after a load the host accepted; the host's status.
fn finish(
    sent: &Sent,
    bytes: u64,
    layers: usize,
    started: Instant,
    recipes: RecipeTotals,
) -> Status {
    if sent.status == 0 {
        output::note(summary(
            sent,
            bytes,
            layers,
            started.elapsed().as_secs_f64(),
        ));
        if recipes.layers > 0 {
            output::note(recipe_summary(&recipes));
        }
    }
    Status(sent.status)
}

/// "Sent 10485760 bytes (10 MiB) in 2.0s (5 MiB/s); left out 2 of 3 layers, 1073741824 bytes
/// (1 GiB)": exact counts for scripts, units for people.
fn summary(sent: &Sent, bytes: u64, layers: usize, seconds: f64) -> String {
    let rate = if seconds > 0.0 {
        bytes as f64 / seconds
    } else {
        0.0
    };
    let hashed = match sent.left_out.hashed {
        0 => String::new(),
        1 => "; hashed 1 layer on the way".to_string(),
        n => format!("; hashed {n} layers on the way"),
    };
    format!(
        "Sent {bytes} bytes ({}) in {seconds:.1}s ({}/s); left out {} of {layers} layers, {} bytes ({}){hashed}",
        human_bytes(bytes),
        human_bytes(rate as u64),
        sent.left_out.entries,
        sent.left_out.bytes,
        human_bytes(sent.left_out.bytes),
    )
}

enum Asked {
    Holds(Holds),
    MissingApp,
    /// An older plugin, or an answer this client does not understand.
    CannotSay,
}

/// What `image:layers` answered, what the push prints of it, and its session when the host
/// takes recipes.
struct Answer {
    asked: Asked,
    said: Said,
    session: Option<Queries>,
}

/// The `image:layers` session kept open for chunk queries, and the recipe format the host
/// takes.
type Queries = (LayersSession, Format);

enum Said {
    Nothing,
    Warning(String),
    /// The host's own message, passed through.
    Stderr(String),
}

/// `image:layers APP` on the host. A missing app passes the host's message through; any other
/// failure but the remote shell's own (ssh's 255: the host is unreachable) means the host
/// cannot say. What it has to print waits in the answer, for the push to print in its turn.
/// When the host takes recipes, its session stays open for chunk queries.
fn ask_host(remote: &Remote, app: &str) -> anyhow::Result<Answer> {
    let mut session = LayersSession::start(remote, app)?;
    let parse_error = match session.answer_line()? {
        Some(line) => match Holds::parse(&line) {
            Ok(held) => {
                let said = version_difference(Holds::plugin_version(&line))
                    .map_or(Said::Nothing, Said::Warning);
                if let Some(format) = Holds::takes_recipes(&line) {
                    if session.greet().is_ok() {
                        return Ok(Answer {
                            asked: Asked::Holds(held),
                            said,
                            session: Some((session, format)),
                        });
                    }
                }
                session.finish()?;
                return Ok(Answer {
                    asked: Asked::Holds(held),
                    said,
                    session: None,
                });
            }
            Err(err) => Some(err.to_string()),
        },
        _ => None,
    };
    let ended = session.finish()?;
    let code = ended.status.code();
    if code == Some(EXIT_MISSING_APP) {
        return Ok(Answer {
            asked: Asked::MissingApp,
            said: Said::Stderr(String::from_utf8_lossy(&ended.stderr).into_owned()),
            session: None,
        });
    }
    if code == Some(255) || code.is_none() {
        ended.check()?;
    }
    let why = match parse_error {
        Some(why) if ended.status.success() => why,
        _ => {
            let stderr = String::from_utf8_lossy(&ended.stderr);
            let first = stderr
                .lines()
                .map(|line| line.trim().trim_start_matches('!').trim())
                .find(|line| !line.is_empty())
                .unwrap_or("no message");
            format!(
                "`{} {app}` exited with status {}: {first}",
                protocol::LAYERS,
                code.unwrap_or(1)
            )
        }
    };
    Ok(Answer {
        asked: Asked::CannotSay,
        said: Said::Warning(format!(
            "the host cannot say which layers it holds ({why}); sending the whole archive"
        )),
        session: None,
    })
}

/// `image:layers APP` asked on a thread of its own from the start of the push: its round trip
/// (ssh, the host's dispatch, its docker calls) runs while this machine's engine is asked.
struct Asking(thread::JoinHandle<anyhow::Result<Answer>>);

impl Asking {
    fn start(remote: &Remote, app: &str) -> Asking {
        let (remote, app) = (remote.clone(), app.to_string());
        Asking(thread::spawn(move || ask_host(&remote, &app)))
    }

    /// The answer, once what the host said is printed, and the session for chunk queries
    /// when the host takes recipes.
    fn answer(self) -> anyhow::Result<(Asked, Option<Queries>)> {
        let answer = self
            .0
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("asking the host panicked")))?;
        match answer.said {
            Said::Nothing => {}
            Said::Warning(warning) => output::warn(warning),
            Said::Stderr(stderr) => eprint!("{stderr}"),
        }
        Ok((answer.asked, answer.session))
    }
}

/// One line when the host's plugin is not this client's version (older plugins do not say).
fn version_difference(host: Option<String>) -> Option<String> {
    let what = match host {
        Some(host) if host == VERSION => return None,
        Some(host) => format!("is {host} and this client {VERSION}"),
        None => format!("does not say its version (older than this client, {VERSION})"),
    };
    Some(format!(
        "the host's image plugin {what}; `image:client` gives the host's own client"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::filter::LeftOutTotals;

    #[test]
    fn one_line_when_host_and_client_versions_differ() {
        assert_eq!(version_difference(Some(VERSION.to_string())), None);
        assert_eq!(
            version_difference(Some("0.0.1".to_string())).unwrap(),
            format!("the host's image plugin is 0.0.1 and this client {VERSION}; `image:client` gives the host's own client")
        );
        assert_eq!(
            version_difference(None).unwrap(),
            format!("the host's image plugin does not say its version (older than this client, {VERSION}); `image:client` gives the host's own client")
        );
    }

    #[test]
    fn summary_has_bytes_time_rate_and_what_was_left_out() {
        let sent = Sent {
            status: 0,
            refused: false,
            recipe_refused: false,
            left_out: LeftOutTotals {
                entries: 2,
                bytes: 1 << 30,
                hashed: 0,
            },
            bytes: 10 << 20,
        };
        assert_eq!(
            summary(&sent, 10 << 20, 3, 2.0),
            "Sent 10485760 bytes (10 MiB) in 2.0s (5 MiB/s); left out 2 of 3 layers, 1073741824 bytes (1 GiB)"
        );
    }

    #[test]
    fn summary_says_how_many_layers_were_hashed() {
        let mut sent = Sent {
            status: 0,
            refused: false,
            recipe_refused: false,
            left_out: LeftOutTotals {
                entries: 1,
                bytes: 100,
                hashed: 1,
            },
            bytes: 50,
        };
        assert_eq!(
            summary(&sent, 50, 2, 1.0),
            "Sent 50 bytes (50 B) in 1.0s (50 B/s); left out 1 of 2 layers, 100 bytes (100 B); hashed 1 layer on the way"
        );
        sent.left_out.hashed = 3;
        assert!(summary(&sent, 50, 2, 1.0).ends_with("; hashed 3 layers on the way"));
    }
}
