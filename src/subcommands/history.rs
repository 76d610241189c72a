//! `image:history`: the app's deploys on its deploy branch, newest first, read back from the
//! commits themselves (the app repo is the record).

use std::ffi::OsString;

use serde::Serialize;

use crate::args;
use crate::command::Command;
use crate::host::Host;
use crate::output::{self, Status};
use crate::record::{app_deploys, short_commit, Deploy};
use crate::state;
use crate::trigger;

#[derive(Debug, Serialize)]
struct JsonDeploy<'a> {
    commit: &'a str,
    date: &'a str,
    author_name: &'a str,
    author_email: &'a str,
    image: Option<&'a str>,
    image_id: Option<&'a str>,
    command: Option<&'a str>,
    live: bool,
    image_deploy: bool,
}

fn json(deploys: &[Deploy]) -> anyhow::Result<String> {
    let rows: Vec<JsonDeploy> = deploys
        .iter()
        .enumerate()
        .map(|(index, deploy)| {
            let record = deploy.record.as_ref();
            JsonDeploy {
                commit: &deploy.commit.id,
                date: &deploy.commit.date,
                author_name: &deploy.commit.author_name,
                author_email: &deploy.commit.author_email,
                image: record.map(|r| r.image.as_str()),
                image_id: record.map(|r| r.image_id.as_str()),
                command: record.map(|r| r.command.as_str()).filter(|c| !c.is_empty()),
                live: index == 0,
                image_deploy: record.is_some(),
            }
        })
        .collect();
    Ok(output::printable_json(&serde_json::to_string_pretty(
        &rows,
    )?))
}

/// The human table: columns sized to their widest cell, like `docker image ls`.
fn table(deploys: &[Deploy]) -> String {
    let mut rows =
        vec![["COMMIT", "DATE", "AUTHOR", "IMAGE", "IMAGE ID", "LIVE"].map(String::from)];
    for (index, deploy) in deploys.iter().enumerate() {
        let commit = &deploy.commit;
        // A commit this plugin did not make (a `git push`) is shown, never misread as an image.
        let (image, image_id) = match &deploy.record {
            Some(record) => (record.image.clone(), record.image_id.short().to_string()),
            None => ("(git push)".to_string(), "-".to_string()),
        };
        rows.push([
            short_commit(&commit.id).to_string(),
            commit.date.clone(),
            // Anyone who can push writes the author: shown, never acted on by the terminal.
            output::printable(&format!("{} <{}>", commit.author_name, commit.author_email)),
            image,
            image_id,
            if index == 0 { "*" } else { "" }.to_string(),
        ]);
    }
    let mut widths = [0; 6];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

pub fn run(command: &Command, argv: Vec<OsString>) -> anyhow::Result<Status> {
    let (app, parsed) = args::parse_for_app(argv, command)?;
    let as_json = match parsed.format.as_deref() {
        None => false,
        Some("json") => true,
        Some(other) => {
            return Err(command.usage_error(format!("unknown format {other:?} (only json)")))
        }
    };
    trigger::ensure_app(&app)?;
    let host = Host::from_env();
    // Read-only: no lock, no repair (docs/deploy.md, "Read-only commands").
    let deploys = app_deploys(&host, &app)?;
    if as_json {
        println!("{}", json(&deploys)?);
    } else if deploys.is_empty() {
        output::info(format!(
            "{app} has no deploys yet on its deploy branch {}",
            state::deploy_branch(&host, &app)?
        ));
    } else {
        output::section(format!("{app} deploys, newest first"));
        print!("{}", table(&deploys));
    }
    Ok(Status::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::ImageId;
    use crate::record::DeployRecord;
    use crate::repo::CommitInfo;

    fn commit(id: &str, message: &str) -> CommitInfo {
        CommitInfo {
            id: id.to_string(),
            tree: "t".to_string(),
            author_name: "Jane".to_string(),
            author_email: "jane@example.com".to_string(),
            date: "2026-01-02T03:04:05+00:00".to_string(),
            message: message.to_string(),
        }
    }

    fn sample() -> Vec<Deploy> {
        let record = DeployRecord {
            image: "app:v2".to_string(),
            image_id: ImageId::from_hex(&"ab".repeat(32)).unwrap(),
            command: "image:from".to_string(),
            repo_digest: None,
        };
        vec![
            Deploy {
                commit: commit(&"1".repeat(40), &record.message("Deploy app:v2")),
                record: Some(record),
            },
            Deploy {
                commit: commit(&"2".repeat(40), "Fix the homepage"),
                record: None,
            },
        ]
    }

    #[test]
    fn table_marks_live_and_pushes() {
        let text = table(&sample());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("COMMIT        DATE"), "{text}");
        assert!(lines[1].starts_with(
            "111111111111  2026-01-02T03:04:05+00:00  Jane <jane@example.com>  app:v2"
        ));
        assert!(lines[1].ends_with("abababababab  *"), "{text}");
        assert!(lines[2].contains("(git push)"), "{text}");
        assert!(lines[2].ends_with('-'), "{text}");
    }

    #[test]
    fn json_has_full_values() {
        let value: serde_json::Value = serde_json::from_str(&json(&sample()).unwrap()).unwrap();
        assert_eq!(value[0]["commit"], "1".repeat(40));
        assert_eq!(value[0]["image_id"], format!("sha256:{}", "ab".repeat(32)));
        assert_eq!(value[0]["command"], "image:from");
        assert_eq!(value[0]["live"], true);
        assert_eq!(value[0]["image_deploy"], true);
        assert_eq!(value[1]["image"], serde_json::Value::Null);
        assert_eq!(value[1]["live"], false);
        assert_eq!(value[1]["image_deploy"], false);
        assert_eq!(json(&[]).unwrap(), "[]");
    }
}
