//! Each exercise's fault: what it needs known first (`prepare`), making it and waiting until
//! its symptom shows (`make`), and taking it back whatever the trainee did (`undo`). The
//! node-side part is `labExercise` in the image; this side picks the nodes and changes what
//! goes through SQL or Patroni's API.

use std::time::Duration;

use super::super::drills::etcd_service;
use crate::error::{Error, Result};
use crate::exercise::Exercise;
use crate::exercise::judge::{NodeState, Running};
use crate::model::Lab;
use crate::services::{Ctx, catalog, patroni, wait_for};

pub(super) const SCRIPT: &str = "/usr/local/sbin/labExercise";
pub(super) const SCOPE: &str = "pgha_patroni_cluster";
/// The pg_hba addresses hba-locked-out puts in place of 0.0.0.0/0: the material's own example
/// network, as a copy from the guide would, or another when the lab happens to be on it.
const WRONG_NETWORKS: [&str; 2] = ["10.0.1.0/24", "10.99.99.0/24"];

/// The first of WRONG_NETWORKS none of the lab's nodes is on.
fn wrong_network(lab: &Lab) -> &'static str {
    let outside = |net: &str| {
        let net: ipnet::Ipv4Net = net.parse().expect("a network");
        !lab.nodes
            .iter()
            .filter_map(|n| n.ip())
            .any(|ip| net.contains(&ip))
    };
    WRONG_NETWORKS
        .into_iter()
        .find(|n| outside(n))
        .unwrap_or(WRONG_NETWORKS[0])
}

/// What a fault needs known before it is made: split-brain's lost writes, what hba-locked-out
/// and tune-rto change (to put it back).
pub(super) async fn prepare(ctx: &Ctx<'_>, run: &mut Running) -> Result<()> {
    let primary = run.broken.primary.clone();
    match run.exercise {
        Exercise::SplitBrain => {
            let ids = random_ids(6)?;
            run.lost = ids[..3].to_vec();
            run.saved = serde_json::json!({ "kept": ids[3..] });
        }
        Exercise::HbaLockedOut => {
            let original = dynamic_hba(ctx, &primary).await?;
            let wrong = wrong_network(ctx.lab);
            let broken: Vec<String> = original
                .iter()
                .map(|line| {
                    if line.contains(" replication ") && line.contains("0.0.0.0/0") {
                        line.replace("0.0.0.0/0", wrong)
                    } else {
                        line.clone()
                    }
                })
                .collect();
            if broken == original {
                return Err(Error::Invalid(format!(
                    "exercise hba-locked-out changes the pg_hba line that lets replicas in from \
                     anywhere (replication ... 0.0.0.0/0), and lab {}'s dynamic configuration \
                     has none",
                    ctx.lab.name
                )));
            }
            run.saved = serde_json::json!({
                "original": original,
                "broken": broken,
                "wrong": wrong,
            });
        }
        Exercise::TuneRto => {
            let d = patroni::dynamic(ctx, &primary).await?;
            let haproxy = match ctx.lab.haproxy_node() {
                Some(h) => Some(read_file(ctx, &h.name, HAPROXY_CFG).await?),
                None => None,
            };
            run.saved = serde_json::json!({
                "patroni": {
                    "ttl": d.ttl,
                    "loop_wait": d.loop_wait,
                    "retry_timeout": d.retry_timeout,
                    "synchronous_mode": d.synchronous_mode,
                    "synchronous_mode_strict": d.synchronous_mode_strict,
                },
                "haproxy": haproxy,
            });
        }
        _ => {}
    }
    Ok(())
}

/// HAProxy's configuration: /etc/haproxy/haproxy.cfg links to it, and a reset restores it.
const HAPROXY_CFG: &str = "/pgha/config/haproxy.cfg";

/// `n` distinct order ids, 100 to 999, from the system's random source.
fn random_ids(n: usize) -> Result<Vec<i64>> {
    use ring::rand::SecureRandom;
    let rng = ring::rand::SystemRandom::new();
    let mut ids: Vec<i64> = Vec::new();
    while ids.len() < n {
        let mut b = [0u8; 2];
        rng.fill(&mut b)
            .map_err(|_| Error::Failed("the system's random source failed".into()))?;
        let id = 100 + i64::from(u16::from_le_bytes(b) % 900);
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// A file of `node`, through the Engine API's archive call as the lab's records are read.
async fn read_file(ctx: &Ctx<'_>, node: &str, path: &str) -> Result<String> {
    let bytes = ctx.engine.download(ctx.lab.container(node), path).await?;
    let bytes = bytes.ok_or_else(|| Error::Failed(format!("{path} is missing on {node}")))?;
    String::from_utf8(bytes).map_err(|_| Error::Failed(format!("{path} on {node} is not text")))
}

/// `labExercise ARGS...` on `node`, as root, which must succeed.
async fn script(ctx: &Ctx<'_>, node: &str, args: &[&str], within: Duration) -> Result<String> {
    let argv: Vec<&str> = std::iter::once(SCRIPT)
        .chain(args.iter().copied())
        .collect();
    let out = ctx.exec(node, "root", &argv, within).await?;
    if out.ok() {
        Ok(out.stdout)
    } else {
        Err(Error::Failed(format!(
            "`labExercise {}` on {node} failed: {}",
            args.join(" "),
            out.said()
        )))
    }
}

/// The pg_hba lines of Patroni's dynamic configuration.
pub(super) async fn dynamic_hba(ctx: &Ctx<'_>, node: &str) -> Result<Vec<String>> {
    let out = ctx
        .exec(
            node,
            "postgres",
            &["patroniApi", "/config"],
            Duration::from_secs(15),
        )
        .await?;
    let config: serde_json::Value = serde_json::from_str(out.stdout.trim()).map_err(|_| {
        Error::Failed(format!(
            "Patroni's REST API on {node} did not give its dynamic configuration ({})",
            out.said()
        ))
    })?;
    Ok(config
        .pointer("/postgresql/pg_hba")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default())
}

/// Sets pg_hba in Patroni's dynamic configuration through `node`'s REST API.
async fn set_hba(ctx: &Ctx<'_>, node: &str, lines: &serde_json::Value) -> Result<()> {
    let patch = serde_json::json!({ "postgresql": { "pg_hba": lines } });
    let out = patroni::patch_config(ctx, node, &patch).await?;
    if out.ok() {
        Ok(())
    } else {
        Err(Error::Failed(format!(
            "Patroni on {node} refused the pg_hba change: {}",
            out.said()
        )))
    }
}

/// Polls `check` every second until it holds or `deadline` passes; whether it held.
async fn until<F, Fut>(deadline: Duration, mut check: F) -> Result<bool>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let held = wait_for(deadline, Duration::from_secs(1), || {
        let checked = check();
        async move { Ok(if checked.await? { Ok(()) } else { Err(()) }) }
    })
    .await?;
    Ok(held.is_ok())
}

pub(super) async fn node_state(ctx: &Ctx<'_>, node: &str) -> Result<NodeState> {
    ctx.probe(node, "root", &[SCRIPT, "seen"], Duration::from_secs(30))
        .await
}

/// Makes the exercise's fault, and waits until its symptom shows.
pub(super) async fn make(ctx: &Ctx<'_>, run: &Running) -> Result<()> {
    let b = &run.broken;
    let node = b.node.as_deref().unwrap_or_default();
    let primary = b.primary.as_str();
    let long = Duration::from_secs(180);
    match run.exercise {
        Exercise::EtcdUnreachable => {
            let tls: &[&str] = if b.tls { &["tls"] } else { &[] };
            let args: Vec<&str> = ["break", "etcd-unreachable"]
                .into_iter()
                .chain(tls.iter().copied())
                .collect();
            script(ctx, node, &args, long).await?;
        }
        Exercise::QuorumLost => {
            etcd_service(ctx, &b.nodes, false).await?;
            // Writes fail once the primary finds it cannot renew its leader key and demotes:
            // its PostgreSQL then runs again, read-only.
            let demoted = until(Duration::from_secs(90), || async {
                Ok(node_state(ctx, primary).await?.recovery == Some(true))
            })
            .await?;
            shown(demoted, &format!("{primary} was not read-only after 90 s"))?;
        }
        Exercise::LaggingReplica => {
            script(ctx, node, &["break", "lagging-replica"], long).await?;
            // A commit first: the replica stops at it for the hour, and everything after it
            // (the 64 MiB) waits behind.
            ctx.psql(primary, "SELECT txid_current()").await?;
            script(ctx, primary, &["wal", "64"], long).await?;
        }
        Exercise::BrokenReplica => {
            script(ctx, node, &["break", "broken-replica"], long).await?;
        }
        Exercise::SplitBrain => {
            let kept: Vec<i64> =
                serde_json::from_value(run.saved["kept"].clone()).unwrap_or_default();
            ctx.psql(
                primary,
                &format!(
                    "DROP TABLE IF EXISTS exercise_orders; CREATE TABLE exercise_orders (id int \
                     PRIMARY KEY, note text); INSERT INTO exercise_orders VALUES ({}, 'written \
                     on {primary} before')",
                    kept[0]
                ),
            )
            .await?;
            let replicated = until(Duration::from_secs(30), || async {
                Ok(node_state(ctx, node).await?.rows == Some(vec![kept[0]]))
            })
            .await?;
            shown(
                replicated,
                &format!("{node} did not replay the exercise's first order within 30 s"),
            )?;
            let rogue: Vec<String> = run.lost.iter().map(i64::to_string).collect();
            let args: Vec<&str> = ["break", "split-brain"]
                .into_iter()
                .chain(rogue.iter().map(String::as_str))
                .collect();
            script(ctx, node, &args, long).await?;
            let values: Vec<String> = kept[1..]
                .iter()
                .map(|id| format!("({id}, 'written on {primary}')"))
                .collect();
            ctx.psql(
                primary,
                &format!("INSERT INTO exercise_orders VALUES {}", values.join(", ")),
            )
            .await?;
        }
        Exercise::ArchiveFailing => {
            script(ctx, node, &["break", "archive-failing"], long).await?;
            let before = node_state(ctx, primary)
                .await?
                .archiver
                .map_or(0, |a| a.failed);
            script(ctx, primary, &["wal", "1"], long).await?;
            let failing = until(Duration::from_secs(60), || async {
                Ok(node_state(ctx, primary)
                    .await?
                    .archiver
                    .is_some_and(|a| a.failed > before))
            })
            .await?;
            shown(
                failing,
                &format!("archiving on {primary} still succeeded after 60 s"),
            )?;
        }
        Exercise::HbaLockedOut => {
            set_hba(ctx, primary, &run.saved["broken"]).await?;
            let wrong = run.saved["wrong"].as_str().unwrap_or(WRONG_NETWORKS[0]);
            let address = wrong.split('/').next().unwrap_or_default();
            let loaded = until(Duration::from_secs(60), || async {
                Ok(ctx
                    .psql(
                        primary,
                        &format!(
                            "SELECT count(*) FROM pg_hba_file_rules WHERE address = '{address}'"
                        ),
                    )
                    .await?
                    != "0")
            })
            .await?;
            shown(
                loaded,
                &format!("Patroni did not load the changed pg_hba on {primary} within 60 s"),
            )?;
            // Streaming connections made before the change stand; the replicas' next ones are
            // refused.
            ctx.psql(
                primary,
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_replication",
            )
            .await?;
        }
        Exercise::TuneRto => {}
    }
    Ok(())
}

/// A fault whose effect did not show as it should is a failed start (and is taken back).
fn shown(held: bool, otherwise: &str) -> Result<()> {
    if held {
        Ok(())
    } else {
        Err(Error::Failed(format!(
            "the fault did not take: {otherwise}"
        )))
    }
}

/// Takes the fault back, whatever the trainee did meanwhile; says what it did.
pub(super) async fn undo(ctx: &Ctx<'_>, run: &Running) -> Result<String> {
    let b = &run.broken;
    let node = b.node.as_deref().unwrap_or_default();
    let long = Duration::from_secs(600);
    let leader = patroni::current_primary(ctx, &ctx.lab.postgres_names())
        .await?
        .unwrap_or_else(|| b.primary.clone());
    Ok(match run.exercise {
        Exercise::EtcdUnreachable => script(ctx, node, &["undo", "etcd-unreachable"], long).await?,
        Exercise::QuorumLost => {
            let down: Vec<String> = ctx
                .facts()
                .await?
                .into_iter()
                .filter(|f| !f.etcd_running && ctx.lab.etcd_nodes().any(|n| n.name == f.node))
                .map(|f| f.node)
                .collect();
            etcd_service(ctx, &down, true).await?;
            format!("etcd started on {}", list_or_none(&down))
        }
        Exercise::LaggingReplica => script(ctx, node, &["undo", "lagging-replica"], long).await?,
        Exercise::BrokenReplica => script(ctx, node, &["undo", "broken-replica"], long).await?,
        Exercise::SplitBrain => script(ctx, node, &["undo", "split-brain"], long).await?,
        Exercise::ArchiveFailing => script(ctx, node, &["undo", "archive-failing"], long).await?,
        Exercise::HbaLockedOut => {
            set_hba(ctx, &leader, &run.saved["original"]).await?;
            "pg_hba put back in Patroni's configuration".into()
        }
        Exercise::TuneRto => {
            let patch = &run.saved["patroni"];
            let out = patroni::patch_config(ctx, &leader, patch).await?;
            if !out.ok() {
                return Err(Error::Failed(format!(
                    "Patroni on {leader} refused the settings put back: {}",
                    out.said()
                )));
            }
            if let (Some(h), Some(cfg)) = (ctx.lab.haproxy_node(), run.saved["haproxy"].as_str())
                && read_file(ctx, &h.name, HAPROXY_CFG).await? != cfg
            {
                ctx.upload(&h.name, &[(HAPROXY_CFG, cfg, 0o644)]).await?;
                // startHaproxy restarts a running HAProxy, as the guide's systemctl restart.
                ctx.start(&catalog::HAPROXY, &[&h.name]).await?;
            }
            "Patroni's settings and HAProxy's configuration put back".into()
        }
    }
    .trim()
    .to_string())
}

fn list_or_none(nodes: &[String]) -> String {
    if nodes.is_empty() {
        "no member (all ran)".into()
    } else {
        nodes.join(", ")
    }
}
