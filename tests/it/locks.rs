//! One lock discipline: while a command changes a lab (here a reset, the one that once broke a
//! lab when `lab stop` ran under it), every other command that would change it is refused at
//! once with the holder named; `--wait` waits for it instead; and a command killed outright
//! holds nothing. The locks live on the engine, so two machines (here two processes with their
//! own TMPDIR) driving one engine are held apart alike.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bollard::Docker;

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

/// Whether some process holds lab `lab`'s lock, as the engine shows it: its lock container
/// runs.
async fn locked(d: &Docker, lab: &str) -> bool {
    running(d, &format!("pgha-lab-lock.{lab}")).await
}

/// Waits until some process holds the lab's lock (the background reset takes it first thing).
async fn wait_until_locked(d: &Docker) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if locked(d, LAB).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
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
    wait_until_locked(&d).await;
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
    wait_until_locked(&d).await;
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

    // A reset killed outright (kill -9) holds no lock: its lock container goes within
    // seconds, by the engine alone, and the next reset runs and finishes.
    let mut reset = reset_in_background();
    wait_until_locked(&d).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    reset.kill().unwrap();
    reset.wait().unwrap();
    let killed = Instant::now();
    while locked(&d, LAB).await {
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "the killed reset's lock still holds after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("a killed holder's lock went in {:?}", killed.elapsed());
    let again = lab(&["reset", "--name", LAB]);
    assert!(
        again.ok(),
        "a reset after a killed one was blocked:\n{again}"
    );
    let check = lab(&["check", "--name", LAB]);
    assert_eq!(check.code, 0, "healthy after the second reset:\n{check}");

    lab_ok(&["destroy", "--name", LAB]);
}

/// Two creates of one lab at once, as from two machines (each its own TMPDIR): one makes the
/// lab, the other is refused, naming the first by pid and host.
#[tokio::test]
async fn two_creates_of_one_lab_make_one_lab() {
    // Lab names end with a letter.
    const LAB2: &str = "itlockb";
    let (d, _sweep) = setup(&[LAB2], None).await;
    let create = |tmp: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_lab"))
            .args(["create", "--name", LAB2, "--subnet", "10.239.0.0/24"])
            .env("TMPDIR", tmp)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the lab binary starts")
    };
    let (tmp1, tmp2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (first, second) = (create(tmp1.path()), create(tmp2.path()));
    let pids = [first.id(), second.id()];
    let runs: Vec<(i32, String)> = [first, second]
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            (out.status.code().unwrap_or(-1), err)
        })
        .collect();
    let made: Vec<usize> = (0..2).filter(|&i| runs[i].0 == 0).collect();
    assert_eq!(made.len(), 1, "exactly one create makes the lab: {runs:#?}");
    let (winner, loser) = (made[0], 1 - made[0]);
    let (code, err) = &runs[loser];
    assert_eq!(*code, 2, "the other is refused: {err}");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert!(
        err.contains(&format!("lab create --name {LAB2}"))
            && err.contains(&format!("pid {} on host {}", pids[winner], host.trim()))
            && err.contains("--wait"),
        "the refusal names the holder: {err}"
    );
    assert!(!locked(&d, LAB2).await, "the winner let go of the lock");
    lab_ok(&["destroy", "--name", LAB2]);
}
