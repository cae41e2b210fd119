//! `lab check`: where a lab stands in the course, step by step in the course's order, and for
//! the first step not done, the course's command that does it and the node to type it on. It
//! only looks: the same on a lab made by `lab create`, one continued by hand in any mix, or one
//! a trainee broke. What is seen is gathered first (`observe`); the steps are judged from it
//! with no I/O (`judge`).

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model::{self, Lab};
use crate::render::{ARCHIVE_COMMAND, PATRONI_CONF, STANZA, archives_to_pgbackrest};
use crate::services::haproxy::{self, Routing};
use crate::services::patroni::{COPY_ROLES, MemberState, SETUP as PATRONI_SETUP};
use crate::services::{Ctx, Facts, catalog, etcd, patroni, pgbackrest};
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

#[derive(Debug, Serialize)]
pub struct Report {
    pub lab: String,
    pub done: bool,
    pub steps: Vec<Step>,
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
        out
    }
}

/// Looks at the lab and judges every step.
pub async fn check(engine: &Engine, name: &str) -> Result<Report> {
    let lab = model::get(engine, name).await?;
    let observed = observe(engine, &lab).await?;
    Ok(judge(&observed))
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
    let aliases = format!(
        "for a in {}; do getent hosts $a >/dev/null || echo \"unresolved $a\"; done",
        names.join(" ")
    );
    let with_ssh = format!(
        "{aliases}; {}",
        crate::services::ssh_probe(&reachable, "unreachable")
    );
    let nodes = futures_util::future::try_join_all(lab.nodes.iter().map(|n| {
        let (ctx, facts) = (&ctx, &facts);
        // A node cut off from the network would only time out on every ssh.
        let probe = if n.partitioned(&lab.network) {
            &aliases
        } else {
            &with_ssh
        };
        async move {
            let f = facts.iter().find(|f| f.node == n.name).cloned();
            let (mut unresolved, mut unreachable) = (Vec::new(), Vec::new());
            if n.running() {
                let out = ctx
                    .sh(&n.name, "postgres", probe, Duration::from_secs(60))
                    .await?;
                for line in out.stdout.lines() {
                    match line.split_once(' ') {
                        Some(("unresolved", what)) => unresolved.push(what.to_string()),
                        Some(("unreachable", what)) => {
                            unreachable.push(what.split(' ').next().unwrap_or(what).to_string())
                        }
                        _ => {}
                    }
                }
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
    Ok(Observed {
        lab: lab.name.clone(),
        nodes,
        etcd,
        stanza,
        archive_command,
        routing,
        tls: lab.tls,
    })
}

/// pgBackRest's word for a stanza that was never created.
const NO_STANZA: &str = "missing stanza path";

/// Every step of the course in its order, judged from what was seen; the first one not done
/// carries the command that does it.
pub fn judge(o: &Observed) -> Report {
    let mut steps = Vec::new();
    let first = o.nodes.first().map(|n| n.name.clone()).unwrap_or_default();
    let nodelist: Vec<String> = o
        .nodes
        .iter()
        .map(|n| format!("{}:{}", n.name, n.ip))
        .collect();
    let nodelist = nodelist.join(" ");
    let fact = |n: &NodeSeen, f: fn(&Facts) -> bool| n.facts.as_ref().is_some_and(f);
    // The course types everything on the first node, reaching the others through ssh.
    let from_first = |node: &str, command: &str| -> Next {
        Next {
            on: first.clone(),
            user: "postgres".into(),
            command: if node == first {
                command.to_string()
            } else {
                format!("ssh {node} \"{command}\"")
            },
        }
    };
    let on = |node: &str, user: &str, command: String| Next {
        on: node.into(),
        user: user.into(),
        command,
    };
    let host = |command: String| Next {
        on: "host".into(),
        user: String::new(),
        command,
    };
    let list = |names: &[&str]| names.join(", ");

    // Nodes and aliases.
    let stopped: Vec<&str> = names(o, |n| !n.running);
    let cut_off: Vec<&str> = names(o, |n| n.running && n.partitioned);
    let unresolved: Vec<(&str, &str)> = o
        .nodes
        .iter()
        .flat_map(|n| {
            n.unresolved
                .iter()
                .map(move |a| (n.name.as_str(), a.as_str()))
        })
        .collect();
    steps.push(if !stopped.is_empty() {
        step_todo(
            "nodes and aliases",
            format!("{} not running", list(&stopped)),
            host(format!("lab start --name {} {}", o.lab, stopped.join(" "))),
        )
    } else if !cut_off.is_empty() {
        step_todo(
            "nodes and aliases",
            format!("{} cut off from the lab network", list(&cut_off)),
            host(format!("lab heal --name {} {}", o.lab, cut_off[0])),
        )
    } else if let Some((node, name)) = unresolved.first() {
        let ip = o
            .nodes
            .iter()
            .find(|n| n.name == *name || n.aliases.iter().any(|a| a == name))
            .map(|n| n.ip.clone())
            .unwrap_or_default();
        step_todo(
            "nodes and aliases",
            format!(
                "{node} does not resolve {name} ({} names unresolved)",
                unresolved.len()
            ),
            on(node, "root", format!("echo '{ip} {name}' >> /etc/hosts")),
        )
    } else {
        step_done(
            "nodes and aliases",
            format!(
                "{} node(s) running; every node resolves every node and alias",
                o.nodes.len()
            ),
        )
    });

    // SSH between the nodes as postgres.
    let blocked: Vec<String> = o
        .nodes
        .iter()
        .flat_map(|n| {
            n.unreachable
                .iter()
                .map(move |to| format!("{} → {to}", n.name))
        })
        .collect();
    steps.push(if o.nodes.iter().any(|n| !n.running) {
        step_todo(
            "ssh between nodes",
            "not every node runs".into(),
            None::<Next>,
        )
    } else if blocked.is_empty() {
        step_done(
            "ssh between nodes",
            "every node reaches every node with ssh as postgres".into(),
        )
    } else {
        step_todo(
            "ssh between nodes",
            format!("ssh as postgres fails for {}", blocked.join(", ")),
            host(format!("lab bootstrap --name {} --stage access", o.lab)),
        )
    });

    // A --tls lab's certificates, which `lab` issues in the access stage (the course has the
    // trainee make them with openssl; here the CA's key never enters a node).
    if o.tls {
        let all: Vec<&NodeSeen> = o.nodes.iter().collect();
        let (missing, blind) = lacking(&all, |f| f.certs);
        steps.push(match missing.first() {
            None if !blind.is_empty() => unseen("TLS certificates", &blind),
            None => step_done(
                "TLS certificates",
                format!(
                    "the lab's CA and each node's certificate and key in {} on {} node(s)",
                    crate::certs::DIR,
                    all.len()
                ),
            ),
            Some(_) => step_todo(
                "TLS certificates",
                format!(
                    "no certificate or key in {} on {}",
                    crate::certs::DIR,
                    list(&missing)
                ),
                host(format!("lab bootstrap --name {} --stage access", o.lab)),
            ),
        });
    }

    // etcd: configured, running, quorum.
    let members: Vec<&NodeSeen> = o.nodes.iter().filter(|n| n.roles.etcd).collect();
    let (unconfigured, blind) = lacking(&members, |f| f.etcd_config);
    steps.push(match unconfigured.first() {
        None if !blind.is_empty() => unseen("etcd configured", &blind),
        None => step_done(
            "etcd configured",
            format!(
                "/pgha/config/etcd.yaml on {}",
                list(&members.iter().map(|n| n.name.as_str()).collect::<Vec<_>>())
            ),
        ),
        Some(node) => {
            let command = if *node == first {
                etcd::SETUP.to_string()
            } else {
                format!("export NODELIST='{nodelist}'; {}", etcd::SETUP)
            };
            step_todo(
                "etcd configured",
                format!("no /pgha/config/etcd.yaml on {}", list(&unconfigured)),
                from_first(node, &command),
            )
        }
    });
    let idle: Vec<&str> = members
        .iter()
        .filter(|n| !fact(n, |f| f.etcd_running))
        .map(|n| n.name.as_str())
        .collect();
    steps.push(match idle.first() {
        None => step_done(
            "etcd running",
            format!("etcd runs on all {} member(s)", members.len()),
        ),
        Some(node) => step_todo(
            "etcd running",
            format!("etcd is not running on {}", list(&idle)),
            from_first(
                node,
                &format!(
                    "nohup etcd --config-file /pgha/config/etcd.yaml > {} 2>&1 &",
                    etcd::LOG
                ),
            ),
        ),
    });
    steps.push(match &o.etcd {
        Some(view) if view.leader.is_some() && view.unhealthy.is_empty() => {
            step_done("etcd quorum", view.describe())
        }
        Some(view) => step_todo(
            "etcd quorum",
            format!(
                "{}{}",
                view.describe(),
                view.unhealthy
                    .first()
                    .map(|(n, why)| {
                        // etcd's own words for a member that is down are a client timeout.
                        let why = if view.up.contains(n) {
                            why.as_str()
                        } else {
                            "etcd does not answer"
                        };
                        format!("; {n}: {why} (its log: {})", etcd::LOG)
                    })
                    .unwrap_or_default()
            ),
            Some(on(
                &first,
                "postgres",
                "etcdctl --write-out=table --endpoints=$ENDPOINTS endpoint status".into(),
            )),
        ),
        None => step_todo("etcd quorum", "no etcd member runs".into(), None::<Next>),
    });

    // Patroni: each PostgreSQL node configured, then a leader, then each other node streaming,
    // in the course's order (the first node, then the others one at a time).
    let pg: Vec<&NodeSeen> = o.nodes.iter().filter(|n| n.roles.postgres).collect();
    let primary = pg
        .iter()
        .find(|n| n.member.as_ref().is_some_and(|m| m.is_primary()))
        .map(|n| n.name.clone());
    for (i, n) in pg.iter().enumerate() {
        // createRoles.sh matters only until the node has data (post_bootstrap runs once).
        let configured = fact(n, |f| f.patroni_config && (f.create_roles || f.pg_data));
        let title = format!("Patroni configured on {}", n.name);
        steps.push(if n.facts.is_none() {
            unseen(&title, &[n.name.as_str()])
        } else if configured {
            step_done(&title, format!("{PATRONI_CONF} in place"))
        } else {
            let dir = if n.name == first {
                "/pgha/config/"
            } else {
                "/pgha/config"
            };
            let mut parts = Vec::new();
            if !fact(n, |f| f.patroni_vars) {
                parts.push(etcd::SETUP.to_string());
            }
            if !fact(n, |f| f.create_roles) {
                parts.push(COPY_ROLES.replace("/pgha/config/", dir));
            }
            // The course empties the data directory of a fresh node; one that holds data keeps
            // it (it may be the only copy), and Patroni takes it as it is.
            if !fact(n, |f| f.pg_data) {
                parts.push("rm -rf /pgdata/17/data".into());
            }
            parts.push(PATRONI_SETUP.into());
            step_todo(
                &title,
                format!(
                    "no {}",
                    if fact(n, |f| f.patroni_config) {
                        "/pgha/config/createRoles.sh"
                    } else {
                        PATRONI_CONF
                    }
                ),
                from_first(&n.name, &parts.join(" && ")),
            )
        });
        let start = from_first(&n.name, "/startPatroni");
        let running = fact(n, |f| f.patroni_running);
        let seen = |m: &Option<MemberState>| {
            m.as_ref()
                .map(|m| m.describe())
                .unwrap_or_else(|| "Patroni does not answer".into())
        };
        if i == 0 {
            steps.push(match &primary {
                Some(p) => step_done("Patroni leader", format!("{p} is the running primary")),
                None if !running => step_todo(
                    "Patroni leader",
                    format!("Patroni is not running on {}", n.name),
                    start.clone(),
                ),
                None => step_todo(
                    "Patroni leader",
                    format!(
                        "no member is a running primary yet ({}: {}); Patroni's log is {}",
                        n.name,
                        seen(&n.member),
                        patroni::LOG
                    ),
                    list_members(&first),
                ),
            });
        }
        let title = format!("{} in the cluster", n.name);
        steps.push(match &primary {
            Some(p) if *p == n.name => step_done(&title, "the primary".into()),
            Some(p) if n.member.as_ref().is_some_and(|m| m.streams_from(p)) => {
                step_done(&title, format!("replica streaming from {p}"))
            }
            _ if !running => step_todo(
                &title,
                format!("Patroni is not running on {}", n.name),
                start,
            ),
            Some(p) => step_todo(
                &title,
                format!(
                    "{} but not streaming from {p} yet (building a replica takes a moment); \
                     Patroni's log is {}",
                    seen(&n.member),
                    patroni::LOG
                ),
                list_members(&first),
            ),
            None => step_todo(&title, "no primary to stream from".into(), None::<Next>),
        });
    }

    // HAProxy, as Percona's guide (001) sets it up after Patroni, where the lab has it.
    if let Some(h) = o.nodes.iter().find(|n| n.roles.haproxy) {
        steps.extend(haproxy_steps(h, o, primary.as_deref(), &pg));
    }

    // pgBackRest: the repository host, the database servers, the stanza, archiving, a backup.
    let repo = o.nodes.iter().find(|n| n.roles.repo);
    let repo_name = repo.map(|n| n.name.clone()).unwrap_or_default();
    steps.push(match repo {
        Some(r) if fact(r, |f| f.repo_config) => step_done(
            "repository host configured",
            format!(
                "/pgha/config/pgbackrest.conf on {} holds repo1-path",
                r.name
            ),
        ),
        Some(r) if r.facts.is_none() => unseen("repository host configured", &[r.name.as_str()]),
        Some(r) => step_todo(
            "repository host configured",
            format!(
                "/pgha/config/pgbackrest.conf on {} (pgbackrest1) has no repo1-path",
                r.name
            ),
            Some(on(
                &r.name,
                "postgres",
                "vi /pgha/config/pgbackrest.conf   # the course's \"Create pgbackrest \
                 configuration file\""
                    .into(),
            )),
        ),
        None => step_todo(
            "repository host configured",
            "no repository node".into(),
            None::<Next>,
        ),
    });
    let servers: Vec<&NodeSeen> = pg.iter().copied().filter(|n| !n.roles.repo).collect();
    let (clients, blind) = lacking(&servers, |f| f.repo_client);
    steps.push(match clients.first() {
        None if !blind.is_empty() => unseen("database servers configured", &blind),
        None => step_done(
            "database servers configured",
            "/pgha/config/pgbackrest.conf on every PostgreSQL node points at pgbackrest1".into(),
        ),
        Some(node) => {
            let configured_first = pg
                .iter()
                .find(|n| !n.roles.repo && fact(n, |f| f.repo_client))
                .map(|n| n.name.clone());
            step_todo(
                "database servers configured",
                format!(
                    "/pgha/config/pgbackrest.conf on {} has no repo1-host",
                    list(&clients)
                ),
                Some(match configured_first {
                    Some(from) => on(
                        &from,
                        "postgres",
                        format!("cd /pgha/config; scp pgbackrest.conf {node}:/pgha/config/"),
                    ),
                    None => on(
                        node,
                        "postgres",
                        "vi /pgha/config/pgbackrest.conf   # the course's \"Create \
                         pgbackrest.conf on database servers\""
                            .into(),
                    ),
                }),
            )
        }
    });
    steps.push(match &o.stanza {
        Some(info) if info.status != NO_STANZA => step_done(
            "stanza",
            format!("stanza {STANZA} exists (status {})", info.status),
        ),
        _ => step_todo(
            "stanza",
            format!("no stanza {STANZA} in the repository yet"),
            Some(on(
                &repo_name,
                "postgres",
                format!("pgbackrest --stanza={STANZA} stanza-create"),
            )),
        ),
    });
    steps.push(match &o.archive_command {
        Some(c) if archives_to_pgbackrest(c) => {
            step_done("archive_command", format!("the primary archives with: {c}"))
        }
        seen => step_todo(
            "archive_command",
            match (seen, &primary) {
                (Some(c), _) => format!("the primary's archive_command is {c}"),
                (None, _) => "no running primary to ask".into(),
            },
            Some(on(
                &first,
                "postgres",
                format!(
                    "patronictl -c {PATRONI_CONF} edit-config   # set archive_command: \
                     {ARCHIVE_COMMAND}"
                ),
            )),
        ),
    });
    steps.push(match &o.stanza {
        Some(info) if info.ok() && info.full_backups > 0 => step_done(
            "full backup",
            format!(
                "{} full backup(s), status {}{}",
                info.full_backups,
                info.status,
                info.last
                    .as_ref()
                    .map(|(label, _)| format!(", newest {label}"))
                    .unwrap_or_default()
            ),
        ),
        seen => step_todo(
            "full backup",
            match seen {
                Some(info) => format!("status {}", info.status),
                None => "the repository cannot say".into(),
            },
            Some(on(
                &first,
                "postgres",
                format!("ssh pgbackrest1 \"pgbackrest --stanza={STANZA} --type=full backup\""),
            )),
        ),
    });

    // Only the first step not done that has a command says what to type (one that cannot be
    // seen, a stopped node's, has none).
    let mut said = false;
    for s in &mut steps {
        if !s.done && s.next.is_some() && !said {
            said = true;
        } else {
            s.next = None;
        }
    }
    Report {
        lab: o.lab.clone(),
        done: steps.iter().all(|s| s.done),
        steps,
    }
}

/// Of `nodes`, those seen to lack `has`, and those that cannot be seen (not running).
fn lacking<'a>(nodes: &[&'a NodeSeen], has: fn(&Facts) -> bool) -> (Vec<&'a str>, Vec<&'a str>) {
    let (mut missing, mut blind) = (Vec::new(), Vec::new());
    for n in nodes {
        match &n.facts {
            None => blind.push(n.name.as_str()),
            Some(f) if !has(f) => missing.push(n.name.as_str()),
            Some(_) => {}
        }
    }
    (missing, blind)
}

fn names(o: &Observed, keep: impl Fn(&NodeSeen) -> bool) -> Vec<&str> {
    o.nodes
        .iter()
        .filter(|n| keep(n))
        .map(|n| n.name.as_str())
        .collect()
}

/// HAProxy configured on its node `h`, then routing as Patroni says.
fn haproxy_steps(h: &NodeSeen, o: &Observed, primary: Option<&str>, pg: &[&NodeSeen]) -> [Step; 2] {
    let on_root = |command: &str| Next {
        on: h.name.clone(),
        user: "root".into(),
        command: command.into(),
    };
    let Some(f) = &h.facts else {
        return [
            unseen("HAProxy configured", &[h.name.as_str()]),
            unseen("HAProxy routes to the leader", &[h.name.as_str()]),
        ];
    };
    let configured = if f.haproxy_config {
        step_done(
            "HAProxy configured",
            format!("/etc/haproxy/haproxy.cfg in place on {}", h.name),
        )
    } else {
        step_todo(
            "HAProxy configured",
            format!("/etc/haproxy/haproxy.cfg on {} is empty", h.name),
            on_root(
                "vi /etc/haproxy/haproxy.cfg   # Percona's guide, \"Configure HAProxy\", with \
                 this lab's PostgreSQL nodes as servers",
            ),
        )
    };
    let title = "HAProxy routes to the leader";
    let replicas: Vec<String> = pg
        .iter()
        .filter(|n| n.running && !n.partitioned && Some(n.name.as_str()) != primary)
        .map(|n| n.name.clone())
        .collect();
    let routes = match (&o.routing, primary) {
        _ if !f.haproxy_running => step_todo(
            title,
            format!("HAProxy is not running on {}", h.name),
            on_root(&format!(
                "{}   # stands for the guide's sudo systemctl restart haproxy",
                catalog::HAPROXY.start.map_or("", |h| h.command)
            )),
        ),
        (None, _) => step_todo(
            title,
            format!(
                "HAProxy runs but its stats page (port 7000) does not answer; its start-up \
                 log is {}",
                haproxy::LOG
            ),
            None::<Next>,
        ),
        (Some(r), Some(p)) if r.follows(p, &replicas) => step_done(title, r.describe()),
        (Some(r), Some(p)) => step_todo(
            title,
            format!(
                "{}, while Patroni's leader is {p} (its checks take a few seconds)",
                r.describe()
            ),
            None::<Next>,
        ),
        (Some(r), None) => step_todo(
            title,
            format!("{}; Patroni has no leader", r.describe()),
            None::<Next>,
        ),
    };
    [configured, routes]
}

/// A step that cannot be judged because the nodes it looks at are not running.
fn unseen(step: &str, nodes: &[&str]) -> Step {
    step_todo(
        step,
        format!(
            "cannot be seen while {} {} not running",
            nodes.join(", "),
            if nodes.len() == 1 { "is" } else { "are" }
        ),
        None::<Next>,
    )
}

fn list_members(node: &str) -> Next {
    Next {
        on: node.into(),
        user: "postgres".into(),
        command: format!("patronictl -c {PATRONI_CONF} list"),
    }
}

fn step_done(step: &str, seen: String) -> Step {
    Step {
        step: step.into(),
        done: true,
        seen,
        next: None,
    }
}

fn step_todo(step: &str, seen: String, next: impl Into<Option<Next>>) -> Step {
    Step {
        step: step.into(),
        done: false,
        seen,
        next: next.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::patroni::Receiver;

    fn member(json: &str, receiver: Option<(&str, &str)>) -> Option<MemberState> {
        let mut m: MemberState = serde_json::from_str(json).unwrap();
        m.receiver = receiver.map(|(status, sender)| Receiver {
            status: status.into(),
            sender: sender.into(),
        });
        Some(m)
    }

    const PRIMARY: &str = r#"{"state":"running","role":"primary","timeline":1}"#;
    const REPLICA: &str = r#"{"state":"running","role":"replica","timeline":1}"#;

    /// The default course lab, every step done.
    fn finished() -> Observed {
        let nodes = (1..=5)
            .map(|i| {
                let postgres = i <= 3;
                NodeSeen {
                    name: format!("pgha{i}"),
                    ip: format!("192.168.50.{}", 9 + i),
                    aliases: vec![format!("etcd{i}")],
                    roles: Roles {
                        postgres,
                        etcd: true,
                        repo: i == 5,
                        haproxy: false,
                    },
                    running: true,
                    partitioned: false,
                    facts: Some(Facts {
                        node: format!("pgha{i}"),
                        ssh_keys: true,
                        host_keys: true,
                        etcd_config: true,
                        etcd_data: true,
                        etcd_running: true,
                        patroni_vars: true,
                        patroni_config: postgres,
                        create_roles: postgres,
                        pg_data: postgres,
                        patroni_running: postgres,
                        pgbackrest_config: i != 4,
                        repo_config: i == 5,
                        repo_client: postgres,
                        ..Facts::default()
                    }),
                    unresolved: vec![],
                    unreachable: vec![],
                    member: match i {
                        1 => member(PRIMARY, None),
                        2 | 3 => member(REPLICA, Some(("streaming", "pgha1"))),
                        _ => None,
                    },
                }
            })
            .collect();
        let names: Vec<String> = (1..=5).map(|i| format!("pgha{i}")).collect();
        Observed {
            lab: "pgha".into(),
            nodes,
            etcd: Some(etcd::View {
                up: names.clone(),
                healthy: names,
                unhealthy: vec![],
                leader: Some("pgha2".into()),
            }),
            stanza: Some(pgbackrest::Info {
                status: "ok".into(),
                full_backups: 1,
                last: Some(("20261123-072324F".into(), "full".into())),
            }),
            archive_command: Some(ARCHIVE_COMMAND.into()),
            routing: None,
            tls: false,
        }
    }

    /// The finished lab with an HAProxy node, pgha6, running and routing as Patroni says.
    fn with_haproxy() -> Observed {
        let mut o = finished();
        let mut h = o.nodes[4].clone();
        h.name = "pgha6".into();
        h.roles = Roles {
            haproxy: true,
            ..Roles::default()
        };
        h.member = None;
        let f = h.facts.as_mut().unwrap();
        *f = Facts {
            node: "pgha6".into(),
            haproxy_config: true,
            haproxy_running: true,
            ..Facts::default()
        };
        o.nodes.push(h);
        o.routing = Some(Routing {
            primary: vec!["pgha1".into()],
            replicas: vec!["pgha2".into(), "pgha3".into()],
        });
        o
    }

    /// The first step not done, with its next command.
    fn first_todo(report: &Report) -> (String, Next) {
        let step = report.steps.iter().find(|s| !s.done).expect("a step left");
        (
            step.step.clone(),
            step.next.clone().expect("a next command"),
        )
    }

    fn facts(o: &mut Observed, node: usize) -> &mut Facts {
        o.nodes[node - 1].facts.as_mut().unwrap()
    }

    #[test]
    fn a_finished_lab_is_done_in_the_course_s_order() {
        let report = judge(&finished());
        assert!(report.done, "{}", report.text());
        let order: Vec<&str> = report.steps.iter().map(|s| s.step.as_str()).collect();
        assert_eq!(
            order,
            [
                "nodes and aliases",
                "ssh between nodes",
                "etcd configured",
                "etcd running",
                "etcd quorum",
                "Patroni configured on pgha1",
                "Patroni leader",
                "pgha1 in the cluster",
                "Patroni configured on pgha2",
                "pgha2 in the cluster",
                "Patroni configured on pgha3",
                "pgha3 in the cluster",
                "repository host configured",
                "database servers configured",
                "stanza",
                "archive_command",
                "full backup",
            ]
        );
        assert!(report.steps.iter().all(|s| s.next.is_none()));
        assert!(report.text().ends_with("every step of the course is done"));
    }

    #[test]
    fn a_tls_lab_needs_its_certificates_on_every_node_after_ssh() {
        let mut o = finished();
        o.tls = true;
        for n in 1..=5 {
            facts(&mut o, n).certs = true;
        }
        let report = judge(&o);
        assert!(report.done);
        let titles: Vec<&str> = report.steps.iter().map(|s| s.step.as_str()).collect();
        let at = titles
            .iter()
            .position(|t| *t == "TLS certificates")
            .unwrap();
        assert_eq!(titles[at - 1], "ssh between nodes");
        facts(&mut o, 3).certs = false;
        let (seen, next) = first_todo(&judge(&o));
        assert_eq!(seen, "TLS certificates");
        assert_eq!(next.on, "host");
        assert_eq!(next.command, "lab bootstrap --name pgha --stage access");
        // A plain lab has no such step.
        assert!(
            !judge(&finished())
                .steps
                .iter()
                .any(|s| s.step == "TLS certificates")
        );
    }

    #[test]
    fn haproxy_comes_after_patroni_and_follows_the_leader() {
        let report = judge(&with_haproxy());
        assert!(report.done, "{}", report.text());
        let order: Vec<&str> = report.steps.iter().map(|s| s.step.as_str()).collect();
        let at = order
            .iter()
            .position(|s| *s == "HAProxy configured")
            .unwrap();
        assert_eq!(order[at - 1], "pgha3 in the cluster");
        assert_eq!(order[at + 1], "HAProxy routes to the leader");

        // Still routing to the old leader after a switchover: not done, and said so.
        let mut o = with_haproxy();
        o.routing = Some(Routing {
            primary: vec!["pgha2".into()],
            replicas: vec!["pgha1".into(), "pgha3".into()],
        });
        let report = judge(&o);
        let step = report.steps.iter().find(|s| !s.done).unwrap();
        assert_eq!(step.step, "HAProxy routes to the leader");
        assert!(
            step.seen.contains("while Patroni's leader is pgha1"),
            "{}",
            step.seen
        );

        // Not configured: the guide's file, typed as root on the HAProxy node.
        let mut o = with_haproxy();
        let f = facts(&mut o, 6);
        f.haproxy_config = false;
        f.haproxy_running = false;
        o.routing = None;
        let (step, next) = first_todo(&judge(&o));
        assert_eq!(step, "HAProxy configured");
        assert_eq!((next.on.as_str(), next.user.as_str()), ("pgha6", "root"));
        assert!(next.command.starts_with("vi /etc/haproxy/haproxy.cfg"));

        // Configured but stopped: the start command.
        facts(&mut o, 6).haproxy_config = true;
        let (step, next) = first_todo(&judge(&o));
        assert_eq!(step, "HAProxy routes to the leader");
        assert!(next.command.starts_with("startHaproxy"), "{}", next.command);
    }

    /// A lab made with `--stage access`: nodes and ssh, nothing else.
    fn at_access() -> Observed {
        let mut o = finished();
        for n in &mut o.nodes {
            let f = n.facts.as_mut().unwrap();
            *f = Facts {
                node: f.node.clone(),
                ssh_keys: true,
                host_keys: true,
                ..Facts::default()
            };
            n.member = None;
        }
        o.etcd = None;
        o.stanza = None;
        o.archive_command = None;
        o
    }

    #[test]
    fn an_access_lab_starts_with_etcd_setup_on_the_first_node() {
        let report = judge(&at_access());
        assert!(!report.done);
        let (step, next) = first_todo(&report);
        assert_eq!(step, "etcd configured");
        assert_eq!(next.on, "pgha1");
        assert_eq!(next.user, "postgres");
        assert_eq!(next.command, "/etcdSetup.sh -y");
        // Only the first step not done says what to type.
        assert_eq!(report.steps.iter().filter(|s| s.next.is_some()).count(), 1);
        let text = report.text();
        assert!(text.contains("✗ etcd configured"), "{text}");
        assert!(text.contains("· etcd running"), "{text}");
    }

    #[test]
    fn the_other_nodes_are_set_up_through_ssh_with_nodelist() {
        let mut o = at_access();
        facts(&mut o, 1).etcd_config = true;
        let (step, next) = first_todo(&judge(&o));
        assert_eq!(step, "etcd configured");
        assert_eq!(next.on, "pgha1");
        assert_eq!(
            next.command,
            "ssh pgha2 \"export NODELIST='pgha1:192.168.50.10 pgha2:192.168.50.11 \
             pgha3:192.168.50.12 pgha4:192.168.50.13 pgha5:192.168.50.14'; /etcdSetup.sh -y\""
        );
    }

    #[test]
    fn after_etcd_the_next_step_is_patroni_on_the_first_node() {
        let mut o = finished();
        for i in 1..=5 {
            let f = facts(&mut o, i);
            (
                f.patroni_config,
                f.create_roles,
                f.patroni_running,
                f.pg_data,
            ) = (false, false, false, false);
            o.nodes[i - 1].member = None;
        }
        o.stanza = None;
        o.archive_command = None;
        let (step, next) = first_todo(&judge(&o));
        assert_eq!(step, "Patroni configured on pgha1");
        assert_eq!(
            next.command,
            "cp -p /createRoles.sh /pgha/config/ && rm -rf /pgdata/17/data && /patroniSetup.sh"
        );
        // A node that holds data keeps it: the course's rm -rf is for a fresh node only.
        facts(&mut o, 1).pg_data = true;
        let (_, next) = first_todo(&judge(&o));
        assert_eq!(
            next.command,
            "cp -p /createRoles.sh /pgha/config/ && /patroniSetup.sh"
        );
        facts(&mut o, 1).pg_data = false;
        // Configured but not started: /startPatroni.
        let f = facts(&mut o, 1);
        (f.patroni_config, f.create_roles) = (true, true);
        let (step, next) = first_todo(&judge(&o));
        assert_eq!(step, "Patroni leader");
        assert_eq!(next.command, "/startPatroni");
    }

    #[test]
    fn a_stopped_etcd_member_is_named_with_the_command_that_starts_it() {
        let mut o = finished();
        facts(&mut o, 4).etcd_running = false;
        let view = o.etcd.as_mut().unwrap();
        view.up.retain(|n| n != "pgha4");
        view.healthy.retain(|n| n != "pgha4");
        view.unhealthy
            .push(("pgha4".into(), "does not answer".into()));
        let report = judge(&o);
        let (step, next) = first_todo(&report);
        assert_eq!(step, "etcd running");
        assert_eq!(
            next.command,
            "ssh pgha4 \"nohup etcd --config-file /pgha/config/etcd.yaml > \
             /var/log/etcd/etcd-standalone.log 2>&1 &\""
        );
        assert!(report.text().contains("etcd is not running on pgha4"));
    }

    #[test]
    fn a_replica_that_does_not_stream_is_named() {
        let mut o = finished();
        o.nodes[2].member = member(r#"{"state":"starting","role":"replica"}"#, None);
        let report = judge(&o);
        let (step, next) = first_todo(&report);
        assert_eq!(step, "pgha3 in the cluster");
        assert_eq!(next.command, "patronictl -c /pgha/config/patroni.yaml list");
        let seen = &report.steps.iter().find(|s| !s.done).unwrap().seen;
        assert!(seen.contains("not streaming from pgha1 yet"), "{seen}");
    }

    #[test]
    fn a_stopped_node_is_started_from_the_host() {
        let mut o = finished();
        o.nodes[1].running = false;
        o.nodes[1].facts = None;
        let report = judge(&o);
        let (step, next) = first_todo(&report);
        assert_eq!(step, "nodes and aliases");
        assert_eq!(next.on, "host");
        assert_eq!(next.command, "lab start --name pgha pgha2");
        // What is inside a stopped node is not claimed missing: it cannot be seen.
        let seen = |name: &str| {
            report
                .steps
                .iter()
                .find(|s| s.step == name)
                .map(|s| (s.done, s.seen.clone()))
                .unwrap()
        };
        let expected = (
            false,
            "cannot be seen while pgha2 is not running".to_string(),
        );
        assert_eq!(seen("etcd configured"), expected);
        assert_eq!(seen("Patroni configured on pgha2"), expected);
        assert_eq!(seen("database servers configured"), expected);
        assert!(seen("Patroni configured on pgha1").0);
    }

    #[test]
    fn the_backup_steps_follow_the_course() {
        let mut o = finished();
        o.stanza = Some(pgbackrest::Info {
            status: NO_STANZA.into(),
            full_backups: 0,
            last: None,
        });
        let (step, next) = first_todo(&judge(&o));
        assert_eq!((step.as_str(), next.on.as_str()), ("stanza", "pgha5"));
        assert_eq!(next.command, "pgbackrest --stanza=pgha stanza-create");
        o.stanza.as_mut().unwrap().status = "no valid backups".into();
        o.archive_command = Some("/bin/true".into());
        let (step, _) = first_todo(&judge(&o));
        assert_eq!(step, "archive_command");
        o.archive_command = Some(ARCHIVE_COMMAND.into());
        let (step, next) = first_todo(&judge(&o));
        assert_eq!(step, "full backup");
        assert_eq!(
            next.command,
            "ssh pgbackrest1 \"pgbackrest --stanza=pgha --type=full backup\""
        );
    }
}
