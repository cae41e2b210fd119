//! A full default lab, checked from the inside with the cluster's own tools (etcdctl,
//! patronictl, psql, pgbackrest through docker exec) rather than through `lab`'s reports: healthy
//! after create, the same cluster after stop and start, gone after destroy.

use bollard::Docker;
use serde_json::Value;

use crate::common::*;

const LAB: &str = "itha";
const SUBNET: &str = "10.240.0.0/24";

fn node(i: usize) -> String {
    format!("{LAB}{i}")
}

/// etcd: every member healthy, checked with etcdctl on the first node.
async fn etcd_healthy(d: &Docker, members: usize) -> Vec<String> {
    eventually(60, "etcd endpoint health", || async {
        let (_, out) = exec(
            d,
            &node(1),
            "postgres",
            "etcdctl --endpoints=$ENDPOINTS endpoint health -w json 2>/dev/null",
        )
        .await;
        let health: Vec<Value> = serde_json::from_str(out.trim()).ok()?;
        let healthy = health.iter().filter(|h| h["health"] == true).count();
        (healthy == members).then_some(())
    })
    .await;
    let ids = exec_ok(
        d,
        &node(1),
        "postgres",
        "etcdctl member list | cut -d, -f1 | sort",
    )
    .await;
    ids.lines().map(str::to_string).collect()
}

/// Patroni as `patronictl list -f json` shows it: (leader, streaming replicas), once it shows
/// one leader and every other member streaming.
async fn patroni_healthy(d: &Docker, via: &str, members: usize) -> (String, Vec<String>) {
    eventually(
        90,
        "patronictl list: one leader, the rest streaming",
        || async {
            let (_, out) = exec(
                d,
                via,
                "postgres",
                "patronictl -c /pgha/config/patroni.yaml list -f json",
            )
            .await;
            let rows: Vec<Value> = serde_json::from_str(out.trim()).ok()?;
            let leaders: Vec<String> = rows
                .iter()
                .filter(|r| r["Role"] == "Leader" && r["State"] == "running")
                .map(|r| r["Member"].as_str().unwrap_or("").to_string())
                .collect();
            let streaming: Vec<String> = rows
                .iter()
                .filter(|r| r["Role"] == "Replica" && r["State"] == "streaming")
                .map(|r| r["Member"].as_str().unwrap_or("").to_string())
                .collect();
            (leaders.len() == 1 && streaming.len() == members - 1)
                .then(|| (leaders[0].clone(), streaming))
        },
    )
    .await
}

async fn psql(d: &Docker, container: &str, sql: &str) -> String {
    exec_ok(d, container, "postgres", &format!("psql -XAtc \"{sql}\"")).await
}

/// A row written on the primary is read back on every replica.
async fn replicates(d: &Docker, primary: &str, replicas: &[String], value: &str) {
    psql(d, primary, "CREATE TABLE IF NOT EXISTS drill (v text)").await;
    psql(d, primary, &format!("INSERT INTO drill VALUES ('{value}')")).await;
    for r in replicas {
        eventually(30, &format!("row {value} on {r}"), || async {
            let (_, out) = exec(
                d,
                r,
                "postgres",
                &format!("psql -XAtc \"SELECT count(*) FROM drill WHERE v = '{value}'\""),
            )
            .await;
            (out.trim() == "1").then_some(())
        })
        .await;
    }
}

/// pgBackRest on the repository host: status ok with at least one full backup.
async fn backups_ok(d: &Docker) {
    let out = exec_ok(
        d,
        &node(5),
        "postgres",
        "pgbackrest --stanza=pgha info --output=json",
    )
    .await;
    let info: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(info[0]["status"]["message"], "ok", "{out}");
    let full = info[0]["backup"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "full")
        .count();
    assert!(full >= 1, "{out}");
}

#[tokio::test]
async fn a_default_lab_is_healthy_survives_stop_and_start_and_leaves_nothing() {
    let d = docker().await;
    require_image(&d).await;
    sweep(&d, &[LAB]).await;

    let run = lab_ok(&["create", "--name", LAB, "--subnet", SUBNET]);
    for stage in ["access", "etcd", "patroni", "backup"] {
        assert!(run.stderr.contains(&format!("✓ {stage}: ")), "{run}");
    }
    assert!(run.stderr.contains("bootstrap: access "), "{run}");

    // ssh between nodes as postgres, as the course uses it.
    assert_eq!(
        exec_ok(&d, &node(1), "postgres", "ssh pgbackrest1 hostname").await,
        node(5)
    );

    let members = etcd_healthy(&d, 5).await;
    assert_eq!(members.len(), 5);
    let (primary, replicas) = patroni_healthy(&d, &node(1), 3).await;
    let system = psql(
        &d,
        &primary,
        "SELECT system_identifier FROM pg_control_system()",
    )
    .await;
    replicates(&d, &primary, &replicas, "before-stop").await;
    backups_ok(&d).await;
    assert_eq!(
        psql(&d, &primary, "SHOW archive_command").await,
        "pgbackrest --stanza=pgha archive-push %p"
    );
    assert_eq!(
        psql(&d, &primary, "SHOW password_encryption").await,
        "scram-sha-256"
    );

    // Stop and start: the same cluster comes back, with no crash recovery.
    lab_ok(&["stop", "--name", LAB]);
    for i in 1..=5 {
        assert!(!running(&d, &node(i)).await);
    }
    lab_ok(&["start", "--name", LAB]);
    assert_eq!(etcd_healthy(&d, 5).await, members, "the same etcd members");
    let (primary, replicas) = patroni_healthy(&d, &node(2), 3).await;
    assert_eq!(
        psql(
            &d,
            &primary,
            "SELECT system_identifier FROM pg_control_system()"
        )
        .await,
        system
    );
    for r in &replicas {
        assert_eq!(
            psql(&d, r, "SELECT count(*) FROM drill WHERE v = 'before-stop'").await,
            "1"
        );
    }
    for i in 1..=3 {
        let (code, _) = exec(
            &d,
            &node(i),
            "postgres",
            "grep -l 'was not properly shut down' /pgdata/17/data/log/*.log",
        )
        .await;
        assert_ne!(code, 0, "{} needed crash recovery", node(i));
    }
    assert_eq!(
        exec_ok(&d, &node(3), "postgres", "ssh itha4 hostname").await,
        node(4)
    );
    replicates(&d, &primary, &replicas, "after-start").await;

    lab_ok(&["destroy", "--name", LAB]);
    assert_eq!(labelled(&d, LAB).await, (0, 0, 0));
}
