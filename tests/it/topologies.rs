//! The other guides' layouts: Percona's colocated three nodes (001, 003) and 002's dedicated
//! etcd nodes, each with HAProxy in front. The right roles run on the right nodes, and a real
//! client through HAProxy's published ports reaches the primary on 5000 and a replica on 5001,
//! also after a switchover; the stats page answers on 7000.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

const COLOCATED: &str = "ittopo-c";
const DEDICATED: &str = "ittopo-d";

/// (address on the lab network, in recovery) of the server a connection through `port` on
/// this host lands on.
async fn through(port: u16) -> Result<(String, bool), String> {
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(port)
        .user("postgres")
        .password("postgres")
        .dbname("postgres")
        .connect_timeout(Duration::from_secs(3));
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let row = client
        .query_one("SELECT host(inet_server_addr()), pg_is_in_recovery()", &[])
        .await
        .map_err(|e| e.to_string())?;
    Ok((row.get(0), row.get(1)))
}

/// The lab as `lab status --json` reports it.
fn status(lab_name: &str) -> Value {
    let run = lab_ok(&["status", "--name", lab_name, "--json"]);
    serde_json::from_str(&run.stdout).expect("status --json is JSON")
}

/// Each node's roles, in node order.
fn roles(status: &Value) -> Vec<String> {
    status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["roles"].as_str().unwrap().to_string())
        .collect()
}

/// HAProxy's host port for its `which` port ("primary_port", "replicas_port", "stats_port").
fn haproxy_port(status: &Value, which: &str) -> u16 {
    status["haproxy"][which].as_u64().expect("an HAProxy port") as u16
}

/// The address of `node` (its name in the lab, or its container's) on its lab's network, from
/// status.
fn address_of(status: &Value, node: &str) -> String {
    status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == node || n["container"] == node)
        .and_then(|n| n["address"].as_str())
        .unwrap()
        .to_string()
}

fn leader(status: &Value) -> String {
    status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["patroni"]["role"] == "primary")
        .and_then(|n| n["name"].as_str())
        .expect("a primary")
        .to_string()
}

/// What HAProxy's stats page answers on this host.
async fn stats_page(port: u16) -> String {
    let host: IpAddr = [127, 0, 0, 1].into();
    let mut stream = tokio::net::TcpStream::connect((host, port))
        .await
        .expect("the stats port accepts");
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut page = String::new();
    stream.read_to_string(&mut page).await.unwrap();
    page
}

/// The checks both layouts share: HAProxy's three ports from the host, then a switchover
/// that 5000 follows.
async fn haproxy_serves_clients(lab_name: &str) {
    let s = status(lab_name);
    let primary = leader(&s);
    let (writes, reads) = (
        haproxy_port(&s, "primary_port"),
        haproxy_port(&s, "replicas_port"),
    );
    let (server, in_recovery) = through(writes).await.expect("5000 answers");
    assert_eq!(server, address_of(&s, &primary));
    assert!(!in_recovery, "5000 leads to the primary");
    let (server, in_recovery) = through(reads).await.expect("5001 answers");
    assert_ne!(server, address_of(&s, &primary));
    assert!(in_recovery, "5001 leads to a replica");
    let page = stats_page(haproxy_port(&s, "stats_port")).await;
    assert!(
        page.starts_with("HTTP/1.") && page.contains(" 200 "),
        "{page}"
    );
    assert!(page.contains("Statistics Report"), "{page}");

    let run = lab_ok(&["switchover", "--name", lab_name]);
    assert!(run.stderr.contains("HAProxy's 5000 reached"), "{run}");
    let now = leader(&status(lab_name));
    assert_ne!(now, primary);
    let want = address_of(&s, &now);
    eventually(30, "5000 reaches the new primary", || async {
        match through(writes).await {
            Ok((server, false)) if server == want => Some(()),
            _ => None,
        }
    })
    .await;
    // The old primary stays UP behind 5000 until three checks 3 s apart fail (`fall 3`), and
    // `lab check` says so until then.
    let switched = std::time::Instant::now();
    loop {
        let check = lab(&["check", "--name", lab_name]);
        if check.ok() {
            break;
        }
        assert!(
            switched.elapsed() < Duration::from_secs(30),
            "lab check does not pass 30 s after the switchover:\n{check}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test]
async fn a_colocated_lab_puts_everything_on_three_nodes_behind_haproxy() {
    let (d, _sweep) = setup(&[COLOCATED], None).await;
    lab_ok(&[
        "create",
        "--name",
        COLOCATED,
        "--topology",
        "colocated",
        "--subnet",
        "10.241.0.0/24",
    ]);
    let s = status(COLOCATED);
    assert_eq!(
        roles(&s),
        [
            "postgres,etcd",
            "postgres,etcd",
            "postgres,etcd,repo",
            "haproxy"
        ]
    );
    assert!(
        s["etcd"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("3 members"),
        "{s}"
    );
    // Every node resolves haproxy1; HAProxy runs on its own node, with the guide's file.
    let resolved = exec_ok(&d, "ittopo-c1", "postgres", "getent hosts haproxy1").await;
    assert!(
        resolved.starts_with(&address_of(&s, "ittopo-c4")),
        "{resolved}"
    );
    let cfg = exec_ok(&d, "ittopo-c4", "root", "cat /etc/haproxy/haproxy.cfg").await;
    assert!(
        cfg.contains("server pgha3 pgha3:5432 maxconn 100 check port 8008"),
        "{cfg}"
    );
    assert!(cfg.contains("on-marked-down shutdown-sessions"), "{cfg}");
    let (code, _) = exec(&d, "ittopo-c4", "root", "pgrep -x patroni || pgrep -x etcd").await;
    assert_ne!(code, 0, "the HAProxy node runs neither Patroni nor etcd");

    let connect = lab_ok(&["connect", "--name", COLOCATED]).stdout;
    assert!(
        connect.starts_with("Through HAProxy (haproxy1)"),
        "{connect}"
    );

    haproxy_serves_clients(COLOCATED).await;

    // Stop and start bring HAProxy back with the cluster.
    lab_ok(&["stop", "--name", COLOCATED]);
    let run = lab_ok(&["start", "--name", COLOCATED]);
    assert!(run.stderr.contains("HAProxy 5000 → "), "{run}");
}

#[tokio::test]
async fn a_dedicated_etcd_lab_keeps_etcd_off_the_postgres_nodes() {
    let (d, _sweep) = setup(&[DEDICATED], None).await;
    lab_ok(&[
        "create",
        "--name",
        DEDICATED,
        "--topology",
        "dedicated-etcd",
        "--subnet",
        "10.242.0.0/24",
    ]);
    let s = status(DEDICATED);
    assert_eq!(
        roles(&s),
        [
            "postgres",
            "postgres",
            "postgres",
            "etcd",
            "etcd",
            "etcd,repo",
            "haproxy"
        ]
    );
    for node in ["ittopo-d1", "ittopo-d2", "ittopo-d3"] {
        let (code, _) = exec(&d, node, "root", "pgrep -x etcd").await;
        assert_ne!(code, 0, "no etcd process on {node}");
        let vars = exec_ok(&d, node, "root", "cat /pgha/config/patroniVars").await;
        assert!(
            vars.contains("ETCD_NODES=\"pgha4:2379,pgha5:2379,pgha6:2379\""),
            "{vars}"
        );
    }
    for node in ["ittopo-d4", "ittopo-d5", "ittopo-d6"] {
        exec_ok(&d, node, "root", "pgrep -x etcd").await;
        let (code, _) = exec(&d, node, "root", "pgrep -x patroni").await;
        assert_ne!(code, 0, "no Patroni on {node}");
    }
    // A login shell's ENDPOINTS, and so the course's etcdctl commands, name the members only.
    let endpoints = exec_ok(
        &d,
        "ittopo-d1",
        "postgres",
        "echo $ENDPOINTS; etcdctl --endpoints=$ENDPOINTS endpoint health >/dev/null && echo ok",
    )
    .await;
    assert_eq!(
        endpoints,
        "pgha4:2379,pgha5:2379,pgha6:2379
ok"
    );
    // etcd1..etcd3 are the dedicated members, and the repository is the last of them.
    let hosts = exec_ok(
        &d,
        "ittopo-d1",
        "postgres",
        "getent hosts etcd1 etcd3 pgbackrest1 | awk '{print $1}'",
    )
    .await;
    let want = [
        address_of(&s, "ittopo-d4"),
        address_of(&s, "ittopo-d6"),
        address_of(&s, "ittopo-d6"),
    ]
    .join("\n");
    assert_eq!(hosts, want);

    haproxy_serves_clients(DEDICATED).await;
}
