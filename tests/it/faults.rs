//! The faults users cause, on one lab: a create killed with SIGKILL during the Patroni stage,
//! a refused --replace, a reset with one node's snapshot gone, a reset interrupted with
//! SIGINT. None of them loses or strands the lab; each says where the lab stands.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

const LAB: &str = "itfault";
const TAG: &str = "fault";

fn sql(query: &str) -> String {
    lab_ok(&["psql", "--name", LAB, "--", "-XAtc", query])
        .stdout
        .trim()
        .to_string()
}

/// `lab check` finds every step of the course done: the lab is whole and healthy.
fn healthy() {
    let run = lab(&["check", "--name", LAB]);
    assert_eq!(run.code, 0, "{run}");
}

fn list_line() -> String {
    lab_ok(&["list"])
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("{LAB} ")))
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn a_lab_survives_the_faults_users_cause() {
    let (d, _sweep) = setup(&[LAB], Some(TAG)).await;

    // A create killed hard while Patroni bootstraps.
    let mut create = Command::new(env!("CARGO_BIN_EXE_lab"))
        .args(["create", "--name", LAB, "--nodes", "3"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("lab create starts");
    let stderr = BufReader::new(create.stderr.take().unwrap());
    for line in stderr.lines() {
        if line.expect("create's progress").starts_with("✓ etcd") {
            break;
        }
    }
    // Patroni is being started by now; the create dies in the middle of it.
    std::thread::sleep(Duration::from_secs(3));
    create.kill().expect("SIGKILL");
    let _ = create.wait();
    assert!(list_line().contains("unfinished (etcd)"), "{}", list_line());
    let status = lab_ok(&["status", "--name", LAB]).stdout;
    assert!(
        status.contains("unfinished: its create stopped after stage etcd"),
        "{status}"
    );
    let again = lab(&["create", "--name", LAB, "--nodes", "3"]);
    assert_eq!(again.code, 2, "{again}");
    assert!(
        again.stderr.contains("did not finish")
            && again
                .stderr
                .contains(&format!("lab bootstrap --name {LAB}"))
            && again.stderr.contains("--replace"),
        "{again}"
    );
    // `lab bootstrap` finishes it from wherever it stands, whatever already runs.
    lab_ok(&["bootstrap", "--name", LAB]);
    assert!(list_line().contains(" running "), "{}", list_line());
    healthy();

    // A --replace that cannot be planned leaves the old lab exactly as it was.
    foreign_network(&d, "pgha-it-fault-taken", "10.237.0.0/24", TAG).await;
    let refused = lab(&[
        "create",
        "--name",
        LAB,
        "--nodes",
        "3",
        "--replace",
        "--subnet",
        "10.237.0.0/24",
    ]);
    assert_ne!(refused.code, 0, "{refused}");
    assert!(refused.stderr.contains("pgha-it-fault-taken"), "{refused}");
    assert!(!refused.stderr.contains("destroy lab"), "{refused}");
    healthy();

    // A reset with one node's snapshot gone refuses, and touches nothing.
    sql("CREATE TABLE kept_by_the_refusal (x int)");
    exec_ok(
        &d,
        &format!("{LAB}2"),
        "root",
        "rm /var/lib/pgha-lab/snapshot.tar.zst",
    )
    .await;
    let refused = lab(&["reset", "--name", LAB]);
    assert_eq!(refused.code, 2, "{refused}");
    assert!(
        refused.stderr.contains("pgha2 has no snapshot")
            && refused
                .stderr
                .contains("No node's data or services were touched"),
        "{refused}"
    );
    assert_eq!(
        sql("SELECT count(*) FROM pg_class WHERE relname = 'kept_by_the_refusal'"),
        "1"
    );
    healthy();
    // The bootstrap sees the snapshot is not whole and takes one anew, on every node.
    let run = lab_ok(&["bootstrap", "--name", LAB]);
    assert!(run.stderr.contains("snapshot for `lab reset`"), "{run}");

    // A reset interrupted with SIGINT finishes first; the next one works all the same.
    sql("CREATE TABLE trainee_mistake (x int)");
    let reset = Command::new(env!("CARGO_BIN_EXE_lab"))
        .args(["reset", "--name", LAB])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("lab reset starts");
    std::thread::sleep(Duration::from_millis(1500));
    let _ = Command::new("kill")
        .args(["-INT", &reset.id().to_string()])
        .status();
    let out = reset.wait_with_output().expect("lab reset ends");
    let said = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        // Interrupted: the reset in progress was finished, and said so.
        Some(130) => assert!(said.contains("Ctrl-C: finishing the reset"), "{said}"),
        // It had finished before the signal arrived.
        Some(0) => {}
        other => panic!("reset after SIGINT ended with {other:?}: {said}"),
    }
    healthy();
    lab_ok(&["reset", "--name", LAB]);
    healthy();
    assert_eq!(
        sql("SELECT count(*) FROM pg_class WHERE relname = 'trainee_mistake'"),
        "0"
    );

    lab_ok(&["destroy", "--name", LAB]);
    assert_eq!(labelled(&d, LAB).await, (0, 0, 0));
}
