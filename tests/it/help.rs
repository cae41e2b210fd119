//! The command line's own help, with no Docker Engine needed (except `lab list --json`): every
//! command's `--help` runs and shows an example, every positional argument is described, a flag
//! means one thing wherever it appears, and the completion script is one bash can source.

use std::collections::BTreeMap;
use std::process::Command;

use crate::common::lab;

/// Every command and subcommand, as the words typed after `lab` (`["etcd", "stop"]`).
fn commands() -> Vec<(Vec<String>, clap::Command)> {
    fn walk(path: &[String], cmd: &clap::Command, out: &mut Vec<(Vec<String>, clap::Command)>) {
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let mut here = path.to_vec();
            here.push(sub.get_name().to_string());
            out.push((here.clone(), sub.clone()));
            walk(&here, sub, out);
        }
    }
    let mut cmd = pgha_lab::cli::command();
    cmd.build();
    let mut out = vec![(Vec::new(), cmd.clone())];
    walk(&[], &cmd, &mut out);
    out
}

/// A help text up to its first `;` or `.`: what the flag means, before how this command uses it.
fn meaning(help: &str) -> String {
    help.split([';', '.', '(', '['])
        .next()
        .unwrap_or("")
        .trim()
        .to_string()
}

#[test]
fn every_help_page_runs_and_shows_an_example() {
    for (path, _) in commands() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let run = lab(&args);
        assert_eq!(run.code, 0, "lab {} failed:\n{run}", args.join(" "));
        assert!(
            run.stdout.contains("Example:") || run.stdout.contains("Examples:"),
            "lab {} shows no example:\n{}",
            args.join(" "),
            run.stdout
        );
        let example = run
            .stdout
            .lines()
            .skip_while(|l| !l.starts_with("Example"))
            .nth(1)
            .unwrap_or("");
        assert!(
            example.trim_start().starts_with("lab ")
                || example.contains("lab ")
                || example.contains("lab completions"),
            "lab {}: the example does not run lab: {example:?}",
            args.join(" ")
        );
    }
}

#[test]
fn every_positional_argument_is_described() {
    for (path, cmd) in commands() {
        for arg in cmd.get_positionals() {
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            assert!(
                !help.trim().is_empty(),
                "lab {}: <{}> has no description",
                path.join(" "),
                arg.get_id()
            );
        }
    }
}

#[test]
fn a_flag_means_one_thing_everywhere() {
    // flag -> meaning -> where
    let mut seen: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for (path, cmd) in commands() {
        for arg in cmd.get_arguments().filter(|a| !a.is_positional()) {
            let Some(long) = arg.get_long() else { continue };
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            seen.entry(long.to_string())
                .or_default()
                .entry(meaning(&help))
                .or_default()
                .push(format!("lab {}", path.join(" ")));
        }
    }
    let drifts: Vec<String> = seen
        .iter()
        .filter(|(_, meanings)| meanings.len() > 1)
        .map(|(flag, meanings)| format!("--{flag}: {meanings:?}"))
        .collect();
    assert!(
        drifts.is_empty(),
        "flags with two meanings:\n{}",
        drifts.join("\n")
    );
}

#[test]
fn the_bash_completion_script_can_be_sourced() {
    let script = lab(&["completions", "bash"]);
    assert_eq!(script.code, 0, "{script}");
    let out = Command::new("bash")
        .args(["-c", "source /dev/stdin && complete -p lab"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(script.stdout.as_bytes())?;
            child.wait_with_output()
        })
        .expect("bash runs");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "bash could not source it: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("_lab"));
}

#[test]
fn the_man_page_is_made_from_the_same_definitions() {
    let page = lab(&["man"]);
    assert_eq!(page.code, 0, "{page}");
    assert!(page.stdout.starts_with(".ie"), "{}", page.stdout);
    assert!(page.stdout.contains("lab\\-destroy(1)"), "{}", page.stdout);
}

#[test]
fn list_json_parses() {
    let run = lab(&["list", "--json"]);
    assert_eq!(run.code, 0, "{run}");
    let labs: serde_json::Value = serde_json::from_str(&run.stdout).expect("lab list --json");
    for lab in labs.as_array().expect("an array of labs") {
        assert!(lab["lab"].is_string() && lab["nodes"].is_u64(), "{lab}");
    }
}
