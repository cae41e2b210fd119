//! A class over two Docker Engines: this machine's, and the project's second engine
//! (scripts/second-engine.sh, started here when it is not running; scripts/test.sh stops it),
//! reached as a remote one would be — over tcp:// with TLS, and its ports published on
//! 127.0.0.2, so that anything assuming an engine's ports are on 127.0.0.1 fails here.

use std::collections::HashMap;
use std::process::Command;
use std::time::Instant;

use bollard::Docker;

use crate::common::*;

/// The second engine as scripts/second-engine.sh reports it.
struct Engine2 {
    vars: HashMap<String, String>,
}

impl Engine2 {
    /// Starts it (nothing happens when it runs) and reads how it is reached.
    fn start() -> Engine2 {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/second-engine.sh");
        let out = Command::new(script)
            .arg("start")
            .output()
            .expect("scripts/second-engine.sh runs");
        assert!(
            out.status.success(),
            "the second engine did not start:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let vars = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Engine2 { vars }
    }

    fn var(&self, key: &str) -> &str {
        self.vars
            .get(key)
            .unwrap_or_else(|| panic!("second-engine.sh did not say {key}: {:?}", self.vars))
    }

    /// The engine's own client, straight to its socket (for looking, not through lab).
    async fn docker(&self) -> Docker {
        let socket = self.var("PGHA_LAB_ENGINE2_UNIX");
        Docker::connect_with_unix(socket, 120, bollard::API_DEFAULT_VERSION)
            .expect("the second engine's socket")
            .negotiate_version()
            .await
            .expect("the second engine answers")
    }

    /// Its dockerd's pid.
    fn pid(&self) -> String {
        let dir = std::path::Path::new(
            self.var("PGHA_LAB_ENGINE2_UNIX")
                .trim_start_matches("unix://"),
        )
        .parent()
        .expect("the socket's directory")
        .to_path_buf();
        std::fs::read_to_string(dir.join("dockerd.pid"))
            .expect("the second engine's pid file")
            .trim()
            .to_string()
    }
}

/// Runs `lab` with the second engine's TLS material in the environment (DOCKER_TLS_VERIFY and
/// DOCKER_CERT_PATH, as for the docker CLI's `-H tcp://…`).
fn lab_tls(e2: &Engine2, args: &[&str]) -> Run {
    let certs = e2.var("PGHA_LAB_ENGINE2_CERTS");
    lab_env(
        args,
        &[("DOCKER_TLS_VERIFY", "1"), ("DOCKER_CERT_PATH", certs)],
    )
}

fn lab_tls_ok(e2: &Engine2, args: &[&str]) -> Run {
    let run = lab_tls(e2, args);
    assert!(run.ok(), "lab {} failed:\n{run}", args.join(" "));
    run
}

/// Sends `signal` to a process (SIGSTOP / SIGCONT the second engine).
fn signal(pid: &str, signal: &str) {
    let ok = Command::new("kill")
        .args([signal, pid])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill {signal} {pid} failed");
}

/// Resumes a stopped dockerd when dropped, so a failing assertion never leaves it frozen.
struct Resume(String);

impl Drop for Resume {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.0]).status();
    }
}

/// How many labs the engine holds (by their containers' lab label).
async fn lab_containers(d: &Docker) -> usize {
    let all = d
        .list_containers(Some(bollard::query_parameters::ListContainersOptions {
            all: true,
            ..Default::default()
        }))
        .await
        .expect("the engine lists its containers");
    let labs: std::collections::BTreeSet<String> = all
        .into_iter()
        .filter_map(|c| c.labels?.get(pgha_lab::labels::LAB).cloned())
        .collect();
    labs.len()
}

const CLASS: [&str; 4] = ["itfleet-a", "itfleet-b", "itfleet-c", "itfleet-d"];

#[tokio::test]
async fn a_class_over_two_engines_is_made_used_listed_reset_and_removed_on_both() {
    let (d, _sweep) = setup(&CLASS, None).await;
    let e2 = Engine2::start();
    let d2 = e2.docker().await;
    sweep(&d2, &CLASS).await;
    let _sweep2 = Sweep::on(d2.clone(), &CLASS);
    // The second engine starts without the image (as a fresh one has none), so that the create
    // ships it.
    let _ = d2
        .remove_image(
            image(),
            None::<bollard::query_parameters::RemoveImageOptions>,
            None,
        )
        .await;
    let tcp = e2.var("PGHA_LAB_ENGINE2_TCP").to_string();
    let engines = ["--engine", "default", "--engine", tcp.as_str()];
    let with = |args: &[&str]| -> Vec<String> {
        args.iter()
            .chain(engines.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let run_with = |args: &[&str]| {
        let args = with(args);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        lab_tls_ok(&e2, &args)
    };

    // Four labs with HAProxy, placed two on each engine (each whole on one), the image shipped
    // to the second, which has none of its own. Room is counted in labs: a lab of someone
    // else's on the first engine (not in CI) still leaves the split even.
    let others = lab_containers(&d).await;
    let started = Instant::now();
    // --publish-host for the second engine: what it names is kept on its labs and used.
    let publish_host = format!("{tcp}=127.0.0.2");
    let made = run_with(&[
        "create",
        "--count",
        "4",
        "--name",
        "itfleet",
        "--haproxy",
        "--publish-host",
        &publish_host,
    ]);
    eprintln!(
        "class of 4 over two engines made in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let mut on_first = Vec::new();
    for lab in CLASS {
        let (here, there) = (labelled(&d, lab).await.0, labelled(&d2, lab).await.0);
        assert!(
            (here == 6 && there == 0) || (here == 0 && there == 6),
            "lab {lab} is not whole on one engine: {here} containers here, {there} there\n{made}"
        );
        if here == 6 {
            on_first.push(lab);
        }
    }
    if others <= 1 {
        assert_eq!(
            on_first.len(),
            2,
            "the class is not split evenly: {on_first:?}\n{made}"
        );
    }
    assert!(
        made.stderr.contains("shipped from default"),
        "no image was shipped:\n{made}"
    );
    let far: Vec<&str> = CLASS
        .iter()
        .copied()
        .filter(|l| !on_first.contains(l))
        .collect();

    // Every lab healthy, found on its engine by name among the two.
    for lab in CLASS {
        let run = run_with(&["check", "-n", lab, "--json"]);
        let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("check's JSON");
        assert_eq!(report["done"], true, "lab {lab} is not done:\n{run}");
    }

    // `lab list` over both: the four, each with its engine.
    let list = run_with(&["list"]);
    for lab in CLASS {
        let line = list
            .stdout
            .lines()
            .find(|l| l.starts_with(lab))
            .unwrap_or_else(|| panic!("{lab} is not listed:\n{list}"));
        let engine = if on_first.contains(&lab) {
            "default"
        } else {
            tcp.as_str()
        };
        assert!(
            line.contains(engine),
            "{lab} is not shown on {engine}:\n{list}"
        );
    }

    // Where each lab's ports are reached: the first engine's on loopback; the second's as
    // --publish-host said, kept on its nodes.
    for lab in CLASS {
        let run = run_with(&["status", "-n", lab, "--json"]);
        let status: serde_json::Value = serde_json::from_str(&run.stdout).expect("status JSON");
        let (engine, host) = if on_first.contains(&lab) {
            ("default", "127.0.0.1")
        } else {
            (tcp.as_str(), "127.0.0.2")
        };
        assert_eq!(status["engine"], engine, "{run}");
        assert_eq!(status["host"], host, "{run}");
    }
    let node = d2
        .inspect_container(&at(far[0], "pgha1"), None)
        .await
        .expect("the far lab's first node");
    let labels = node.config.and_then(|c| c.labels).unwrap_or_default();
    assert_eq!(
        labels.get(pgha_lab::labels::REACH).map(String::as_str),
        Some("127.0.0.2")
    );

    // A lab of the second engine: its connection strings name 127.0.0.2, and psql on this host
    // gets the primary through them.
    let lab = far[0];
    let run = run_with(&["connect", "-n", lab, "--json"]);
    let strings: serde_json::Value = serde_json::from_str(&run.stdout).expect("connect's JSON");
    let primary = strings["haproxy"]["primary"]
        .as_str()
        .expect("a HAProxy string")
        .to_string();
    assert!(primary.contains("host=127.0.0.2 "), "{primary}");
    let routed = strings["from_host"]["primary"]
        .as_str()
        .unwrap()
        .to_string();
    for conninfo in [&primary, &routed] {
        let out = Command::new("psql")
            .args([conninfo.as_str(), "-XAtc", "SELECT pg_is_in_recovery()"])
            .output()
            .expect("psql runs");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "f",
            "psql {conninfo}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // A switchover drill there measures through the same address.
    let drill = run_with(&["drill", "switchover", "-n", lab]);
    let said = format!("{}{}", drill.stdout, drill.stderr);
    assert!(
        said.contains("127.0.0.2:"),
        "the drill did not go through 127.0.0.2:\n{drill}"
    );

    // `reset --class` over both engines resets all four.
    let reset = run_with(&["reset", "--class", "itfleet", "--yes"]);
    for lab in CLASS {
        assert!(reset.stderr.contains(lab), "{lab} was not reset:\n{reset}");
    }

    // The second engine stops answering: `lab list` says so, still lists the first engine's
    // labs, and exits non-zero.
    let pid = e2.pid();
    signal(&pid, "-STOP");
    let resume = Resume(pid);
    let args = with(&["list"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let list = lab_tls(&e2, &args);
    drop(resume);
    assert_ne!(list.code, 0, "{list}");
    assert!(
        list.stderr
            .contains(&format!("engine {tcp} is unreachable")),
        "{list}"
    );
    for lab in CLASS {
        assert_eq!(
            list.stdout.contains(lab),
            on_first.contains(&lab),
            "{lab}:\n{list}"
        );
    }

    // `destroy --class` over both removes every lab on each.
    run_with(&["destroy", "--class", "itfleet", "--yes"]);
    for lab in CLASS {
        assert_eq!(
            labelled(&d, lab).await,
            (0, 0, 0),
            "{lab} left on the first engine"
        );
        assert_eq!(
            labelled(&d2, lab).await,
            (0, 0, 0),
            "{lab} left on the second engine"
        );
    }
}

/// Environment variables for a `lab` run.
type Env<'a> = [(&'a str, &'a str)];

#[tokio::test]
async fn engines_are_reached_every_way_and_a_bad_one_is_named_before_anything_is_made() {
    let (d, _sweep) = setup(&["itbad"], None).await;
    let e2 = Engine2::start();
    let (unix, tcp, ssh) = (
        e2.var("PGHA_LAB_ENGINE2_UNIX"),
        e2.var("PGHA_LAB_ENGINE2_TCP"),
        e2.var("PGHA_LAB_ENGINE2_SSH"),
    );
    let certs = e2.var("PGHA_LAB_ENGINE2_CERTS");
    let ssh_config = e2.var("PGHA_LAB_SSH_CONFIG");
    let good = [
        ("DOCKER_TLS_VERIFY", "1"),
        ("DOCKER_CERT_PATH", certs),
        ("PGHA_LAB_SSH_CONFIG", ssh_config),
    ];

    // The second engine over a socket, tcp with TLS and ssh: the same daemon each time.
    let run = lab_env(
        &[
            "engines", "--json", "--engine", unix, "--engine", tcp, "--engine", ssh,
        ],
        &good,
    );
    assert!(run.ok(), "{run}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(rows.len(), 3, "{run}");
    for row in &rows {
        assert!(row["error"].is_null(), "{row}");
        assert_eq!(row["version"], rows[0]["version"], "{run}");
        assert!(row["memory_bytes"].as_u64().unwrap() > 0, "{row}");
    }

    // A lab made, used and removed over ssh (every request through `ssh … docker system
    // dial-stdio`, execs and uploads among them), leaving no ssh behind.
    let d2 = e2.docker().await;
    sweep(&d2, &["itssh"]).await;
    let _sweep2 = Sweep::on(d2.clone(), &["itssh"]);
    let over_ssh = |args: &[&str]| {
        // --engine first: what follows exec's `--` is the node's command.
        let mut all = vec!["--engine", ssh];
        all.extend(args);
        let run = lab_env(&all, &good);
        assert!(run.ok(), "lab {} failed:\n{run}", all.join(" "));
        run
    };
    over_ssh(&["create", "-n", "itssh", "--stage", "access"]);
    let run = over_ssh(&["exec", "-n", "itssh", "pgha2", "--", "hostname"]);
    assert_eq!(run.stdout.trim(), "pgha2", "{run}");
    over_ssh(&["destroy", "-n", "itssh"]);
    assert_eq!(labelled(&d2, "itssh").await, (0, 0, 0));
    let ssh_left = Command::new("pgrep")
        .args(["-f", "docker system dial-stdio"])
        .output()
        .expect("pgrep runs");
    assert!(
        ssh_left.stdout.is_empty(),
        "ssh processes left: {}",
        String::from_utf8_lossy(&ssh_left.stdout)
    );

    // A CA that did not sign the daemon's certificate.
    let wrong = tempfile::tempdir().unwrap();
    for file in ["cert.pem", "key.pem"] {
        std::fs::copy(format!("{certs}/{file}"), wrong.path().join(file)).unwrap();
    }
    std::fs::copy(format!("{certs}/cert.pem"), wrong.path().join("ca.pem")).unwrap();
    let wrong_ca = wrong.path().to_str().unwrap();

    // Each bad engine: refused with a line naming it and what went wrong, nothing made on the
    // good engine given with it.
    let bad: [(&str, &Env, &str); 6] = [
        ("http://127.0.0.2:23760", &good, "not a Docker host URL"),
        ("teach9", &good, "there is no Docker context \"teach9\""),
        (
            "unix:///nonexistent/docker.sock",
            &good,
            "/nonexistent/docker.sock does not exist",
        ),
        (
            tcp,
            &[("DOCKER_TLS_VERIFY", "1"), ("DOCKER_CERT_PATH", wrong_ca)],
            "certificate was refused",
        ),
        (
            "ssh://nobody@127.0.0.1:23722",
            &good,
            "cannot be reached over ssh",
        ),
        (
            "tcp://127.0.0.2:1",
            &good,
            "nothing answers at tcp://127.0.0.2:1",
        ),
    ];
    for (engine, env, says) in bad {
        let run = lab_env(
            &[
                "create", "-n", "itbad", "--engine", "default", "--engine", engine,
            ],
            env,
        );
        assert_ne!(run.code, 0, "{engine}: {run}");
        assert!(
            run.stderr.contains(says),
            "{engine}: expected {says:?}:\n{run}"
        );
        assert!(run.stderr.contains(engine), "{engine} is not named:\n{run}");
        assert_eq!(
            labelled(&d, "itbad").await,
            (0, 0, 0),
            "{engine}: something was made"
        );
    }
}

#[tokio::test]
async fn a_class_past_26_labs_is_named_in_two_letters() {
    let run = lab_ok(&["create", "--count", "30", "--name", "itmany", "--dry-run"]);
    for name in ["itmany-aa", "itmany-az", "itmany-bd"] {
        assert!(
            run.stdout.contains(&format!("lab {name}")),
            "{name}:\n{run}"
        );
    }
    assert!(!run.stdout.contains("itmany-be"), "{run}");
}
