//! A way in for each trainee (`lab create --access ssh`, `lab class sheet|rotate`), and labs
//! that cannot reach each other: logged into with OpenSSH's own client using the sheet's
//! credentials, then probed from inside one lab towards the other. Every probe that must fail
//! is matched by the same probe that must succeed (towards the lab's own nodes and entry), so
//! a broken probe cannot pass for isolation.

use std::path::Path;
use std::process::{Command, Stdio};

use bollard::Docker;
use bollard::query_parameters::{InspectContainerOptions, InspectNetworkOptions};
use serde_json::Value;

use crate::common::*;

/// A host address that is not loopback but stays on this machine: the default bridge's
/// gateway (docker0), which only this host and its containers reach. Publishing there makes
/// the labs "exposed" (each gets its own postgres password) without opening them to a LAN.
async fn exposed_address(d: &Docker) -> String {
    let bridge = d
        .inspect_network("bridge", None::<InspectNetworkOptions>)
        .await
        .expect("Docker's default bridge network");
    let config = bridge
        .ipam
        .and_then(|i| i.config)
        .and_then(|c| c.into_iter().next())
        .expect("the default bridge has an address range");
    // Docker names the gateway only when it was configured; by default it is the subnet's
    // first address.
    config.gateway.unwrap_or_else(|| {
        let subnet: ipnet::Ipv4Net = config.subnet.expect("a subnet").parse().unwrap();
        subnet.hosts().next().unwrap().to_string()
    })
}

/// The sheet's rows for the labs named `prefix`-..., by lab.
fn sheet(prefix: &str) -> Vec<Value> {
    let run = lab_ok(&["class", "sheet", "--name", prefix, "--json"]);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("sheet JSON: {e}\n{run}"))
}

fn row<'a>(rows: &'a [Value], lab: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["lab"] == lab)
        .unwrap_or_else(|| panic!("no row for {lab} in {rows:?}"))
}

/// OpenSSH's client, as a trainee runs it: to `host`:`port` as root, with `password` (through
/// SSH_ASKPASS, so no sshpass is needed) or the private key `key`; `remote` is run there.
/// Exit code and what it printed (stdout then stderr).
fn ssh(
    host: &str,
    port: u64,
    password: Option<&str>,
    key: Option<&Path>,
    remote: &str,
) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let askpass = dir.path().join("askpass");
    std::fs::write(&askpass, "#!/bin/sh\nprintf '%s\\n' \"$ACCESS_TEST_PW\"\n").unwrap();
    std::fs::set_permissions(
        &askpass,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let mut cmd = Command::new("ssh");
    cmd.args(["-p", &port.to_string()])
        .args(["-o", "StrictHostKeyChecking=no"])
        .args(["-o", "UserKnownHostsFile=/dev/null"])
        .args(["-o", "LogLevel=ERROR"])
        .args(["-o", "ConnectTimeout=10"])
        .args(["-o", "NumberOfPasswordPrompts=1"]);
    match (password, key) {
        (Some(pw), _) => {
            cmd.args(["-o", "PreferredAuthentications=password"])
                .args(["-o", "PubkeyAuthentication=no"])
                .env("SSH_ASKPASS", &askpass)
                .env("SSH_ASKPASS_REQUIRE", "force")
                .env("ACCESS_TEST_PW", pw);
        }
        (None, Some(key)) => {
            cmd.args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i"])
                .arg(key);
        }
        (None, None) => panic!("a password or a key"),
    }
    let out = cmd
        .arg(format!("root@{host}"))
        .arg(remote)
        .stdin(Stdio::null())
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .expect("OpenSSH's ssh client runs (scripts/test.sh installs openssh-client)");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// What a trainee does first: log in, find themselves root on the first node, become postgres
/// as the course does and ask PostgreSQL something.
const FIRST_STEPS: &str = "hostname; id -u; sudo -E -u postgres /bin/bash -lc 'psql -XtAc \"select 1\"; echo \"pgdata=$PGDATA\"'";

fn logs_in(host: &str, port: u64, password: Option<&str>, key: Option<&Path>, node: &str) {
    let (code, out) = ssh(host, port, password, key, FIRST_STEPS);
    assert_eq!(code, 0, "ssh into {node} failed: {out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.get(..4),
        Some(&[node, "0", "1", "pgdata=/pgdata/17/data"][..]),
        "{out}"
    );
}

/// A bash probe run as root inside a node: "open" or "closed" for each host:port given, in
/// order, by a TCP connection with a 3 s limit.
fn tcp_probe(targets: &[(String, u16)]) -> String {
    targets
        .iter()
        .map(|(host, port)| {
            format!(
                "if timeout 3 bash -c 'exec 3<>/dev/tcp/{host}/{port}' 2>/dev/null; then echo \
                 open; else echo closed; fi"
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

async fn probe(d: &Docker, node: &str, targets: &[(String, u16)]) -> Vec<String> {
    let (_, out) = exec(d, node, "root", &tcp_probe(targets)).await;
    out.lines().map(str::to_string).collect()
}

/// Inside `node` as root: ssh to `host`:`port` with `password`, the way a trainee in that lab
/// could try another lab's entry (the node has OpenSSH's client, and ssh's askpass is a file).
async fn ssh_from(d: &Docker, node: &str, host: &str, port: u64, password: &str) -> i64 {
    let script = format!(
        "printf '#!/bin/sh\\necho {password}\\n' > /root/askpass && chmod 700 /root/askpass && \
         SSH_ASKPASS=/root/askpass SSH_ASKPASS_REQUIRE=force timeout 20 ssh -p {port} \
         -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
         -o PreferredAuthentications=password -o PubkeyAuthentication=no \
         -o NumberOfPasswordPrompts=1 root@{host} true < /dev/null; rc=$?; rm -f /root/askpass; \
         exit $rc"
    );
    exec(d, node, "root", &script).await.0
}

/// psql inside `node`, to `host`:`port` as postgres with `password`; its exit code.
async fn psql_from(d: &Docker, node: &str, host: &str, port: u64, password: &str) -> i64 {
    let script = format!(
        "PGPASSWORD={password} PGCONNECT_TIMEOUT=5 psql -X -h {host} -p {port} -U postgres \
         -d postgres -tAc 'select 1' </dev/null"
    );
    exec(d, node, "postgres", &script).await.0
}

#[tokio::test]
async fn trainees_get_in_with_the_sheet_and_their_labs_cannot_reach_each_other() {
    let labs = ["itacc-two-a", "itacc-two-b"];
    let (d, _sweep) = setup(&labs, None).await;
    let host = exposed_address(&d).await;
    // Lab b's trainee sends a key; lab a's gets a password.
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("trainee");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "itacc-two-b"])
        .arg("-f")
        .arg(&key)
        .status()
        .expect("ssh-keygen runs");
    assert!(made.success());
    let fingerprint = String::from_utf8(
        Command::new("ssh-keygen")
            .arg("-lf")
            .arg(key.with_extension("pub"))
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let key_pub = key.with_extension("pub");
    let common = ["--nodes", "3", "--access", "ssh", "--publish", &host];
    let create = |name: &str, subnet: &str, extra: &[&str]| {
        let mut args = vec!["create", "--name", name, "--subnet", subnet];
        args.extend(common);
        args.extend(extra);
        lab_ok(&args)
    };
    create("itacc-two-a", "10.220.1.0/24", &[]);
    create(
        "itacc-two-b",
        "10.220.2.0/24",
        &["--trainee-key", key_pub.to_str().unwrap()],
    );

    // The sheet: a line per lab, each with its own entry and postgres password.
    let rows = sheet("itacc-two");
    assert_eq!(rows.len(), 2, "{rows:?}");
    let (a, b) = (
        row(&rows, "itacc-two-a").clone(),
        row(&rows, "itacc-two-b").clone(),
    );
    for r in [&a, &b] {
        assert_eq!(r["host"], host.as_str());
        assert_eq!(r["user"], "root");
        let pg = r["postgres_password"].as_str().unwrap();
        assert!(pg.len() == 19 && pg != "postgres", "{r}");
    }
    assert_ne!(a["postgres_password"], b["postgres_password"]);
    assert_ne!(a["ssh_port"], b["ssh_port"]);
    let a_pw = a["password"]
        .as_str()
        .expect("lab a has a password")
        .to_string();
    assert!(b["password"].is_null());
    let b_fp = b["key_fingerprint"].as_str().unwrap();
    assert!(fingerprint.contains(b_fp), "{fingerprint} vs {b_fp}");
    let (a_port, b_port) = (
        a["ssh_port"].as_u64().unwrap(),
        b["ssh_port"].as_u64().unwrap(),
    );
    // Nothing of it in what `docker inspect` shows.
    for node in ["itacc-two-a1", "itacc-two-b1"] {
        let c = d
            .inspect_container(node, None::<InspectContainerOptions>)
            .await
            .unwrap();
        let shown = serde_json::to_string(&c).unwrap();
        assert!(
            !shown.contains(&a_pw),
            "{node}'s inspect shows a's password"
        );
        for r in [&a, &b] {
            assert!(!shown.contains(r["postgres_password"].as_str().unwrap()));
        }
        let privileged = c.host_config.and_then(|h| h.privileged);
        assert_ne!(privileged, Some(true), "{node} is privileged");
    }
    // `lab connect` gives the lab's own postgres password.
    let connect = lab_ok(&["connect", "--name", "itacc-two-a"]).stdout;
    assert!(
        connect.contains(a["postgres_password"].as_str().unwrap()),
        "{connect}"
    );

    // In, with OpenSSH's real client, as the course starts: on the first node, pgha1 in
    // every lab (its container is itacc-two-a1).
    logs_in(&host, a_port, Some(&a_pw), None, "pgha1");
    logs_in(&host, b_port, None, Some(&key), "pgha1");
    // Each entry takes its own credentials only.
    let (code, out) = ssh(&host, b_port, Some(&a_pw), None, "true");
    assert_ne!(code, 0, "a's password opened b: {out}");
    let (code, out) = ssh(&host, a_port, None, Some(&key), "true");
    assert_ne!(code, 0, "b's key opened a: {out}");

    // From inside lab a, as root: lab b's nodes do not answer; a's own do (and b's own answer
    // inside b), so the probe itself works.
    let ports = [22u16, 5432, 8008, 2379];
    let towards = |prefix: &str| -> Vec<(String, u16)> {
        (10..=12)
            .flat_map(|i| ports.map(|p| (format!("{prefix}.{i}"), p)))
            .collect()
    };
    let closed = vec!["closed".to_string(); 12];
    let open = vec!["open".to_string(); 12];
    assert_eq!(
        probe(&d, "itacc-two-a1", &towards("10.220.2")).await,
        closed
    );
    assert_eq!(probe(&d, "itacc-two-b1", &towards("10.220.2")).await, open);
    assert_eq!(probe(&d, "itacc-two-a1", &towards("10.220.1")).await, open);
    // Through the host's address: b's entry and database refuse a's credentials, which open a's.
    let pg_port = |r: &Value| r["postgres_ports"][0].as_u64().unwrap();
    let a_pg = a["postgres_password"].as_str().unwrap();
    assert_eq!(ssh_from(&d, "itacc-two-a1", &host, a_port, &a_pw).await, 0);
    assert_ne!(ssh_from(&d, "itacc-two-a1", &host, b_port, &a_pw).await, 0);
    assert_eq!(
        psql_from(&d, "itacc-two-a1", &host, pg_port(&a), a_pg).await,
        0
    );
    assert_ne!(
        psql_from(&d, "itacc-two-a1", &host, pg_port(&b), a_pg).await,
        0
    );
    // No way to the engine: no socket in any node, nor its TCP ports on the gateways.
    for lab_name in labs {
        for i in 1..=3 {
            let node = format!("{lab_name}{i}");
            let (code, out) = exec(
                &d,
                &node,
                "root",
                "for s in /var/run/docker.sock /run/docker.sock; do [ -e $s ] && echo $s; done; true",
            )
            .await;
            assert!(code == 0 && out.trim().is_empty(), "{node}: {out}");
        }
    }
    let engine_ports: Vec<(String, u16)> = ["10.220.1.1", host.as_str()]
        .iter()
        .flat_map(|h| [2375u16, 2376].map(|p| (h.to_string(), p)))
        .chain([(host.clone(), a_port as u16)])
        .collect();
    assert_eq!(
        probe(&d, "itacc-two-a1", &engine_ports).await,
        ["closed", "closed", "closed", "closed", "open"]
    );

    // A reset keeps the entry and its credentials.
    lab_ok(&["reset", "--name", "itacc-two-a"]);
    assert_eq!(row(&sheet("itacc-two"), "itacc-two-a"), &a);
    logs_in(&host, a_port, Some(&a_pw), None, "pgha1");

    // Rotation: the old password fails, the new one works; postgres too, and a reset after it
    // keeps the new postgres password.
    lab_ok(&["class", "rotate", "--name", "itacc-two-a"]);
    let rotated = row(&sheet("itacc-two"), "itacc-two-a").clone();
    let new_pw = rotated["password"].as_str().unwrap();
    let new_pg = rotated["postgres_password"].as_str().unwrap();
    assert_ne!(new_pw, a_pw);
    assert_ne!(new_pg, a_pg);
    let (code, out) = ssh(&host, a_port, Some(&a_pw), None, "true");
    assert_ne!(code, 0, "the old password still works: {out}");
    logs_in(&host, a_port, Some(new_pw), None, "pgha1");
    assert_ne!(
        psql_from(&d, "itacc-two-b1", &host, pg_port(&a), a_pg).await,
        0
    );
    assert_eq!(
        psql_from(&d, "itacc-two-b1", &host, pg_port(&a), new_pg).await,
        0
    );
    let connect = lab_ok(&["connect", "--name", "itacc-two-a"]).stdout;
    assert!(connect.contains(new_pg), "{connect}");
    lab_ok(&["reset", "--name", "itacc-two-a"]);
    assert_eq!(
        psql_from(&d, "itacc-two-b1", &host, pg_port(&a), new_pg).await,
        0
    );
    logs_in(&host, a_port, Some(new_pw), None, "pgha1");
    // Lab b's key is kept by a rotation of the whole class.
    lab_ok(&["class", "rotate", "--name", "itacc-two"]);
    logs_in(&host, b_port, None, Some(&key), "pgha1");
}

#[tokio::test]
async fn a_class_missing_a_trainee_key_is_refused_before_anything_is_made() {
    let labs = ["itacc-x", "itacc-y"];
    let (d, _sweep) = setup(&labs, None).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("itacc-x.pub"),
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILA6TNnAGuG5jlwVg4Sn9Cd25xMir6SxilMpIufs2RIP x\n",
    )
    .unwrap();
    let run = lab(&[
        "create",
        "-n",
        "itacc-x",
        "-n",
        "itacc-y",
        "--access",
        "ssh",
        "--trainee-key",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("itacc-y.pub"), "{run}");
    assert_eq!(run.stderr.trim().lines().count(), 1, "one paragraph: {run}");
    for lab_name in labs {
        assert_eq!(labelled(&d, lab_name).await, (0, 0, 0));
    }
    // A class that is not there is refused too, saying how to make one.
    let run = lab(&["class", "sheet", "--name", "itacc-none-such"]);
    assert_eq!(run.code, 2, "{run}");
}
