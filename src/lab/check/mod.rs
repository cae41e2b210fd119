//! `lab check`: where a lab stands in the course, step by step in the course's order, and for
//! the first step not done, the course's command that does it and the node to type it on. It
//! only looks: the same on a lab made by `lab create`, one continued by hand in any mix, or one
//! a trainee broke. What is seen is gathered first (`observe`); the steps are judged from it
//! with no I/O (`judge`), service by service in the catalog's order.

mod judge;

use std::fmt::Write as _;

use serde::Serialize;

use super::exercise::Status as ExerciseStatus;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model::{self, Lab};
use crate::services::haproxy::{self, Routing};
use crate::services::patroni::MemberState;
use crate::services::{Ctx, Facts, etcd, monitoring, patroni, pgbackrest, ssh};
use crate::spec::Roles;

/// One node as `lab check` saw it.
#[derive(Debug, Clone)]
pub struct NodeSeen {
    pub name: String,
    pub ip: String,
    pub aliases: Vec<String>,
    pub roles: Roles,
    pub running: bool,
    pub partitioned: bool,
    /// What is configured and running on it (None when it is not running).
    pub facts: Option<Facts>,
    /// Names of the lab (nodes and aliases) it does not resolve.
    pub unresolved: Vec<String>,
    /// Nodes it cannot reach with ssh as postgres.
    pub unreachable: Vec<String>,
    /// Patroni's own account of the member, for PostgreSQL nodes whose Patroni answers.
    pub member: Option<MemberState>,
}

/// Everything `lab check` judges from.
#[derive(Debug, Clone)]
pub struct Observed {
    pub lab: String,
    pub nodes: Vec<NodeSeen>,
    pub etcd: Option<etcd::View>,
    /// `pgbackrest info` from the repository host, when it is configured.
    pub stanza: Option<pgbackrest::Info>,
    /// archive_command as the primary runs it.
    pub archive_command: Option<String>,
    /// Where HAProxy sends clients, when the lab has HAProxy and its stats page answers.
    pub routing: Option<Routing>,
    /// Prometheus's scrape targets, when the lab has a monitor node and Prometheus answers.
    pub targets: Option<Vec<monitoring::Target>>,
    /// The lab was made with `--tls`: every node needs the lab's certificates.
    pub tls: bool,
}

/// The course's command that does a step, and where to type it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Next {
    /// The node to type it on, or "host" for a `lab` command.
    pub on: String,
    /// postgres or root inside a node; empty on the host.
    pub user: String,
    pub command: String,
}

/// One step of the course, judged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub step: String,
    pub done: bool,
    /// What was seen, in words.
    pub seen: String,
    /// For the first step not done: what to type next.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<Next>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub lab: String,
    pub done: bool,
    pub steps: Vec<Step>,
    /// The exercise running on the lab, judged (`lab exercise status`); None when none runs.
    pub exercise: Option<ExerciseStatus>,
}

impl Report {
    pub fn text(&self) -> String {
        let mut out = format!("lab {}, step by step as the course goes:\n", self.lab);
        let mut past_next = false;
        for s in &self.steps {
            let mark = match (s.done, past_next) {
                (true, _) => "✓",
                (false, false) => "✗",
                (false, true) => "·",
            };
            let _ = writeln!(out, "{mark} {}: {}", s.step, s.seen);
            if let Some(next) = &s.next {
                past_next = true;
                let whom = if next.on == "host" {
                    "on this host".to_string()
                } else {
                    format!("on {} as {}", next.on, next.user)
                };
                let _ = writeln!(out, "    next, {whom}:\n      {}", next.command);
            }
        }
        if self.done {
            out.push_str("every step of the course is done");
        } else {
            out.push_str(&format!(
                "not done yet; `lab bootstrap --name {}` does every step left",
                self.lab
            ));
        }
        if let Some(exercise) = &self.exercise {
            out.push_str("\n\n");
            out.push_str(&exercise.text());
        }
        out
    }

    /// Every step done, and the running exercise (if one) solved: `lab check`'s exit 0.
    pub fn passed(&self) -> bool {
        self.done && self.exercise.as_ref().is_none_or(|e| e.solved)
    }
}

/// Looks at the lab and judges every step.
pub async fn check(engine: &Engine, name: &str) -> Result<Report> {
    let lab = model::get(engine, name).await?;
    let observed = observe(engine, &lab).await?;
    let mut report = judge::judge(&observed);
    report.exercise = super::exercise::judged(engine, &lab).await?;
    Ok(report)
}

/// Gathers what `judge` needs, touching nothing.
async fn observe(engine: &Engine, lab: &Lab) -> Result<Observed> {
    let ctx = Ctx::new(engine, lab);
    let facts = ctx.facts().await?;
    let names: Vec<String> = lab
        .nodes
        .iter()
        .flat_map(|n| std::iter::once(n.name.clone()).chain(lab.aliases(n)))
        .collect();
    let reachable: Vec<&str> = lab
        .nodes
        .iter()
        .filter(|n| n.running() && !n.partitioned(&lab.network))
        .map(|n| n.name.as_str())
        .collect();
    let nodes = futures_util::future::try_join_all(lab.nodes.iter().map(|n| {
        let (ctx, facts, names, reachable) = (&ctx, &facts, &names, &reachable);
        // A node cut off from the network would only time out on every ssh.
        let tried: &[&str] = if n.partitioned(&lab.network) {
            &[]
        } else {
            reachable
        };
        async move {
            let f = facts.iter().find(|f| f.node == n.name).cloned();
            let (mut unresolved, mut unreachable) = (Vec::new(), Vec::new());
            if n.running() {
                let reached = ssh::reach(ctx, &n.name, names, tried).await?;
                unresolved = reached.unresolved;
                unreachable = reached.unreachable.into_iter().map(|u| u.node).collect();
            }
            let member = match &f {
                Some(f) if n.roles.postgres && f.patroni_running => {
                    patroni::member(ctx, &n.name).await?
                }
                _ => None,
            };
            Ok::<_, Error>(NodeSeen {
                name: n.name.clone(),
                ip: n.ip().map(|ip| ip.to_string()).unwrap_or_default(),
                aliases: lab.aliases(n),
                roles: n.roles,
                running: n.running(),
                partitioned: n.partitioned(&lab.network),
                facts: f,
                unresolved,
                unreachable,
                member,
            })
        }
    }))
    .await?;
    let etcd = if facts.iter().any(|f| f.etcd_running) {
        Some(etcd::view(&ctx).await?)
    } else {
        None
    };
    let stanza = match nodes.iter().find(|n| n.roles.repo) {
        Some(r) if r.facts.as_ref().is_some_and(|f| f.repo_config) => {
            pgbackrest::info(&ctx, &r.name).await?
        }
        _ => None,
    };
    let archive_command = match nodes
        .iter()
        .find(|n| n.member.as_ref().is_some_and(|m| m.is_primary()))
    {
        Some(p) => pgbackrest::archive_command(&ctx, &p.name).await?,
        None => None,
    };
    let routing = match nodes.iter().find(|n| n.roles.haproxy) {
        Some(h) if h.facts.as_ref().is_some_and(|f| f.haproxy_running) => {
            haproxy::routing(&ctx, &h.name).await?
        }
        _ => None,
    };
    let targets = match nodes.iter().find(|n| n.roles.monitor) {
        Some(m) if m.facts.as_ref().is_some_and(|f| f.prometheus_running) => {
            monitoring::targets(&ctx, &m.name).await?
        }
        _ => None,
    };
    Ok(Observed {
        lab: lab.name.clone(),
        nodes,
        etcd,
        stanza,
        archive_command,
        routing,
        targets,
        tls: lab.tls,
    })
}
