//! `lab drill SCENARIO`: a fault with a client workload around it, measured as the application
//! saw it (how long writes failed, which acknowledged writes are gone, what the client was told)
//! next to what Patroni did and what the lab's own settings predict. Every drill puts the lab
//! back: the node started or rejoined, etcd's members and HAProxy running, the cluster healthy.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use super::drills::{ELECTION, REJOIN, etcd_service, hand_over, healthy_before, rejoined, rewound};
use crate::client::{Entry, TargetSessionAttrs};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::fault::Fault;
use crate::lock::LabLock;
use crate::model::{self, Lab};
use crate::plot::{NewLeader, Picture};
use crate::predict::{self, Timers, Window};
use crate::progress::{Progress, seconds};
use crate::services::{self, Ctx, etcd, haproxy, lifecycle, patroni};
use crate::spec::{HAPROXY_PRIMARY, HAPROXY_REPLICAS};
use crate::timeline::Timeline;
use crate::workload::{self, Record, TABLE, Workload};

/// How long HAProxy may take to route as Patroni says: fall 3 checks 3 s apart, with room.
const PROXY_FOLLOWS: Duration = Duration::from_secs(45);
/// How long HAProxy stays down in kill-haproxy.
const PROXY_HOLD: u64 = 10;
/// How long the workload runs before the fault, and on after the cluster has settled.
const BASELINE: Duration = Duration::from_secs(3);
const AFTER: Duration = Duration::from_secs(2);
/// How long, once Patroni has answered, writes may take to come back through the entry.
const RESUME: Duration = Duration::from_secs(60);

/// What a client saw on one side of the workload; times in seconds after the fault.
#[derive(Debug, Serialize)]
pub struct Side {
    pub acknowledged: usize,
    /// Sent, but the connection died before the answer: committed or not, nobody knows.
    pub in_doubt: usize,
    /// The longest time without an acknowledgement that ended after the fault.
    pub downtime: Option<f64>,
    /// When that stretch began and ended.
    pub failing_from: Option<f64>,
    pub back_at: Option<f64>,
    pub errors: Vec<workload::Errors>,
}

#[derive(Debug, Serialize)]
pub struct Leader {
    pub node: String,
    /// When the drill saw Patroni name it, in seconds after the fault; None when it stayed the
    /// same node.
    pub after: Option<f64>,
    /// When it was promoted, in seconds after the fault: its timeline's moment in Patroni's
    /// history, which PostgreSQL wrote as it promoted (the nodes share the host's clock). None
    /// when the leader stayed, or the history did not say.
    pub promoted: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Lost {
    pub count: usize,
    /// As ranges: "1203-1207, 1210".
    pub ids: String,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub lab: String,
    pub scenario: Fault,
    /// async, sync or sync (strict): the replication mode the lab was in.
    pub mode: String,
    /// The entry the workload used.
    pub entry: String,
    pub fault: String,
    pub writes: Side,
    pub reads: Option<Side>,
    pub leader: Leader,
    /// When the first write after the fault was acknowledged by the new primary, through the
    /// entry (seconds after the fault).
    pub entry_reached_new_primary: Option<f64>,
    /// Acknowledged writes missing on the primary afterwards.
    pub lost: Lost,
    /// Rows on the old primary's timeline that pg_rewind threw away (None: not readable).
    pub discarded_by_rewind: Option<usize>,
    pub discarded_note: String,
    pub predicted: Window,
    pub verdict: String,
    /// How the lab was put back.
    pub restored: String,
    /// What the client saw per 100 ms, with the fault at 0: the series `--plot` draws.
    pub timeline: Timeline,
}

/// The lab's read-write and read-only entries as a client on this host uses them.
struct Entries {
    write: Entry,
    read: Entry,
    what: String,
    haproxy: bool,
}

async fn entries(ctx: &Ctx<'_>, lab: &Lab) -> Result<Entries> {
    let password = services::settings(ctx).await?.password;
    let ca = if lab.tls {
        Some(super::connect::ca_of(ctx).await?)
    } else {
        None
    };
    let entry = |addrs: Vec<_>, session| Entry {
        addrs,
        session,
        password: password.clone(),
        ca: ca.clone(),
    };
    if let Some(proxy) = lab
        .haproxy_node()
        .filter(|n| n.running() && !n.partitioned(&lab.network))
        && let (Some(w), Some(r)) = (
            proxy.host_port(HAPROXY_PRIMARY),
            proxy.host_port(HAPROXY_REPLICAS),
        )
        && haproxy::routing(ctx, &proxy.name).await?.is_some()
    {
        let host = &lab.host;
        return Ok(Entries {
            write: entry(vec![(host.clone(), w)], TargetSessionAttrs::Any),
            read: entry(vec![(host.clone(), r)], TargetSessionAttrs::Any),
            what: format!(
                "HAProxy's {HAPROXY_PRIMARY} at {host}:{w} (reads: {HAPROXY_REPLICAS} at \
                 {host}:{r})"
            ),
            haproxy: true,
        });
    }
    let addrs: Vec<_> = lab
        .postgres_nodes()
        .filter_map(|n| Some((lab.host.clone(), n.port()?)))
        .collect();
    let ports: Vec<String> = addrs.iter().map(|(_, p)| p.to_string()).collect();
    Ok(Entries {
        write: entry(addrs.clone(), TargetSessionAttrs::ReadWrite),
        read: entry(addrs, TargetSessionAttrs::ReadOnly),
        what: format!(
            "libpq's multi-host string over {}:{} (target_session_attrs read-write; reads: \
             read-only)",
            lab.host,
            ports.join(",")
        ),
        haproxy: false,
    })
}

/// The node a scenario hits.
async fn target(
    scenario: Fault,
    ctx: &Ctx<'_>,
    healthy: &patroni::Healthy,
    dynamic: &patroni::Dynamic,
) -> Result<Vec<String>> {
    let lab = ctx.lab;
    Ok(match scenario {
        Fault::KillPrimary | Fault::PartitionPrimary | Fault::Switchover | Fault::Failover => {
            vec![healthy.primary.clone()]
        }
        Fault::KillReplica => {
            let Some(first) = healthy.replicas.first() else {
                return Err(Error::Invalid(format!(
                    "lab {} has no replica to kill",
                    lab.name
                )));
            };
            // In sync mode the synchronous standby is the one whose loss a commit feels.
            let standby = if dynamic.synchronous_mode {
                sync_standby(ctx, &healthy.primary).await?
            } else {
                None
            };
            vec![standby.unwrap_or_else(|| first.clone())]
        }
        Fault::EtcdMajority => {
            let members: Vec<String> = lab.etcd_nodes().map(|n| n.name.clone()).collect();
            let majority = members.len() / 2 + 1;
            members[members.len() - majority..].to_vec()
        }
        Fault::KillHaproxy => match lab.haproxy_node() {
            Some(proxy) => vec![proxy.name.clone()],
            None => {
                return Err(Error::Invalid(format!(
                    "lab {} has no HAProxy node; kill-haproxy needs a lab made with --haproxy \
                     (or the colocated or dedicated-etcd topology)",
                    lab.name
                )));
            }
        },
    })
}

/// The synchronous standby as the primary's pg_stat_replication names it.
async fn sync_standby(ctx: &Ctx<'_>, primary: &str) -> Result<Option<String>> {
    let standbys = patroni::standbys(ctx, primary).await?;
    Ok(standbys
        .into_iter()
        .find(|s| s.synchronous())
        .map(|s| s.name))
}

/// What a fault did to the cluster, seen from the lab's side.
struct Observed {
    fault: String,
    leader: Leader,
    /// The ids on the old primary's timeline, read before it rejoined (or why they could not
    /// be); None where the scenario does not read them.
    old_rows: Option<std::result::Result<BTreeSet<i64>, String>>,
    restored: String,
}

/// What one drill works with, fixed before the fault: the lab as it was, the fault and the
/// nodes it hits, the healthy cluster it starts from, and the settings that predict its cost.
struct Drill<'a> {
    engine: &'a Engine,
    lab: Lab,
    fault: Fault,
    targets: Vec<String>,
    healthy: patroni::Healthy,
    dynamic: patroni::Dynamic,
    timers: Timers,
}

/// `lab drill FAULT`: a workload through the lab's entry, the fault, the cluster's answer,
/// the lab put back, and the report of what the client saw against what was predicted.
pub async fn drill(
    engine: &Engine,
    progress: &Progress,
    lock: &LabLock,
    fault: Fault,
    reader: bool,
) -> Result<Report> {
    let lab = model::get(engine, lock.lab()).await?;
    let ctx = Ctx::new(engine, &lab);
    let healthy = healthy_before(&ctx, "a drill would measure the wrong thing").await?;
    if lab.haproxy_node().is_some() {
        // A drill right after another starts from HAProxy following Patroni again, so the
        // baseline is clean.
        haproxy::wait_routing(&ctx, PROXY_FOLLOWS).await?;
    }
    let dynamic = patroni::dynamic(&ctx, &healthy.primary).await?;
    let targets = target(fault, &ctx, &healthy, &dynamic).await?;
    let entries = entries(&ctx, &lab).await?;
    let timers = Timers {
        ttl: dynamic.ttl,
        loop_wait: dynamic.loop_wait,
        retry_timeout: dynamic.retry_timeout,
        haproxy: entries.haproxy,
        sync: dynamic.synchronous_mode,
        hold: match fault {
            Fault::KillHaproxy => PROXY_HOLD,
            _ => dynamic.ttl,
        },
    };
    let drill = Drill {
        engine,
        lab: lab.clone(),
        fault,
        targets,
        healthy,
        dynamic,
        timers,
    };
    let load = drill.baseline(progress, &entries, reader).await?;
    let fault_at = load.now();
    let started = Instant::now();
    let fault_wall = SystemTime::now();
    let step = progress.step(format!("{} on {}", fault.name(), drill.targets.join(", ")));
    let observed = drill.act(&load, started).await;
    let (writes, reads) = load.stop().await;
    let observed = match observed {
        Ok(o) => o,
        Err(e) => {
            let put_back = drill.put_back(started).await;
            return Err(match put_back {
                Ok(how) => Error::Failed(format!("{e}; the lab was put back: {how}")),
                Err(left) => Error::Failed(format!("{e}; and putting the lab back failed: {left}")),
            });
        }
    };
    step.done(format!("{}; {}", observed.fault, observed.restored));
    let step = progress.step("count the rows on the primary");
    let present = rows_now(&entries.write).await?;
    let lost = workload::lost(&writes.acks, &present);
    step.done(format!(
        "{} of {} acknowledged writes there",
        writes.acks.len() - lost.len(),
        writes.acks.len()
    ));
    let outcome = Outcome {
        observed,
        writes,
        reads,
        present,
        lost,
        fault_at,
        started,
        fault_wall,
    };
    let report = drill.report(&ctx, entries.what, outcome).await?;
    super::records::note_drill(engine, progress, &report).await;
    Ok(report)
}

/// What a drill's fault left, to be reported.
struct Outcome {
    observed: Observed,
    writes: Record,
    reads: Option<Record>,
    /// The drill's rows on the primary afterwards.
    present: BTreeSet<i64>,
    /// Acknowledged writes not among them.
    lost: Vec<i64>,
    /// When the fault came, on the workload's clock and on this one.
    fault_at: Duration,
    started: Instant,
    /// The fault's moment on the wall clock, to place Patroni's own times.
    fault_wall: SystemTime,
}

impl Drill<'_> {
    /// Starts the workload through the lab's entry and waits until it writes: the baseline
    /// before the fault. Nothing is done to the lab when it cannot.
    async fn baseline(
        &self,
        progress: &Progress,
        entries: &Entries,
        reader: bool,
    ) -> Result<Workload> {
        let name = &self.lab.name;
        let step = progress.step(format!("workload through {}", entries.what));
        workload::prepare(&entries.write).await.map_err(|e| {
            Error::Failed(format!(
                "the workload could not make its table {TABLE} through {}: {e}",
                entries.what
            ))
        })?;
        let load = Workload::start(entries.write.clone(), reader.then(|| entries.read.clone()));
        tokio::time::sleep(BASELINE).await;
        if !load
            .wait_ack(None, Duration::ZERO, Duration::from_secs(10))
            .await
        {
            let (writes, _) = load.stop().await;
            return Err(Error::Failed(format!(
                "the workload could not write through {} before the fault ({}); nothing was \
                 done to lab {name}",
                entries.what,
                writes
                    .failures
                    .last()
                    .map_or("no answer".into(), |(_, e)| e.clone())
            )));
        }
        step.done(format!(
            "writing{} in lab {name} ({} mode)",
            if reader { " and reading" } else { "" },
            self.dynamic.mode()
        ));
        Ok(load)
    }

    /// The report: what the client saw around the fault, next to what the settings predict.
    async fn report(&self, ctx: &Ctx<'_>, entry: String, o: Outcome) -> Result<Report> {
        let old = &self.healthy.primary;
        let (discarded, discarded_note) = match &o.observed.old_rows {
            Some(Ok(old_rows)) => {
                let gone = old_rows.difference(&o.present).count();
                (
                    Some(gone),
                    format!("read on {old}'s own timeline before it rejoined"),
                )
            }
            Some(Err(why)) => (
                None,
                format!("{old}'s own timeline could not be read before it rejoined: {why}"),
            ),
            None if rewound(ctx, old, o.started).await? => (
                None,
                format!("pg_rewind ran on {old}, but its timeline was not read first"),
            ),
            None => (Some(0), format!("no pg_rewind ran on {old}")),
        };
        let new_ip = ip_names(&self.lab)
            .into_iter()
            .find(|(_, n)| *n == o.observed.leader.node)
            .map(|(ip, _)| ip);
        let fault_s = o.fault_at.as_secs_f64();
        let reached = new_ip.and_then(|ip| {
            o.writes
                .acks
                .iter()
                .find(|a| a.at > o.fault_at && a.server == ip)
                .map(|a| a.at.as_secs_f64() - fault_s)
        });
        let window = predict::window(self.fault, &self.timers);
        let side = |r: &Record| {
            let gap = workload::outage(&r.acks, o.fault_at);
            Side {
                acknowledged: r.acks.len(),
                in_doubt: r.in_doubt.len(),
                downtime: gap.map(|g| g.length()),
                failing_from: gap.map(|g| g.from - fault_s),
                back_at: gap.map(|g| g.to - fault_s),
                errors: workload::errors(&r.failures)
                    .into_iter()
                    .map(|e| workload::Errors {
                        first: e.first - fault_s,
                        last: e.last - fault_s,
                        ..e
                    })
                    .collect(),
            }
        };
        let timeline = Timeline::of(&o.writes, o.reads.as_ref(), o.fault_at);
        let mut leader = o.observed.leader;
        if leader.after.is_some() {
            leader.promoted = promoted_after(ctx, &leader.node, o.fault_wall).await;
        }
        let writes = side(&o.writes);
        let verdict = predict::verdict(writes.downtime, &window);
        Ok(Report {
            lab: self.lab.name.clone(),
            scenario: self.fault,
            mode: self.dynamic.mode().to_string(),
            entry,
            fault: o.observed.fault,
            reads: o.reads.as_ref().map(side),
            writes,
            leader,
            entry_reached_new_primary: reached,
            lost: Lost {
                count: o.lost.len(),
                ids: workload::ranges(&o.lost),
            },
            discarded_by_rewind: discarded,
            discarded_note,
            predicted: window,
            verdict,
            restored: o.observed.restored,
            timeline,
        })
    }

    /// The fault, the cluster's answer, and the lab put back, with writes reaching the new
    /// primary through the entry.
    async fn act(&self, load: &Workload, started: Instant) -> Result<Observed> {
        let fault = self.inject().await?;
        let fresh = model::get(self.engine, &self.lab.name).await?;
        let ctx = Ctx::new(self.engine, &fresh);
        let leader = self.answer(&ctx, load, started).await?;
        // Nodes that the fault took away and that must be read before they come back.
        let node = &self.targets[0];
        let old_rows = match self.fault {
            Fault::KillPrimary => {
                model::reattach(self.engine, &self.lab, self.lab.node(node)?).await?;
                (self.engine)
                    .start_container(self.lab.container(node))
                    .await?;
                Some(peek(&ctx, node).await)
            }
            Fault::PartitionPrimary => Some(peek(&ctx, node).await),
            _ => None,
        };
        let restored = self.put_back(started).await?;
        let new_ip = ip_names(&self.lab)
            .into_iter()
            .find(|(_, n)| *n == leader.node)
            .map(|(ip, _)| ip);
        if !load.wait_ack(new_ip.as_deref(), load.now(), RESUME).await {
            return Err(Error::Failed(format!(
                "writes through the entry did not reach {} within {} s of the cluster's \
                 answer; `lab status --name {}` shows where it stands",
                leader.node,
                RESUME.as_secs(),
                self.lab.name
            )));
        }
        tokio::time::sleep(AFTER).await;
        Ok(Observed {
            fault,
            leader,
            old_rows,
            restored,
        })
    }

    /// The primary's fellow PostgreSQL nodes: where a new leader comes from.
    fn others(&self) -> Vec<String> {
        let old = &self.healthy.primary;
        let pg = self.lab.postgres_names().into_iter();
        pg.filter(|n| n != old).collect()
    }

    /// Does the fault; says what was done.
    async fn inject(&self) -> Result<String> {
        let (engine, lab, node) = (self.engine, &self.lab, &self.targets[0]);
        let old = &self.healthy.primary;
        Ok(match self.fault {
            Fault::KillPrimary | Fault::KillReplica | Fault::KillHaproxy => {
                engine.kill_container(lab.container(node)).await?;
                format!("{node} killed")
            }
            Fault::PartitionPrimary => {
                (engine)
                    .disconnect_network(&lab.network, lab.container(node))
                    .await?;
                format!("{node} cut off from {}", lab.network)
            }
            Fault::Switchover | Fault::Failover => {
                let failover = self.fault == Fault::Failover;
                let others = self.others();
                let candidate = failover.then(|| others[0].as_str());
                hand_over(engine, lab, old, candidate, failover).await?;
                format!(
                    "{} from {old}",
                    if failover { "failover" } else { "switchover" }
                )
            }
            Fault::EtcdMajority => {
                etcd_service(&Ctx::new(engine, lab), &self.targets, false).await?;
                format!("etcd stopped on {}", self.targets.join(", "))
            }
        })
    }

    /// Puts back what the fault took, and waits until the lab is healthy; how it came back.
    async fn put_back(&self, started: Instant) -> Result<String> {
        let (engine, name, targets) = (self.engine, &self.lab.name, &self.targets);
        let fresh = model::get(engine, name).await?;
        let node = &targets[0];
        match self.fault {
            Fault::KillPrimary | Fault::KillReplica | Fault::KillHaproxy => {
                let n = fresh.node(node)?;
                model::reattach(engine, &fresh, n).await?;
                if !fresh.node(node)?.running() {
                    engine.start_container(fresh.container(node)).await?;
                }
                let fresh = model::get(engine, name).await?;
                lifecycle::start_on(&Ctx::new(engine, &fresh), targets).await?;
            }
            Fault::PartitionPrimary => {
                if fresh.node(node)?.partitioned(&fresh.network) {
                    model::reattach(engine, &fresh, fresh.node(node)?).await?;
                }
            }
            Fault::EtcdMajority => {
                // Started again in the drill itself; again here after a failure, which is harmless.
                etcd_service(&Ctx::new(engine, &fresh), targets, true).await?;
            }
            Fault::Switchover | Fault::Failover => {}
        }
        // After a switchover or failover the target is the old primary, now a replica.
        let how = rejoined(engine, name, targets, started).await?.join("; ");
        let fresh = model::get(engine, name).await?;
        let ctx = Ctx::new(engine, &fresh);
        let healthy = patroni::wait_healthy(&ctx, &fresh.postgres_names(), REJOIN).await?;
        let proxy = if fresh.haproxy_node().is_some() {
            let routing = haproxy::wait_routing(&ctx, PROXY_FOLLOWS).await?;
            format!("; HAProxy {}", routing.describe())
        } else {
            String::new()
        };
        Ok(format!(
            "{how}; healthy again after {}: {}{proxy}",
            seconds(started.elapsed()),
            healthy.describe()
        ))
    }

    /// Waits for the cluster's answer to the fault: the leader after it, and when it came.
    async fn answer(&self, ctx: &Ctx<'_>, load: &Workload, started: Instant) -> Result<Leader> {
        let (old, timers) = (&self.healthy.primary, &self.timers);
        Ok(match self.fault {
            Fault::KillPrimary | Fault::PartitionPrimary | Fault::Switchover | Fault::Failover => {
                let (node, after) = new_leader(ctx, &self.others(), None, started).await?;
                Leader {
                    node,
                    after: Some(after),
                    promoted: None,
                }
            }
            Fault::EtcdMajority => {
                // The quorum stays away for a ttl: long enough for the primary to give up.
                hold_until(started, timers.hold).await;
                etcd_service(&Ctx::new(self.engine, &self.lab), &self.targets, true).await?;
                etcd::wait_healthy(ctx, &self.targets, Duration::from_secs(60)).await?;
                let pg = self.lab.postgres_names();
                let (node, after) = new_leader(ctx, &pg, None, started).await?;
                Leader {
                    after: (node != *old).then_some(after),
                    node,
                    promoted: None,
                }
            }
            Fault::KillReplica => {
                // Long enough for Patroni to answer the loss in sync mode (a loop or a ttl).
                let settle = if timers.sync {
                    timers.ttl + timers.loop_wait
                } else {
                    timers.loop_wait
                };
                load.wait_ack(None, load.now(), Duration::from_secs(settle + 30))
                    .await;
                tokio::time::sleep(Duration::from_secs(2)).await;
                Leader {
                    node: old.clone(),
                    after: None,
                    promoted: None,
                }
            }
            Fault::KillHaproxy => {
                hold_until(started, timers.hold).await;
                Leader {
                    node: old.clone(),
                    after: None,
                    promoted: None,
                }
            }
        })
    }
}

/// When `node` was promoted, in seconds after the fault at `fault`, from Patroni's history;
/// None when it does not say, or says of a promotion before the fault (an older one). A report
/// without it is still whole, so asking is allowed to fail.
async fn promoted_after(ctx: &Ctx<'_>, node: &str, fault: SystemTime) -> Option<f64> {
    let at = patroni::promoted(ctx, node).await.ok()??;
    let fault = fault
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()?
        .as_secs_f64();
    // The history's time and the fault's are the same clock read a moment apart: a promotion
    // more than a second before the fault is not this drill's.
    Some(at - fault).filter(|after| *after > -1.0)
}

/// (address on the lab network, node name) for every node.
fn ip_names(lab: &Lab) -> Vec<(String, String)> {
    lab.nodes
        .iter()
        .filter_map(|n| Some((n.ip()?.to_string(), n.name.clone())))
        .collect()
}

/// The drill's rows on the primary, asked through the entry until it answers.
async fn rows_now(entry: &Entry) -> Result<BTreeSet<i64>> {
    let mut last = String::new();
    for _ in 0..20 {
        match workload::rows(entry).await {
            Ok(rows) => return Ok(rows),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(Error::Failed(format!(
        "the drill's rows could not be read back on the primary: {last}"
    )))
}

/// Sleeps until `hold` seconds after `started`.
async fn hold_until(started: Instant, hold: u64) {
    if let Some(rest) = Duration::from_secs(hold).checked_sub(started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
}

/// Waits for a running primary among `candidates` (other than `not`); it and when it came.
async fn new_leader(
    ctx: &Ctx<'_>,
    candidates: &[String],
    not: Option<&str>,
    started: Instant,
) -> Result<(String, f64)> {
    loop {
        if let Some(p) = patroni::current_primary(ctx, candidates).await?
            && Some(p.as_str()) != not
        {
            return Ok((p, started.elapsed().as_secs_f64()));
        }
        if started.elapsed() > ELECTION {
            return Err(Error::Failed(format!(
                "no primary among {} after {} s; `lab logs NODE patroni` says why",
                candidates.join(", "),
                ELECTION.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The drill's rows on `node`'s own data directory, or why they could not be read.
async fn peek(ctx: &Ctx<'_>, node: &str) -> std::result::Result<BTreeSet<i64>, String> {
    let out = ctx
        .exec(
            node,
            "postgres",
            &["peekRows", TABLE],
            Duration::from_secs(150),
        )
        .await
        .map_err(|e| e.to_string())?;
    if !out.ok() {
        return Err(out.said());
    }
    Ok(out
        .stdout
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect())
}

impl Report {
    /// What `--plot` draws of this drill.
    pub fn picture(&self) -> Picture<'_> {
        // Patroni's promotion where its history told it, else when the drill saw it.
        let leader = self.leader.after.map(|seen| NewLeader {
            node: self.leader.node.clone(),
            at: self.leader.promoted.unwrap_or(seen),
            promoted: self.leader.promoted.is_some(),
        });
        Picture {
            title: format!(
                "lab {}: {} drill, {} mode",
                self.lab,
                self.scenario.name(),
                self.mode
            ),
            summary: format!(
                "{}, predicted {:.0}-{:.0} s; {} writes acknowledged, {} of them lost",
                self.writes
                    .downtime
                    .map_or("writes did not come back".into(), |d| format!(
                        "write downtime {d:.2} s"
                    )),
                self.predicted.low,
                self.predicted.high,
                self.writes.acknowledged,
                self.lost.count
            ),
            timeline: &self.timeline,
            fault: self.fault.clone(),
            reached: leader
                .as_ref()
                .zip(self.entry_reached_new_primary)
                .map(|(l, at)| (l.node.clone(), at)),
            leader,
            predicted: (self.predicted.low, self.predicted.high),
        }
    }

    /// The report people read.
    pub fn table(&self) -> String {
        let s = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2} s"));
        let mut rows = Vec::new();
        let mut row = |k: &str, v: String| rows.push([k.to_string(), v]);
        row(
            "drill",
            format!(
                "{} on lab {} ({} mode)",
                self.scenario.name(),
                self.lab,
                self.mode
            ),
        );
        row("entry", self.entry.clone());
        row("fault", self.fault.clone());
        row(
            "writes acknowledged",
            format!(
                "{} ({} in doubt)",
                self.writes.acknowledged, self.writes.in_doubt
            ),
        );
        row(
            "write downtime",
            match (
                self.writes.downtime,
                self.writes.failing_from,
                self.writes.back_at,
            ) {
                (Some(d), Some(f), Some(b)) => {
                    // The last write before the fault came a hair before it: "+0.00", not "-0.00".
                    let f = if f.abs() < 0.005 { 0.0 } else { f };
                    format!("{d:.2} s (from {f:+.2} s to {b:+.2} s after the fault)")
                }
                _ => "writes did not come back".into(),
            },
        );
        if let Some(r) = &self.reads {
            row(
                "read downtime",
                format!("{} ({} reads)", s(r.downtime), r.acknowledged),
            );
        }
        row(
            "leader",
            match (self.leader.after, self.leader.promoted) {
                (Some(after), Some(promoted)) => format!(
                    "{} promoted at {promoted:+.2} s, seen after {after:.2} s",
                    self.leader.node
                ),
                (Some(after), None) => format!("{} after {after:.2} s", self.leader.node),
                (None, _) => format!("{} (unchanged)", self.leader.node),
            },
        );
        if self.leader.after.is_some() {
            row(
                "entry reached new primary",
                self.entry_reached_new_primary
                    .map_or("-".into(), |v| format!("after {v:.2} s")),
            );
        }
        row(
            "acknowledged writes lost",
            if self.lost.count == 0 {
                "0".into()
            } else {
                format!("{} (ids {})", self.lost.count, self.lost.ids)
            },
        );
        row(
            "discarded by pg_rewind",
            format!(
                "{} ({})",
                self.discarded_by_rewind
                    .map_or("unknown".into(), |n| n.to_string()),
                self.discarded_note
            ),
        );
        for (side, errors) in [("write", &self.writes.errors)]
            .into_iter()
            .chain(self.reads.iter().map(|r| ("read", &r.errors)))
        {
            for e in errors {
                row(
                    &format!("{side} errors"),
                    format!(
                        "{} x {} ({:+.1} s to {:+.1} s)",
                        e.count, e.kind, e.first, e.last
                    ),
                );
            }
        }
        row(
            "predicted downtime",
            format!("{:.0}-{:.0} s", self.predicted.low, self.predicted.high),
        );
        let mut out = crate::table::render(&[], rows);
        let _ = writeln!(out, "\n\n{}\n\nafterwards: {}", self.verdict, self.restored);
        out
    }
}
