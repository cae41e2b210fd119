//! The HAProxy stage, in labs that have an HAProxy node: Percona's haproxy.cfg (guide 001)
//! with the lab's PostgreSQL nodes as servers, HAProxy started, done when HAProxy's own stats
//! page says port 5000 leads to the Patroni leader alone and port 5001 to the replicas. Also
//! the routing view that `lab status`, `lab check` and the drills read.

use std::time::Duration;

use super::facts::of;
use super::{Ctx, Facts, Outcome, catalog, patroni, wait_for};
use crate::engine::ExecOutput;
use crate::error::Result;
use crate::render::HAPROXY_CONF;
use crate::render::monitoring::HAPROXY_PEM;
use crate::spec::{HAPROXY_PRIMARY, HAPROXY_REPLICAS, HAPROXY_STATS, Stage};

pub use super::catalog::HAPROXY_LOG as LOG;

/// Where HAProxy sends clients, as its stats page says: the servers it has UP in each listen
/// section.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Routing {
    /// Behind 5000.
    pub primary: Vec<String>,
    /// Behind 5001.
    pub replicas: Vec<String>,
}

impl Routing {
    /// From the stats page's CSV (`/;csv`): pxname is column 0, svname 1, status 17.
    pub fn parse(csv: &str) -> Routing {
        let mut routing = Routing::default();
        for line in csv.lines().filter(|l| !l.starts_with('#')) {
            let fields: Vec<&str> = line.split(',').collect();
            let (Some(proxy), Some(server), Some(status)) =
                (fields.first(), fields.get(1), fields.get(17))
            else {
                continue;
            };
            if ["FRONTEND", "BACKEND"].contains(server) || !status.starts_with("UP") {
                continue;
            }
            match *proxy {
                "primary" => routing.primary.push(server.to_string()),
                "standbys" => routing.replicas.push(server.to_string()),
                _ => {}
            }
        }
        routing
    }

    /// Whether 5000 leads to `primary` alone and 5001 to exactly `replicas`.
    pub fn follows(&self, primary: &str, replicas: &[String]) -> bool {
        let mut want = replicas.to_vec();
        want.sort();
        let mut have = self.replicas.clone();
        have.sort();
        self.primary == [primary] && have == want
    }

    /// "5000 → pgha1, 5001 → pgha2, pgha3"
    pub fn describe(&self) -> String {
        let list = |v: &[String]| {
            if v.is_empty() {
                "nothing".to_string()
            } else {
                v.join(", ")
            }
        };
        format!(
            "{HAPROXY_PRIMARY} → {}, {HAPROXY_REPLICAS} → {}",
            list(&self.primary),
            list(&self.replicas)
        )
    }
}

/// HAProxy's routing as its stats page on `node` says, or None when the page does not answer
/// (HAProxy stopped, the node stopped).
pub async fn routing(ctx: &Ctx<'_>, node: &str) -> Result<Option<Routing>> {
    if !ctx.lab.nodes.iter().any(|n| n.name == node && n.running()) {
        return Ok(None);
    }
    let argv = routing_probe();
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = ctx
        .exec(node, "root", &argv, Duration::from_secs(10))
        .await?;
    Ok(read_routing(&out))
}

/// The command `routing` runs on the HAProxy node: HAProxy's stats page as CSV (any user may
/// ask it).
pub fn routing_probe() -> Vec<String> {
    let url = format!("http://127.0.0.1:{HAPROXY_STATS}/;csv");
    ["curl", "-fsS", "--max-time", "3", &url]
        .map(String::from)
        .to_vec()
}

/// What `routing_probe` printed: the routing, or None when the stats page did not answer.
pub fn read_routing(out: &ExecOutput) -> Option<Routing> {
    out.ok().then(|| Routing::parse(&out.stdout))
}

pub async fn run(ctx: &Ctx<'_>, facts: &[Facts]) -> Result<Outcome> {
    let Some(node) = ctx.lab.haproxy_node() else {
        return Ok(Outcome {
            summary: "no HAProxy node in this lab".into(),
            changed: false,
        });
    };
    let f = of(facts, &node.name);
    if ctx.lab.tls && ctx.cluster.monitored() {
        haproxy_pem(ctx, &node.name).await?;
    }
    // A configuration already there (typed by a trainee, or by an earlier run) is kept.
    if !f.haproxy_config {
        let cfg = ctx.cluster.haproxy_cfg();
        ctx.upload(&node.name, &[(HAPROXY_CONF, &cfg, 0o644)])
            .await?;
    }
    if !f.haproxy_running {
        ctx.start(&catalog::HAPROXY, &[&node.name]).await?;
    }
    let routing = wait_routing(ctx, Duration::from_secs(45)).await?;
    Ok(Outcome {
        summary: format!(
            "haproxy1 ({}): {}, stats on {HAPROXY_STATS}",
            node.name,
            routing.describe()
        ),
        changed: !f.haproxy_config || !f.haproxy_running,
    })
}

/// HAProxy's copy of its node's certificate and key for its Prometheus endpoint on a monitored
/// `--tls` lab, readable by HAProxy's user alone (made again when the node's certificate is
/// new).
async fn haproxy_pem(ctx: &Ctx<'_>, node: &str) -> Result<()> {
    let script = format!(
        "cat {crt} {key} | cmp -s - {HAPROXY_PEM} && exit 0; umask 077; \
         cat {crt} {key} > {HAPROXY_PEM}.new && \
         chown haproxy:haproxy {HAPROXY_PEM}.new && mv {HAPROXY_PEM}.new {HAPROXY_PEM}",
        crt = crate::certs::cert_path(node),
        key = crate::certs::key_path(node),
    );
    ctx.must(
        Stage::Haproxy,
        node,
        "root",
        &script,
        Duration::from_secs(30),
        None,
    )
    .await
    .map(drop)
}

/// Waits until HAProxy leads 5000 to the Patroni leader alone and 5001 to every other running
/// PostgreSQL node (its checks take a few seconds: `inter 3s`, `rise 2`).
pub async fn wait_routing(ctx: &Ctx<'_>, deadline: Duration) -> Result<Routing> {
    let Some(node) = ctx.lab.haproxy_node().map(|n| n.name.clone()) else {
        return Ok(Routing::default());
    };
    // A node cut off from the lab network is out of HAProxy's reach as well as Patroni's.
    let postgres: Vec<String> = ctx
        .lab
        .postgres_nodes()
        .filter(|n| n.running() && !n.partitioned(&ctx.lab.network))
        .map(|n| n.name.clone())
        .collect();
    let waited = wait_for(deadline, Duration::from_millis(500), || async {
        let Some(routing) = routing(ctx, &node).await? else {
            return Ok(Err("its stats page does not answer".to_string()));
        };
        let Some(leader) = patroni::current_primary(ctx, &postgres).await? else {
            return Ok(Err(format!(
                "{}; Patroni has no leader",
                routing.describe()
            )));
        };
        let replicas: Vec<String> = postgres.iter().filter(|n| **n != leader).cloned().collect();
        Ok(if routing.follows(&leader, &replicas) {
            Ok(routing)
        } else {
            Err(format!(
                "{}, while Patroni's leader is {leader}",
                routing.describe()
            ))
        })
    })
    .await?;
    let say = |seen| {
        format!(
            "HAProxy does not route as Patroni says after {} s: {seen}",
            deadline.as_secs()
        )
    };
    ctx.waited(waited, Stage::Haproxy, &node, say, Some(LOG))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first columns of HAProxy 3.0's `/;csv`, as far as status (column 17).
    const CSV: &str = "\
# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight
stats,FRONTEND,,,1,1,100,3,0,0,0,0,0,,,,,OPEN,
stats,BACKEND,0,0,0,0,10,0,0,0,0,0,,0,0,0,0,UP,0
primary,FRONTEND,,,0,0,100,0,0,0,0,0,0,,,,,OPEN,
primary,pgha1,0,0,0,0,100,0,0,0,,0,,0,0,0,0,UP,1
primary,pgha2,0,0,0,0,100,0,0,0,,0,,0,0,0,0,DOWN,1
primary,pgha3,0,0,0,0,100,0,0,0,,0,,0,0,0,0,DOWN 1/2,1
primary,BACKEND,0,0,0,0,10,0,0,0,0,0,,0,0,0,0,UP,1
standbys,pgha1,0,0,0,0,100,0,0,0,,0,,0,0,0,0,DOWN,1
standbys,pgha2,0,0,0,0,100,0,0,0,,0,,0,0,0,0,UP,1
standbys,pgha3,0,0,0,0,100,0,0,0,,0,,0,0,0,0,UP 1/3,1
standbys,BACKEND,0,0,0,0,10,0,0,0,0,0,,0,0,0,0,UP,2
";

    #[test]
    fn the_stats_page_says_which_servers_are_up_behind_each_port() {
        let r = Routing::parse(CSV);
        assert_eq!(r.primary, ["pgha1"]);
        // "UP 1/3" is up and going down: HAProxy still sends clients there.
        assert_eq!(r.replicas, ["pgha2", "pgha3"]);
        assert!(r.follows("pgha1", &["pgha3".into(), "pgha2".into()]));
        assert!(!r.follows("pgha2", &["pgha1".into(), "pgha3".into()]));
        assert!(!r.follows("pgha1", &["pgha2".into()]));
        assert_eq!(r.describe(), "5000 → pgha1, 5001 → pgha2, pgha3");
        assert_eq!(
            Routing::parse("").describe(),
            "5000 → nothing, 5001 → nothing"
        );
    }
}
