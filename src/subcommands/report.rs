//! `image:report [APP] [--image-FIELD]` and the `report APP` trigger, in Dokku's report format.

use std::ffi::OsString;

use crate::args;
use crate::command::Command;
use crate::docker::Docker;
use crate::host::Host;
use crate::output;
use crate::record::app_deploys;
use crate::retention::{self, Keep};
use crate::trigger;

/// The report's flags and labels, in the order they are printed.
const FIELDS: [(&str, &str); 9] = [
    ("--image-source-image", "Image source image:"),
    ("--image-source-id", "Image source id:"),
    ("--image-deployed-at", "Image deployed at:"),
    ("--image-deploy-commit", "Image deploy commit:"),
    ("--image-deploys", "Image deploys:"),
    ("--image-keep-images", "Image keep images:"),
    ("--image-global-keep-images", "Image global keep images:"),
    (
        "--image-computed-keep-images",
        "Image computed keep images:",
    ),
    ("--image-retained-size", "Image retained size:"),
];

/// The values of one app's report, in `FIELDS` order.
fn values(host: &Host, app: &str) -> anyhow::Result<[String; 9]> {
    let deploys = app_deploys(host, app)?;
    let (own, global, keep) = retention::keep_images(host, app)?;
    let head = deploys.first();
    let record = head.and_then(|deploy| deploy.record.as_ref());
    // A head this plugin did not make may still come from an image (core's git:from-image).
    let source_image = match record {
        Some(record) => record.image.clone(),
        None => host
            .property("git", app, "source-image")?
            .unwrap_or_default(),
    };
    Ok([
        source_image,
        record.map(|r| r.image_id.to_string()).unwrap_or_default(),
        head.map(|d| d.commit.date.clone()).unwrap_or_default(),
        head.map(|d| d.commit.id.clone()).unwrap_or_default(),
        deploys
            .iter()
            .filter(|d| d.record.is_some())
            .count()
            .to_string(),
        own.unwrap_or_default(),
        global.unwrap_or_default(),
        match keep {
            Keep::All => "0".to_string(),
            Keep::Last(n) => n.to_string(),
        },
        output::human_bytes(retention::retained_size(
            host,
            app,
            &Docker::for_app(host, app),
        )?),
    ])
}

/// One app's block (no field) or one field's raw value (an index into `FIELDS`).
fn report_app(host: &Host, app: &str, field: Option<usize>) -> anyhow::Result<()> {
    trigger::ensure_app(app)?;
    // Read-only: no lock, no repair (docs/deploy.md, "Read-only commands").
    let values = values(host, app)?;
    match field {
        None => {
            output::section(format!("{app} image information"));
            for ((_, label), value) in FIELDS.iter().zip(&values) {
                // Dokku prints the report lines even with --quiet; only the header goes.
                println!("       {label:<30} {value:<25}");
            }
        }
        Some(index) => println!("{}", values[index]),
    }
    Ok(())
}

fn invalid_flag() -> anyhow::Error {
    let mut flags: Vec<&str> = FIELDS.iter().map(|(flag, _)| *flag).collect();
    flags.sort_unstable();
    anyhow::anyhow!("Invalid flag passed, valid flags: {}", flags.join(", "))
}

pub fn run(command: &Command, argv: Vec<OsString>) -> anyhow::Result<()> {
    let parsed = args::parse(argv, command, std::env::var("DOKKU_APP_NAME").ok())?;
    if parsed.fields.len() > 1 {
        return Err(command.usage_error("give at most one --image-FIELD flag"));
    }
    let field = match parsed.fields.first() {
        Some(flag) => Some(
            FIELDS
                .iter()
                .position(|(name, _)| name == flag)
                .ok_or_else(invalid_flag)?,
        ),
        None => None,
    };
    let host = Host::from_env();
    match parsed.app.filter(|app| !app.is_empty()) {
        Some(app) => report_app(&host, &app, field),
        None => {
            let apps = trigger::app_list()?;
            anyhow::ensure!(
                !apps.is_empty(),
                "You haven't deployed any applications yet"
            );
            apps.iter()
                .try_for_each(|app| report_app(&host, app, field))
        }
    }
}

/// The `report APP` trigger: `dokku report APP` shows the same block.
pub fn trigger(_: &Command, args: Vec<OsString>) -> anyhow::Result<()> {
    let app = args
        .first()
        .and_then(|app| app.to_str())
        .unwrap_or_default();
    report_app(&Host::from_env(), app, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_flag_lists_the_valid_ones() {
        assert_eq!(
            invalid_flag().to_string(),
            "Invalid flag passed, valid flags: --image-computed-keep-images, --image-deploy-commit, --image-deployed-at, --image-deploys, --image-global-keep-images, --image-keep-images, --image-retained-size, --image-source-id, --image-source-image"
        );
    }

    #[test]
    fn labels_fit_the_label_column() {
        assert!(FIELDS.iter().all(|(_, label)| label.len() < 30));
    }
}
