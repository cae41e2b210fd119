//! The services inside a lab's nodes across `lab stop` and `lab start`, walked in the catalog's
//! order: stopped so that PostgreSQL shuts down cleanly and no failover happens on the way down,
//! started again so that the same cluster comes back healthy, HAProxy included. Only what is
//! configured on a node is touched.

use std::time::Duration;

use super::catalog::{self, Kind, Service, StopPolicy};
use super::{Ctx, Facts, etcd, haproxy, patroni};
use crate::error::Result;
use crate::spec::Stage;

/// Stops the services in the catalog's stop order (HAProxy, Patroni, etcd), each by its stop
/// policy: Patroni's replicas before the primary, etcd's followers before the leader.
pub async fn stop(ctx: &Ctx<'_>) -> Result<String> {
    let facts = ctx.facts().await?;
    stop_among(ctx, &facts).await
}

/// Stops the services configured on `nodes` only, as `stop` does the whole lab's: a primary's
/// Patroni stopped this way hands the leadership to a replica.
pub async fn stop_on(ctx: &Ctx<'_>, nodes: &[String]) -> Result<String> {
    let facts: Vec<Facts> = ctx
        .facts()
        .await?
        .into_iter()
        .filter(|f| nodes.contains(&f.node))
        .collect();
    stop_among(ctx, &facts).await
}

/// Stops the services `facts` show configured, in the catalog's stop order.
async fn stop_among(ctx: &Ctx<'_>, facts: &[Facts]) -> Result<String> {
    let mut done = Vec::new();
    for (service, nodes) in catalog::stopping(facts) {
        if nodes.is_empty() {
            continue;
        }
        let order = stop_service(ctx, service, &nodes).await?.join(", ");
        // One node has no order to tell.
        done.push(match (service.stop_policy, nodes.len()) {
            (StopPolicy::Together, _) | (_, 1) => format!("{} stopped on {order}", service.name),
            (StopPolicy::ReplicasBeforePrimary, _) => format!(
                "{} stopped on {order} (replicas first, then the primary)",
                service.name
            ),
            (StopPolicy::FollowersBeforeLeader, _) => format!(
                "{} stopped on {} member(s), the leader last",
                service.name,
                nodes.len()
            ),
        });
    }
    Ok(if done.is_empty() {
        "no services were running".into()
    } else {
        done.join("; ")
    })
}

/// Stops `service` on `nodes` by its stop policy; returns the nodes in the order they stopped.
pub async fn stop_service(
    ctx: &Ctx<'_>,
    service: &Service,
    nodes: &[String],
) -> Result<Vec<String>> {
    let last = match service.stop_policy {
        StopPolicy::Together => None,
        StopPolicy::ReplicasBeforePrimary => {
            let mut primary = None;
            for node in nodes {
                if patroni::member(ctx, node)
                    .await?
                    .is_some_and(|m| m.role == "primary")
                {
                    primary = Some(node.clone());
                }
            }
            primary
        }
        StopPolicy::FollowersBeforeLeader => etcd::view(ctx).await?.leader,
    };
    let mut order = Vec::new();
    for group in catalog::stop_groups(service.stop_policy, nodes, last.as_deref()) {
        ctx.stop(service, &group).await?;
        order.extend(group);
    }
    Ok(order)
}

/// Which PostgreSQL comes back as the primary before any Patroni starts: left to Patroni, every
/// member would start as a replica and the winner would be promoted onto a new timeline.
#[derive(Clone, Copy)]
enum Resume<'a> {
    /// The one a whole-cluster clean shutdown left, when that is certain (`clean_primary`).
    AfterShutdown,
    /// This one, just restored from a snapshot taken while it was the primary.
    Restored(&'a str),
}

/// Starts sshd, etcd, Patroni and HAProxy where they are configured and waits for the cluster
/// to be healthy again and HAProxy to route to it.
pub async fn start(ctx: &Ctx<'_>) -> Result<String> {
    start_resuming(ctx, Resume::AfterShutdown).await
}

/// `start` on a lab whose every node was just restored from its snapshot, `primary` the node
/// whose PostgreSQL was the primary in it (none when the snapshot holds no cluster yet).
pub async fn start_restored(ctx: &Ctx<'_>, primary: Option<&str>) -> Result<String> {
    match primary {
        Some(node) => start_resuming(ctx, Resume::Restored(node)).await,
        None => start(ctx).await,
    }
}

async fn start_resuming(ctx: &Ctx<'_>, resume: Resume<'_>) -> Result<String> {
    let all: Vec<String> = ctx.lab.node_names();
    let Launched {
        etcd: etcd_nodes,
        postgres: pg_nodes,
        haproxy: proxies,
    } = launch(ctx, &all, resume).await?;
    // etcd's health and the cluster's are proven side by side: Patroni's needs etcd's anyway.
    let etcd_health = async {
        if whole_etcd(ctx, &etcd_nodes) {
            let view = etcd::wait_healthy(ctx, &etcd_nodes, Duration::from_secs(90)).await?;
            return Ok(Some(format!("etcd {}", view.describe())));
        }
        Ok::<_, crate::error::Error>(None)
    };
    let cluster_health = async {
        let mut done = Vec::new();
        if !pg_nodes.is_empty() {
            let healthy = patroni::wait_healthy(ctx, &pg_nodes, Duration::from_secs(180)).await?;
            done.push(format!("Patroni {}", healthy.describe()));
            if !proxies.is_empty() {
                let routing = haproxy::wait_routing(ctx, Duration::from_secs(45)).await?;
                done.push(format!("HAProxy {}", routing.describe()));
            }
        }
        Ok::<_, crate::error::Error>(done)
    };
    let (etcd, cluster) = tokio::try_join!(etcd_health, cluster_health)?;
    let done: Vec<String> = etcd.into_iter().chain(cluster).collect();
    Ok(if done.is_empty() {
        "no services configured yet".into()
    } else {
        done.join("; ")
    })
}

/// Starts the services configured on `nodes` only, without waiting (the caller knows what
/// to wait for).
pub async fn start_on(ctx: &Ctx<'_>, nodes: &[String]) -> Result<()> {
    launch(ctx, nodes, Resume::AfterShutdown).await.map(drop)
}

/// Whether `started` is every etcd member of the lab: the whole cluster coming back, not a
/// member rejoining one that runs.
fn whole_etcd(ctx: &Ctx<'_>, started: &[String]) -> bool {
    !started.is_empty() && started.len() == ctx.lab.etcd_nodes().count()
}

/// The nodes where `launch` started each service.
struct Launched {
    etcd: Vec<String>,
    postgres: Vec<String>,
    haproxy: Vec<String>,
}

/// Starts the services configured on `nodes` in the catalog's start order (sshd, etcd,
/// Patroni, HAProxy). Patroni waits for what comes before it and for the primary's PostgreSQL,
/// brought back first as `resume` says.
async fn launch(ctx: &Ctx<'_>, nodes: &[String], resume: Resume<'_>) -> Result<Launched> {
    let all = ctx.facts().await?;
    let facts: Vec<Facts> = all
        .iter()
        .filter(|f| nodes.contains(&f.node))
        .cloned()
        .collect();
    let plan = catalog::starting(&facts);
    let patroni_at = plan
        .iter()
        .position(|(s, _)| s.kind == Kind::Patroni)
        .unwrap_or(plan.len());
    let (before, after) = plan.split_at(patroni_at);
    let started = |kind: Kind| -> Vec<String> {
        plan.iter()
            .find(|(s, _)| s.kind == kind)
            .map(|(_, nodes)| nodes.clone())
            .unwrap_or_default()
    };
    let pg_nodes = started(Kind::Patroni);
    let early = async {
        for (service, nodes) in before {
            start_service(ctx, service, nodes).await?;
        }
        Ok::<_, crate::error::Error>(())
    };
    // Either way the primary is only a shortcut: should it fail, Patroni starts everywhere and
    // elects as ever, and the health that follows is the proof.
    match resume {
        Resume::Restored(primary) => {
            // The restored DCS still names it the leader, so the others follow it from their
            // start with no race to lead: while etcd starts, the primary's PostgreSQL, then
            // the replicas' (streaming from it at once: a replica that finds no primary
            // retries only after wal_retrieve_retry_interval, 5 s), then every Patroni,
            // which adopts them as they run.
            let postgres = async {
                start_postgres(ctx, primary).await?;
                futures_util::future::try_join_all(
                    pg_nodes
                        .iter()
                        .filter(|n| *n != primary)
                        .map(|n| start_postgres(ctx, n)),
                )
                .await
            };
            let (early, _) = tokio::join!(early, postgres);
            early?;
        }
        Resume::AfterShutdown => {
            early.await?;
            // A clean shutdown removed the leader key: the primary's Patroni must hold it
            // before any other Patroni looks for a leader.
            if let Some(primary) = clean_primary(&ctx.lab.postgres_names(), &all, &facts) {
                let _ = resume_primary(ctx, &primary).await;
            }
        }
    }
    // HAProxy's checks find the leader by themselves once Patroni runs.
    for (service, nodes) in after {
        start_service(ctx, service, nodes).await?;
    }
    Ok(Launched {
        etcd: started(Kind::Etcd),
        postgres: pg_nodes,
        haproxy: started(Kind::Haproxy),
    })
}

/// Starts `service` on `nodes`. A whole etcd cluster coming back settles its version before
/// Patroni may look (see etcd::wait_versioned); a member rejoining finds it settled.
async fn start_service(ctx: &Ctx<'_>, service: &Service, nodes: &[String]) -> Result<()> {
    ctx.start(service, nodes).await?;
    if service.kind == Kind::Etcd && whole_etcd(ctx, nodes) {
        etcd::wait_versioned(ctx, Duration::from_secs(60)).await?;
    }
    Ok(())
}

/// The node to bring back as the primary before any Patroni starts: when the whole cluster was
/// shut down cleanly (every PostgreSQL node of the lab, `postgres`, is running and not one runs
/// Patroni; one was shut down as the primary, every other as a replica) and that node is among
/// those starting. Left to Patroni, every member would start as a replica and the winner would
/// be promoted onto a new timeline; a cluster stopped and started (or reset) stays on its
/// timeline this way, as the course's fresh cluster is on timeline 1. Anything else (a node
/// down or unseen, a crash, two primaries, a stale primary from before a failover) is left to
/// Patroni. `all` is every running node's facts, `starting` those of the nodes being started.
fn clean_primary(postgres: &[String], all: &[Facts], starting: &[Facts]) -> Option<String> {
    if all.iter().any(|f| f.patroni_running) {
        return None;
    }
    let mut primaries = Vec::new();
    for node in postgres {
        let f = all.iter().find(|f| &f.node == node)?;
        match (f.pg_clean_primary, f.pg_clean_replica) {
            (true, _) => primaries.push(node),
            (false, true) => {}
            (false, false) => return None,
        }
    }
    match primaries.as_slice() {
        [one] if starting.iter().any(|f| &f.node == *one && f.patroni_config) => {
            Some(one.to_string())
        }
        _ => None,
    }
}

/// Brings `node` back as the primary: its PostgreSQL first, then Patroni, which adopts a running
/// primary without promoting it, waited for until it leads.
async fn resume_primary(ctx: &Ctx<'_>, node: &str) -> Result<()> {
    start_postgres(ctx, node).await?;
    ctx.start(&catalog::PATRONI, &[node]).await?;
    patroni::wait_primary(ctx, node, Duration::from_secs(90)).await
}

/// Starts PostgreSQL on `node` with the command line Patroni last started it with
/// (postmaster.opts, which `pg_ctl restart` reuses), without Patroni; after a crash (a restored
/// snapshot) it recovers and comes up as what it was: a primary on its timeline, or a standby.
async fn start_postgres(ctx: &Ctx<'_>, node: &str) -> Result<()> {
    let script = "pg_ctl -D /pgdata/17/data -w -t 60 -l /var/log/patroni/postgres-resume.log \
                  restart >/dev/null 2>&1 || { tail -n 5 /var/log/patroni/postgres-resume.log; \
                  exit 1; }";
    let wait = Duration::from_secs(90);
    ctx.must(Stage::Patroni, node, "postgres", script, wait, None)
        .await
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy)]
    enum Was {
        Primary,
        Replica,
        Crashed,
    }

    fn node(name: &str, was: Was, patroni_running: bool) -> Facts {
        Facts {
            node: name.into(),
            patroni_config: true,
            pg_data: true,
            pg_clean_primary: matches!(was, Was::Primary),
            pg_clean_replica: matches!(was, Was::Replica),
            patroni_running,
            ..Facts::default()
        }
    }

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("pgha{i}")).collect()
    }

    #[test]
    fn the_primary_of_a_cleanly_stopped_cluster_comes_back_first() {
        let all = [
            node("pgha1", Was::Replica, false),
            node("pgha2", Was::Primary, false),
            node("pgha3", Was::Replica, false),
        ];
        assert_eq!(
            clean_primary(&names(3), &all, &all).as_deref(),
            Some("pgha2")
        );
    }

    #[test]
    fn patroni_chooses_whenever_the_primary_is_not_certain() {
        use Was::*;
        let case = |nodes: &[(Was, bool)]| {
            let all: Vec<Facts> = nodes
                .iter()
                .enumerate()
                .map(|(i, (was, running))| node(&format!("pgha{}", i + 1), *was, *running))
                .collect();
            clean_primary(&names(nodes.len()), &all, &all)
        };
        // A cluster still running elsewhere has its leader.
        assert_eq!(case(&[(Primary, false), (Replica, true)]), None);
        // Two that were primaries: one is stale from before a failover.
        assert_eq!(case(&[(Primary, false), (Primary, false)]), None);
        // A crash anywhere: the crashed one may hold newer WAL.
        assert_eq!(case(&[(Primary, false), (Crashed, false)]), None);
        assert_eq!(case(&[(Crashed, false), (Crashed, false)]), None);
        // A PostgreSQL node not seen at all (stopped) may be the newer primary.
        let seen = [node("pgha1", Primary, false), node("pgha2", Replica, false)];
        assert_eq!(clean_primary(&names(3), &seen, &seen), None);
    }
}
