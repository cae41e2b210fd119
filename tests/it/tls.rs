//! A secured lab (`lab create --tls`), on guide 002's layout (dedicated etcd nodes, HAProxy):
//! every plain channel is refused (etcd's client port, Patroni's REST API, PostgreSQL from the
//! host), every secured one works as the course's commands use it (etcdctl and patronictl in a
//! login shell, psql from the host with sslmode=verify-full and the exported CA, replication,
//! HAProxy's checks), changes through the REST API need its credentials, no private key is
//! readable by others and the CA's key is nowhere; drills, a point-in-time restore, check and
//! reset work as on a plain lab, and the certificates survive the reset.

use std::process::Command;

use serde_json::Value;

use crate::common::*;

const LAB: &str = "ittls";
const SUBNET: &str = "10.243.0.0/24";

fn node(i: usize) -> String {
    format!("{LAB}{i}")
}

/// psql on this host with `conninfo`: (succeeded, what it printed).
fn host_psql(conninfo: &str, sql: &str) -> (bool, String) {
    let out = Command::new("psql")
        .args([conninfo, "-XAtc", sql])
        .env("PGPASSWORD", "postgres")
        .env("PGCONNECT_TIMEOUT", "5")
        .output()
        .expect("psql on this host (the machine's PostgreSQL client) runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said.trim().to_string())
}

/// The container of the node Patroni calls primary, and the host port of its PostgreSQL.
fn primary(status: &Value) -> (String, u16) {
    let p = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["patroni"]["role"] == "primary")
        .unwrap_or_else(|| panic!("a primary in {status}"));
    (
        p["container"].as_str().unwrap().to_string(),
        p["port"].as_u64().unwrap() as u16,
    )
}

fn status() -> Value {
    serde_json::from_str(&lab_ok(&["status", "--name", LAB, "--json"]).stdout).unwrap()
}

#[tokio::test]
async fn a_tls_lab_refuses_every_plain_channel_and_works_as_the_course_does() {
    let (d, _sweep) = setup(&[LAB], None).await;
    let created = lab_ok(&[
        "create",
        "--tls",
        "--topology",
        "dedicated-etcd",
        "--name",
        LAB,
        "--subnet",
        SUBNET,
    ]);
    assert!(
        created.stderr.contains("TLS: certificates from a new CA"),
        "{created}"
    );
    // pgha1-3 (containers ittls1-3) run PostgreSQL, pgha4-6 etcd (pgha6 the repository), pgha7
    // HAProxy.
    let (pg, member, proxy) = (node(1), node(4), node(7));

    // Keys: each node holds its own key, the SSH keys, and nothing else (the CA's key is
    // nowhere), each readable by its owner alone.
    for i in 1..=7 {
        let keys = exec_ok(
            &d,
            &node(i),
            "root",
            "grep -rlIs -- '-----BEGIN .*PRIVATE KEY' /pgha /etc /root /var/lib/postgresql /tmp \
             /var/lib/pgha-lab | sort | xargs -r stat -c '%a %U %n'",
        )
        .await;
        let mut found: Vec<&str> = keys.lines().collect();
        found.retain(|l| !l.contains("/etc/ssh/ssh_host_"));
        assert_eq!(
            found,
            [
                format!("600 postgres /pgha/certs/pgha{i}.key"),
                "600 postgres /var/lib/postgresql/.ssh/id_ed25519".to_string()
            ],
            "{}: {keys}",
            node(i)
        );
        for host_key in keys.lines().filter(|l| l.contains("/etc/ssh/ssh_host_")) {
            assert!(host_key.starts_with("600 root "), "{host_key}");
        }
    }

    // etcd: plain http and https without a client certificate are refused on the client port;
    // with the node's certificate it answers; a login shell's etcdctl needs no flags.
    for (what, curl) in [
        ("plain http", "curl -fsS -m 5 http://pgha4:2379/version"),
        (
            "https without a client certificate",
            "curl -fsS -m 5 --cacert /pgha/certs/ca.crt https://pgha4:2379/version",
        ),
    ] {
        let (code, out) = exec(&d, &pg, "postgres", curl).await;
        assert_ne!(code, 0, "etcd answered {what}: {out}");
    }
    exec_ok(
        &d,
        &pg,
        "postgres",
        "curl -fsS -m 5 --cacert /pgha/certs/ca.crt --cert /pgha/certs/pgha1.crt \
         --key /pgha/certs/pgha1.key https://pgha4:2379/version",
    )
    .await;
    let members = exec_ok(&d, &member, "postgres", "etcdctl member list").await;
    assert_eq!(members.matches(", https://").count(), 6, "{members}");
    let members = exec_ok(
        &d,
        &pg,
        "root",
        "etcdctl --endpoints=$ENDPOINTS member list",
    )
    .await;
    assert_eq!(members.lines().count(), 3, "{members}");

    // Patroni's REST API: https only; reads are open, changes need its credentials.
    let (code, out) = exec(
        &d,
        &pg,
        "postgres",
        "curl -fsS -m 5 http://pgha2:8008/patroni",
    )
    .await;
    assert_ne!(code, 0, "the REST API answered plain http: {out}");
    let state = exec_ok(
        &d,
        &pg,
        "postgres",
        "curl -fsS -m 5 https://pgha2:8008/patroni",
    )
    .await;
    assert!(state.contains("\"state\": \"running\""), "{state}");
    let patch = "curl -sS -m 5 -o /dev/null -w '%{http_code}' -X PATCH \
                 -d '{\"loop_wait\": 10}' https://pgha1:8008/config";
    let refused = exec_ok(&d, &pg, "postgres", patch).await;
    assert_eq!(refused, "401", "an unauthenticated PATCH /config");
    let allowed = exec_ok(
        &d,
        &pg,
        "postgres",
        &patch.replace("-X PATCH", "-u patroni:postgres -X PATCH"),
    )
    .await;
    assert_eq!(
        allowed, "200",
        "PATCH /config with the REST API's credentials"
    );
    let members = exec_ok(&d, &pg, "postgres", "patronictl list -f json").await;
    let members: Vec<Value> = serde_json::from_str(&members).unwrap();
    assert_eq!(members.len(), 3, "{members:?}");

    // Replication streams over TLS.
    let s = status();
    let (leader, leader_port) = primary(&s);
    let secured = exec_ok(
        &d,
        &leader,
        "postgres",
        "psql -XAtc 'SELECT count(*) FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) \
         WHERE s.ssl'",
    )
    .await;
    assert_eq!(secured, "2", "both replicas stream over TLS");

    // From the host: plain refused; verify-full with the exported CA accepted, on a node and
    // through HAProxy's 5000, which reaches the primary.
    let plain = format!("host=127.0.0.1 port={leader_port} user=postgres sslmode=disable");
    let (ok, said) = host_psql(&plain, "SELECT 1");
    assert!(!ok && said.contains("no encryption"), "{said}");
    let ca = std::env::temp_dir().join(format!("{LAB}-ca.crt"));
    let ca = ca.to_str().unwrap();
    lab_ok(&["ca", "--name", LAB, "--out", ca]);
    let verified = |port: u64| {
        format!("host=127.0.0.1 port={port} user=postgres sslmode=verify-full sslrootcert={ca}")
    };
    let (ok, said) = host_psql(
        &verified(leader_port.into()),
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    );
    assert!(ok && said == "t", "{said}");
    let entry = s["haproxy"]["primary_port"].as_u64().unwrap();
    let (ok, said) = host_psql(&verified(entry), "SELECT pg_is_in_recovery()");
    assert!(ok && said == "f", "{said}");
    // HAProxy's checks run over https.
    let cfg = exec_ok(&d, &proxy, "root", "cat /etc/haproxy/haproxy.cfg").await;
    assert_eq!(cfg.matches("check-ssl verify required").count(), 6, "{cfg}");
    // The strings `lab connect` prints work as printed.
    let connect = lab_ok(&["connect", "--name", LAB]).stdout;
    let string = connect
        .lines()
        .find(|l| l.contains(&format!("port={entry} ")))
        .and_then(|l| l.trim().strip_prefix("psql '"))
        .and_then(|l| l.strip_suffix('\''))
        .unwrap_or_else(|| panic!("a string through HAProxy in {connect}"));
    assert!(
        string.contains("sslmode=verify-full sslrootcert="),
        "{string}"
    );
    let (ok, said) = host_psql(string, "SELECT pg_is_in_recovery()");
    assert!(ok && said == "f", "{string}: {said}");

    // Everything else works as on a plain lab: a drill seen through HAProxy, check, reset.
    let run = lab_ok(&["switchover", "--name", LAB]);
    assert!(run.stderr.contains("HAProxy's 5000 reached"), "{run}");
    let ca_before = exec_ok(&d, &pg, "root", "cat /pgha/certs/ca.crt").await;
    // A point-in-time restore on the new primary, from a backup taken on a standby: the
    // restored settings name another node's certificate, and the recovery must not trip on it.
    let run = lab_ok(&["drill", "pitr", "--name", LAB, "--json"]);
    let pitr: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(pitr["identical"], true, "{run}");
    lab_ok(&["reset", "--name", LAB]);
    assert_eq!(
        exec_ok(&d, &member, "root", "cat /pgha/certs/ca.crt").await,
        ca_before,
        "the certificates survive the reset"
    );
    let check = lab(&["check", "--name", LAB]);
    assert_eq!(check.code, 0, "{check}");
    assert!(check.stdout.contains("✓ TLS certificates"), "{check}");
    let _ = std::fs::remove_file(ca);
}
