//! `args::parse` with the `image:from` entry of the command table on arbitrary argv vectors (the input split on NUL;
//! arguments need not be UTF-8). A first argument `ENV=X` stands for `DOKKU_APP_NAME=X`.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use dokku_image::args;
use dokku_image::command_table;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let from = command_table::find("image:from").expect("image:from is in the command table");
    let mut parts: Vec<&[u8]> = data.split(|&b| b == 0).collect();
    let mut env_app = None;
    if let Some(rest) = parts.first().and_then(|first| first.strip_prefix(b"ENV=")) {
        env_app = Some(String::from_utf8_lossy(rest).into_owned());
        parts.remove(0);
    }
    let argv: Vec<OsString> = parts
        .iter()
        .map(|p| OsString::from_vec(p.to_vec()))
        .collect();
    let result = args::parse(argv.clone(), from, env_app.clone());
    let again = args::parse(argv.clone(), from, env_app.clone());
    match (&result, &again) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "parsing is deterministic"),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        _ => panic!("parsing is deterministic"),
    }
    match result {
        Err(error) => {
            let message = error.to_string();
            assert!(
                message.ends_with(&format!("; usage: dokku image:from {}", from.synopsis)),
                "{message}"
            );
        }
        Ok(parsed) => {
            assert!(
                parsed.positionals.len() <= from.flags.max_positionals,
                "{parsed:?}"
            );
            assert!(
                parsed.fields.is_empty() && parsed.format.is_none(),
                "{parsed:?}"
            );
            if let Some(dir) = &parsed.build_dir {
                assert!(!dir.as_os_str().is_empty(), "{parsed:?}");
            }
            let app_flag = argv
                .iter()
                .any(|a| a == "--app" || a.as_encoded_bytes().starts_with(b"--app="));
            if let Some(env) = env_app.as_ref().filter(|e| !e.is_empty() && !app_flag) {
                assert_eq!(
                    parsed.app.as_ref(),
                    Some(env),
                    "DOKKU_APP_NAME gives the app"
                );
            }
            // Every positional came from the argv (none is made up or altered).
            for positional in &parsed.positionals {
                assert!(
                    argv.iter()
                        .any(|a| a.as_encoded_bytes() == positional.as_bytes()),
                    "{positional:?} is not an argument of {argv:?}"
                );
            }
            // A flag-like positional only after `--`.
            if parsed
                .positionals
                .iter()
                .any(|p| p.starts_with('-') && p.len() > 1)
            {
                assert!(argv.iter().any(|a| a == "--"), "{argv:?} -> {parsed:?}");
            }
            // `--build-dir` never swallowed the next flag.
            assert!(
                parsed
                    .build_dir
                    .as_ref()
                    .is_none_or(|dir| !dir.as_os_str().as_encoded_bytes().starts_with(b"-")),
                "{argv:?} -> {parsed:?}"
            );
            let flag_given = |name: &str| argv.iter().any(|a| a == name);
            assert!(
                !parsed.pull || flag_given("--pull"),
                "{argv:?} -> {parsed:?}"
            );
            assert!(
                !parsed.force || flag_given("--force"),
                "{argv:?} -> {parsed:?}"
            );
        }
    }
});
