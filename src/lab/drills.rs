//! The training drills: kill a node, cut it off and heal it, switch or fail over, stop and
//! start etcd members, start nodes again. Each acts, waits for the cluster's answer, and
//! reports it with the time it took, read live from Patroni's REST API and etcd.

use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::task::JoinHandle;

use super::power::PowerReport;
use crate::client;
use crate::engine::{Engine, NODE_STOP_GRACE};
use crate::error::{Error, Result};
use crate::lock::LabLock;
use crate::model::{self, Lab};
use crate::progress::{Progress, seconds};
use crate::render::PATRONI_CONF;
use crate::services::catalog::{self, Kind};
use crate::services::{self, Ctx, etcd, haproxy, lifecycle, patroni, wait_for};
use crate::spec::HAPROXY_PRIMARY;

/// How long a new leader may take: Patroni's ttl (30 s) plus a loop or two.
pub(super) const ELECTION: Duration = Duration::from_secs(90);
/// How long a node may take to stream again (a pg_rewind included).
pub(super) const REJOIN: Duration = Duration::from_secs(180);

/// The primary before a drill, asked live.
async fn primary_now(engine: &Engine, lab: &Lab) -> Result<Option<String>> {
    patroni::current_primary(&Ctx::new(engine, lab), &lab.postgres_names()).await
}

/// Waits for a running primary among `candidates` (other than `not`) with every other
/// candidate streaming from it; returns it and its replicas, described.
async fn wait_new_primary(
    engine: &Engine,
    name: &str,
    candidates: &[String],
    not: Option<&str>,
    deadline: Duration,
) -> Result<(String, String)> {
    let lab = model::get(engine, name).await?;
    let ctx = Ctx::new(engine, &lab);
    let started = Instant::now();
    let primary = loop {
        if let Some(p) = patroni::current_primary(&ctx, candidates).await?
            && Some(p.as_str()) != not
        {
            break p;
        }
        if started.elapsed() > deadline {
            return Err(Error::Failed(format!(
                "no new primary among {} after {} s; `lab status --name {name}` shows where the \
                 cluster stands, `lab logs NODE patroni` why",
                candidates.join(", "),
                deadline.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let healthy = patroni::wait_healthy(&ctx, candidates, REJOIN).await?;
    let streams = healthy
        .replicas
        .iter()
        .map(|r| format!("{r} streaming from {primary}"))
        .collect::<Vec<_>>()
        .join(", ");
    Ok((primary, streams))
}

/// How long HAProxy may take to follow Patroni's new leader: three failed checks 3 s apart
/// mark the old primary down, two good ones the new one up, with room to spare.
const ENTRY_GRACE: Duration = Duration::from_secs(30);

/// A client's watch on HAProxy's published 5000 during a drill: when it first reached a primary
/// other than the old one, and which node that was. It is told when Patroni has answered, and
/// gives up ENTRY_GRACE after that; dropped, it stops.
struct EntryWatch {
    seen: JoinHandle<std::result::Result<(Duration, String), String>>,
    elected: tokio::sync::watch::Sender<Option<Instant>>,
}

impl Drop for EntryWatch {
    fn drop(&mut self) {
        self.seen.abort();
    }
}

/// What a client needs to watch 5000: where it is published, the password, the nodes'
/// addresses, and the old primary's.
struct EntryProbe {
    entry: client::Entry,
    names: Vec<(String, String)>,
    old_ip: Option<String>,
}

impl EntryProbe {
    /// For a lab whose HAProxy serves clients right now (running, on the lab network, its
    /// stats page answering); None otherwise, when there is nothing to watch.
    async fn new(engine: &Engine, lab: &Lab, old: &str) -> Result<Option<EntryProbe>> {
        let Some(proxy) = lab
            .haproxy_node()
            .filter(|n| n.running() && !n.partitioned(&lab.network))
        else {
            return Ok(None);
        };
        let Some(port) = proxy.host_port(HAPROXY_PRIMARY) else {
            return Ok(None);
        };
        let ctx = Ctx::new(engine, lab);
        if haproxy::routing(&ctx, &proxy.name).await?.is_none() {
            return Ok(None);
        }
        let ca = if lab.tls {
            Some(super::connect::ca_of(&ctx).await?)
        } else {
            None
        };
        Ok(Some(EntryProbe {
            entry: client::Entry {
                addrs: vec![(lab.host.clone(), port)],
                session: client::TargetSessionAttrs::Any,
                password: services::settings(&ctx).await?.password,
                ca,
            },
            names: lab
                .nodes
                .iter()
                .filter_map(|n| Some((n.ip()?.to_string(), n.name.clone())))
                .collect(),
            old_ip: lab.node(old)?.ip().map(|ip| ip.to_string()),
        }))
    }

    /// Starts watching, from `started`: a fresh connection every 200 ms, until one lands on a
    /// primary that is not the old one.
    fn watch(self, started: Instant) -> EntryWatch {
        let (elected, told) = tokio::sync::watch::channel(None::<Instant>);
        let seen = tokio::spawn(async move {
            let mut last = String::from("no answer yet");
            loop {
                if told.borrow().is_some_and(|at| at.elapsed() > ENTRY_GRACE) {
                    return Err(last);
                }
                let timeout = Duration::from_secs(2);
                match client::who(&self.entry, timeout).await {
                    Ok(a) if !a.in_recovery && Some(&a.server) != self.old_ip.as_ref() => {
                        let node = self
                            .names
                            .iter()
                            .find(|(ip, _)| *ip == a.server)
                            .map_or(a.server.clone(), |(_, n)| n.clone());
                        return Ok((started.elapsed(), node));
                    }
                    Ok(a) => {
                        last = format!("answered by {} (in recovery: {})", a.server, a.in_recovery)
                    }
                    Err(e) => last = e,
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        EntryWatch { seen, elected }
    }
}

/// Once Patroni has answered: "HAProxy's 5000 reached pgha2 after 9.6 s" (HAProxy follows on
/// its own checks, so the watch may go on a little longer).
async fn entry_report(watch: Option<EntryWatch>) -> Option<String> {
    let mut watch = watch?;
    let _ = watch.elected.send(Some(Instant::now()));
    Some(match (&mut watch.seen).await {
        Ok(Ok((after, node))) => format!(
            "HAProxy's {HAPROXY_PRIMARY} reached {node} after {}",
            seconds(after)
        ),
        Ok(Err(last)) => format!(
            "HAProxy's {HAPROXY_PRIMARY} did not reach a new primary within {} s of it (last: \
             {last})",
            ENTRY_GRACE.as_secs()
        ),
        Err(_) => format!("HAProxy's {HAPROXY_PRIMARY} could not be watched"),
    })
}

/// The watch to set up before a fault on `node`: only the primary's loss moves 5000.
async fn entry_probe(
    engine: &Engine,
    lab: &Lab,
    node: &str,
    was_primary: bool,
) -> Result<Option<EntryProbe>> {
    if was_primary {
        EntryProbe::new(engine, lab, node).await
    } else {
        Ok(None)
    }
}

/// Whether `node` is the HAProxy node and serves clients right now (its stats page answers).
async fn serves_clients(engine: &Engine, lab: &Lab, node: &str) -> Result<bool> {
    if !lab.node(node)?.roles.haproxy {
        return Ok(false);
    }
    Ok(haproxy::routing(&Ctx::new(engine, lab), node)
        .await?
        .is_some())
}

async fn etcd_health(engine: &Engine, name: &str) -> Result<String> {
    let lab = model::get(engine, name).await?;
    Ok(etcd::view(&Ctx::new(engine, &lab)).await?.health())
}

/// What losing `node` did to the cluster, once it has settled.
async fn aftermath(
    engine: &Engine,
    lab: &Lab,
    node: &str,
    was_primary: bool,
    started: Instant,
    watch: Option<EntryWatch>,
    lost_entry: bool,
) -> Result<(Option<String>, Vec<String>)> {
    let node_roles = lab.node(node)?.roles;
    // A node already down or cut off (an earlier drill) takes no part in the answer.
    let others: Vec<String> = lab
        .postgres_nodes()
        .filter(|n| n.name != node && n.running() && !n.partitioned(&lab.network))
        .map(|n| n.name.clone())
        .collect();
    let mut report = Vec::new();
    let mut leader = None;
    if node_roles.postgres && !others.is_empty() {
        let (primary, streams) =
            wait_new_primary(engine, &lab.name, &others, None, ELECTION).await?;
        if was_primary {
            report.push(format!(
                "new leader {primary} after {}",
                seconds(started.elapsed())
            ));
            report.extend(entry_report(watch).await);
        } else {
            report.push(format!("leader {primary} unchanged"));
        }
        if !streams.is_empty() {
            report.push(streams);
        }
        leader = Some(primary);
    }
    if node_roles.etcd {
        report.push(format!("etcd: {}", etcd_health(engine, &lab.name).await?));
    }
    if lost_entry {
        report.push(
            "clients have lost their entry: HAProxy's ports refuse connections, while the \
             cluster behind it goes on"
                .into(),
        );
    }
    if report.is_empty() {
        report.push("nothing of the cluster ran there".into());
    }
    Ok((leader, report))
}

/// What a fault command (kill, partition, heal, switchover, failover, etcd stop|start) did and
/// how the cluster answered: its line of text, and its `--json`.
#[derive(Debug, Serialize)]
pub struct FaultReport {
    /// kill, partition, heal, switchover, failover, etcd stop or etcd start.
    pub fault: String,
    /// The nodes it was done to (for a switchover or failover, the old primary).
    pub nodes: Vec<String>,
    /// What was done, as the line says it ("pgha1 (the primary) killed"), when the line says.
    pub done: Option<String>,
    /// The primary once the cluster answered, where the command waited for one.
    pub primary: Option<String>,
    /// The cluster's answer, a part each ("new leader pgha2 after 4.1 s", "etcd: ...").
    pub answer: Vec<String>,
    /// From the fault to the answer, in seconds.
    pub seconds: f64,
}

impl FaultReport {
    /// The line a fault command ends its step with.
    pub fn text(&self) -> String {
        self.done
            .iter()
            .chain(&self.answer)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// `lab kill NODE`: SIGKILL, the way a machine dies.
pub async fn kill(
    engine: &Engine,
    progress: &Progress,
    lock: &LabLock,
    node: &str,
) -> Result<FaultReport> {
    let name = lock.lab();
    let lab = model::get(engine, name).await?;
    // Named as the course names it, or by its container.
    let node = lab.node(node)?.name.as_str();
    let was_primary = primary_now(engine, &lab).await?.as_deref() == Some(node);
    let step = progress.step(format!("kill {node}"));
    let probe = entry_probe(engine, &lab, node, was_primary).await?;
    let lost_entry = serves_clients(engine, &lab, node).await?;
    let started = Instant::now();
    let watch = probe.map(|p| p.watch(started));
    engine.kill_container(lab.container(node)).await?;
    let what = if was_primary { " (the primary)" } else { "" };
    let (primary, answer) =
        aftermath(engine, &lab, node, was_primary, started, watch, lost_entry).await?;
    let report = FaultReport {
        fault: "kill".into(),
        nodes: vec![node.to_string()],
        done: Some(format!("{node}{what} killed")),
        primary,
        answer,
        seconds: started.elapsed().as_secs_f64(),
    };
    step.done(report.text());
    let rejoins = if lab.node(node)?.roles.postgres {
        "; it rejoins as a replica"
    } else {
        ""
    };
    progress.line(format!(
        "`lab start --name {name} {node}` brings it back{rejoins}"
    ));
    Ok(report)
}

/// `lab partition NODE`: cut off from the lab network; its address stays reserved for it.
pub async fn partition(
    engine: &Engine,
    progress: &Progress,
    lock: &LabLock,
    node: &str,
) -> Result<FaultReport> {
    let name = lock.lab();
    let lab = model::get(engine, name).await?;
    let n = lab.node(node)?;
    let node = n.name.as_str();
    if n.partitioned(&lab.network) {
        return Err(Error::Invalid(format!(
            "{node} is already cut off from {}; `lab heal --name {name} {node}` rejoins it",
            lab.network
        )));
    }
    let was_primary = primary_now(engine, &lab).await?.as_deref() == Some(node);
    let step = progress.step(format!("partition {node}"));
    let probe = entry_probe(engine, &lab, node, was_primary).await?;
    let lost_entry = serves_clients(engine, &lab, node).await?;
    let started = Instant::now();
    let watch = probe.map(|p| p.watch(started));
    engine
        .disconnect_network(&lab.network, lab.container(node))
        .await?;
    let (primary, answer) =
        aftermath(engine, &lab, node, was_primary, started, watch, lost_entry).await?;
    let what = if was_primary { " (the primary)" } else { "" };
    let report = FaultReport {
        fault: "partition".into(),
        nodes: vec![node.to_string()],
        done: Some(format!("{node}{what} cut off from {}", lab.network)),
        primary,
        answer,
        seconds: started.elapsed().as_secs_f64(),
    };
    step.done(report.text());
    Ok(report)
}

/// `lab heal NODE`: back on the lab network at its own address, rejoined.
pub async fn heal(
    engine: &Engine,
    progress: &Progress,
    lock: &LabLock,
    node: &str,
) -> Result<FaultReport> {
    let name = lock.lab();
    let lab = model::get(engine, name).await?;
    let n = lab.node(node)?;
    let node = n.name.as_str();
    if !n.partitioned(&lab.network) {
        return Err(Error::Invalid(format!(
            "{node} is not cut off from {}; nothing to heal",
            lab.network
        )));
    }
    let step = progress.step(format!("heal {node}"));
    let started = Instant::now();
    let ip = model::reattach(engine, &lab, n).await?;
    let answer = if n.running() {
        rejoined(engine, name, &[node.to_string()], started).await?
    } else {
        vec![format!(
            "it is stopped: `lab start --name {name} {node}` starts it"
        )]
    };
    let report = FaultReport {
        fault: "heal".into(),
        nodes: vec![node.to_string()],
        done: Some(format!("{node} back on {} at {ip}", lab.network)),
        primary: None,
        answer,
        seconds: started.elapsed().as_secs_f64(),
    };
    step.done(report.text());
    Ok(report)
}

/// Waits until `nodes` are back in the cluster, service by service in the catalog's order;
/// describes how they came back.
pub(super) async fn rejoined(
    engine: &Engine,
    name: &str,
    nodes: &[String],
    started: Instant,
) -> Result<Vec<String>> {
    let lab = model::get(engine, name).await?;
    let ctx = Ctx::new(engine, &lab);
    let mut report = Vec::new();
    for service in catalog::ALL {
        let back: Vec<String> = lab
            .nodes
            .iter()
            .filter(|n| (service.runs_on)(&n.roles) && nodes.contains(&n.name))
            .map(|n| n.name.clone())
            .collect();
        if back.is_empty() {
            continue;
        }
        match service.kind {
            Kind::Etcd => {
                let view = etcd::wait_healthy(&ctx, &back, Duration::from_secs(60)).await?;
                report.push(format!("etcd: {}", view.health()));
            }
            Kind::Patroni => report.extend(patroni_rejoined(&ctx, &back, started).await?),
            Kind::Haproxy => report.push(haproxy_rejoined(&ctx, &back[0], started).await?),
            // Its start helper has waited until it answers.
            Kind::Prometheus => report.push(format!("Prometheus answering on {}", back[0])),
            Kind::Sshd | Kind::Repository | Kind::Exporters => {}
        }
    }
    Ok(report)
}

/// Waits until the PostgreSQL nodes `back` are in the cluster again: how each came back.
async fn patroni_rejoined(ctx: &Ctx<'_>, back: &[String], started: Instant) -> Result<Vec<String>> {
    // Other nodes may be down on purpose (a drill in progress): only the running ones count.
    let pg: Vec<String> = ctx
        .lab
        .postgres_nodes()
        .filter(|n| n.running())
        .map(|n| n.name.clone())
        .collect();
    if !back.iter().any(|n| pg.contains(n)) {
        return Ok(Vec::new());
    }
    let healthy = patroni::wait_healthy(ctx, &pg, REJOIN).await?;
    let mut report = Vec::new();
    for node in back.iter().filter(|n| pg.contains(n)) {
        let state = if *node == healthy.primary {
            "primary".to_string()
        } else {
            format!("replica streaming from {}", healthy.primary)
        };
        report.push(format!(
            "{node} {state} after {}{}",
            seconds(started.elapsed()),
            if rewound(ctx, node, started).await? {
                " (pg_rewind ran)"
            } else {
                ""
            }
        ));
    }
    Ok(report)
}

/// Waits until HAProxy on `proxy` routes again, where it is configured (a start brings it back
/// only there).
async fn haproxy_rejoined(ctx: &Ctx<'_>, proxy: &str, started: Instant) -> Result<String> {
    let configured = ctx
        .facts()
        .await?
        .iter()
        .any(|f| f.node == proxy && f.haproxy_config);
    if !configured {
        return Ok(format!(
            "HAProxy is not configured on {proxy} yet (`lab bootstrap --name {}` does it)",
            ctx.lab.name
        ));
    }
    let routing = haproxy::wait_routing(ctx, Duration::from_secs(45)).await?;
    Ok(format!(
        "HAProxy routes again after {}: {}",
        seconds(started.elapsed()),
        routing.describe()
    ))
}

/// What `loggedSince SECONDS LOG TEXT` prints: whether a line of LOG stamped within the last
/// SECONDS holds TEXT.
#[derive(serde::Deserialize)]
struct Logged {
    logged: bool,
}

/// Whether Patroni ran pg_rewind on `node` since `since` (its log says so).
pub(super) async fn rewound(ctx: &Ctx<'_>, node: &str, since: Instant) -> Result<bool> {
    let secs = (since.elapsed().as_secs() + 2).to_string();
    let argv = [
        "/usr/local/lib/pgha-lab/loggedSince",
        &secs,
        patroni::LOG,
        "running pg_rewind from",
    ];
    let seen: Logged = ctx
        .probe(node, "root", &argv, Duration::from_secs(15))
        .await?;
    Ok(seen.logged)
}

/// Lab `name`, which must have every node of `nodes` (the error names the ones it has), and
/// those nodes by the names they have in the lab (a container's name may be given instead).
async fn with_nodes(engine: &Engine, name: &str, nodes: &[String]) -> Result<(Lab, Vec<String>)> {
    let lab = model::get(engine, name).await?;
    let nodes = nodes
        .iter()
        .map(|node| lab.node(node).map(|n| n.name.clone()))
        .collect::<Result<_>>()?;
    Ok((lab, nodes))
}

/// `lab start NODE...`: the nodes' containers and services, waited for until they are back.
pub async fn start_nodes(
    engine: &Engine,
    progress: &Progress,
    lock: &LabLock,
    nodes: &[String],
) -> Result<PowerReport> {
    let name = lock.lab();
    let (lab, nodes) = with_nodes(engine, name, nodes).await?;
    let nodes = nodes.as_slice();
    let step = progress.step(format!("start {}", nodes.join(", ")));
    let started = Instant::now();
    for node in nodes {
        model::reattach(engine, &lab, lab.node(node)?).await?;
        engine.start_container(lab.container(node)).await?;
    }
    let lab = model::get(engine, name).await?;
    lifecycle::start_on(&Ctx::new(engine, &lab), nodes).await?;
    let report = rejoined(engine, name, nodes, started).await?;
    let services = report.join("; ");
    step.done(&services);
    Ok(PowerReport::new(name, nodes, services, started))
}

/// `lab stop NODE...`: the services on those nodes stopped cleanly, then their containers.
pub async fn stop_nodes(
    engine: &Engine,
    progress: &Progress,
    lock: &LabLock,
    nodes: &[String],
) -> Result<PowerReport> {
    let (name, since) = (lock.lab(), Instant::now());
    let (lab, nodes) = with_nodes(engine, name, nodes).await?;
    let nodes = nodes.as_slice();
    let step = progress.step(format!("stop the services on {}", nodes.join(", ")));
    let summary = lifecycle::stop_on(&Ctx::new(engine, &lab), nodes).await?;
    step.done(&summary);
    let step = progress.step(format!("stop {}", nodes.join(", ")));
    for node in nodes {
        step.detail(node);
        engine
            .stop_container(lab.container(node), NODE_STOP_GRACE)
            .await?;
    }
    step.done(format!("{} node(s) stopped", nodes.len()));
    Ok(PowerReport::new(name, nodes, summary, since))
}

/// `lab switchover [--to NODE]` and `lab failover [--to NODE]`, through patronictl as the course
/// does them.
pub async fn change_leader(
    engine: &Engine,
    progress: &Progress,
    lock: &LabLock,
    to: Option<&str>,
    failover: bool,
) -> Result<FaultReport> {
    let name = lock.lab();
    let lab = model::get(engine, name).await?;
    let pg = lab.postgres_names();
    let ctx = Ctx::new(engine, &lab);
    let healthy = healthy_before(&ctx, "there is nothing to hand over safely").await?;
    let old = healthy.primary.clone();
    // A container's name is taken for the node's.
    let to = to.map(|to| lab.find_name(to));
    let candidate = match to {
        Some(to) if !healthy.replicas.iter().any(|r| r == to) => {
            return Err(Error::Invalid(format!(
                "{to} is not a streaming replica of lab {name}; candidates are {}",
                healthy.replicas.join(", ")
            )));
        }
        Some(to) => Some(to.to_string()),
        // A failover needs a candidate; a switchover lets Patroni choose.
        None if failover => healthy.replicas.first().cloned(),
        None => None,
    };
    let kind = if failover { "failover" } else { "switchover" };
    let step = progress.step(format!(
        "{kind} from {old}{}",
        candidate
            .as_deref()
            .map(|c| format!(" to {c}"))
            .unwrap_or_default()
    ));
    let probe = EntryProbe::new(engine, &lab, &old).await?;
    let started = Instant::now();
    let watch = probe.map(|p| p.watch(started));
    hand_over(engine, &lab, &old, candidate.as_deref(), failover).await?;
    let (primary, streams) = wait_new_primary(engine, name, &pg, Some(&old), REJOIN).await?;
    let elected = seconds(started.elapsed());
    let mut answer = vec![format!("new leader {primary} after {elected}")];
    let primary = Some(primary);
    answer.extend(entry_report(watch).await);
    answer.push(streams);
    let report = FaultReport {
        fault: kind.into(),
        nodes: vec![old],
        done: None,
        primary,
        answer,
        seconds: started.elapsed().as_secs_f64(),
    };
    step.done(report.text());
    Ok(report)
}

/// The cluster healthy right now (one primary, every replica streaming), as a drill or a change
/// of mode needs it; otherwise a refusal saying `so` what cannot be done.
pub(super) async fn healthy_before(ctx: &Ctx<'_>, so: &str) -> Result<patroni::Healthy> {
    let name = &ctx.lab.name;
    patroni::wait_healthy(ctx, &ctx.lab.postgres_names(), Duration::from_secs(15))
        .await
        .map_err(|_| {
            Error::Invalid(format!(
                "lab {name} is not healthy (one primary, every replica streaming), so {so}; \
                 `lab status --name {name}` shows why, `lab check --name {name}` what to do"
            ))
        })
}

/// Starts or stops etcd on `nodes`, one after another, with the course's helpers.
pub(super) async fn etcd_service(ctx: &Ctx<'_>, nodes: &[String], start: bool) -> Result<()> {
    for node in nodes {
        if start {
            ctx.start(&catalog::ETCD, &[node]).await?;
        } else {
            ctx.stop(&catalog::ETCD, &[node]).await?;
        }
    }
    Ok(())
}

/// A switchover from `old` (to `candidate`, or Patroni's choice), or a failover to `candidate`,
/// through patronictl on `old` as the course types it.
pub(super) async fn hand_over(
    engine: &Engine,
    lab: &Lab,
    old: &str,
    candidate: Option<&str>,
    failover: bool,
) -> Result<()> {
    let kind = if failover { "failover" } else { "switchover" };
    let mut cmd = vec!["patronictl", "-c", PATRONI_CONF, kind];
    if !failover {
        cmd.extend(["--leader", old]);
    }
    if let Some(c) = candidate {
        cmd.extend(["--candidate", c]);
    }
    cmd.push("--force");
    let out = engine
        .exec(
            lab.container(old),
            "postgres",
            &cmd,
            Duration::from_secs(120),
        )
        .await?;
    if !out.ok() {
        return Err(Error::Failed(format!(
            "patronictl {kind} refused: {}",
            out.said()
        )));
    }
    Ok(())
}

/// `lab etcd stop|start NODE...`: members taken down or brought back, and what it does to the
/// quorum.
pub async fn etcd_members(
    engine: &Engine,
    progress: &Progress,
    lock: &LabLock,
    nodes: &[String],
    start: bool,
) -> Result<FaultReport> {
    let name = lock.lab();
    let (lab, nodes) = with_nodes(engine, name, nodes).await?;
    let nodes = nodes.as_slice();
    for node in nodes {
        if !lab.node(node)?.roles.etcd {
            return Err(Error::Invalid(format!("{node} is not an etcd member")));
        }
    }
    let ctx = Ctx::new(engine, &lab);
    let verb = if start { "start" } else { "stop" };
    let step = progress.step(format!("{verb} etcd on {}", nodes.join(", ")));
    let started = Instant::now();
    etcd_service(&ctx, nodes, start).await?;
    let view = if start {
        etcd::wait_healthy(&ctx, nodes, Duration::from_secs(60)).await?
    } else {
        // Until the members' absence shows in the others' view.
        let gone = wait_for(
            Duration::from_secs(30),
            Duration::from_millis(300),
            || async {
                let view = etcd::view(&ctx).await?;
                Ok(if nodes.iter().any(|n| view.up.contains(n)) {
                    Err(view)
                } else {
                    Ok(view)
                })
            },
        )
        .await?;
        gone.unwrap_or_else(|view| view)
    };
    let report = FaultReport {
        fault: format!("etcd {verb}"),
        nodes: nodes.to_vec(),
        done: None,
        primary: None,
        answer: vec![format!(
            "etcd: {} after {}",
            view.health(),
            seconds(started.elapsed())
        )],
        seconds: started.elapsed().as_secs_f64(),
    };
    step.done(report.text());
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::FaultReport;

    #[test]
    fn a_fault_s_line_is_what_was_done_then_the_answer() {
        let mut report = FaultReport {
            fault: "kill".into(),
            nodes: vec!["pgha1".into()],
            done: Some("pgha1 (the primary) killed".into()),
            primary: Some("pgha2".into()),
            answer: vec![
                "new leader pgha2 after 4.1 s".into(),
                "etcd: 4 of 5 up".into(),
            ],
            seconds: 4.2,
        };
        assert_eq!(
            report.text(),
            "pgha1 (the primary) killed; new leader pgha2 after 4.1 s; etcd: 4 of 5 up"
        );
        report.done = None;
        assert_eq!(
            report.text(),
            "new leader pgha2 after 4.1 s; etcd: 4 of 5 up"
        );
    }
}
