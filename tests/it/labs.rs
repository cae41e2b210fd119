//! One lab per trainee: several labs from one command, side by side, each healthy, each with
//! its own network, subnet and ports, picked without further flags.

use serde_json::Value;

use crate::common::*;

#[tokio::test]
async fn two_labs_side_by_side_are_healthy_with_their_own_subnets_and_ports() {
    let labs = ["itside-a", "itside-b"];
    let (d, _sweep) = setup(&labs, None).await;

    lab_ok(&["create", "--name", "itside", "--count", "2", "--nodes", "3"]);
    let mut subnets = Vec::new();
    let mut ports = Vec::new();
    for lab_name in labs {
        subnets.push(network_subnet(&d, &format!("{lab_name}net")).await.unwrap());
        for i in 1..=3 {
            ports.push(host_port(&d, &format!("{lab_name}{i}")).await.unwrap());
        }
        // Healthy, checked inside each lab with patronictl.
        eventually(
            60,
            &format!("{lab_name}: one leader, two streaming"),
            || async {
                let (_, out) = exec(
                    &d,
                    &format!("{lab_name}1"),
                    "postgres",
                    "patronictl -c /pgha/config/patroni.yaml list -f json",
                )
                .await;
                let rows: Vec<Value> = serde_json::from_str(out.trim()).ok()?;
                let leaders = rows.iter().filter(|r| r["Role"] == "Leader").count();
                let streaming = rows.iter().filter(|r| r["State"] == "streaming").count();
                (leaders == 1 && streaming == 2).then_some(())
            },
        )
        .await;
        // Every lab of the class answers to the course's names inside.
        let names = exec_ok(
            &d,
            &format!("{lab_name}1"),
            "postgres",
            "hostname; ssh pgha3 hostname; patronictl -c /pgha/config/patroni.yaml list -f json",
        )
        .await;
        assert!(names.starts_with("pgha1\npgha3\n"), "{names}");
        assert!(names.contains(r#""Member": "pgha2""#), "{names}");
        // The repository shares the last node with PostgreSQL in a three-node lab.
        let info = exec_ok(
            &d,
            &format!("{lab_name}3"),
            "postgres",
            "pgbackrest --stanza=pgha info --output=json",
        )
        .await;
        assert!(info.contains(r#""message":"ok""#), "{info}");
    }
    assert_ne!(subnets[0], subnets[1]);
    let mut unique = ports.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 6, "ports shared: {ports:?}");

    let list = lab_ok(&["list"]).stdout;
    for lab_name in labs {
        assert!(
            list.lines()
                .any(|l| l.starts_with(lab_name) && l.contains("running")),
            "{list}"
        );
        lab_ok(&["destroy", "--name", lab_name]);
        assert_eq!(labelled(&d, lab_name).await, (0, 0, 0));
    }
}
