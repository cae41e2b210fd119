//! One lock discipline: while a command changes a lab (here a reset, the one that once broke a
//! lab when `lab stop` ran under it), every other command that would change it is refused at
//! once with the holder named; `--wait` waits for it instead; and a command killed outright
//! holds nothing.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

const LAB: &str = "itlock";

/// `lab reset --name itlock`, started in the background.
fn reset_in_background() -> Child {
    Command::new(env!("CARGO_BIN_EXE_lab"))
        .args(["reset", "--name", LAB])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the lab binary starts")
}

/// Waits until some process holds the lab's lock, as /proc/locks shows it (the background
/// reset takes it first thing).
fn wait_until_locked() {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        let path = format!("/tmp/pgha-lab-{LAB}.lock");
        let held = std::fs::read_to_string("/proc/locks").is_ok_and(|locks| {
            std::fs::metadata(&path).is_ok_and(|m| {
                use std::os::unix::fs::MetadataExt;
                locks
                    .lines()
                    .any(|l| l.ends_with(&format!(":{} 0 EOF", m.ino())))
            })
        });
        if held {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("lab reset did not take lab {LAB}'s lock within 10 s");
}

#[tokio::test]
async fn commands_that_change_a_lab_are_refused_while_a_reset_runs() {
    let (d, _sweep) = setup(&[LAB], None).await;
    lab_ok(&["create", "--name", LAB, "--subnet", "10.238.0.0/24"]);

    // Every changing command, against a reset in progress: refused within 2 s, naming the
    // reset, with a non-zero exit.
    let mut reset = reset_in_background();
    wait_until_locked();
    let node = format!("{LAB}2");
    let refused: [&[&str]; 6] = [
        &["stop", "--name", LAB],
        &["start", "--name", LAB],
        &["destroy", "--name", LAB],
        &["kill", "--name", LAB, &node],
        &["switchover", "--name", LAB],
        &["bootstrap", "--name", LAB],
    ];
    for args in refused {
        let started = Instant::now();
        let run = lab(args);
        let took = started.elapsed();
        assert_eq!(
            run.code,
            2,
            "lab {} was not refused:\n{run}",
            args.join(" ")
        );
        assert!(
            took < Duration::from_secs(2),
            "lab {}: {took:?}",
            args.join(" ")
        );
        assert!(
            run.stderr.contains("lab reset --name itlock") && run.stderr.contains("--wait"),
            "the refusal names the holder and the way to wait:\n{run}"
        );
    }
    assert!(
        reset.try_wait().unwrap().is_none(),
        "the reset ended before the refusals were tried; they proved nothing"
    );
    let done = reset.wait_with_output().unwrap();
    assert!(
        done.status.success(),
        "the reset failed: {}",
        String::from_utf8_lossy(&done.stderr)
    );
    let check = lab(&["check", "--name", LAB]);
    assert_eq!(
        check.code, 0,
        "the lab is healthy after the reset:\n{check}"
    );

    // `--wait`: the stop waits for the reset, then stops the lab.
    let reset = reset_in_background();
    wait_until_locked();
    let stop = lab_ok(&["stop", "--name", LAB, "--wait"]);
    assert!(stop.stderr.contains("waiting for"), "{stop}");
    let done = reset.wait_with_output().unwrap();
    assert!(
        done.status.success(),
        "the reset under a waiting stop failed"
    );
    for i in 1..=5 {
        assert!(
            !running(&d, &format!("{LAB}{i}")).await,
            "{LAB}{i} still runs"
        );
    }
    lab_ok(&["start", "--name", LAB]);

    // A reset killed outright (kill -9) holds no lock: the next reset runs and finishes.
    let mut reset = reset_in_background();
    wait_until_locked();
    std::thread::sleep(Duration::from_millis(500));
    reset.kill().unwrap();
    reset.wait().unwrap();
    let again = lab(&["reset", "--name", LAB]);
    assert!(
        again.ok(),
        "a reset after a killed one was blocked:\n{again}"
    );
    let check = lab(&["check", "--name", LAB]);
    assert_eq!(check.code, 0, "healthy after the second reset:\n{check}");

    lab_ok(&["destroy", "--name", LAB]);
}
