//! `lab exercise`, on one lab with HAProxy: every exercise is started, its symptom observed with
//! the cluster's own tools (patronictl, psql, pg_stat_*, etcdctl, the logs), repaired through
//! `lab exec` as the material teaches a trainee, judged solved by `lab exercise status`, and
//! stopped; then two are stopped without a repair and the lab is proven healthy by `lab check`.
//! One lab for all: each exercise starts from the healthy lab the one before left.

use std::time::Duration;

use crate::common::*;

const LAB: &str = "itexer";
const SUBNET: &str = "10.248.0.0/24";

/// `lab exercise ARGS --name LAB`.
fn ex(args: &[&str]) -> Run {
    let mut all = vec!["exercise"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--name", LAB]);
    lab(&all)
}

/// A login shell's command on `node` as postgres (the course's PATH, PGDATA, ENDPOINTS).
fn on(node: &str, script: &str) -> Run {
    lab(&["exec", "--name", LAB, node, "bash", "-lc", script])
}

fn on_ok(node: &str, script: &str) -> String {
    let run = on(node, script);
    assert!(run.ok(), "`{script}` on {node}:\n{run}");
    run.stdout
}

fn root(node: &str, script: &str) -> String {
    let run = lab(&["exec", "--name", LAB, "--root", node, "bash", "-lc", script]);
    assert!(run.ok(), "`{script}` on {node} as root:\n{run}");
    run.stdout
}

fn psql(node: &str, query: &str) -> String {
    on_ok(node, &format!("psql -XAtq -c \"{query}\""))
        .trim()
        .to_string()
}

/// `psql` where PostgreSQL may be down a moment (restarting, rewinding): None then.
fn psql_now(node: &str, query: &str) -> Option<String> {
    let run = on(node, &format!("psql -XAtq -c \"{query}\""));
    run.ok().then(|| run.stdout.trim().to_string())
}

fn patronictl_list() -> String {
    on_ok("pgha1", "patronictl list")
}

/// Waits until `lab exercise status` says solved (exit 0).
async fn solved(secs: u64) -> Run {
    eventually(secs, "the exercise judged solved", || async {
        let run = ex(&["status"]);
        assert!(run.code == 0 || run.code == 1, "{run}");
        run.ok().then_some(run)
    })
    .await
}

/// Starts `exercise`; its symptom, the one line it prints.
fn start(exercise: &str) -> String {
    let run = ex(&["start", exercise]);
    assert!(run.ok(), "start {exercise}:\n{run}");
    assert_eq!(run.stdout.trim().lines().count(), 1, "{run}");
    run.stdout.trim().to_string()
}

fn not_solved(with: &str) {
    let run = ex(&["status"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stdout.contains(with), "{run}");
}

fn stop() {
    let run = ex(&["stop"]);
    assert!(run.ok(), "{run}");
    assert!(run.stderr.contains("the cluster is healthy"), "{run}");
    assert_eq!(ex(&["status"]).code, 2, "no exercise runs after a stop");
}

fn healthy() {
    let run = lab(&["check", "--name", LAB]);
    assert_eq!(run.code, 0, "{run}");
}

#[tokio::test]
async fn every_exercise_is_real_repaired_as_taught_judged_solved_and_stopped() {
    let (_d, _sweep) = setup(&[LAB], None).await;
    lab_ok(&["create", "--name", LAB, "--subnet", SUBNET, "--haproxy"]);

    let list = lab_ok(&["exercise", "list"]).stdout;
    assert_eq!(list.lines().count(), 9, "{list}");
    for (run, code) in [(ex(&["status"]), 2), (ex(&["hint"]), 2), (ex(&["stop"]), 2)] {
        assert_eq!(run.code, code, "{run}");
        assert!(
            run.stderr.contains("no exercise runs on lab itexer"),
            "{run}"
        );
    }

    // lagging-replica: pgha3 applies WAL an hour late, 64 MiB behind.
    let symptom = start("lagging-replica");
    assert!(
        symptom.contains("the replica on pgha3 is far behind"),
        "{symptom}"
    );
    let lag: f64 = psql(
        "pgha1",
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) FROM pg_stat_replication \
         WHERE application_name = 'pgha3'",
    )
    .parse()
    .unwrap();
    assert!(lag > 16.0 * 1048576.0, "pgha3 is only {lag} bytes behind");
    assert_eq!(psql("pgha3", "SHOW recovery_min_apply_delay"), "1h");
    let again = ex(&["start", "quorum-lost"]);
    assert_eq!(again.code, 2, "{again}");
    assert!(
        again
            .stderr
            .contains("exercise lagging-replica already runs"),
        "{again}"
    );
    let check = lab(&["check", "--name", LAB]);
    assert_eq!(
        check.code, 1,
        "an unsolved exercise fails lab check:\n{check}"
    );
    assert!(check.stdout.contains("exercise lagging-replica"), "{check}");
    for n in 1..=3 {
        let hint = ex(&["hint"]);
        assert!(
            hint.stdout.starts_with(&format!("hint {n} of 3:")),
            "{hint}"
        );
    }
    assert!(
        ex(&["hint"])
            .stdout
            .contains("reload pgha_patroni_cluster pgha3")
    );
    on_ok(
        "pgha3",
        "sed -i '/recovery_min_apply_delay/d' /pgha/config/patroni.yaml && patronictl reload \
         pgha_patroni_cluster pgha3 --force",
    );
    let done = solved(60).await;
    assert!(done.stdout.contains("with 3 of 3 hints"), "{done}");
    assert!(
        lab(&["check", "--name", LAB]).ok(),
        "solved: lab check passes"
    );
    stop();

    // etcd-unreachable: pgha3's Patroni pointed at a port where no etcd listens.
    let symptom = start("etcd-unreachable");
    assert!(symptom.contains("pgha3"), "{symptom}");
    let log = on_ok("pgha3", "tail -n 50 /var/log/patroni/patroni.log");
    eventually(30, "Patroni on pgha3 says it waits on etcd", || async {
        on_ok("pgha3", "tail -n 20 /var/log/patroni/patroni.log")
            .contains("waiting on etcd")
            .then_some(())
    })
    .await;
    let pgha3 = patronictl_list()
        .lines()
        .find(|l| l.contains("pgha3"))
        .map(str::to_string);
    assert!(
        !pgha3.as_deref().unwrap_or_default().contains("streaming"),
        "{pgha3:?}\n{log}"
    );
    not_solved("pgha3 is not in the cluster");
    on_ok(
        "pgha3",
        "sed -i 's/:2739/:2379/g' /pgha/config/patroni.yaml && /stopPatroni && /startPatroni",
    );
    solved(90).await;
    stop();

    // quorum-lost: a majority of etcd's members stopped.
    let symptom = start("quorum-lost");
    assert!(symptom.contains("read-only"), "{symptom}");
    let write = on(
        "pgha1",
        "psql -XAtq -c 'CREATE TABLE exercise_probe (x int)'",
    );
    assert!(
        !write.ok() && write.stderr.contains("read-only transaction"),
        "{write}"
    );
    let health = on("pgha1", "etcdctl --endpoints=$ENDPOINTS endpoint health");
    assert!(!health.ok(), "etcd answers as healthy:\n{health}");
    not_solved("etcd has no quorum");
    let hints: Vec<String> = (0..3).map(|_| ex(&["hint"]).stdout).collect();
    let down = hints[2]
        .split("are down (")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .expect("the third hint names the members down")
        .to_string();
    for node in down.split(", ") {
        on_ok(
            node,
            "nohup etcd --config-file /pgha/config/etcd.yaml >> /var/log/etcd/etcd-standalone.log \
             2>&1 < /dev/null &",
        );
    }
    solved(120).await;
    stop();

    // broken-replica: pgha3's control file gone.
    let symptom = start("broken-replica");
    assert!(symptom.contains("pgha3 will not start"), "{symptom}");
    assert!(!on("pgha3", "pg_controldata $PGDATA").ok());
    eventually(30, "patronictl list shows pgha3 down", || async {
        let list = patronictl_list();
        list.lines()
            .any(|l| l.contains("pgha3") && !l.contains("streaming"))
            .then_some(())
    })
    .await;
    on_ok(
        "pgha1",
        "patronictl reinit pgha_patroni_cluster pgha3 --force --wait",
    );
    solved(90).await;
    stop();

    // split-brain: pgha3 promoted outside Patroni, with orders of its own.
    let symptom = start("split-brain");
    assert!(symptom.contains("pgha1 and pgha3"), "{symptom}");
    assert_eq!(psql("pgha1", "SELECT pg_is_in_recovery()"), "f");
    assert_eq!(psql("pgha3", "SELECT pg_is_in_recovery()"), "f");
    let ids = |node: &str| -> Vec<String> {
        psql(node, "SELECT id FROM exercise_orders ORDER BY id")
            .lines()
            .map(str::to_string)
            .collect()
    };
    let (leader, rogue) = (ids("pgha1"), ids("pgha3"));
    let lost: Vec<String> = rogue
        .iter()
        .filter(|i| !leader.contains(i))
        .cloned()
        .collect();
    assert_eq!(lost.len(), 3, "leader {leader:?}, rogue {rogue:?}");
    on_ok("pgha3", "pg_ctl -D $PGDATA stop -m fast && /startPatroni");
    eventually(90, "pgha3 streams again", || async {
        (psql_now("pgha3", "SELECT pg_is_in_recovery()").as_deref() == Some("t")
            && patronictl_list()
                .lines()
                .any(|l| l.contains("pgha3") && l.contains("streaming")))
        .then_some(())
    })
    .await;
    not_solved("which writes were lost is not answered yet");
    let wrong = ex(&["answer", &lost[0]]);
    assert!(wrong.ok(), "{wrong}");
    not_solved("are not the ones pgha3 took alone");
    let mut answer = vec!["answer"];
    answer.extend(lost.iter().map(String::as_str));
    assert!(ex(&answer).ok());
    solved(30).await;
    stop();

    // archive-failing: the repository's archive read-only.
    let symptom = start("archive-failing");
    assert!(symptom.contains("WAL segments pile up"), "{symptom}");
    let failed: u64 = psql("pgha1", "SELECT failed_count FROM pg_stat_archiver")
        .parse()
        .unwrap();
    assert!(failed > 0, "archiving has not failed");
    let check = on("pgha5", "pgbackrest --stanza=pgha check");
    assert!(!check.ok(), "pgbackrest check passes:\n{check}");
    on_ok("pgha5", "chmod -R u+w /pgha/data/pgbackrest/archive");
    on_ok("pgha5", "pgbackrest --stanza=pgha backup");
    solved(120).await;
    stop();

    // hba-locked-out: replication refused by the pg_hba in the DCS.
    let symptom = start("hba-locked-out");
    assert!(symptom.contains("stopped streaming"), "{symptom}");
    eventually(60, "the replicas say why they are refused", || async {
        on_ok("pgha2", "cat $PGDATA/log/*.log")
            .contains("no pg_hba.conf entry for replication connection")
            .then_some(())
    })
    .await;
    assert!(on_ok("pgha1", "patronictl show-config").contains("10.0.1.0/24"));
    on_ok(
        "pgha1",
        "patronictl show-config > /tmp/dcs.yaml && sed -i 's|10.0.1.0/24|0.0.0.0/0|' \
         /tmp/dcs.yaml && patronictl edit-config --force --replace /tmp/dcs.yaml",
    );
    solved(120).await;
    stop();

    // tune-rto: the measured settings, judged by a kill-primary drill.
    let symptom = start("tune-rto");
    assert!(symptom.contains("under 25 s"), "{symptom}");
    not_solved("no kill-primary drill since the exercise started");
    on_ok(
        "pgha1",
        "patronictl edit-config --force -s ttl=20 -s loop_wait=10 -s retry_timeout=5",
    );
    root(
        "pgha6",
        "sed -i 's/^\\( *default-server\\) .*/\\1 inter 3s fastinter 1s downinter 1s fall 3 \
         rise 2 on-marked-down shutdown-sessions/' /pgha/config/haproxy.cfg && startHaproxy",
    );
    // etcd's leader off the nodes PostgreSQL runs on, so that it does not die with the primary.
    let members = on_ok("pgha1", "etcdctl --endpoints=$ENDPOINTS member list");
    let pgha4 = members
        .lines()
        .find(|l| l.contains("pgha4"))
        .and_then(|l| l.split(',').next())
        .expect("pgha4 is an etcd member")
        .trim()
        .to_string();
    on_ok(
        "pgha1",
        &format!("etcdctl --endpoints=$ENDPOINTS move-leader {pgha4}"),
    );
    // Patroni takes the new settings on its next loop.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let drill = lab(&["drill", "kill-primary", "--name", LAB, "--json"]);
    assert!(drill.ok(), "{drill}");
    let status = ex(&["status"]);
    assert_eq!(status.code, 0, "{status}\nthe drill:\n{}", drill.stdout);
    stop();
    let config = on_ok("pgha1", "patronictl show-config");
    assert!(
        config.contains("ttl: 30"),
        "stop puts the settings back:\n{config}"
    );
    assert!(!root("pgha6", "cat /pgha/config/haproxy.cfg").contains("fastinter"));

    // A class: started, judged in a table, stopped, on every lab of the prefix.
    let run = lab(&["exercise", "start", "lagging-replica", "--class", LAB]);
    assert!(run.ok(), "{run}");
    // The drill moved the primary: the replica held back is whichever replica is last.
    assert!(
        run.stdout.starts_with("itexer: the replica on pgha"),
        "{run}"
    );
    let table = lab(&["exercise", "status", "--class", LAB]);
    assert_eq!(table.code, 1, "{table}");
    let row = table
        .stdout
        .lines()
        .find(|l| l.starts_with(LAB))
        .unwrap_or_default();
    assert!(
        row.contains("lagging-replica") && row.contains("not solved"),
        "{table}"
    );
    assert!(lab(&["exercise", "stop", "--class", LAB]).ok());

    // Stopped without a repair, the lab is healthy again.
    for exercise in ["split-brain", "broken-replica"] {
        start(exercise);
        stop();
        healthy();
    }
}
