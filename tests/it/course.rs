//! The course by hand: on a `lab create --stage access` lab, the main course's commands from
//! "Create etcd configuration files" through "Create a backup", typed verbatim, as the course
//! prints them, through `lab exec`, as postgres — in a lab that is not the default one (its
//! containers are ithand1 ... ithand5), whose nodes answer to the course's names inside as every
//! lab's do. `lab check` follows along, the files end up identical to those `lab create` writes,
//! and `lab reset` takes the lab back to where the exercise starts.

use std::collections::HashMap;

use serde_json::Value;

use crate::common::*;

const HAND: &str = "ithand";
const MADE: &str = "itmade";

/// Types `command` on node pgha`node` of the hand-built lab, in a postgres login shell.
fn typed(node: usize, command: &str) -> Run {
    let node = format!("pgha{node}");
    let run = lab(&["exec", "--name", HAND, &node, "--", "bash", "-lc", command]);
    assert!(run.ok(), "`{command}` on {node} failed:\n{run}");
    run
}

fn check(lab_name: &str) -> Run {
    lab(&["check", "--name", lab_name])
}

/// Patroni's member list on the first node, as JSON rows.
fn members() -> Vec<Value> {
    let out = lab(&[
        "exec",
        "--name",
        HAND,
        "pgha1",
        "--",
        "bash",
        "-lc",
        "patronictl -c /pgha/config/patroni.yaml list -f json",
    ]);
    serde_json::from_str(out.stdout.trim()).unwrap_or_default()
}

/// The course's pgBackRest files, as the course prints them (the unit tests of `render` hold
/// `lab`'s own against the same text).
const REPO_CONF: &str = include_str!("../course/pgbackrest-repo.conf");
const DB_CONF: &str = include_str!("../course/pgbackrest-db.conf");

/// The shell a trainee types to write `text` to the node's pgbackrest.conf.
fn written(text: &str) -> String {
    format!("cat > /pgha/config/pgbackrest.conf <<'EOF'\n{text}EOF")
}

/// The files a node's configuration is made of, as `cat` shows them, with the lab's own
/// addresses replaced by placeholders so that two labs can be compared.
async fn files(d: &bollard::Docker, lab_name: &str, node: usize) -> HashMap<String, String> {
    let nodelist = exec_ok(d, &format!("{lab_name}1"), "postgres", "echo $NODELIST").await;
    let mut out = HashMap::new();
    for file in [
        "etcd.yaml",
        "patroniVars",
        "patroni.yaml",
        "createRoles.sh",
        "pgbackrest.conf",
    ] {
        let (_, text) = exec(
            d,
            &format!("{lab_name}{node}"),
            "root",
            &format!("cat /pgha/config/{file}"),
        )
        .await;
        let text = nodelist
            .split_whitespace()
            .filter_map(|pair| pair.split_once(':'))
            .fold(text, |t, (name, ip)| {
                t.replace(ip, &format!("<ip-of-{name}>"))
            });
        out.insert(file.to_string(), text);
    }
    out
}

#[tokio::test]
async fn the_course_typed_by_hand_builds_the_same_lab_that_check_follows_and_reset_restores() {
    let (d, _sweep) = setup(&[HAND, MADE], None).await;
    lab_ok(&["create", "--name", HAND, "--stage", "access"]);
    let start = check(HAND);
    assert_eq!(start.code, 1, "{start}");
    assert!(
        start.stdout.contains("✗ etcd configured") && start.stdout.contains("/etcdSetup.sh -y"),
        "{start}"
    );

    // Create etcd configuration files: from a root shell, as the course does it.
    let root = lab(&[
        "exec",
        "--name",
        HAND,
        "pgha1",
        "--root",
        "--",
        "bash",
        "-c",
        "sudo -E -u postgres /bin/bash -l -c '/etcdSetup.sh -y'",
    ]);
    assert!(root.ok(), "{root}");
    assert!(root.stdout.contains("name: pgha1\n"), "{root}");
    assert!(
        root.stdout.contains(
            "export ENDPOINTS=\"pgha1:2379,pgha2:2379,pgha3:2379,pgha4:2379,pgha5:2379\""
        ),
        "{root}"
    );
    // The course's names inside, the lab's own containers outside.
    assert_eq!(typed(2, "hostname").stdout.trim(), "pgha2");
    let status = lab_ok(&["status", "--name", HAND]).stdout;
    assert!(status.contains("pgha2 (ithand2)"), "{status}");
    let nodelist = typed(1, "echo $NODELIST").stdout.trim().to_string();
    assert!(nodelist.starts_with("pgha1:"), "{nodelist}");
    for i in 2..=5 {
        typed(
            1,
            &format!("ssh pgha{i} \"export NODELIST='{nodelist}'; /etcdSetup.sh -y\""),
        );
    }
    let pgha5 = typed(1, "ssh pgha5 \"cat /pgha/config/etcd.yaml\"").stdout;
    assert!(pgha5.starts_with("name: pgha5\n"), "{pgha5}");

    // Start etcd, here and on the remaining nodes.
    typed(
        1,
        "nohup etcd --config-file /pgha/config/etcd.yaml > /var/log/etcd/etcd-standalone.log 2>&1 &",
    );
    for i in 2..=5 {
        typed(
            1,
            &format!(
                "ssh pgha{i} \"nohup etcd --config-file /pgha/config/etcd.yaml > \
                 /var/log/etcd/etcd-standalone.log 2>&1 &\""
            ),
        );
    }
    eventually(30, "five etcd members started", || async {
        let out = typed(1, "etcdctl member list").stdout;
        (out.matches(", started, ").count() == 5).then_some(())
    })
    .await;
    let status = typed(
        1,
        "etcdctl --write-out=table --endpoints=$ENDPOINTS endpoint status",
    )
    .stdout;
    assert_eq!(status.matches(":2379 |").count(), 5, "{status}");

    // Part-way: etcd is done, Patroni is next.
    let midway = check(HAND);
    assert_eq!(midway.code, 1, "{midway}");
    assert!(
        midway.stdout.contains("✓ etcd quorum")
            && midway.stdout.contains("✗ Patroni configured on pgha1")
            && midway.stdout.contains("/patroniSetup.sh"),
        "{midway}"
    );

    // Patroni setup and start on pgha1, then on the remaining nodes one at a time.
    typed(1, "cp -p /createRoles.sh /pgha/config/");
    typed(1, "echo $PGDATA; rm -rf /pgdata/17/data");
    let setup = typed(1, "/patroniSetup.sh").stdout;
    assert!(
        setup.contains("Configuration loaded successfully from /pgha/config/patroniVars."),
        "{setup}"
    );
    typed(1, "/startPatroni");
    eventually(60, "pgha1 leads", || async {
        members()
            .iter()
            .any(|r| r["Role"] == "Leader" && r["State"] == "running")
            .then_some(())
    })
    .await;
    for i in 2..=3 {
        let out = typed(
            1,
            &format!(
                "ssh pgha{i} \"cp -p /createRoles.sh /pgha/config; rm -rf /pgdata/17/data/; \
                 /patroniSetup.sh\""
            ),
        )
        .stdout;
        assert!(out.contains("Configuration loaded successfully"), "{out}");
        typed(1, &format!("ssh pgha{i} \"/startPatroni\""));
    }
    eventually(120, "a leader and two streaming replicas", || async {
        let rows = members();
        let streaming = rows.iter().filter(|r| r["State"] == "streaming").count();
        let tl1 = rows.iter().all(|r| r["TL"] == 1);
        (streaming == 2 && tl1).then_some(())
    })
    .await;

    // pgBackRest: the repository host, the database servers, the stanza.
    typed(5, &written(REPO_CONF));
    typed(1, &written(DB_CONF));
    typed(
        1,
        "cd /pgha/config; scp pgbackrest.conf pgha2:/pgha/config/; \
         scp pgbackrest.conf pgha3:/pgha/config/",
    );
    typed(5, "pgbackrest --stanza=pgha stanza-create");
    let info = typed(5, "pgbackrest --stanza=pgha info").stdout;
    assert!(info.contains("status: error (no valid backups)"), "{info}");

    // archive_command through Patroni (edit-config, non-interactively), a restart, a WAL
    // switch without a password prompt, and the full backup from pgbackrest1.
    typed(
        1,
        "patronictl -c /pgha/config/patroni.yaml edit-config --force -p \
         'archive_command=pgbackrest --stanza=pgha archive-push \"/pgdata/17/data/pg_wal/%f\"'",
    );
    typed(
        1,
        "patronictl -c /pgha/config/patroni.yaml restart pgha_patroni_cluster --force",
    );
    eventually(60, "the cluster back after its restart", || async {
        let rows = members();
        let streaming = rows.iter().filter(|r| r["State"] == "streaming").count();
        (streaming == 2 && rows.iter().all(|r| r.get("Pending restart").is_none())).then_some(())
    })
    .await;
    typed(1, "psql -h pgha1 -c \"SELECT pg_switch_wal()\"");
    typed(
        1,
        "ssh pgbackrest1 \"pgbackrest  --stanza=pgha --type=full backup\"",
    );
    let info = typed(1, "ssh pgbackrest1 \"pgbackrest  --stanza=pgha info\"").stdout;
    assert!(
        info.contains("status: ok") && info.contains("full backup: "),
        "{info}"
    );

    let done = check(HAND);
    assert_eq!(done.code, 0, "{done}");
    assert!(
        done.stdout.contains("every step of the course is done"),
        "{done}"
    );
    let json: Value = serde_json::from_str(&lab_ok(&["check", "--name", HAND, "--json"]).stdout)
        .expect("check --json is JSON");
    assert_eq!(json["done"], true);
    // The bootstrap finds everything in place and changes nothing.
    let again = lab_ok(&["bootstrap", "--name", HAND]);
    assert!(again.stderr.contains("everything was in place"), "{again}");

    // `lab create` writes the very files the trainee's commands wrote.
    lab_ok(&["create", "--name", MADE]);
    for node in 1..=5 {
        assert_eq!(
            files(&d, HAND, node).await,
            files(&d, MADE, node).await,
            "node {node}"
        );
    }
    // Its fresh cluster is on timeline 1, as the course's is.
    let made = exec_ok(
        &d,
        &format!("{MADE}1"),
        "postgres",
        "patronictl -c /pgha/config/patroni.yaml list -f json",
    )
    .await;
    let rows: Vec<Value> = serde_json::from_str(&made).unwrap();
    assert!(rows.iter().all(|r| r["TL"] == 1), "{made}");
    lab_ok(&["destroy", "--name", MADE]);

    // Reset takes the finished lab back to where the exercise starts: the access stage.
    lab_ok(&["reset", "--name", HAND]);
    let back = check(HAND);
    assert_eq!(back.code, 1, "{back}");
    assert!(
        back.stdout.contains("✓ ssh between nodes") && back.stdout.contains("✗ etcd configured"),
        "{back}"
    );
    let left = exec_ok(
        &d,
        &format!("{HAND}1"),
        "root",
        "ls -A /pgha/config; ls -A /pgdata/17; pgrep -x 'etcd|patroni|postgres' || true",
    )
    .await;
    assert_eq!(
        left.split_whitespace().collect::<Vec<_>>(),
        // The image's empty placeholders behind /etc/haproxy/haproxy.cfg and /etc/pgbackrest.conf.
        ["haproxy.cfg", "pgbackrest.conf"]
    );

    // The helper's other forms: member names from the etcdN aliases (-e), the service
    // manager's format (no -y), and a clear word when NODELIST is lost (su - postgres).
    let aliased = typed(1, "/etcdSetup.sh -y -e").stdout;
    assert!(
        aliased.starts_with("name: etcd1\ninitial-cluster: \"etcd1=http://")
            && aliased.contains(",etcd5=http://")
            && aliased.contains("export ENDPOINTS=\"etcd1:2379,"),
        "{aliased}"
    );
    let plain = typed(1, "/etcdSetup.sh; cat /pgha/config/patroniVars").stdout;
    assert!(
        plain.starts_with("ETCD_NAME=pgha1\nETCD_INITIAL_CLUSTER=\"")
            && plain.contains("written to /pgha/config/etcd.conf")
            && plain.contains("NODE_NAME=\"pgha1\""),
        "{plain}"
    );
    let lost = lab(&[
        "exec",
        "--name",
        HAND,
        "pgha1",
        "--",
        "env",
        "-u",
        "NODELIST",
        "/etcdSetup.sh",
        "-y",
    ]);
    assert_eq!(lost.code, 1, "{lost}");
    assert!(
        lost.stderr.contains("sudo -E -u postgres /bin/bash -l"),
        "{lost}"
    );

    lab_ok(&["destroy", "--name", HAND]);
    assert_eq!(labelled(&d, HAND).await, (0, 0, 0));
}
