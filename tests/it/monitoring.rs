//! Monitored labs (`lab create --monitoring`): Prometheus on prometheus1 scrapes every service
//! of a default lab and of a colocated `--tls` lab (over verified https there), as its own API
//! says, asked inside the monitor node and on the published port; `lab metrics` answers with a
//! row per replica for the replication lag; a killed primary shows in the metrics (the leader
//! moves, its targets go down) and everything is healthy again after `lab start`; its data
//! survives a stop and a start, and a reset puts the monitor node back; bad input is refused
//! with exit 2.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

const LAB: &str = "itmon";
const SUBNET: &str = "10.245.0.0/24";
const TLS_LAB: &str = "itmontls";
const TLS_SUBNET: &str = "10.246.0.0/24";
/// A plain lab, for what `lab metrics` says without monitoring.
const PLAIN: &str = "itmonplain";
const PLAIN_SUBNET: &str = "10.246.1.0/24";

/// Prometheus's API on the monitor node `node`, asked inside it (not through `lab`).
async fn api(d: &bollard::Docker, node: &str, path: &str) -> Value {
    let out = exec_ok(
        d,
        node,
        "root",
        &format!("curl -fsS 'http://localhost:9090{path}'"),
    )
    .await;
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{path}: {e}: {out}"))
}

/// Every active target's (job, node, health, scrape URL).
async fn targets(d: &bollard::Docker, node: &str) -> Vec<(String, String, String, String)> {
    let answer = api(d, node, "/api/v1/targets?state=active").await;
    answer["data"]["activeTargets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (
                s(&t["labels"]["job"]),
                s(&t["labels"]["node"]),
                s(&t["health"]),
                s(&t["scrapeUrl"]),
            )
        })
        .collect()
}

/// Waits until every target is up; returns them.
async fn all_up(d: &bollard::Docker, node: &str) -> Vec<(String, String, String, String)> {
    eventually(60, "every Prometheus target up", || async {
        let t = targets(d, node).await;
        t.iter()
            .all(|(_, _, health, _)| health == "up")
            .then_some(t)
    })
    .await
}

/// `lab metrics QUERY --json` on `lab`: Prometheus's result array.
fn metrics(lab: &str, query: &str) -> Vec<Value> {
    let run = lab_ok(&["metrics", "--name", lab, query, "--json"]);
    serde_json::from_str::<Value>(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}: {run}"))
        .as_array()
        .cloned()
        .unwrap()
}

/// The nodes `lab metrics` says are the primary.
fn primaries(lab: &str) -> Vec<String> {
    metrics(lab, "patroni_primary == 1")
        .iter()
        .map(|s| s["metric"]["node"].as_str().unwrap().to_string())
        .collect()
}

/// A GET of `path` on this host's `port`: the status line and body.
fn host_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("the published port answers");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
}

#[tokio::test]
async fn a_monitored_lab_scrapes_every_service_and_sees_a_failover() {
    let (d, _sweep) = setup(&[LAB, PLAIN], None).await;
    lab_ok(&["create", "--name", LAB, "--subnet", SUBNET, "--monitoring"]);
    let monitor = format!("{LAB}6");

    // Every service's every node is a target, and all are up: guide 002's jobs, and pgBackRest's.
    let t = all_up(&d, &monitor).await;
    let count = |job: &str| t.iter().filter(|(j, ..)| j == job).count();
    assert_eq!(
        (
            count("patroni"),
            count("postgresql"),
            count("etcd"),
            count("pgbackrest")
        ),
        (3, 3, 5, 1),
        "{t:?}"
    );
    assert_eq!(count("haproxy"), 0, "the course's layout has no HAProxy");
    // Every alert and recording rule loaded and evaluates without error.
    let rules = api(&d, &monitor, "/api/v1/rules").await;
    let rules: Vec<&Value> = rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    assert!(rules.len() >= 10, "{rules:?}");
    for r in &rules {
        assert_eq!(r["health"], "ok", "{r}");
    }
    // Its page is published on the host port `lab status` names.
    let status: Value =
        serde_json::from_str(&lab_ok(&["status", "--name", LAB, "--json"]).stdout).unwrap();
    let url = status["monitoring"]["url"].as_str().unwrap().to_string();
    let port: u16 = url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(published(&d, &monitor, 9090).await, Some(port));
    let ready = host_get(port, "/-/ready");
    assert!(ready.starts_with("HTTP/1.0 200"), "{ready}");
    assert!(lab_ok(&["connect", "--name", LAB]).stdout.contains(&url));

    // Replication lag, a row per replica, once the recording rule has been evaluated after
    // the exporters' first scrape.
    let lag = eventually(30, "the replication lag recorded", || async {
        let lag = metrics(LAB, "pgha:replication_lag_bytes");
        (lag.len() == 2).then_some(lag)
    })
    .await;
    let mut replicas: Vec<&str> = lag
        .iter()
        .map(|s| s["metric"]["application_name"].as_str().unwrap())
        .collect();
    replicas.sort();
    assert_eq!(replicas, ["pgha2", "pgha3"], "{lag:?}");
    let table = lab_ok(&["metrics", "--name", LAB, "pgha:replication_lag_bytes"]).stdout;
    assert!(table.starts_with("metric"), "{table}");
    assert_eq!(table.lines().count(), 3, "{table}");

    // Bad input: a query Prometheus rejects, and a lab without monitoring.
    let bad = lab(&["metrics", "--name", LAB, "rate(up[5m]"]);
    assert_eq!(bad.code, 2, "{bad}");
    assert!(
        bad.stderr.contains("Prometheus rejected the query"),
        "{bad}"
    );
    lab_ok(&[
        "create",
        "--name",
        PLAIN,
        "--subnet",
        PLAIN_SUBNET,
        "--nodes",
        "1",
        "--stage",
        "containers",
    ]);
    let none = lab(&["metrics", "--name", PLAIN, "up"]);
    assert_eq!(none.code, 2, "{none}");
    assert!(none.stderr.contains("--monitoring"), "{none}");
    lab_ok(&["destroy", "--name", PLAIN]);

    // The primary killed: the leader moves in the metrics, and its node's targets are down.
    let before = primaries(LAB);
    assert_eq!(before.len(), 1, "{before:?}");
    lab_ok(&["kill", "--name", LAB, &before[0]]);
    let after = eventually(60, "a new primary in the metrics", || async {
        let p = primaries(LAB);
        (p.len() == 1 && p != before).then_some(p)
    })
    .await;
    let down = metrics(LAB, &format!("up{{node=\"{}\"}} == 0", before[0]));
    assert!(!down.is_empty(), "the killed node's targets are down");

    // Back after `lab start`: every target up, no alert firing, the course's check done.
    lab_ok(&["start", "--name", LAB, &before[0]]);
    all_up(&d, &monitor).await;
    eventually(60, "no alert firing", || async {
        metrics(LAB, "ALERTS{alertstate=\"firing\"}")
            .is_empty()
            .then_some(())
    })
    .await;
    lab_ok(&["check", "--name", LAB]);
    assert_eq!(primaries(LAB), after);

    // Its data survives a stop and a start.
    let samples = |lab: &str| {
        metrics(lab, "count_over_time(up{node=\"pgha4\"}[30m])")[0]["value"][1]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    let kept = samples(LAB);
    assert!(kept > 0);
    lab_ok(&["stop", "--name", LAB]);
    lab_ok(&["start", "--name", LAB]);
    assert!(
        samples(LAB) >= kept,
        "Prometheus's data was lost in a stop and start"
    );
    all_up(&d, &monitor).await;
}

#[tokio::test]
async fn a_monitored_tls_lab_scrapes_every_service_over_verified_https() {
    let (d, _sweep) = setup(&[TLS_LAB], None).await;
    lab_ok(&[
        "create",
        "--name",
        TLS_LAB,
        "--subnet",
        TLS_SUBNET,
        "--topology",
        "colocated",
        "--tls",
        "--monitoring",
    ]);
    let monitor = format!("{TLS_LAB}5");
    let t = all_up(&d, &monitor).await;
    assert_eq!(
        t.len(),
        11,
        "3 Patroni, 3 PostgreSQL, 3 etcd, HAProxy, pgBackRest: {t:?}"
    );
    for (job, node, _, url) in &t {
        assert!(url.starts_with("https://"), "{job} on {node}: {url}");
    }
    assert!(t.iter().any(|(job, ..)| job == "haproxy"));
    // etcd asks for a client certificate: without one, the scrape is refused.
    let (code, _) = exec(
        &d,
        &monitor,
        "postgres",
        "curl -fsS --cacert /pgha/certs/ca.crt https://pgha1:2379/metrics",
    )
    .await;
    assert_ne!(
        code, 0,
        "etcd served its metrics without a client certificate"
    );
    let check = lab_ok(&["check", "--name", TLS_LAB]).stdout;
    assert!(
        check.contains("Prometheus scrapes every target: 11 targets up"),
        "{check}"
    );
    // Stopped and started, the monitor node's services come back with the rest; reset (whose
    // snapshot froze Prometheus at create) puts the monitor node back too.
    lab_ok(&["stop", "--name", TLS_LAB]);
    lab_ok(&["start", "--name", TLS_LAB]);
    all_up(&d, &monitor).await;
    lab_ok(&["reset", "--name", TLS_LAB]);
    all_up(&d, &monitor).await;
    lab_ok(&["check", "--name", TLS_LAB]);
}
