//! `image:help`, `dokku image`, and the lines `dokku help` collects from `commands help`.

/// Each command: name with arguments, description.
const COMMANDS: &[(&str, &str)] = &[
    (
        "image:from [--build-dir DIR] [--pull] [--force] <app> <image> [<user-name> [<user-email>]]",
        "Deploy an app from a Docker image reference (pulled only when not on the host)",
    ),
    (
        "image:load [--build-dir DIR] [--force] <app> <image> [<user-name> [<user-email>]]",
        "Deploy an app from an image archive on stdin (docker image save; plain/gzip/bzip2/xz/zstd)",
    ),
    (
        "image:history <app> [--format json]",
        "List the app's deploys newest first: commit/date/author/image/image ID/live",
    ),
    (
        "image:rollback <app> [<commit>] [<user-name> [<user-email>]]",
        "Redeploy the image of an earlier image deploy (default: the one before the live one)",
    ),
    (
        "image:report [<app>] [<flag>]",
        "Display the image deploy report of one app or all apps",
    ),
    ("image:help", "Show this help"),
];

const DESCRIPTION: &str =
    "Deploy apps from Docker images, by reference or from an archive streamed on stdin";

/// The lines of `dokku help`: four spaces, command, comma, description.
pub fn help_lines() -> String {
    COMMANDS
        .iter()
        .map(|(command, description)| format!("    {command}, {description}\n"))
        .collect()
}

/// `image:help`: Dokku's usage page, with the descriptions in one column.
pub fn usage_page() -> String {
    let width = COMMANDS.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
    let mut page =
        format!("Usage: dokku image[:COMMAND]\n\n{DESCRIPTION}\n\nAdditional commands:\n");
    for (command, description) in COMMANDS {
        page.push_str(&format!("    {command:<width$}  {description}\n"));
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lines_follow_dokku_format() {
        for line in help_lines().lines() {
            assert!(line.starts_with("    image:"), "{line}");
            // `dokku help` splits each line into columns on its commas: exactly one.
            assert_eq!(line.matches(',').count(), 1, "{line}");
        }
    }

    #[test]
    fn usage_page_lists_every_command() {
        let page = usage_page();
        assert!(page.starts_with("Usage: dokku image[:COMMAND]\n\n"));
        assert!(page.contains("\nAdditional commands:\n"));
        assert_eq!(
            page.lines().filter(|l| l.starts_with("    image:")).count(),
            COMMANDS.len()
        );
    }
}
