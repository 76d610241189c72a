//! `image:report [APP|--global] [--format stdout|json] [--image-KEY]` and the `report APP`
//! trigger, in Dokku 0.38's report convention (`dokku_report`, docs/report.md).

use std::ffi::OsString;

use crate::args;
use crate::command::Command;
use crate::docker::Docker;
use crate::dokku_report::{self, Printed};
use crate::host::Host;
use crate::output::{self, Status};
use crate::record::{app_deploys, Deploy};
use crate::retention::{self, Keep};
use crate::state::{GLOBAL, PLUGIN, SOURCE_IMAGE};
use crate::trigger;

/// The report's keys. `keep-images` is a setting with a default: its raw per-app value, its
/// raw global one and the effective one, as every 0.38 report has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    SourceImage,
    SourceId,
    DeployedAt,
    DeployCommit,
    Deploys,
    KeepImages,
    GlobalKeepImages,
    ComputedKeepImages,
    RetainedSize,
}

impl dokku_report::Key for Key {
    fn name(self) -> &'static str {
        match self {
            Key::SourceImage => "source-image",
            Key::SourceId => "source-id",
            Key::DeployedAt => "deployed-at",
            Key::DeployCommit => "deploy-commit",
            Key::Deploys => "deploys",
            Key::KeepImages => "keep-images",
            Key::GlobalKeepImages => "global-keep-images",
            Key::ComputedKeepImages => "computed-keep-images",
            Key::RetainedSize => "retained-size",
        }
    }
}

/// An app's report.
const APP_KEYS: [Key; 9] = [
    Key::SourceImage,
    Key::SourceId,
    Key::DeployedAt,
    Key::DeployCommit,
    Key::Deploys,
    Key::KeepImages,
    Key::GlobalKeepImages,
    Key::ComputedKeepImages,
    Key::RetainedSize,
];
/// `--global`'s: the global settings and what they come to.
const GLOBAL_KEYS: [Key; 2] = [Key::GlobalKeepImages, Key::ComputedKeepImages];

/// What an app's deploy branch says: the keys read from its deploys.
struct Deploys {
    source_image: String,
    source_id: String,
    deployed_at: String,
    deploy_commit: String,
    count: usize,
}

impl Deploys {
    fn read(host: &Host, app: &str) -> anyhow::Result<Deploys> {
        let deploys: Vec<Deploy> = app_deploys(host, app)?;
        let head = deploys.first();
        let record = head.and_then(|deploy| deploy.record.as_ref());
        Ok(Deploys {
            // A head this plugin did not make may still come from an image (core's git:from-image).
            source_image: match record {
                Some(record) => record.image.clone(),
                None => SOURCE_IMAGE.get(host, app)?.unwrap_or_default(),
            },
            source_id: record.map(|r| r.image_id.to_string()).unwrap_or_default(),
            deployed_at: head.map(|d| d.commit.date.clone()).unwrap_or_default(),
            deploy_commit: head.map(|d| d.commit.id.clone()).unwrap_or_default(),
            count: deploys.iter().filter(|d| d.record.is_some()).count(),
        })
    }
}

/// One app's values; its deploys are read once, and only when a key needs them.
struct AppValues<'a> {
    host: &'a Host,
    app: &'a str,
    deploys: Option<Deploys>,
}

impl AppValues<'_> {
    fn deploys(&mut self) -> anyhow::Result<&Deploys> {
        let deploys = match self.deploys.take() {
            Some(deploys) => deploys,
            None => Deploys::read(self.host, self.app)?,
        };
        Ok(self.deploys.insert(deploys))
    }

    fn value(&mut self, key: Key) -> anyhow::Result<String> {
        let (host, app) = (self.host, self.app);
        Ok(match key {
            Key::SourceImage => self.deploys()?.source_image.clone(),
            Key::SourceId => self.deploys()?.source_id.clone(),
            Key::DeployedAt => self.deploys()?.deployed_at.clone(),
            Key::DeployCommit => self.deploys()?.deploy_commit.clone(),
            Key::Deploys => self.deploys()?.count.to_string(),
            Key::KeepImages => retention::keep_images(host, app)?.0.unwrap_or_default(),
            Key::GlobalKeepImages => retention::keep_images(host, app)?.1.unwrap_or_default(),
            Key::ComputedKeepImages => keep_text(retention::keep_images(host, app)?.2),
            Key::RetainedSize => output::human_bytes(retention::retained_size(
                host,
                app,
                &Docker::for_app(host, app),
            )?),
        })
    }
}

fn keep_text(keep: Keep) -> String {
    match keep {
        Keep::All => "0".to_string(),
        Keep::Last(n) => n.to_string(),
    }
}

/// The global values: the raw global setting and the effective one (the setting, else the
/// default), as core's `--global` reports give them.
fn global_value(host: &Host, key: Key) -> anyhow::Result<String> {
    let (_, global, keep) = retention::keep_images(host, GLOBAL)?;
    Ok(match key {
        Key::GlobalKeepImages => global.unwrap_or_default(),
        _ => keep_text(keep),
    })
}

/// One app's report, or one value of it.
fn report_app(
    host: &Host,
    app: &str,
    format: Option<&str>,
    flag: Option<&str>,
) -> anyhow::Result<Printed> {
    trigger::ensure_app(app)?;
    // Read-only: no lock, no repair (docs/deploy.md, "Read-only commands").
    let mut values = AppValues {
        host,
        app,
        deploys: None,
    };
    dokku_report::render(PLUGIN, app, format, flag, &APP_KEYS, |key| {
        values.value(key)
    })
}

pub fn run(command: &Command, argv: Vec<OsString>) -> anyhow::Result<Status> {
    let parsed = args::parse(argv, command, std::env::var("DOKKU_APP_NAME").ok())?;
    let flag = dokku_report::single_flag(PLUGIN, &parsed.fields)?;
    let format = parsed.format.as_deref();
    let host = Host::from_env();
    if parsed.global {
        let printed = dokku_report::render(PLUGIN, GLOBAL, format, flag, &GLOBAL_KEYS, |key| {
            global_value(&host, key)
        })?;
        printed.print();
        return Ok(Status::SUCCESS);
    }
    match parsed.app.filter(|app| !app.is_empty()) {
        Some(app) => report_app(&host, &app, format, flag)?.print(),
        None => {
            let apps = trigger::app_list()?;
            if apps.is_empty() {
                // As core: a warning, not a failure.
                output::warn("You haven't deployed any applications yet");
            }
            for app in &apps {
                report_app(&host, app, format, flag)?.print();
            }
        }
    }
    Ok(Status::SUCCESS)
}

/// The `report APP` trigger: `dokku report APP` shows the same block.
pub fn trigger(_: &Command, args: Vec<OsString>) -> anyhow::Result<Status> {
    let app = args
        .first()
        .and_then(|app| app.to_str())
        .unwrap_or_default();
    report_app(&Host::from_env(), app, None, None)?.print();
    Ok(Status::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dokku_report::Key as _;

    #[test]
    fn global_keys_are_among_the_app_keys_and_all_names_differ() {
        assert!(GLOBAL_KEYS.iter().all(|key| APP_KEYS.contains(key)));
        let mut names: Vec<&str> = APP_KEYS.iter().map(|key| key.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), APP_KEYS.len());
    }
}
