//! The lab lifecycle on containers alone (--stage containers): conflict-free addresses and
//! ports next to stopped foreign containers, stop/start, destroy, concurrent creates, and the
//! refusals of bad input, each leaving nothing behind.

use crate::common::*;

#[tokio::test]
async fn a_stopped_foreign_container_keeps_its_address_and_destroy_spares_it() {
    let (lab_name, tag, network) = ("itshare", "shared", "pgha-it-shared");
    let (d, _sweep) = setup(&[lab_name], Some(tag)).await;
    foreign_network(&d, network, "10.231.0.0/24", tag).await;
    // The address the lab would take first (offset 10), held only in a stopped container's
    // endpoint configuration.
    foreign_stopped_container(
        &d,
        "pgha-it-holder",
        network,
        Some("10.231.0.10"),
        None,
        tag,
    )
    .await;
    assert!(!running(&d, "pgha-it-holder").await);

    lab_ok(&[
        "create",
        "--name",
        lab_name,
        "--network",
        network,
        "--nodes",
        "3",
        "--stage",
        "containers",
    ]);
    let mut ips = Vec::new();
    for i in 1..=3 {
        ips.push(
            address(&d, &format!("{lab_name}{i}"), network)
                .await
                .unwrap(),
        );
    }
    assert_eq!(ips, ["10.231.0.11", "10.231.0.12", "10.231.0.13"]);
    let hosts = exec_ok(
        &d,
        "itshare1",
        "root",
        "getent hosts etcd2 pgbackrest1 pgha3",
    )
    .await;
    assert!(hosts.contains("10.231.0.12"), "{hosts}");
    assert!(hosts.contains("10.231.0.13     pgbackrest1"), "{hosts}");

    // The foreign container still starts, with its own address.
    d.start_container("pgha-it-holder", None).await.unwrap();
    assert!(running(&d, "pgha-it-holder").await);
    assert_eq!(
        address(&d, "pgha-it-holder", network).await.as_deref(),
        Some("10.231.0.10")
    );

    // Destroy removes the lab only: the joined network and the foreign container stay.
    let run = lab_ok(&["destroy", "--name", lab_name]);
    assert!(
        run.stderr
            .contains("3 container(s), 6 volume(s), 0 network(s) removed"),
        "{run}"
    );
    assert_eq!(labelled(&d, lab_name).await, (0, 0, 0));
    assert!(network_subnet(&d, network).await.is_some());
    assert!(running(&d, "pgha-it-holder").await);
}

#[tokio::test]
async fn a_stopped_foreign_container_publishing_a_port_is_avoided() {
    let (lab_name, tag) = ("itport", "port");
    let (d, _sweep) = setup(&[lab_name], Some(tag)).await;

    // The dry run shows the port the lab would take (6432 on a clean engine) and makes nothing.
    let plan = lab_ok(&[
        "create",
        "--name",
        lab_name,
        "--subnet",
        "10.232.0.0/24",
        "--nodes",
        "1",
        "--dry-run",
    ]);
    assert_eq!(labelled(&d, lab_name).await, (0, 0, 0));
    let port: u16 = plan
        .stdout
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in the plan:\n{plan}"));

    foreign_stopped_container(&d, "pgha-it-porter", "bridge", None, Some(port), tag).await;
    lab_ok(&[
        "create",
        "--name",
        lab_name,
        "--subnet",
        "10.232.0.0/24",
        "--nodes",
        "1",
        "--stage",
        "containers",
    ]);
    let taken = host_port(&d, "itport1").await.unwrap();
    assert_ne!(
        taken, port,
        "the lab took the port a stopped container publishes"
    );
    d.start_container("pgha-it-porter", None)
        .await
        .expect("the foreign container still starts on its port");

    lab_ok(&["destroy", "--name", lab_name]);
    assert_eq!(labelled(&d, lab_name).await, (0, 0, 0));
}

#[tokio::test]
async fn stop_and_start_keep_addresses_ports_and_aliases() {
    let lab_name = "itpower";
    let (d, _sweep) = setup(&[lab_name], None).await;
    lab_ok(&[
        "create",
        "--name",
        lab_name,
        "--subnet",
        "10.233.0.0/24",
        "--nodes",
        "3",
        "--stage",
        "containers",
    ]);
    let network = "itpowernet";
    let before = (
        address(&d, "itpower2", network).await,
        host_port(&d, "itpower2").await,
    );
    assert_eq!(before.0.as_deref(), Some("10.233.0.11"));

    lab_ok(&["stop", "--name", lab_name]);
    assert!(!running(&d, "itpower2").await);
    let list = lab_ok(&["list"]);
    assert!(
        list.stdout.lines().any(|l| l.starts_with("itpower ")
            && l.contains("stopped")
            && l.contains("10.233.0.0/24")),
        "{list}"
    );

    lab_ok(&["start", "--name", lab_name]);
    let after = (
        address(&d, "itpower2", network).await,
        host_port(&d, "itpower2").await,
    );
    assert_eq!(before, after);
    let hosts = exec_ok(
        &d,
        "itpower1",
        "root",
        "getent hosts etcd3 pgbackrest1 pgha2",
    )
    .await;
    assert!(hosts.contains("10.233.0.12     etcd3"), "{hosts}");
    assert!(hosts.contains("10.233.0.12     pgbackrest1"), "{hosts}");
    assert!(hosts.contains("10.233.0.11     pgha2"), "{hosts}");
    let nodelist = exec_ok(&d, "itpower3", "root", "echo $NODELIST").await;
    assert_eq!(
        nodelist,
        "pgha1:10.233.0.10 pgha2:10.233.0.11 pgha3:10.233.0.12"
    );
    let status = lab_ok(&["status", "--name", lab_name]);
    assert!(status.stdout.contains("pgha3 (itpower3)"), "{status}");

    lab_ok(&["destroy", "--name", lab_name]);
    assert_eq!(labelled(&d, lab_name).await, (0, 0, 0));
    assert!(
        network_subnet(&d, network).await.is_none(),
        "the lab's own network is removed"
    );
}

#[tokio::test]
async fn two_creates_at_once_never_share_a_subnet_address_or_port() {
    let labs = ["itrace-a", "itrace-b"];
    let (d, _sweep) = setup(&labs, None).await;
    let spawned: Vec<_> = labs
        .iter()
        .map(|name| {
            std::process::Command::new(env!("CARGO_BIN_EXE_lab"))
                .args([
                    "create",
                    "--name",
                    name,
                    "--nodes",
                    "3",
                    "--stage",
                    "containers",
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in spawned {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let subnets = (
        network_subnet(&d, "itrace-anet").await.unwrap(),
        network_subnet(&d, "itrace-bnet").await.unwrap(),
    );
    assert_ne!(subnets.0, subnets.1);
    let mut ports = Vec::new();
    for name in labs {
        for i in 1..=3 {
            ports.push(host_port(&d, &format!("{name}{i}")).await.unwrap());
        }
    }
    let mut unique = ports.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ports.len(), "ports shared: {ports:?}");
    lab_ok(&["destroy", "--name", "itrace-a"]);
    lab_ok(&["destroy", "--name", "itrace-b"]);
    assert_eq!(labelled(&d, "itrace-a").await, (0, 0, 0));
    assert_eq!(labelled(&d, "itrace-b").await, (0, 0, 0));
}

/// Refused input says what, which object and what to do, exits non-zero, and makes nothing.
#[tokio::test]
async fn bad_input_is_refused_clearly_and_leaves_nothing() {
    let (lab_name, tag) = ("itbad", "bad");
    let (d, _sweep) = setup(&[lab_name], Some(tag)).await;

    let refusals: [(&[&str], &str); 8] = [
        (
            &["create", "--name", lab_name, "--network", "bridge"],
            "one of Docker's own networks",
        ),
        (
            &["create", "--name", lab_name, "--network", "none"],
            "one of Docker's own networks",
        ),
        (
            &["create", "--name", lab_name, "--name", lab_name],
            "is given twice",
        ),
        (&["create", "--name", "Bad_Name"], "invalid lab name"),
        (
            &["create", "--name", lab_name, "--nodes", "0"],
            "--nodes 0 is out of range",
        ),
        (
            &["create", "--name", lab_name, "--nodes", "4"],
            "N = 2F + 1",
        ),
        (
            &["create", "--name", lab_name, "--subnet", "10.0.0.5/24"],
            "host bits set",
        ),
        (
            &["create", "--name", lab_name, "--publish", "nowhere"],
            "is not an IP address",
        ),
    ];
    for (args, says) in refusals {
        let run = lab(args);
        assert_eq!(run.code, 2, "{run}");
        assert!(run.stderr.starts_with("error: "), "{run}");
        assert!(run.stderr.contains(says), "{run}");
        assert!(
            !run.stderr.contains("panicked") && !run.stderr.contains("{ "),
            "{run}"
        );
    }

    // A subnet that overlaps an existing network is refused, naming that network.
    foreign_network(&d, "pgha-it-taken", "10.234.0.0/24", tag).await;
    let run = lab(&[
        "create",
        "--name",
        lab_name,
        "--subnet",
        "10.234.0.0/25",
        "--stage",
        "containers",
    ]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("network pgha-it-taken"), "{run}");

    // A foreign container using a node's name is named, and left alone.
    foreign_stopped_container(&d, "itbad2", "bridge", None, None, tag).await;
    let run = lab(&[
        "create",
        "--name",
        lab_name,
        "--subnet",
        "10.235.0.0/24",
        "--stage",
        "containers",
    ]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr
            .contains("a container named itbad2 already exists"),
        "{run}"
    );
    assert_eq!(labelled(&d, lab_name).await, (0, 0, 0));
    assert!(address(&d, "itbad2", "bridge").await.is_some() || !running(&d, "itbad2").await);

    // Destroying or reading a lab that does not exist.
    let run = lab_ok(&["destroy", "--name", "itnosuch"]);
    assert!(
        run.stderr.contains("there is no lab called itnosuch"),
        "{run}"
    );
    let run = lab(&["status", "--name", "itnosuch"]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("there is no lab called itnosuch"),
        "{run}"
    );
}

/// A create that fails midway removes everything it made; with --keep-on-failure it stays.
#[tokio::test]
async fn a_failed_create_rolls_back_unless_asked_to_keep() {
    let lab_name = "itfail";
    let (d, _sweep) = setup(&[lab_name], None).await;
    // A plain Debian image has none of the lab's tools, so the bootstrap's first stage fails
    // after the network, volumes and containers exist.
    let base = if d.inspect_image("pgha-lab-base:trixie").await.is_ok() {
        "pgha-lab-base:trixie"
    } else {
        "debian:trixie-slim"
    };
    let args = [
        "create",
        "--name",
        lab_name,
        "--image",
        base,
        "--nodes",
        "1",
        "--subnet",
        "10.236.0.0/24",
    ];
    let run = lab(&args);
    assert_ne!(run.code, 0, "{run}");
    assert!(run.stderr.contains("roll back lab itfail"), "{run}");
    assert_eq!(labelled(&d, lab_name).await, (0, 0, 0));

    let kept: Vec<&str> = args.iter().copied().chain(["--keep-on-failure"]).collect();
    let run = lab(&kept);
    assert_ne!(run.code, 0, "{run}");
    assert!(run.stderr.contains("left as it is for inspection"), "{run}");
    // One container, its two volumes and the markers of how far the create got (started,
    // containers), and the network.
    assert_eq!(labelled(&d, lab_name).await, (1, 4, 1));
    let list = lab_ok(&["list"]).stdout;
    assert!(
        list.lines()
            .any(|l| l.starts_with(lab_name) && l.contains("unfinished (containers)")),
        "{list}"
    );
    lab_ok(&["destroy", "--name", lab_name]);
    assert_eq!(labelled(&d, lab_name).await, (0, 0, 0));
}
