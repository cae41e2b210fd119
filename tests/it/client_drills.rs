//! Drills as a client sees them, on a three-node lab without HAProxy (so the workload uses
//! libpq's multi-host read-write string): killing the primary costs a client-visible outage
//! within what ttl and loop_wait predict, and in sync mode loses no acknowledged write; a second
//! drill at the same time is refused; the PITR drill brings back exactly the rows it dropped and
//! leaves a healthy cluster that takes a new backup; `lab restore` refuses bad targets before
//! it touches anything.

use serde_json::Value;

use crate::common::*;

const LAB: &str = "itdrill";

fn drill(scenario: &str) -> Value {
    let run = lab_ok(&["drill", scenario, "--name", LAB, "--json"]);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run}"))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("a number, not {v}"))
}

#[tokio::test]
async fn a_client_sees_the_outage_the_settings_predict_loses_nothing_in_sync_mode_and_pitr_undoes_a_drop()
 {
    let (d, _sweep) = setup(&[LAB], None).await;
    lab_ok(&[
        "create",
        "--name",
        LAB,
        "--nodes",
        "3",
        "--subnet",
        "10.244.0.0/24",
    ]);

    // Asynchronous: the outage is real and within ttl ± loop_wait (plus a margin); lost writes
    // are counted (asynchronous replication may lose a few, rarely any at this pace).
    let (second, report) = std::thread::scope(|s| {
        let first = s.spawn(|| drill("kill-primary"));
        // While it runs, a second drill on the same lab is refused, one paragraph, exit 2.
        std::thread::sleep(std::time::Duration::from_secs(6));
        let second = lab(&["drill", "switchover", "--name", LAB]);
        (second, first.join().expect("the first drill"))
    });
    assert_eq!(second.code, 2, "{second}");
    assert!(
        second.stderr.contains("is changing lab itdrill right now"),
        "{second}"
    );
    assert_eq!(report["mode"], "async", "{report}");
    assert!(
        report["entry"].as_str().unwrap().contains("multi-host"),
        "{report}"
    );
    let downtime = f(&report["writes"]["downtime"]);
    let high = f(&report["predicted"]["high"]);
    assert!(
        downtime > 0.0 && downtime <= high + 10.0,
        "downtime {downtime} s against {}",
        report["predicted"]
    );
    assert!(report["lost"]["count"].is_u64(), "{report}");
    assert!(f(&report["leader"]["after"]) > 0.0, "{report}");
    assert!(
        report["writes"]["acknowledged"].as_u64().unwrap() > 100,
        "{report}"
    );
    assert!(
        !report["writes"]["errors"].as_array().unwrap().is_empty(),
        "{report}"
    );
    assert!(
        report["verdict"].as_str().unwrap().starts_with("observed "),
        "{report}"
    );
    // The drill put the lab back: every node runs and the course's check is through.
    lab_ok(&["check", "--name", LAB]);

    // Synchronous: the same drill loses no acknowledged write.
    let run = lab_ok(&["sync", "on", "--name", LAB, "--json"]);
    assert!(run.stderr.contains(" sync"), "{run}");
    let switched: Value = serde_json::from_str(&run.stdout).expect("sync's JSON");
    assert_eq!(switched["mode"], "sync", "{switched}");
    assert!(
        switched["standbys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["state"] == "sync" || s["state"] == "quorum"),
        "{switched}"
    );
    let report = drill("kill-primary");
    assert_eq!(report["mode"], "sync", "{report}");
    assert_eq!(report["lost"]["count"], 0, "{report}");
    assert!(f(&report["writes"]["downtime"]) > 0.0, "{report}");
    lab_ok(&["sync", "off", "--name", LAB]);

    // Point-in-time recovery: the dropped rows come back, identical, on a healthy cluster.
    let run = lab_ok(&["drill", "pitr", "--name", LAB, "--json"]);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["rows_back"], 1000, "{report}");
    assert_eq!(report["identical"], true, "{report}");
    let steps: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert!(steps.contains(&"take a new backup"), "{steps:?}");
    let primary = leader_of(&d).await;
    let streaming = exec_ok(
        &d,
        &primary,
        "postgres",
        "psql -XAtc \"SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'\"",
    )
    .await;
    assert_eq!(streaming.trim(), "2");
    let backups = lab_ok(&["backups", "--name", LAB, "--json"]);
    let list: Value = serde_json::from_str(&backups.stdout).unwrap();
    let list = list.as_array().unwrap();
    assert!(list.len() >= 2, "{list:?}");
    assert_eq!(list.last().unwrap()["kind"], "incr");
    let run = lab_ok(&["backup", "--name", LAB, "--type", "diff", "--json"]);
    let taken: Value = serde_json::from_str(&run.stdout).expect("backup's JSON");
    assert_eq!(taken["kind"], "diff", "{taken}");

    // Restore refuses what it cannot do, before anything changes.
    let run = lab(&["restore", "--name", LAB, "--time", "yesterday", "--yes"]);
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr.contains("not a time as PostgreSQL prints one"),
        "{run}"
    );
    let run = lab(&[
        "restore",
        "--name",
        LAB,
        "--time",
        "2001-01-01 00:00:00+00",
        "--yes",
    ]);
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr.contains("before the end of the oldest backup"),
        "{run}"
    );
    let now = exec_ok(&d, &primary, "postgres", "psql -XAtc 'SELECT now()'").await;
    let run = lab(&["restore", "--name", LAB, "--time", now.trim()]);
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("add --yes"), "{run}");
    let run = lab(&["drill", "kill-haproxy", "--name", LAB]);
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("has no HAProxy node"), "{run}");
    assert_eq!(leader_of(&d).await, primary, "nothing changed");
    lab_ok(&["check", "--name", LAB]);
}

/// The running primary's container, asked of Patroni on the first node.
async fn leader_of(d: &bollard::Docker) -> String {
    let out = exec_ok(
        d,
        "itdrill1",
        "postgres",
        "patronictl -c /pgha/config/patroni.yaml list -f json",
    )
    .await;
    let members: Value = serde_json::from_str(&out).unwrap();
    members
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["Role"] == "Leader")
        .and_then(|m| m["Member"].as_str())
        .map(|m| at(LAB, m))
        .expect("a leader")
}
