//! `lab list` and `lab status`: what labs exist and what their nodes are doing.

use std::fmt::Write as _;

use serde::Serialize;

use crate::engine::{Engine, NetworkInfo};
use crate::error::Result;
use crate::model::{self, Lab};
use crate::services::haproxy::{self, Routing};
use crate::services::{Ctx, etcd, monitoring, patroni, pgbackrest};
use crate::spec::{HAPROXY_PRIMARY, HAPROXY_REPLICAS, HAPROXY_STATS};
use crate::table;

/// One lab as `lab list` shows it, in text and JSON.
/// The columns of `lab status`'s node table.
const STATUS_HEADER: [&str; 9] = [
    "node",
    "container",
    "address",
    "ports",
    "roles",
    "patroni",
    "state",
    "tl",
    "lag",
];

/// One lab as `lab list` shows it.
#[derive(Debug, Serialize)]
pub struct Listed {
    pub lab: String,
    /// The engine it lives on, as the user names it.
    pub engine: String,
    pub nodes: usize,
    /// running, stopped, N/M running, or unfinished (STAGE).
    pub state: String,
    pub network: String,
    /// The network's subnet; None when the network is gone.
    pub subnet: Option<String>,
    /// The host ports the PostgreSQL nodes are published on.
    pub ports: Vec<u16>,
    /// HAProxy's published ports (primary/replicas/stats), when the lab has it.
    pub haproxy: Option<String>,
}

/// Every lab on the engine, for `lab list`.
pub async fn list(engine: &Engine) -> Result<Vec<Listed>> {
    let labs = model::all(engine).await?;
    if labs.is_empty() {
        return Ok(Vec::new());
    }
    Ok(listed(&labs, &engine.networks().await?))
}

/// What `lab list` says of each lab, from the labs and the engine's networks.
fn listed(labs: &[Lab], networks: &[NetworkInfo]) -> Vec<Listed> {
    labs.iter()
        .map(|lab| Listed {
            lab: lab.name.clone(),
            engine: lab.engine.clone(),
            nodes: lab.nodes.len(),
            state: state(lab),
            network: lab.network.clone(),
            subnet: networks
                .iter()
                .find(|n| n.name == lab.network)
                .and_then(|n| n.subnets.first())
                .map(|(s, _)| s.to_string()),
            ports: lab.nodes.iter().filter_map(|n| n.port()).collect(),
            haproxy: lab.haproxy_node().map(|p| p.ports_label()),
        })
        .collect()
}

/// `lab list`'s table (with the engine of each lab when `engines`: a list over several), or a
/// line saying there is no lab.
pub fn list_text(labs: &[Listed], engines: bool) -> String {
    if labs.is_empty() {
        return if engines {
            "no labs on these Docker Engines; `lab create` makes one".into()
        } else {
            "no labs on this Docker Engine; `lab create` makes one".into()
        };
    }
    let rows = labs.iter().map(|lab| {
        let mut ports = match (lab.ports.iter().min(), lab.ports.iter().max()) {
            (Some(lo), Some(hi)) if lo != hi => format!("{lo}-{hi}"),
            (Some(lo), _) => lo.to_string(),
            _ => "-".into(),
        };
        if let Some(proxy) = &lab.haproxy {
            let _ = write!(ports, ", HAProxy {proxy}");
        }
        let mut row = vec![
            lab.lab.clone(),
            lab.nodes.to_string(),
            lab.state.clone(),
            lab.network.clone(),
            lab.subnet.clone().unwrap_or_else(|| "-".into()),
            ports,
        ];
        if engines {
            row.insert(1, lab.engine.clone());
        }
        row
    });
    let mut header = vec!["lab", "nodes", "state", "network", "subnet", "ports"];
    if engines {
        header.insert(1, "engine");
    }
    table::render(&header, rows)
}

fn state(lab: &Lab) -> String {
    if let Some(last) = lab.unfinished() {
        return format!("unfinished ({last})");
    }
    let running = lab.nodes.iter().filter(|n| n.running()).count();
    match running {
        0 => "stopped".into(),
        r if r == lab.nodes.len() => "running".into(),
        r => format!("{r}/{} running", lab.nodes.len()),
    }
}

/// Everything `lab status` reports, for people (a table) and scripts (JSON).
#[derive(Debug, Serialize)]
pub struct Report {
    pub lab: String,
    /// The engine it lives on, and where its ports are reached from here.
    pub engine: String,
    pub host: String,
    pub network: String,
    pub subnet: Option<String>,
    /// For a lab whose create or bootstrap did not finish: the last stage it finished.
    pub unfinished: Option<String>,
    pub nodes: Vec<NodeReport>,
    pub etcd: Option<EtcdReport>,
    pub haproxy: Option<HaproxyReport>,
    pub backup: Option<BackupReport>,
    /// In a lab made with `--monitoring`.
    pub monitoring: Option<MonitoringReport>,
}

/// Prometheus, as `lab status` reports it.
#[derive(Debug, Serialize)]
pub struct MonitoringReport {
    pub node: String,
    /// Its page, as this host reaches it.
    pub url: Option<String>,
    /// (targets up, targets), None when Prometheus does not answer.
    pub targets_up: Option<(usize, usize)>,
    /// The alerts firing now, by name.
    pub firing: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct NodeReport {
    /// Its name in the lab, as the course names it (pgha1).
    pub name: String,
    /// Its container's name on the engine (alice1 in lab alice; the same in lab pgha).
    pub container: String,
    /// running, exited, ..., or "partitioned" when running but cut off from the lab network.
    pub state: String,
    pub address: Option<String>,
    /// PostgreSQL's host port.
    pub port: Option<u16>,
    /// Every host port it publishes, as the table shows them.
    pub ports: String,
    pub roles: String,
    pub patroni: Option<PatroniReport>,
}

#[derive(Debug, Serialize)]
pub struct PatroniReport {
    pub role: String,
    pub state: String,
    pub timeline: Option<u64>,
    /// Bytes of WAL a replica has yet to replay.
    pub lag_bytes: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct EtcdReport {
    pub members: usize,
    pub quorum: usize,
    pub healthy: Vec<String>,
    pub unhealthy: Vec<String>,
    pub leader: Option<String>,
    pub summary: String,
}

#[derive(Debug, Serialize)]
pub struct HaproxyReport {
    pub node: String,
    /// Host ports: to the primary, to the replicas, the stats page.
    pub primary_port: Option<u16>,
    pub replicas_port: Option<u16>,
    pub stats_port: Option<u16>,
    /// The servers HAProxy sends clients to, None when its stats page does not answer.
    pub routing: Option<Routing>,
}

#[derive(Debug, Serialize)]
pub struct BackupReport {
    pub status: String,
    pub full_backups: usize,
    pub last: Option<String>,
}

/// Reads the lab's state: containers from the engine, the rest live from its services.
pub async fn status(engine: &Engine, name: &str) -> Result<Report> {
    let lab = model::get(engine, name).await?;
    let subnet = engine
        .network(&lab.network)
        .await?
        .and_then(|n| n.subnets.first().map(|(s, _)| s.to_string()));
    let ctx = Ctx::new(engine, &lab);
    let mut members = Vec::new();
    for n in &lab.nodes {
        let member = if n.roles.postgres && n.running() {
            patroni::member(&ctx, &n.name).await?
        } else {
            None
        };
        members.push(member);
    }
    let primary = members.iter().flatten().find(|m| m.is_primary()).cloned();
    let nodes = lab
        .nodes
        .iter()
        .zip(&members)
        .map(|(n, m)| NodeReport {
            name: n.name.clone(),
            container: n.container.name.clone(),
            state: if n.running() && n.partitioned(&lab.network) {
                "partitioned".into()
            } else {
                n.container.state.clone()
            },
            address: n.ip().map(|a| a.to_string()),
            port: n.port(),
            ports: n.ports_label(),
            roles: n.roles.label(),
            patroni: m.as_ref().map(|m| PatroniReport {
                role: m.role.clone(),
                state: m
                    .replication_state
                    .clone()
                    .filter(|_| m.role == "replica")
                    .unwrap_or_else(|| m.state.clone()),
                timeline: m.timeline,
                lag_bytes: primary
                    .as_ref()
                    .filter(|_| m.role == "replica")
                    .and_then(|p| m.lag_behind(p)),
            }),
        })
        .collect();
    // A lab bootstrapped only partly (or not yet) has no etcd to ask.
    let etcd_configured = ctx.facts().await?.iter().any(|f| f.etcd_config);
    let etcd = if etcd_configured {
        let view = etcd::view(&ctx).await?;
        let (quorum, _) = crate::spec::quorum(view.members());
        Some(EtcdReport {
            members: view.members(),
            quorum,
            healthy: view.healthy.clone(),
            unhealthy: view.unhealthy.iter().map(|(n, _)| n.clone()).collect(),
            leader: view.leader.clone(),
            summary: view.describe(),
        })
    } else {
        None
    };
    let haproxy = match lab.haproxy_node() {
        Some(n) => Some(HaproxyReport {
            node: n.name.clone(),
            primary_port: n.host_port(HAPROXY_PRIMARY),
            replicas_port: n.host_port(HAPROXY_REPLICAS),
            stats_port: n.host_port(HAPROXY_STATS),
            routing: haproxy::routing(&ctx, &n.name).await?,
        }),
        None => None,
    };
    let backup = match lab.repo_node().filter(|n| n.running()) {
        Some(repo) => pgbackrest::info(&ctx, &repo.name)
            .await?
            .map(|i| BackupReport {
                status: i.status.clone(),
                full_backups: i.full_backups,
                last: i.last.map(|(label, kind)| format!("{label} ({kind})")),
            }),
        None => None,
    };
    let monitoring = match lab.monitor_node() {
        Some(n) => Some(monitoring_report(&ctx, n).await?),
        None => None,
    };
    Ok(Report {
        lab: lab.name.clone(),
        engine: lab.engine.clone(),
        host: lab.host.clone(),
        network: lab.network.clone(),
        subnet,
        unfinished: lab.unfinished(),
        nodes,
        etcd,
        haproxy,
        backup,
        monitoring,
    })
}

/// Prometheus's targets and firing alerts, when it answers.
async fn monitoring_report(ctx: &Ctx<'_>, n: &crate::model::Node) -> Result<MonitoringReport> {
    let mut report = MonitoringReport {
        node: n.name.clone(),
        url: ctx.lab.prometheus_url(),
        targets_up: None,
        firing: Vec::new(),
    };
    if !n.running() {
        return Ok(report);
    }
    if let Some(targets) = monitoring::targets(ctx, &n.name).await? {
        let up = targets.iter().filter(|t| t.health == "up").count();
        report.targets_up = Some((up, targets.len()));
        let alerts = monitoring::query(ctx, &n.name, "ALERTS{alertstate=\"firing\"}").await?;
        let mut firing: Vec<String> = alerts
            .result
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["metric"]["alertname"].as_str().map(String::from))
            .collect();
        firing.sort();
        firing.dedup();
        report.firing = firing;
    }
    Ok(report)
}

impl Report {
    /// The table people read.
    pub fn table(&self) -> String {
        let mut out = format!(
            "lab {} on network {} ({}), engine {}, ports reached at {}\n",
            self.lab,
            self.network,
            self.subnet.as_deref().unwrap_or("?"),
            self.engine,
            self.host
        );
        if let Some(last) = &self.unfinished {
            let _ = writeln!(
                out,
                "unfinished: its create stopped after stage {last}; `lab bootstrap --name {}` \
                 finishes it",
                self.lab
            );
        }
        let dash = || "-".to_string();
        let rows = self.nodes.iter().map(|n| {
            let p = n.patroni.as_ref();
            [
                table::node(&n.name, &n.container),
                n.state.clone(),
                n.address.clone().unwrap_or_else(dash),
                n.ports.clone(),
                n.roles.clone(),
                p.map(|p| p.role.clone()).unwrap_or_else(dash),
                p.map(|p| p.state.clone()).unwrap_or_else(dash),
                p.and_then(|p| p.timeline)
                    .map(|t| t.to_string())
                    .unwrap_or_else(dash),
                p.and_then(|p| p.lag_bytes)
                    .map(|b| format!("{b} B"))
                    .unwrap_or_else(dash),
            ]
        });
        let _ = writeln!(out, "{}", table::render(&STATUS_HEADER, rows));
        match &self.etcd {
            Some(e) => {
                let _ = writeln!(out, "etcd: {}", e.summary);
            }
            None => out.push_str("etcd: not set up, or no node running\n"),
        }
        if let Some(h) = &self.haproxy {
            let port = |p: Option<u16>| p.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
            let routing = match &h.routing {
                Some(r) => r.describe(),
                None => "not running (its stats page does not answer)".into(),
            };
            let _ = writeln!(
                out,
                "haproxy: haproxy1 ({}), host ports {} (primary), {} (replicas), {} (stats): \
                 {routing}",
                h.node,
                port(h.primary_port),
                port(h.replicas_port),
                port(h.stats_port)
            );
        }
        match &self.backup {
            Some(b) => {
                let _ = writeln!(
                    out,
                    "backup: status {}, {} full backup(s){}",
                    b.status,
                    b.full_backups,
                    b.last
                        .as_ref()
                        .map(|l| format!(", newest {l}"))
                        .unwrap_or_default()
                );
            }
            None => out.push_str("backup: none yet\n"),
        }
        if let Some(m) = &self.monitoring {
            let url = m.url.as_deref().unwrap_or("not published");
            let seen = match m.targets_up {
                Some((up, all)) if m.firing.is_empty() => {
                    format!("{up} of {all} targets up, no alert firing")
                }
                Some((up, all)) => {
                    format!("{up} of {all} targets up, firing: {}", m.firing.join(", "))
                }
                None => "not running".into(),
            };
            let _ = writeln!(out, "monitoring: prometheus1 ({}), {url}: {seen}", m.node);
        }
        out.trim_end().to_string()
    }
}

/// What `lab create` prints at the end: the nodes.
pub fn print_nodes(lab: &Lab) {
    crate::terminal::out(&nodes_table(lab));
}

fn nodes_table(lab: &Lab) -> String {
    let rows = lab.nodes.iter().map(|n| {
        [
            table::node(&n.name, &n.container.name),
            n.container.state.clone(),
            n.ip().map(|a| a.to_string()).unwrap_or_else(|| "-".into()),
            n.ports_label(),
            n.roles.label(),
        ]
    });
    table::render(&["node", "state", "address", "ports", "roles"], rows)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::engine::ContainerInfo;
    use crate::engine::objects::PublishedPort;
    use crate::labels;
    use crate::model::Node;
    use crate::spec::{POSTGRES_PORT, Roles};
    use crate::table::starts;

    /// The longest name `validate_name` lets through.
    const LONG: &str = "wtt-a-very-long-lab-name-for-a-trainee-x";

    fn node(lab: &str, index: usize, roles: Roles, ports: &[(u16, u16)]) -> Node {
        let name = format!("{lab}{index}");
        Node {
            name: name.clone(),
            index,
            roles,
            container: ContainerInfo {
                name,
                labels: HashMap::from([(
                    labels::ADDRESS.to_string(),
                    format!("10.250.2.{}", 9 + index),
                )]),
                running: true,
                state: "running".into(),
                endpoints: Vec::new(),
                published: ports
                    .iter()
                    .map(|&(port, host_port)| PublishedPort {
                        port,
                        host_ip: None,
                        host_port,
                    })
                    .collect(),
            },
        }
    }

    fn lab(name: &str, network: &str) -> Lab {
        let pg = Roles {
            postgres: true,
            etcd: true,
            ..Roles::default()
        };
        let proxy = Roles {
            repo: true,
            haproxy: true,
            ..Roles::default()
        };
        Lab {
            name: name.into(),
            network: network.into(),
            tls: false,
            nodes: vec![
                node(name, 1, pg, &[(POSTGRES_PORT, 6432)]),
                node(name, 2, pg, &[(POSTGRES_PORT, 6433)]),
                node(
                    name,
                    3,
                    proxy,
                    &[
                        (HAPROXY_PRIMARY, 5000),
                        (HAPROXY_REPLICAS, 5001),
                        (HAPROXY_STATS, 7000),
                    ],
                ),
            ],
            marks: Vec::new(),
            engine: "default".into(),
            host: "127.0.0.1".into(),
            host_given: false,
        }
    }

    /// Every line of `text`'s table (from its header, `header[0]` starting a line) has its
    /// cells where the header has its words, whole.
    fn aligned(text: &str, header: &[&str], rows: &[Vec<String>]) {
        let lines: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with(header[0]))
            .collect();
        assert!(lines.len() > rows.len(), "{text}");
        let at = starts(lines[0], header);
        for (line, row) in lines[1..].iter().zip(rows) {
            let cells: Vec<&str> = row.iter().map(String::as_str).collect();
            assert_eq!(starts(line, &cells), at, "{text}");
        }
    }

    #[test]
    fn a_long_lab_name_keeps_the_list_aligned() {
        let labs = [lab("wtt", "wtt-net"), lab(LONG, &format!("{LONG}-net"))];
        // The long lab's network is gone: its subnet is "-".
        let networks = [NetworkInfo {
            name: "wtt-net".into(),
            driver: "bridge".into(),
            subnets: vec![("10.250.1.0/24".parse().unwrap(), None)],
            labels: HashMap::new(),
            attached: Vec::new(),
        }];
        let text = list_text(&listed(&labs, &networks), false);
        let row = |lab: &str, subnet: &str| {
            [
                lab,
                "3",
                "running",
                &format!("{lab}-net"),
                subnet,
                "6432-6433, HAProxy 5000/5001/7000",
            ]
            .map(String::from)
            .to_vec()
        };
        aligned(
            &text,
            &["lab", "nodes", "state", "network", "subnet", "ports"],
            &[row("wtt", "10.250.1.0/24"), row(LONG, "-")],
        );
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(
            text.lines()
                .nth(2)
                .unwrap()
                .starts_with(&format!("{LONG}  3  ")),
            "{text}"
        );
    }

    #[test]
    fn long_node_names_keep_the_status_and_create_tables_aligned() {
        let lab = lab(LONG, LONG);
        let nodes = nodes_table(&lab);
        let rows: Vec<Vec<String>> = lab
            .nodes
            .iter()
            .map(|n| {
                vec![
                    n.name.clone(),
                    "running".into(),
                    n.ip().unwrap().to_string(),
                    n.ports_label(),
                    n.roles.label(),
                ]
            })
            .collect();
        aligned(
            &nodes,
            &["node", "state", "address", "ports", "roles"],
            &rows,
        );

        let report = Report {
            lab: LONG.into(),
            engine: "default".into(),
            host: "127.0.0.1".into(),
            network: LONG.into(),
            subnet: Some("10.250.2.0/24".into()),
            unfinished: None,
            nodes: lab
                .nodes
                .iter()
                .map(|n| NodeReport {
                    name: n.name.clone(),
                    container: n.container.name.clone(),
                    state: "running".into(),
                    address: n.ip().map(|a| a.to_string()),
                    port: n.port(),
                    ports: n.ports_label(),
                    roles: n.roles.label(),
                    patroni: n.port().map(|_| PatroniReport {
                        role: if n.index == 1 { "leader" } else { "replica" }.into(),
                        state: "streaming".into(),
                        timeline: Some(1),
                        lag_bytes: (n.index > 1).then_some(123_456),
                    }),
                })
                .collect(),
            etcd: None,
            haproxy: None,
            backup: None,
            monitoring: Some(MonitoringReport {
                node: format!("{LONG}6"),
                url: Some("http://127.0.0.1:9090/".into()),
                targets_up: Some((11, 12)),
                firing: vec!["EtcdMemberDown".into(), "NoLeader".into()],
            }),
        };
        let text = report.table();
        assert!(
            text.ends_with(&format!(
                "monitoring: prometheus1 ({LONG}6), http://127.0.0.1:9090/: 11 of 12 targets \
                 up, firing: EtcdMemberDown, NoLeader"
            )),
            "{text}"
        );
        let rows: Vec<Vec<String>> = report
            .nodes
            .iter()
            .map(|n| {
                let p = n.patroni.as_ref();
                let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
                vec![
                    n.name.clone(),
                    n.state.clone(),
                    n.address.clone().unwrap(),
                    n.ports.clone(),
                    n.roles.clone(),
                    or_dash(p.map(|p| p.role.clone())),
                    or_dash(p.map(|p| p.state.clone())),
                    or_dash(p.map(|_| "1".into())),
                    or_dash(p.and_then(|p| p.lag_bytes).map(|b| format!("{b} B"))),
                ]
            })
            .collect();
        aligned(&text, &STATUS_HEADER, &rows);
        assert!(
            text.contains(&format!(
                "\n{LONG}3  running    10.250.2.12  5000/5001/7000  repo,haproxy   -"
            )),
            "{text}"
        );
        assert!(text.contains("123456 B"), "{text}");
    }
}
