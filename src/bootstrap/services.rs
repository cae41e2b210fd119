//! The services inside a lab's nodes across `lab stop` and `lab start`: stopped so that
//! PostgreSQL shuts down cleanly and no failover happens on the way down, started again so that
//! the same cluster comes back healthy. Only what is configured on a node is touched.

use std::time::Duration;

use super::{Ctx, Facts, etcd, patroni};
use crate::error::Result;
use crate::spec::Stage;

/// Stops Patroni on the replicas, then on the primary, then etcd: the followers, then the
/// leader.
pub async fn stop(ctx: &Ctx<'_>) -> Result<String> {
    let facts = ctx.facts().await?;
    let mut primaries = Vec::new();
    let mut replicas = Vec::new();
    for f in facts.iter().filter(|f| f.patroni_running) {
        match patroni::member(ctx, &f.node).await? {
            Some(m) if m.role == "primary" => primaries.push(f.node.clone()),
            _ => replicas.push(f.node.clone()),
        }
    }
    // Replicas first: a primary stopping while replicas run would hand its leadership over.
    for group in [&replicas, &primaries] {
        let (wait, log) = (Duration::from_secs(150), Some(patroni::LOG));
        ctx.must_on(group, Stage::Patroni, "root", "stopPatroni", wait, log)
            .await?;
    }
    let etcd: Vec<&str> = facts
        .iter()
        .filter(|f| f.etcd_running)
        .map(|f| f.node.as_str())
        .collect();
    // Followers first: a leader stopping among stopping followers spends seconds on a
    // leadership transfer that cannot succeed.
    let leader = if etcd.is_empty() {
        None
    } else {
        etcd::view(ctx).await?.leader
    };
    let (last, first): (Vec<&str>, Vec<&str>) =
        etcd.iter().partition(|n| Some(**n) == leader.as_deref());
    for group in [first, last] {
        let (wait, log) = (Duration::from_secs(60), Some(etcd::LOG));
        ctx.must_on(&group, Stage::Etcd, "root", "stopEtcd", wait, log)
            .await?;
    }
    let mut done = Vec::new();
    if !replicas.is_empty() || !primaries.is_empty() {
        done.push(format!(
            "Patroni stopped on {} (replicas first, then the primary)",
            replicas
                .iter()
                .chain(primaries.iter())
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !etcd.is_empty() {
        done.push(format!("etcd stopped on {} member(s)", etcd.len()));
    }
    Ok(if done.is_empty() {
        "no services were running".into()
    } else {
        done.join("; ")
    })
}

/// Starts sshd, etcd and Patroni where they are configured and waits for the cluster to be
/// healthy again.
pub async fn start(ctx: &Ctx<'_>) -> Result<String> {
    let all: Vec<String> = ctx.lab.node_names();
    let (etcd_nodes, pg_nodes) = launch(ctx, &all).await?;
    let mut done = Vec::new();
    if !etcd_nodes.is_empty() && etcd_nodes.len() == ctx.lab.etcd_nodes().count() {
        let view = etcd::wait_healthy(ctx, &etcd_nodes, Duration::from_secs(90)).await?;
        done.push(format!("etcd {}", view.describe()));
    }
    if !pg_nodes.is_empty() {
        let healthy = patroni::wait_healthy(ctx, &pg_nodes, Duration::from_secs(180)).await?;
        done.push(format!("Patroni {}", healthy.describe()));
    }
    Ok(if done.is_empty() {
        "no services configured yet".into()
    } else {
        done.join("; ")
    })
}

/// Starts the services configured on `nodes` only, without waiting (the caller knows what
/// to wait for).
pub async fn start_on(ctx: &Ctx<'_>, nodes: &[String]) -> Result<()> {
    launch(ctx, nodes).await.map(drop)
}

/// Starts sshd, etcd and Patroni where configured on `nodes`; returns the nodes where etcd and
/// Patroni were started.
async fn launch(ctx: &Ctx<'_>, nodes: &[String]) -> Result<(Vec<String>, Vec<String>)> {
    let all = ctx.facts().await?;
    let facts: Vec<Facts> = all
        .iter()
        .filter(|f| nodes.contains(&f.node))
        .cloned()
        .collect();
    let sshd: Vec<&str> = facts
        .iter()
        .filter(|f| f.host_keys)
        .map(|f| f.node.as_str())
        .collect();
    let wait = Duration::from_secs(30);
    ctx.must_on(&sshd, Stage::Access, "root", "startSshd", wait, None)
        .await?;
    let etcd_nodes: Vec<String> = facts
        .iter()
        .filter(|f| f.etcd_config && f.etcd_data)
        .map(|f| f.node.clone())
        .collect();
    let log = Some(etcd::LOG);
    ctx.must_on(&etcd_nodes, Stage::Etcd, "postgres", "startEtcd", wait, log)
        .await?;
    let pg_nodes: Vec<String> = facts
        .iter()
        .filter(|f| f.patroni_config && f.pg_data)
        .map(|f| f.node.clone())
        .collect();
    if let Some(primary) = clean_primary(&all, &facts) {
        resume_primary(ctx, &primary).await?;
    }
    futures_util::future::try_join_all(pg_nodes.iter().map(|n| patroni::start(ctx, n))).await?;
    Ok((etcd_nodes, pg_nodes))
}

/// The node to bring back as the primary before any Patroni starts: the only one whose
/// PostgreSQL was shut down cleanly as a primary, when no Patroni runs anywhere in the lab.
/// Left to Patroni, every member would start as a replica and the winner would be promoted onto
/// a new timeline; a cluster stopped and started (or reset) stays on its timeline this way, as
/// the course's fresh cluster is on timeline 1. With a Patroni running, or two candidates, the
/// choice is Patroni's. `all` is every running node's facts, `starting` those of the nodes being
/// started.
fn clean_primary(all: &[Facts], starting: &[Facts]) -> Option<String> {
    if all.iter().any(|f| f.patroni_running) {
        return None;
    }
    match starting
        .iter()
        .filter(|f| f.pg_clean_primary && f.patroni_config)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [one] => Some(one.node.clone()),
        _ => None,
    }
}

/// Starts PostgreSQL on `node` with the command line Patroni last started it with
/// (postmaster.opts, which `pg_ctl restart` reuses), then Patroni, and waits until Patroni leads
/// with it: Patroni adopts a running primary without promoting it.
async fn resume_primary(ctx: &Ctx<'_>, node: &str) -> Result<()> {
    let script = "pg_ctl -D /pgdata/17/data -w -t 60 -l /var/log/patroni/postgres-resume.log \
                  restart >/dev/null 2>&1 || { tail -n 5 /var/log/patroni/postgres-resume.log; \
                  exit 1; }";
    let wait = Duration::from_secs(90);
    ctx.must(Stage::Patroni, node, "postgres", script, wait, None)
        .await?;
    patroni::start(ctx, node).await?;
    patroni::wait_primary(ctx, node, wait).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, clean_primary: bool, patroni_running: bool) -> Facts {
        Facts {
            node: name.into(),
            patroni_config: true,
            pg_data: true,
            pg_clean_primary: clean_primary,
            patroni_running,
            ..Facts::default()
        }
    }

    #[test]
    fn the_one_clean_primary_of_a_stopped_cluster_comes_back_first() {
        let all = [
            node("pgha1", false, false),
            node("pgha2", true, false),
            node("pgha3", false, false),
        ];
        assert_eq!(clean_primary(&all, &all).as_deref(), Some("pgha2"));
    }

    #[test]
    fn patroni_chooses_when_one_runs_or_the_primary_is_not_clear() {
        // A cluster still running elsewhere has its leader: starting an old primary as one
        // would make two.
        let running = [node("pgha1", true, false), node("pgha2", false, true)];
        assert_eq!(clean_primary(&running, &running[..1]), None);
        let two = [node("pgha1", true, false), node("pgha2", true, false)];
        assert_eq!(clean_primary(&two, &two), None);
        let crashed = [node("pgha1", false, false), node("pgha2", false, false)];
        assert_eq!(clean_primary(&crashed, &crashed), None);
    }
}
