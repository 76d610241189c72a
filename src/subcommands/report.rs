//! `image:report [APP] [--image-FIELD]` and the `report APP` trigger, in Dokku's report format.

use std::ffi::OsString;

use crate::args;
use crate::command::Command;
use crate::deploy::AppSession;
use crate::host::{self, Host};
use crate::output;
use crate::record::app_deploys;
use crate::trigger;

/// The report's flags and labels, in the order they are printed.
const FIELDS: [(&str, &str); 5] = [
    ("--image-source-image", "Image source image:"),
    ("--image-source-id", "Image source id:"),
    ("--image-deployed-at", "Image deployed at:"),
    ("--image-deploy-commit", "Image deploy commit:"),
    ("--image-deploys", "Image deploys:"),
];

/// The values of one app's report, in `FIELDS` order.
fn values(host: &Host, app: &str) -> anyhow::Result<[String; 5]> {
    let deploys = app_deploys(host, app)?;
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
    ])
}

/// One app's block (no field) or one field's raw value (an index into `FIELDS`).
fn report_app(host: &Host, app: &str, field: Option<usize>) -> anyhow::Result<()> {
    trigger::ensure_app(app)?;
    AppSession::repair_if_idle(host, app)?;
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

/// Dokku's app list: folders of `$DOKKU_ROOT` with a valid app name (`tls` is Dokku's own).
fn all_apps(host: &Host) -> anyhow::Result<Vec<String>> {
    let mut apps = Vec::new();
    let listing = match std::fs::read_dir(&host.dokku_root) {
        Ok(listing) => listing,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(apps),
        Err(err) => return Err(err.into()),
    };
    for entry in listing {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name != "tls" && host::is_valid_app_name(&name) && entry.path().is_dir() {
            apps.push(name);
        }
    }
    apps.sort();
    Ok(apps)
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
            let apps = all_apps(&host)?;
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
            "Invalid flag passed, valid flags: --image-deploy-commit, --image-deployed-at, --image-deploys, --image-source-id, --image-source-image"
        );
    }

    #[test]
    fn labels_fit_the_label_column() {
        assert!(FIELDS.iter().all(|(_, label)| label.len() < 30));
    }

    #[test]
    fn app_list_takes_valid_folders_only() {
        let dir = tempfile::tempdir().unwrap();
        for folder in ["b-app", "a-app", ".docker", "tls", "Bad"] {
            std::fs::create_dir(dir.path().join(folder)).unwrap();
        }
        std::fs::write(dir.path().join("c-file"), "").unwrap();
        let host = Host {
            dokku_root: dir.path().to_path_buf(),
            lib_root: dir.path().join("lib"),
            docker_bin: "docker".into(),
            system_user: "nobody-here".into(),
        };
        assert_eq!(all_apps(&host).unwrap(), ["a-app", "b-app"]);
    }
}
