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
                &at(LAB, via),
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
    exec_ok(
        d,
        &at(LAB, container),
        "postgres",
        &format!("psql -XAtc \"{sql}\""),
    )
    .await
}

/// A row written on the primary is read back on every replica.
/// The timeline of the primary's last checkpoint.
async fn timeline(d: &Docker, primary: &str) -> String {
    psql(
        d,
        primary,
        "SELECT timeline_id FROM pg_control_checkpoint()",
    )
    .await
}

async fn replicates(d: &Docker, primary: &str, replicas: &[String], value: &str) {
    psql(d, primary, "CREATE TABLE IF NOT EXISTS drill (v text)").await;
    psql(d, primary, &format!("INSERT INTO drill VALUES ('{value}')")).await;
    for r in replicas {
        eventually(30, &format!("row {value} on {r}"), || async {
            let (_, out) = exec(
                d,
                &at(LAB, r),
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

/// The `psql '...'` string printed under `heading` by `lab connect`.
fn conninfo(connect: &str, heading: &str) -> String {
    let after = connect
        .split(heading)
        .nth(1)
        .expect("the heading is printed");
    let line = after.lines().nth(1).expect("a psql line follows").trim();
    line.trim_start_matches("psql ")
        .trim_matches('\'')
        .to_string()
}

#[tokio::test]
async fn a_default_lab_is_healthy_survives_drills_and_resets_and_leaves_nothing() {
    let (d, _sweep) = setup(&[LAB], None).await;

    // Create: every stage reported, with its time.
    let run = lab_ok(&["create", "--name", LAB, "--subnet", SUBNET]);
    for stage in ["access", "etcd", "patroni", "backup"] {
        assert!(run.stderr.contains(&format!("✓ {stage}: ")), "{run}");
    }
    assert!(run.stderr.contains("bootstrap: access "), "{run}");

    // Checked from the inside, with the cluster's own tools.
    assert_eq!(
        exec_ok(&d, &node(1), "postgres", "ssh pgbackrest1 hostname").await,
        "pgha5"
    );
    let members = etcd_healthy(&d, 5).await;
    assert_eq!(members.len(), 5);
    let (primary, replicas) = patroni_healthy(&d, &node(1), 3).await;
    // The snapshot froze the services for a moment and let every one of them go on.
    for i in 1..=5 {
        let frozen = exec_ok(&d, &node(i), "root", "ps -eo stat=,comm= | awk '$1 ~ /^T/'").await;
        assert_eq!(frozen.trim(), "", "{}: stopped processes", node(i));
    }
    // Every file that holds a key or a password is its owner's alone, the reset snapshot
    // included.
    for i in 1..=5 {
        let secrets = exec_ok(
            &d,
            &node(i),
            "root",
            "find /var/lib/pgha-lab /var/lib/postgresql /pgha/config /etc/pgha-lab.json \
             -maxdepth 2 -type f \\( -name snapshot.tar.zst -o -name id_ed25519 -o -name \
             patroni.yaml -o -name pgpass -o -name .pgpass -o -name pgha-lab.json \\) \
             -printf '%m %p\\n'",
        )
        .await;
        let files: Vec<&str> = secrets.lines().collect();
        let expected = if i <= 3 { 6 } else { 4 };
        assert_eq!(files.len(), expected, "{}: {secrets}", node(i));
        assert!(
            files.iter().all(|f| f.starts_with("600 ")),
            "{}: {secrets}",
            node(i)
        );
    }
    // A fresh cluster is on timeline 1, as the course's is, the reset snapshot notwithstanding.
    assert_eq!(timeline(&d, &primary).await, "1");
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
        r#"pgbackrest --stanza=pgha archive-push "/pgdata/17/data/pg_wal/%f""#
    );
    assert_eq!(
        psql(&d, &primary, "SHOW password_encryption").await,
        "scram-sha-256"
    );

    // What `lab status --json` says agrees.
    let status: Value = serde_json::from_str(&lab_ok(&["status", "--name", LAB, "--json"]).stdout)
        .expect("status --json is JSON");
    let roles: Vec<&str> = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["patroni"]["role"].as_str())
        .collect();
    assert_eq!(
        roles.iter().filter(|r| **r == "primary").count(),
        1,
        "{status}"
    );
    assert_eq!(
        roles.iter().filter(|r| **r == "replica").count(),
        2,
        "{status}"
    );
    assert_eq!(
        status["etcd"]["healthy"].as_array().unwrap().len(),
        5,
        "{status}"
    );
    assert!(status["etcd"]["leader"].is_string(), "{status}");
    assert_eq!(status["backup"]["status"], "ok", "{status}");

    // The connection strings route as they say, used from inside the network.
    let connect = lab_ok(&["connect", "--name", LAB]).stdout;
    let mut published = Vec::new();
    for i in 1..=3 {
        published.push(host_port(&d, &node(i)).await.unwrap().to_string());
    }
    let from_host = format!(
        "host=127.0.0.1,127.0.0.1,127.0.0.1 port={} ",
        published.join(",")
    );
    assert!(connect.contains(&from_host), "{connect}");
    // The same strings as JSON, for scripts.
    let json = lab_ok(&["connect", "--name", LAB, "--json"]).stdout;
    let json: serde_json::Value = serde_json::from_str(&json).expect("lab connect --json");
    let primary = json["from_host"]["primary"].as_str().unwrap_or_default();
    assert!(
        primary.starts_with(&from_host) && connect.contains(primary),
        "{json}"
    );
    let inside = connect.split("From inside").nth(1).unwrap().to_string();
    for (heading, in_recovery) in [
        ("the primary, for writes:", "f"),
        ("a replica, for reads:", "t"),
    ] {
        let info = conninfo(&inside, heading);
        let got = exec_ok(
            &d,
            &node(4),
            "postgres",
            &format!("psql '{info}' -XAtc 'SELECT pg_is_in_recovery()'"),
        )
        .await;
        assert_eq!(got, in_recovery, "{heading} {info}");
    }

    // Sessions pass output and exit codes through.
    let run = lab_ok(&[
        "exec",
        "--name",
        LAB,
        &node(2),
        "--",
        "psql",
        "-XAtc",
        "SELECT 6*7",
    ]);
    assert_eq!(run.stdout.trim(), "42");
    assert_eq!(
        lab(&["exec", "--name", LAB, &node(2), "--", "false"]).code,
        1
    );
    // Without `--`: the command's own options stay its own, and -n names the lab.
    let run = lab_ok(&["exec", "-n", LAB, &node(2), "psql", "-XAtc", "SELECT 6*7"]);
    assert_eq!(run.stdout.trim(), "42", "{run}");
    let run = lab_ok(&[
        "psql",
        "--name",
        LAB,
        "--replica",
        "--",
        "-XAtc",
        "SELECT pg_is_in_recovery()",
    ]);
    assert_eq!(run.stdout.trim(), "t");
    let run = lab_ok(&["logs", "--name", LAB, &node(1), "patroni"]);
    assert!(run.stdout.contains("INFO:"), "{run}");
    let run = lab_ok(&["logs", "--name", LAB, &node(1), "patroni", "--tail", "3"]);
    assert_eq!(run.stdout.lines().count(), 3, "{run}");

    // Partition a replica, then heal it: it keeps its address and streams again.
    let cut = replicas[0].clone();
    let run = lab_ok(&["partition", "--name", LAB, &cut]);
    assert!(run.stderr.contains("unchanged"), "{run}");
    let status = lab_ok(&["status", "--name", LAB]).stdout;
    assert!(
        status
            .lines()
            .any(|l| l.starts_with(&cut) && l.contains("partitioned")),
        "{status}"
    );
    lab_ok(&["heal", "--name", LAB, &cut]);
    assert_eq!(
        address(&d, &at(LAB, &cut), "ithanet").await.unwrap(),
        format!("10.240.0.{}", 9 + cut[4..].parse::<usize>().unwrap())
    );
    let (primary, replicas) = patroni_healthy(&d, &node(1), 3).await;
    replicates(&d, &primary, &replicas, "after-heal").await;

    // A node still cut off when the lab stops is back on the network when it starts.
    lab_ok(&["partition", "--name", LAB, &cut]);

    // Stop and start: the same cluster comes back, with no crash recovery.
    let run = lab_ok(&["stop", "--name", LAB, "--json"]);
    let stopped: Value = serde_json::from_str(&run.stdout).expect("stop's JSON");
    assert_eq!(stopped["nodes"].as_array().unwrap().len(), 5, "{stopped}");
    for i in 1..=5 {
        assert!(!running(&d, &node(i)).await);
    }
    lab_ok(&["start", "--name", LAB]);
    assert!(
        address(&d, &at(LAB, &cut), "ithanet").await.is_some(),
        "{cut} is back on ithanet"
    );
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
        exec_ok(&d, &node(3), "postgres", "ssh pgha4 hostname").await,
        "pgha4"
    );

    // Switchover to a named replica.
    let target = replicas[0].clone();
    let run = lab_ok(&["switchover", "--name", LAB, "--to", &target]);
    assert!(
        run.stderr.contains(&format!("new leader {target}")),
        "{run}"
    );
    let (primary, _) = patroni_healthy(&d, &node(1), 3).await;
    assert_eq!(primary, target);

    // Kill the primary: a new leader, then the old primary rejoins as a replica.
    let run = lab_ok(&["kill", "--name", LAB, &primary]);
    assert!(run.stderr.contains("new leader"), "{run}");
    assert!(!running(&d, &at(LAB, &primary)).await);
    // Killed with PostgreSQL running, it kept its socket's lock file, whose pid may be another
    // process's (an etcd thread) once the node starts again: PostgreSQL would refuse to start.
    // The node's init removes it before anything runs.
    d.start_container(
        &at(LAB, &primary),
        None::<bollard::query_parameters::StartContainerOptions>,
    )
    .await
    .unwrap();
    eventually(
        10,
        "the killed node's stale socket lock is removed",
        || async {
            let (code, _) = exec(
                &d,
                &at(LAB, &primary),
                "root",
                "test -e /var/run/postgresql/.s.PGSQL.5432.lock",
            )
            .await;
            (code != 0).then_some(())
        },
    )
    .await;
    let survivor = (1..=3).map(node).find(|n| *n != at(LAB, &primary)).unwrap();
    let (_, _) = patroni_healthy(&d, &survivor, 2).await;
    let run = lab_ok(&["start", "--name", LAB, &primary]);
    assert!(run.stderr.contains("replica streaming from"), "{run}");
    let (new_primary, replicas) = patroni_healthy(&d, &survivor, 3).await;
    assert_ne!(new_primary, primary);
    assert!(replicas.contains(&primary));
    replicates(&d, &new_primary, &replicas, "after-failover").await;

    // Two nodes down at once, a replica and an etcd-only member, then both back together.
    let run = lab_ok(&["kill", "--name", LAB, &replicas[0]]);
    assert!(
        run.stderr
            .contains(&format!("leader {new_primary} unchanged")),
        "{run}"
    );
    let run = lab_ok(&["kill", "--name", LAB, &node(4)]);
    assert!(run.stderr.contains("etcd: 3 of 5 up"), "{run}");
    lab_ok(&["start", "--name", LAB, &replicas[0], &node(4)]);
    etcd_healthy(&d, 5).await;
    patroni_healthy(&d, &new_primary, 3).await;

    // Losing the etcd quorum, and getting it back.
    let run = lab_ok(&["etcd", "stop", "--name", LAB, &node(3), &node(4), &node(5)]);
    assert!(run.stderr.contains("2 of 5 up, no quorum"), "{run}");
    let run = lab_ok(&["etcd", "start", "--name", LAB, &node(3), &node(4), &node(5)]);
    assert!(run.stderr.contains("5 of 5 up"), "{run}");
    etcd_healthy(&d, 5).await;
    patroni_healthy(&d, &node(1), 3).await;

    // Reset: the change is gone, the cluster as bootstrapped and healthy.
    let (primary, _) = patroni_healthy(&d, &node(1), 3).await;
    psql(&d, &primary, "CREATE TABLE trainee_mistake (x int)").await;
    let run = lab_ok(&["reset", "--name", LAB]);
    assert!(
        run.stderr.contains("back to the state it was created in"),
        "{run}"
    );
    let (primary, _) = patroni_healthy(&d, &node(1), 3).await;
    // The primary the snapshot holds comes back as it was: no promotion, no new timeline.
    assert_eq!(primary, "pgha1");
    assert_eq!(timeline(&d, &primary).await, "1");
    assert_eq!(
        psql(
            &d,
            &primary,
            "SELECT count(*) FROM pg_class WHERE relname IN ('trainee_mistake', 'drill')"
        )
        .await,
        "0"
    );
    assert_eq!(etcd_healthy(&d, 5).await, members);
    backups_ok(&d).await;

    lab_ok(&["destroy", "--name", LAB]);
    assert_eq!(labelled(&d, LAB).await, (0, 0, 0));
}
