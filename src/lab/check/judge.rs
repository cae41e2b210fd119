//! The judgement of `lab check`, with no I/O: the course's steps in its order, from what was
//! seen. The lab's nodes first, then each service in the catalog's order (`catalog::ALL`), each
//! judging the steps it declares; the first step not done carries the command that does it.

use super::{Next, NodeSeen, Observed, Report, Step};
use crate::render::{ARCHIVE_COMMAND, PATRONI_CONF, STANZA, archives_to_pgbackrest};
use crate::services::catalog::{self, Kind, step};
use crate::services::haproxy;
use crate::services::patroni::{COPY_ROLES, MemberState, SETUP as PATRONI_SETUP};
use crate::services::{Facts, etcd, patroni};

/// The lab's own step, before any service's: its containers (`lab create`'s).
const NODES: &str = "nodes and aliases";

/// pgBackRest's word for a stanza that was never created.
const NO_STANZA: &str = "missing stanza path";

/// Every step of the course in its order, judged from what was seen; the first one not done
/// carries the command that does it.
pub fn judge(o: &Observed) -> Report {
    let j = Judging::new(o);
    let mut steps = j.nodes();
    for service in catalog::ALL {
        // A service the lab was made without (HAProxy) has no steps; one a lab always has is
        // judged even when its node is gone.
        if service.optional && !o.nodes.iter().any(|n| (service.runs_on)(&n.roles)) {
            continue;
        }
        steps.extend(match service.kind {
            Kind::Sshd => j.ssh(),
            Kind::Etcd => j.etcd(),
            Kind::Patroni => j.patroni(),
            Kind::Haproxy => j.haproxy(),
            Kind::Repository => j.repository(),
            Kind::Exporters => j.exporters(),
            Kind::Prometheus => j.prometheus(),
        });
    }
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
        exercise: None,
    }
}

/// What every service's judgement reads: what was seen, and the course's ways of saying where
/// to type a command.
struct Judging<'a> {
    o: &'a Observed,
    /// The node the course types everything on, reaching the others through ssh.
    first: String,
    /// NODELIST as the course exports it: "pgha1:192.168.50.10 ...".
    nodelist: String,
    /// The PostgreSQL nodes, in order.
    pg: Vec<&'a NodeSeen>,
    /// The running primary, as Patroni says.
    primary: Option<String>,
}

impl<'a> Judging<'a> {
    fn new(o: &'a Observed) -> Judging<'a> {
        let nodelist: Vec<String> = o
            .nodes
            .iter()
            .map(|n| format!("{}:{}", n.name, n.ip))
            .collect();
        let pg: Vec<&NodeSeen> = o.nodes.iter().filter(|n| n.roles.postgres).collect();
        let primary = pg
            .iter()
            .find(|n| n.member.as_ref().is_some_and(|m| m.is_primary()))
            .map(|n| n.name.clone());
        Judging {
            o,
            first: o.nodes.first().map(|n| n.name.clone()).unwrap_or_default(),
            nodelist: nodelist.join(" "),
            pg,
            primary,
        }
    }

    /// `command` as typed on the first node: through ssh for another node.
    fn typed_on_first(&self, node: &str, command: &str) -> Next {
        Next {
            on: self.first.clone(),
            user: "postgres".into(),
            command: if node == self.first {
                command.to_string()
            } else {
                format!("ssh {node} \"{command}\"")
            },
        }
    }

    /// The nodes running, attached, and resolving every name of the lab.
    fn nodes(&self) -> Vec<Step> {
        let o = self.o;
        let mut steps = Vec::new();
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
                NODES,
                format!("{} not running", list(&stopped)),
                host(format!("lab start --name {} {}", o.lab, stopped.join(" "))),
            )
        } else if !cut_off.is_empty() {
            step_todo(
                NODES,
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
                NODES,
                format!(
                    "{node} does not resolve {name} ({} names unresolved)",
                    unresolved.len()
                ),
                on(node, "root", format!("echo '{ip} {name}' >> /etc/hosts")),
            )
        } else {
            step_done(
                NODES,
                format!(
                    "{} node(s) running; every node resolves every node and alias",
                    o.nodes.len()
                ),
            )
        });

        steps
    }

    /// sshd: ssh between the nodes as postgres, and a `--tls` lab's certificates (issued in the
    /// same access stage).
    fn ssh(&self) -> Vec<Step> {
        let mut steps = self.ssh_reach();
        steps.extend(self.certificates());
        steps
    }

    /// Every node reaches every node with ssh as postgres.
    fn ssh_reach(&self) -> Vec<Step> {
        let o = self.o;
        let mut steps = Vec::new();
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
            step_todo(step::SSH, "not every node runs".into(), None::<Next>)
        } else if blocked.is_empty() {
            step_done(
                step::SSH,
                "every node reaches every node with ssh as postgres".into(),
            )
        } else {
            step_todo(
                step::SSH,
                format!("ssh as postgres fails for {}", blocked.join(", ")),
                host(format!("lab bootstrap --name {} --stage access", o.lab)),
            )
        });

        steps
    }

    /// A `--tls` lab's certificates on every node.
    fn certificates(&self) -> Vec<Step> {
        let o = self.o;
        let mut steps = Vec::new();
        // A --tls lab's certificates, which `lab` issues in the access stage (the course has the
        // trainee make them with openssl; here the CA's key never enters a node).
        if o.tls {
            let all: Vec<&NodeSeen> = o.nodes.iter().collect();
            let (missing, blind) = lacking(&all, |f| f.certs);
            steps.push(match missing.first() {
                None if !blind.is_empty() => unseen(step::CERTIFICATES, &blind),
                None => step_done(
                    step::CERTIFICATES,
                    format!(
                        "the lab's CA and each node's certificate and key in {} on {} node(s)",
                        crate::certs::DIR,
                        all.len()
                    ),
                ),
                Some(_) => step_todo(
                    step::CERTIFICATES,
                    format!(
                        "no certificate or key in {} on {}",
                        crate::certs::DIR,
                        list(&missing)
                    ),
                    host(format!("lab bootstrap --name {} --stage access", o.lab)),
                ),
            });
        }

        steps
    }

    /// etcd configured, running, with a quorum.
    fn etcd(&self) -> Vec<Step> {
        let (o, first, nodelist) = (self.o, self.first.as_str(), &self.nodelist);
        let mut steps = Vec::new();
        // etcd: configured, running, quorum.
        let members: Vec<&NodeSeen> = o.nodes.iter().filter(|n| n.roles.etcd).collect();
        let (unconfigured, blind) = lacking(&members, |f| f.etcd_config);
        steps.push(match unconfigured.first() {
            None if !blind.is_empty() => unseen(step::ETCD_CONFIGURED, &blind),
            None => step_done(
                step::ETCD_CONFIGURED,
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
                    step::ETCD_CONFIGURED,
                    format!("no /pgha/config/etcd.yaml on {}", list(&unconfigured)),
                    self.typed_on_first(node, &command),
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
                step::ETCD_RUNNING,
                format!("etcd runs on all {} member(s)", members.len()),
            ),
            Some(node) => step_todo(
                step::ETCD_RUNNING,
                format!("etcd is not running on {}", list(&idle)),
                self.typed_on_first(
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
                step_done(step::ETCD_QUORUM, view.describe())
            }
            Some(view) => step_todo(
                step::ETCD_QUORUM,
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
                    first,
                    "postgres",
                    "etcdctl --write-out=table --endpoints=$ENDPOINTS endpoint status".into(),
                )),
            ),
            None => step_todo(
                step::ETCD_QUORUM,
                "no etcd member runs".into(),
                None::<Next>,
            ),
        });

        steps
    }

    /// Patroni on each PostgreSQL node: configured, a leader, each other node streaming.
    fn patroni(&self) -> Vec<Step> {
        let (first, pg, primary) = (self.first.as_str(), &self.pg, &self.primary);
        let mut steps = Vec::new();
        // Patroni: each PostgreSQL node configured, then a leader, then each other node streaming,
        // in the course's order (the first node, then the others one at a time).
        for (i, n) in pg.iter().enumerate() {
            // createRoles.sh matters only until the node has data (post_bootstrap runs once).
            let configured = fact(n, |f| f.patroni_config && (f.create_roles || f.pg_data));
            let title = step::PATRONI_CONFIGURED.replace("NODE", &n.name);
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
                    self.typed_on_first(&n.name, &parts.join(" && ")),
                )
            });
            let start = self.typed_on_first(&n.name, "/startPatroni");
            let running = fact(n, |f| f.patroni_running);
            let seen = |m: &Option<MemberState>| {
                m.as_ref()
                    .map(|m| m.describe())
                    .unwrap_or_else(|| "Patroni does not answer".into())
            };
            if i == 0 {
                steps.push(match &primary {
                    Some(p) => {
                        step_done(step::PATRONI_LEADER, format!("{p} is the running primary"))
                    }
                    None if !running => step_todo(
                        step::PATRONI_LEADER,
                        format!("Patroni is not running on {}", n.name),
                        start.clone(),
                    ),
                    None => step_todo(
                        step::PATRONI_LEADER,
                        format!(
                            "no member is a running primary yet ({}: {}); Patroni's log is {}",
                            n.name,
                            seen(&n.member),
                            patroni::LOG
                        ),
                        list_members(first),
                    ),
                });
            }
            let title = step::IN_THE_CLUSTER.replace("NODE", &n.name);
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
                    list_members(first),
                ),
                None => step_todo(&title, "no primary to stream from".into(), None::<Next>),
            });
        }

        steps
    }

    /// HAProxy, as Percona's guide (001) sets it up after Patroni.
    fn haproxy(&self) -> Vec<Step> {
        let o = self.o;
        o.nodes
            .iter()
            .find(|n| n.roles.haproxy)
            .map(|h| haproxy_steps(h, o, self.primary.as_deref(), &self.pg).to_vec())
            .unwrap_or_default()
    }

    /// A monitored lab's exporters: running on every node that has them.
    fn exporters(&self) -> Vec<Step> {
        let nodes: Vec<&NodeSeen> = self.o.nodes.iter().filter(|n| n.roles.exporters).collect();
        let unseen_nodes: Vec<&str> = nodes
            .iter()
            .filter(|n| n.facts.is_none())
            .map(|n| n.name.as_str())
            .collect();
        if !unseen_nodes.is_empty() {
            return vec![unseen(step::EXPORTERS, &unseen_nodes)];
        }
        let idle: Vec<&str> = nodes
            .iter()
            .filter(|n| !fact(n, |f| f.exporters_running))
            .map(|n| n.name.as_str())
            .collect();
        vec![if idle.is_empty() {
            step_done(
                step::EXPORTERS,
                format!(
                    "on {}",
                    list(&nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>())
                ),
            )
        } else {
            step_todo(
                step::EXPORTERS,
                format!("not running on {}", list(&idle)),
                host(format!(
                    "lab bootstrap --name {} --stage monitoring",
                    self.o.lab
                )),
            )
        }]
    }

    /// Prometheus on the monitor node: every target it scrapes is up.
    fn prometheus(&self) -> Vec<Step> {
        let o = self.o;
        let Some(m) = o.nodes.iter().find(|n| n.roles.monitor) else {
            return Vec::new();
        };
        let start = || host(format!("lab bootstrap --name {} --stage monitoring", o.lab));
        vec![match (&m.facts, &o.targets) {
            (None, _) => unseen(step::PROMETHEUS_TARGETS, &[m.name.as_str()]),
            // A target not scraped yet (Prometheus just started) is not one that failed.
            (Some(_), Some(t)) if !t.is_empty() && t.iter().all(|t| t.health != "down") => {
                let up = t.iter().filter(|t| t.health == "up").count();
                let pending = if up < t.len() {
                    format!(", {} not scraped yet", t.len() - up)
                } else {
                    String::new()
                };
                step_done(
                    step::PROMETHEUS_TARGETS,
                    format!("{up} targets up{pending} on {} (prometheus1)", m.name),
                )
            }
            (Some(_), Some(t)) => step_todo(
                step::PROMETHEUS_TARGETS,
                crate::services::monitoring::describe_down(t),
                None::<Next>,
            ),
            (Some(_), None) => step_todo(
                step::PROMETHEUS_TARGETS,
                format!("Prometheus does not answer on {} (prometheus1)", m.name),
                start(),
            ),
        }]
    }

    /// pgBackRest: the repository host, the database servers, the stanza, archiving, a backup.
    fn repository(&self) -> Vec<Step> {
        let mut steps = self.backup_config();
        steps.extend(self.backups());
        steps
    }

    /// pgBackRest configured: on the repository host, and on every database server.
    fn backup_config(&self) -> Vec<Step> {
        let (o, pg) = (self.o, &self.pg);
        let mut steps = Vec::new();
        let repo = o.nodes.iter().find(|n| n.roles.repo);
        steps.push(match repo {
            Some(r) if fact(r, |f| f.repo_config) => step_done(
                step::REPOSITORY_HOST,
                format!(
                    "/pgha/config/pgbackrest.conf on {} holds repo1-path",
                    r.name
                ),
            ),
            Some(r) if r.facts.is_none() => unseen(step::REPOSITORY_HOST, &[r.name.as_str()]),
            Some(r) => step_todo(
                step::REPOSITORY_HOST,
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
                step::REPOSITORY_HOST,
                "no repository node".into(),
                None::<Next>,
            ),
        });
        let servers: Vec<&NodeSeen> = pg.iter().copied().filter(|n| !n.roles.repo).collect();
        let (clients, blind) = lacking(&servers, |f| f.repo_client);
        steps.push(match clients.first() {
            None if !blind.is_empty() => unseen(step::DATABASE_SERVERS, &blind),
            None => step_done(
                step::DATABASE_SERVERS,
                "/pgha/config/pgbackrest.conf on every PostgreSQL node points at pgbackrest1"
                    .into(),
            ),
            Some(node) => {
                let configured_first = pg
                    .iter()
                    .find(|n| !n.roles.repo && fact(n, |f| f.repo_client))
                    .map(|n| n.name.clone());
                step_todo(
                    step::DATABASE_SERVERS,
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
        steps
    }

    /// pgBackRest at work: the stanza, archiving, a full backup.
    fn backups(&self) -> Vec<Step> {
        let (o, first, primary) = (self.o, self.first.as_str(), &self.primary);
        let repo_name = o
            .nodes
            .iter()
            .find(|n| n.roles.repo)
            .map(|n| n.name.clone())
            .unwrap_or_default();
        let mut steps = Vec::new();
        steps.push(match &o.stanza {
            Some(info) if info.status != NO_STANZA => step_done(
                step::STANZA,
                format!("stanza {STANZA} exists (status {})", info.status),
            ),
            _ => step_todo(
                step::STANZA,
                format!("no stanza {STANZA} in the repository yet"),
                Some(on(
                    &repo_name,
                    "postgres",
                    format!("pgbackrest --stanza={STANZA} stanza-create"),
                )),
            ),
        });
        steps.push(match &o.archive_command {
            Some(c) if archives_to_pgbackrest(c) => step_done(
                step::ARCHIVE_COMMAND,
                format!("the primary archives with: {c}"),
            ),
            seen => step_todo(
                step::ARCHIVE_COMMAND,
                match (seen, &primary) {
                    (Some(c), _) => format!("the primary's archive_command is {c}"),
                    (None, _) => "no running primary to ask".into(),
                },
                Some(on(
                    first,
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
                step::FULL_BACKUP,
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
                step::FULL_BACKUP,
                match seen {
                    Some(info) => format!("status {}", info.status),
                    None => "the repository cannot say".into(),
                },
                Some(on(
                    first,
                    "postgres",
                    format!("ssh pgbackrest1 \"pgbackrest --stanza={STANZA} --type=full backup\""),
                )),
            ),
        });

        steps
    }
}

/// Whether node `n` is seen to have `f` (a node not running is not).
fn fact(n: &NodeSeen, f: fn(&Facts) -> bool) -> bool {
    n.facts.as_ref().is_some_and(f)
}

/// A command for `user` on `node`.
fn on(node: &str, user: &str, command: String) -> Next {
    Next {
        on: node.into(),
        user: user.into(),
        command,
    }
}

/// A `lab` command for this host.
fn host(command: String) -> Next {
    Next {
        on: "host".into(),
        user: String::new(),
        command,
    }
}

fn list(names: &[&str]) -> String {
    names.join(", ")
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
            unseen(step::HAPROXY_CONFIGURED, &[h.name.as_str()]),
            unseen(step::HAPROXY_ROUTES, &[h.name.as_str()]),
        ];
    };
    let configured = if f.haproxy_config {
        step_done(
            step::HAPROXY_CONFIGURED,
            format!("/etc/haproxy/haproxy.cfg in place on {}", h.name),
        )
    } else {
        step_todo(
            step::HAPROXY_CONFIGURED,
            format!("/etc/haproxy/haproxy.cfg on {} is empty", h.name),
            on_root(
                "vi /etc/haproxy/haproxy.cfg   # Percona's guide, \"Configure HAProxy\", with \
                 this lab's PostgreSQL nodes as servers",
            ),
        )
    };
    let title = step::HAPROXY_ROUTES;
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
    use crate::services::haproxy::Routing;
    use crate::services::patroni::Receiver;
    use crate::services::{monitoring, pgbackrest};
    use crate::spec::Roles;

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
                        ..Roles::default()
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
            targets: None,
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

    /// The lab with HAProxy, monitored: exporters on the PostgreSQL nodes and the repository
    /// host, and Prometheus on pgha7 scraping every target.
    fn monitored() -> Observed {
        let mut o = with_haproxy();
        for n in &mut o.nodes {
            if n.roles.postgres || n.roles.repo {
                n.roles.exporters = true;
                let f = n.facts.as_mut().unwrap();
                (f.exporters_config, f.exporters_running) = (true, true);
            }
        }
        let mut m = o.nodes[5].clone();
        m.name = "pgha7".into();
        m.roles = Roles {
            monitor: true,
            ..Roles::default()
        };
        *m.facts.as_mut().unwrap() = Facts {
            node: "pgha7".into(),
            prometheus_config: true,
            prometheus_running: true,
            ..Facts::default()
        };
        o.nodes.push(m);
        let target = |job: &str, node: &str| monitoring::Target {
            labels: monitoring::TargetLabels {
                job: job.into(),
                node: node.into(),
            },
            health: "up".into(),
            last_error: String::new(),
        };
        o.targets = Some(vec![target("patroni", "pgha1"), target("etcd", "pgha2")]);
        o
    }

    #[test]
    fn a_monitored_lab_is_done_when_every_exporter_runs_and_every_target_is_up() {
        let o = monitored();
        let report = judge(&o);
        assert!(report.done, "{}", report.text());
        let last: Vec<(&str, &str)> = report.steps[report.steps.len() - 2..]
            .iter()
            .map(|s| (s.step.as_str(), s.seen.as_str()))
            .collect();
        assert_eq!(
            last,
            [
                (step::EXPORTERS, "on pgha1, pgha2, pgha3, pgha5"),
                (
                    step::PROMETHEUS_TARGETS,
                    "2 targets up on pgha7 (prometheus1)"
                )
            ]
        );
        // A target Prometheus has not scraped yet (just started, or reset) is no failure.
        let mut fresh = monitored();
        fresh.targets.as_mut().unwrap()[0].health = "unknown".into();
        let report = judge(&fresh);
        assert!(report.done, "{}", report.text());
        assert_eq!(
            report.steps.last().unwrap().seen,
            "1 targets up, 1 not scraped yet on pgha7 (prometheus1)"
        );
        // An unmonitored lab has neither step.
        let plain = judge(&with_haproxy());
        assert!(!plain.steps.iter().any(|s| s.step == step::EXPORTERS));
    }

    #[test]
    fn an_exporter_down_or_a_target_not_scraped_is_named() {
        let mut o = monitored();
        facts(&mut o, 2).exporters_running = false;
        let t = &mut o.targets.as_mut().unwrap()[1];
        t.health = "down".into();
        t.last_error = "connection refused".into();
        let report = judge(&o);
        let (step, next) = first_todo(&report);
        assert_eq!(step, step::EXPORTERS);
        assert_eq!(next.command, "lab bootstrap --name pgha --stage monitoring");
        let targets = report.steps.last().unwrap();
        assert!(!targets.done);
        assert_eq!(targets.seen, "etcd on pgha2 down (connection refused)");
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

    /// The service whose declared steps include `title` (NODE standing for any node).
    fn declared_by(title: &str, nodes: &[NodeSeen]) -> Option<usize> {
        catalog::ALL.iter().position(|s| {
            s.steps.iter().any(|step| {
                *step == title || nodes.iter().any(|n| step.replace("NODE", &n.name) == title)
            })
        })
    }

    #[test]
    fn every_step_is_a_declared_one_in_the_catalog_s_order() {
        let mut o = monitored();
        o.tls = true;
        for n in &mut o.nodes {
            n.facts.as_mut().unwrap().certs = true;
        }
        let report = judge(&o);
        assert!(report.done, "{}", report.text());
        assert_eq!(report.steps[0].step, NODES);
        let services: Vec<usize> = report.steps[1..]
            .iter()
            .map(|s| declared_by(&s.step, &o.nodes).unwrap_or_else(|| panic!("{}", s.step)))
            .collect();
        assert!(services.is_sorted(), "{services:?}");
        // Every service's every step is judged.
        let judged: usize = catalog::ALL
            .iter()
            .map(|s| {
                s.steps
                    .iter()
                    .map(|t| if t.contains("NODE") { 3 } else { 1 })
                    .sum::<usize>()
            })
            .sum();
        assert_eq!(report.steps.len() - 1, judged);
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
