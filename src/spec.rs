//! What the user asked a lab to be, validated: names, counts, the quorum rule and the topology
//! (which node runs what). Pure; every refusal says what to change.

use std::net::IpAddr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How far `lab create` and `lab bootstrap` go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Stage {
    /// The nodes run; nothing is bootstrapped.
    Containers,
    /// Plus SSH between the nodes as postgres.
    Access,
    /// Plus the etcd quorum.
    Etcd,
    /// Plus the Patroni cluster: a primary and streaming replicas.
    Patroni,
    /// Plus HAProxy in front of the cluster, in labs that have an HAProxy node.
    Haproxy,
    /// Plus the pgBackRest repository with a first full backup.
    Backup,
    /// Plus Prometheus and its exporters, in labs made with --monitoring.
    Monitoring,
}

impl Stage {
    /// Every stage, in the course's order.
    pub const ALL: [Stage; 7] = [
        Stage::Containers,
        Stage::Access,
        Stage::Etcd,
        Stage::Patroni,
        Stage::Haproxy,
        Stage::Backup,
        Stage::Monitoring,
    ];

    /// The stages whose effect this one builds on: a stage may run as soon as they are done,
    /// alongside others whose needs are met. etcd needs no SSH, nor Patroni the repository's
    /// access; the backup needs both the cluster and SSH. On a `--tls` lab etcd also needs the
    /// certificates, which the access stage places.
    pub fn needs(self, tls: bool) -> &'static [Stage] {
        match self {
            Stage::Containers => &[],
            Stage::Access => &[Stage::Containers],
            Stage::Etcd if tls => &[Stage::Access],
            Stage::Etcd => &[Stage::Containers],
            Stage::Patroni => &[Stage::Etcd],
            Stage::Haproxy => &[Stage::Patroni],
            Stage::Backup => &[Stage::Access, Stage::Patroni],
            // The exporters' role is made on the primary; Prometheus watches the rest come up.
            Stage::Monitoring => &[Stage::Patroni],
        }
    }

    /// `stages` (in the course's order) grouped into waves: each wave's stages need only
    /// stages of earlier waves (or ones outside `stages`, taken as done), so a wave's stages
    /// can run at once.
    pub fn waves(stages: &[Stage], tls: bool) -> Vec<Vec<Stage>> {
        let mut wave_of: Vec<(Stage, usize)> = Vec::new();
        for &stage in stages {
            let wave = stage
                .needs(tls)
                .iter()
                .filter_map(|need| wave_of.iter().find(|(s, _)| s == need))
                .map(|(_, w)| w + 1)
                .max()
                .unwrap_or(0);
            wave_of.push((stage, wave));
        }
        let count = wave_of.iter().map(|(_, w)| w + 1).max().unwrap_or(0);
        (0..count)
            .map(|w| {
                wave_of
                    .iter()
                    .filter(|(_, sw)| *sw == w)
                    .map(|(s, _)| *s)
                    .collect()
            })
            .collect()
    }

    pub fn name(self) -> &'static str {
        match self {
            Stage::Containers => "containers",
            Stage::Access => "access",
            Stage::Etcd => "etcd",
            Stage::Patroni => "patroni",
            Stage::Haproxy => "haproxy",
            Stage::Backup => "backup",
            Stage::Monitoring => "monitoring",
        }
    }
}

/// Password hashing for the lab's roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Auth {
    Scram,
    Md5,
}

/// The lab's settings, its secrets among them. They live in a file inside the nodes readable by
/// postgres alone, not in labels that anyone with access to the engine can read, so that `lab
/// bootstrap` can finish a lab later and the course's helpers write what the lab was asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub password: String,
    pub auth: Auth,
    /// TLS and authentication on every channel (`lab create --tls`); labs made before it have
    /// none.
    #[serde(default)]
    pub tls: bool,
}

impl Settings {
    pub const PATH: &str = "/etc/pgha-lab.json";
}

/// What a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Roles {
    pub postgres: bool,
    pub etcd: bool,
    pub repo: bool,
    /// HAProxy, the clients' entry point (alias haproxy1).
    pub haproxy: bool,
    /// Prometheus, scraping every service (alias prometheus1; `--monitoring`).
    pub monitor: bool,
    /// Prometheus's exporters: on the PostgreSQL nodes and the repository host of a monitored
    /// lab.
    pub exporters: bool,
}

impl Roles {
    /// "postgres,etcd" — the label form.
    pub fn label(self) -> String {
        let mut names = Vec::new();
        if self.postgres {
            names.push("postgres");
        }
        if self.etcd {
            names.push("etcd");
        }
        if self.repo {
            names.push("repo");
        }
        if self.haproxy {
            names.push("haproxy");
        }
        if self.monitor {
            names.push("monitor");
        }
        if self.exporters {
            names.push("exporters");
        }
        names.join(",")
    }

    pub fn from_label(text: &str) -> Roles {
        let has = |r: &str| text.split(',').any(|x| x.trim() == r);
        Roles {
            postgres: has("postgres"),
            etcd: has("etcd"),
            repo: has("repo"),
            haproxy: has("haproxy"),
            monitor: has("monitor"),
            exporters: has("exporters"),
        }
    }
}

/// PostgreSQL's port inside a node.
pub const POSTGRES_PORT: u16 = 5432;
/// HAProxy's ports as Percona's guide has them: the primary, the replicas (round-robin), the
/// stats page.
pub const HAPROXY_PRIMARY: u16 = 5000;
pub const HAPROXY_REPLICAS: u16 = 5001;
pub const HAPROXY_STATS: u16 = 7000;
/// HAProxy's Prometheus endpoint, in a monitored lab (HAProxy's documented port for it).
pub const HAPROXY_METRICS: u16 = 8405;
/// Prometheus's web page and API on the monitor node.
pub const PROMETHEUS_PORT: u16 = 9090;
/// The exporters: prometheus-postgres-exporter on every PostgreSQL node, and
/// prometheus-pgbackrest-exporter on the repository host.
pub const POSTGRES_EXPORTER: u16 = 9187;
pub const PGBACKREST_EXPORTER: u16 = 9854;

/// The layouts of the guides in the training material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Topology {
    /// The main course (004): five nodes; the first three run PostgreSQL, Patroni and etcd,
    /// the other two etcd only, and the last is also the pgBackRest repository (pgbackrest1).
    Course,
    /// Percona's guide (001) and the blog series (003): three nodes that each run PostgreSQL,
    /// Patroni and etcd, the third also the repository, plus an HAProxy node.
    Colocated,
    /// The guide in 002: three PostgreSQL + Patroni nodes that run no etcd, three etcd-only
    /// nodes, the last of them also the repository, plus an HAProxy node (the guide has neither
    /// pgBackRest nor HAProxy; the lab adds them as the other guides set them up).
    DedicatedEtcd,
}

/// Where the pgBackRest repository lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoPlace {
    /// On the last PostgreSQL or etcd node (each guide's choice).
    Last,
    /// On a node of its own.
    Own,
    /// On node N.
    Node(usize),
}

impl std::str::FromStr for RepoPlace {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<RepoPlace, String> {
        match text {
            "last" => Ok(RepoPlace::Last),
            "own" => Ok(RepoPlace::Own),
            n => n
                .parse()
                .map(RepoPlace::Node)
                .map_err(|_| format!("{n:?}: use last, own, or a node number such as 3")),
        }
    }
}

/// Which node runs what: PostgreSQL nodes first, then etcd-only nodes (sharing the first
/// nodes with PostgreSQL, or on nodes of their own), the repository's own node if it has one,
/// and HAProxy last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub postgres: usize,
    pub etcd: usize,
    /// etcd on nodes that run no PostgreSQL.
    pub dedicated_etcd: bool,
    pub repo: RepoPlace,
    pub haproxy: bool,
    /// A monitor node of its own, after every other (`--monitoring`).
    pub monitor: bool,
}

impl Topology {
    /// The layout the topology's guide lays out, before any role given directly.
    pub fn preset(self) -> Layout {
        let (postgres, etcd, dedicated_etcd, haproxy) = match self {
            Topology::Course => (3, 5, false, false),
            Topology::Colocated => (3, 3, false, true),
            Topology::DedicatedEtcd => (3, 3, true, true),
        };
        Layout {
            postgres,
            etcd,
            dedicated_etcd,
            repo: RepoPlace::Last,
            haproxy,
            monitor: false,
        }
    }
}

impl Layout {
    /// The nodes that run PostgreSQL or etcd.
    fn database_nodes(&self) -> usize {
        if self.dedicated_etcd {
            self.postgres + self.etcd
        } else {
            self.postgres.max(self.etcd)
        }
    }

    pub fn nodes(&self) -> usize {
        self.database_nodes()
            + usize::from(self.repo == RepoPlace::Own)
            + usize::from(self.haproxy)
            + usize::from(self.monitor)
    }

    fn repo_index(&self) -> usize {
        match self.repo {
            RepoPlace::Last => self.database_nodes(),
            RepoPlace::Own => self.database_nodes() + 1,
            RepoPlace::Node(n) => n,
        }
    }

    /// What node `index` (from 1) runs.
    pub fn roles(&self, index: usize) -> Roles {
        let database = index <= self.database_nodes();
        let (postgres, repo) = (index <= self.postgres, index == self.repo_index());
        Roles {
            postgres,
            etcd: database
                && if self.dedicated_etcd {
                    index > self.postgres
                } else {
                    index <= self.etcd
                },
            repo,
            haproxy: self.haproxy && index == self.nodes() - usize::from(self.monitor),
            monitor: self.monitor && index == self.nodes(),
            exporters: self.monitor && (postgres || repo),
        }
    }

    /// Node `index`'s /etc/hosts aliases (see `aliases`).
    pub fn aliases(&self, index: usize) -> Vec<String> {
        let all: Vec<Roles> = (1..=self.nodes()).map(|i| self.roles(i)).collect();
        aliases(&all, index)
    }
}

/// The /etc/hosts aliases of node `index` (from 1) of a lab whose nodes have `all` roles, in
/// node order: etcdN for the Nth etcd member, pgbackrest1 for the repository host, haproxy1
/// for HAProxy, prometheus1 for the monitor node.
pub fn aliases(all: &[Roles], index: usize) -> Vec<String> {
    let Some(roles) = index.checked_sub(1).and_then(|i| all.get(i)) else {
        return Vec::new();
    };
    let mut aliases = Vec::new();
    if roles.etcd {
        let nth = all[..index].iter().filter(|r| r.etcd).count();
        aliases.push(format!("etcd{nth}"));
    }
    if roles.repo {
        aliases.push("pgbackrest1".into());
    }
    if roles.haproxy {
        aliases.push("haproxy1".into());
    }
    if roles.monitor {
        aliases.push("prometheus1".into());
    }
    aliases
}

/// A validated request for one lab.
#[derive(Debug, Clone)]
pub struct LabSpec {
    pub name: String,
    pub nodes: usize,
    pub layout: Layout,
    pub network: String,
    /// None: the default, moved to the next free /24 when taken.
    pub subnet: Option<Ipv4Net>,
    pub image: String,
    pub publish: IpAddr,
    pub settings: Settings,
    /// A trainee's way in (`lab create --access ssh`); None without one.
    pub access: Option<Entry>,
    /// Where its published ports are reached from here, when not where its engine is
    /// (`--publish-host`: a NAT, a DNS name, a second interface).
    pub reach: Option<String>,
}

/// How a trainee logs in as root on a lab's SSH entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// With a password of the lab's own, generated when the lab is made.
    Password,
    /// With the trainee's key (`--trainee-key`).
    Key(crate::render::access::PublicKey),
}

/// The postgres role's password unless told otherwise: the course's.
pub const DEFAULT_PASSWORD: &str = "postgres";

/// The most nodes a lab may have: enough for any course, few enough for a laptop.
pub const MAX_NODES: usize = 9;

impl LabSpec {
    /// The container of node `index` (from 1) of this lab: unique on the engine.
    pub fn container_name(&self, index: usize) -> String {
        container_name(&self.name, index)
    }

    pub fn roles(&self, index: usize) -> Roles {
        self.layout.roles(index)
    }
}

/// The container of node `index` of lab `lab` (alice1, ...): unique on the engine, so Docker
/// tells the labs of a class apart.
pub fn container_name(lab: &str, index: usize) -> String {
    format!("{lab}{index}")
}

/// What the course calls node `index`, in every lab: its hostname, its name in /etc/hosts,
/// its Patroni member and etcd names. Each lab has /etc/hosts of its own, so the labs of a
/// class all answer to pgha1, pgha2, ... inside, as the course prints them.
pub fn node_name(index: usize) -> String {
    format!("pgha{index}")
}

/// The longest lab name: its node containers (NAME1 ...) and volumes (NAME1-pgdata ...) add a
/// few characters more.
pub const MAX_NAME_LEN: usize = 40;

/// Lab names become container names, hostnames and part of the network name: lowercase letters,
/// digits and hyphens, starting with a letter and ending with a letter, so that node names
/// (the lab name plus a number) can never be mistaken for another lab's.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = (2..=MAX_NAME_LEN).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.ends_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid lab name {name:?}: use 2 to {MAX_NAME_LEN} lowercase letters, digits and hyphens, \
             starting and ending with a letter (for example pgha, alice, team-b). The nodes \
             are then named {}1, {}2, ...",
            sanitize_hint(name),
            sanitize_hint(name)
        )))
    }
}

/// The most labs `lab create --count` makes: every two-letter suffix, far more than the
/// engines of any class can hold (26 × 26 labs would need about 400 GiB).
pub const MAX_COUNT: usize = 26 * 26;

/// The labs of a class of `count` made by `lab create --count`: PREFIX-a ... PREFIX-z up to 26
/// (as classes have always been named), and beyond 26 PREFIX-aa, PREFIX-ab, ... PREFIX-zz, two
/// letters for every lab so that they sort in order. Letters, not numbers: a lab name must end
/// with a letter (see `validate_name`), so that PREFIX-01's first node would not read as a lab
/// PREFIX-011's.
pub fn class_names(prefix: &str, count: usize) -> Result<Vec<String>> {
    if !(1..=MAX_COUNT).contains(&count) {
        return Err(Error::Invalid(format!(
            "--count {count} is out of range: a class has 1 to {MAX_COUNT} labs (named NAME-a \
             to NAME-z up to 26, NAME-aa to NAME-zz beyond). For more, make several classes \
             with different --name prefixes."
        )));
    }
    let letter = |i: usize| char::from(b'a' + (i % 26) as u8);
    let names: Vec<String> = (0..count)
        .map(|i| match count {
            ..=26 => format!("{prefix}-{}", letter(i)),
            _ => format!("{prefix}-{}{}", letter(i / 26), letter(i)),
        })
        .collect();
    let last = &names[count - 1];
    if last.len() > MAX_NAME_LEN {
        let suffix = last.len() - prefix.len();
        return Err(Error::Invalid(format!(
            "--name {prefix} is too long a prefix for --count {count}: the labs would be named \
             {} ... {last}, and a lab name has at most {MAX_NAME_LEN} characters. Use a prefix \
             of at most {} characters.",
            names[0],
            MAX_NAME_LEN - suffix
        )));
    }
    // The prefix's own characters: every name is alike but for its letters.
    validate_name(last)?;
    Ok(names)
}

fn sanitize_hint(name: &str) -> String {
    let cleaned: String = name
        .to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || *c == '-')
        .collect();
    let cleaned = cleaned.trim_matches('-');
    if cleaned.len() >= 2 {
        cleaned.to_string()
    } else {
        "pgha".into()
    }
}

/// Docker's rule for network names, and none of Docker's own networks: the default bridge
/// gives no fixed addresses (a lab's nodes keep theirs across restarts) and no names between
/// containers, and host and none give no lab network at all.
pub fn validate_network(name: &str) -> Result<()> {
    if ["bridge", "host", "none"].contains(&name) {
        return Err(Error::Invalid(format!(
            "--network {name} is one of Docker's own networks, which a lab cannot use: the \
             nodes need fixed addresses and names that resolve between them, which only a \
             user-defined network gives. Leave --network out (the lab makes NAMEnet), or name \
             a network of your own."
        )));
    }
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid network name {name:?}: Docker accepts letters, digits, '_', '.' and '-', \
             starting with a letter or digit. Pick another with --network."
        )))
    }
}

/// The raw request, as parsed from the command line.
pub struct Request<'a> {
    pub name: &'a str,
    pub topology: Topology,
    /// The course layout's node count: every node an etcd member.
    pub nodes: Option<usize>,
    pub postgres: Option<usize>,
    pub etcd: Option<usize>,
    pub dedicated_etcd: bool,
    pub repo: Option<RepoPlace>,
    pub haproxy: Option<bool>,
    /// A monitor node with Prometheus (`--monitoring`).
    pub monitoring: bool,
    pub network: Option<&'a str>,
    pub subnet: Option<&'a str>,
    pub image: &'a str,
    pub publish: &'a str,
    pub password: &'a str,
    pub md5: bool,
    pub tls: bool,
    /// Accept an even number of etcd members.
    pub force: bool,
}

impl<'a> Request<'a> {
    /// The topology's layout with the roles given directly laid over it, validated.
    pub fn layout(&self) -> Result<Layout> {
        let Layout {
            postgres,
            etcd,
            dedicated_etcd: dedicated,
            haproxy,
            ..
        } = self.topology.preset();
        let dedicated_etcd = dedicated || self.dedicated_etcd;
        let (etcd, postgres) = match self.nodes {
            Some(_) if dedicated_etcd => {
                return Err(Error::Invalid(
                    "--nodes counts the nodes of a layout where every node is an etcd member; \
                     with etcd on nodes of its own, give --postgres P and --etcd E instead."
                        .into(),
                ));
            }
            Some(nodes) => {
                if !(1..=MAX_NODES).contains(&nodes) {
                    return Err(Error::Invalid(format!(
                        "--nodes {nodes} is out of range: a lab has 1 to {MAX_NODES} nodes (the \
                         course uses 5: three PostgreSQL nodes and two more etcd members)."
                    )));
                }
                let postgres = self.postgres.unwrap_or(nodes.min(postgres));
                if postgres > nodes {
                    return Err(Error::Invalid(format!(
                        "--postgres {postgres} does not fit --nodes {nodes}: between 1 and \
                         {nodes} of the nodes can run PostgreSQL."
                    )));
                }
                (nodes, postgres)
            }
            None => (self.etcd.unwrap_or(etcd), self.postgres.unwrap_or(postgres)),
        };
        if postgres < 1 {
            return Err(Error::Invalid(
                "--postgres 0 leaves the lab without PostgreSQL: at least one node must run \
                 it."
                .into(),
            ));
        }
        if etcd < 1 {
            return Err(Error::Invalid(
                "--etcd 0 leaves Patroni without its DCS: a lab needs at least one etcd member \
                 (three survive one failure)."
                    .into(),
            ));
        }
        if etcd.is_multiple_of(2) && !self.force {
            let flag = match self.nodes {
                Some(n) => format!("--nodes {n}"),
                None => format!("--etcd {etcd}"),
            };
            return Err(Error::Invalid(quorum_refusal(&flag, etcd)));
        }
        let layout = Layout {
            postgres,
            etcd,
            dedicated_etcd,
            repo: self.repo.unwrap_or(RepoPlace::Last),
            haproxy: self.haproxy.unwrap_or(haproxy),
            monitor: self.monitoring,
        };
        if let RepoPlace::Node(n) = layout.repo
            && !(1..=layout.database_nodes()).contains(&n)
        {
            return Err(Error::Invalid(format!(
                "--repo {n} is not one of the lab's PostgreSQL or etcd nodes (1 to {}): name \
                 one of them, or use last (the default) or own (a node of its own).",
                layout.database_nodes()
            )));
        }
        if layout.nodes() > MAX_NODES {
            return Err(Error::Invalid(format!(
                "this layout needs {} nodes ({postgres} PostgreSQL, {etcd} etcd member(s){}{}{}{}), \
                 more than the {MAX_NODES} a lab may have: fewer PostgreSQL nodes or etcd \
                 members{}{} make it fit.",
                layout.nodes(),
                if dedicated_etcd {
                    " on nodes of their own"
                } else {
                    ""
                },
                if layout.repo == RepoPlace::Own {
                    ", a repository node"
                } else {
                    ""
                },
                if layout.haproxy { ", HAProxy" } else { "" },
                if layout.monitor {
                    ", a monitor node"
                } else {
                    ""
                },
                if layout.repo == RepoPlace::Own {
                    ", the repository on one of them (--repo last)"
                } else {
                    ""
                },
                if layout.haproxy { ", --no-haproxy" } else { "" },
            )));
        }
        Ok(layout)
    }

    pub fn validate(&self) -> Result<LabSpec> {
        validate_name(self.name)?;
        let layout = self.layout()?;
        let network = match self.network {
            Some(n) => n.to_string(),
            None => format!("{}net", self.name),
        };
        validate_network(&network)?;
        let subnet = self.subnet.map(parse_subnet).transpose()?;
        let publish: IpAddr = self.publish.parse().map_err(|_| {
            Error::Invalid(format!(
                "--publish {:?} is not an IP address: give the host address the PostgreSQL \
                 ports should listen on, such as 127.0.0.1 (this machine only) or 0.0.0.0 \
                 (every interface).",
                self.publish
            ))
        })?;
        if !publish.is_loopback() && self.password == DEFAULT_PASSWORD {
            return Err(Error::Invalid(format!(
                "--publish {publish} puts PostgreSQL on this host's network interfaces, and the \
                 postgres superuser would have the course's password, \"{DEFAULT_PASSWORD}\", \
                 for anyone who can reach them. Set a password of your own (LAB_PASSWORD=... \
                 or --password-file FILE, which keep it out of `ps` and your shell history), or \
                 publish on 127.0.0.1 (the default) for this machine only."
            )));
        }
        if self.password.is_empty() || self.password.chars().any(char::is_control) {
            return Err(Error::Invalid(
                "--password must be non-empty and free of control characters (newlines, \
                 tabs)."
                    .into(),
            ));
        }
        Ok(LabSpec {
            name: self.name.to_string(),
            nodes: layout.nodes(),
            layout,
            network,
            subnet,
            image: self.image.to_string(),
            publish,
            settings: Settings {
                password: self.password.to_string(),
                auth: if self.md5 { Auth::Md5 } else { Auth::Scram },
                tls: self.tls,
            },
            access: None,
            reach: None,
        })
    }
}

/// etcd needs a majority: N = 2F + 1 members survive F failures, and an even N tolerates no more
/// than N - 1 would.
pub fn quorum_refusal(flag: &str, members: usize) -> String {
    let (quorum, tolerated) = quorum(members);
    format!(
        "{flag} would make an etcd cluster of {members} members: quorum {quorum}, {tolerated} \
         failure(s) tolerated, no more than {} members give. etcd needs a majority, so N = \
         2F + 1 members survive F failures: use {} or {} members, or pass --even-etcd to build the \
         even cluster anyway (to show why it is a bad idea).",
        members - 1,
        members - 1,
        members + 1
    )
}

/// (quorum, failures tolerated) for `members` etcd members.
pub fn quorum(members: usize) -> (usize, usize) {
    let quorum = members / 2 + 1;
    (quorum, members - quorum)
}

fn parse_subnet(text: &str) -> Result<Ipv4Net> {
    let net: Ipv4Net = text.parse().map_err(|_| {
        Error::Invalid(format!(
            "--subnet {text:?} is not an IPv4 subnet in CIDR form: write it like \
             192.168.50.0/24."
        ))
    })?;
    if net.network() != net.addr() {
        return Err(Error::Invalid(format!(
            "--subnet {text} has host bits set: the subnet containing that address is {}.",
            net.trunc()
        )));
    }
    Ok(net)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn independent_stages_run_in_one_wave() {
        use Stage::*;
        let all = [Access, Etcd, Patroni, Haproxy, Backup];
        assert_eq!(
            Stage::waves(&all, false),
            vec![vec![Access, Etcd], vec![Patroni], vec![Haproxy, Backup]]
        );
        // A --tls lab's etcd waits for the certificates that access places.
        assert_eq!(
            Stage::waves(&all, true),
            vec![
                vec![Access],
                vec![Etcd],
                vec![Patroni],
                vec![Haproxy, Backup]
            ]
        );
        // Stages left out (done already, or not in the lab) are taken as done.
        assert_eq!(
            Stage::waves(&[Patroni, Backup], false),
            vec![vec![Patroni], vec![Backup]]
        );
        assert_eq!(Stage::waves(&[Access], false), vec![vec![Access]]);
        assert!(Stage::waves(&[], false).is_empty());
        // Every stage needs only stages before it in the course's order.
        for s in Stage::ALL {
            assert!(s.needs(true).iter().chain(s.needs(false)).all(|n| *n < s));
        }
    }

    fn request() -> Request<'static> {
        Request {
            name: "pgha",
            topology: Topology::Course,
            nodes: None,
            postgres: None,
            etcd: None,
            dedicated_etcd: false,
            repo: None,
            haproxy: None,
            monitoring: false,
            network: None,
            subnet: None,
            image: "pgha-lab:17-g1",
            publish: "127.0.0.1",
            password: "postgres",
            md5: false,
            tls: false,
            force: false,
        }
    }

    #[test]
    fn defaults_give_the_course_topology() {
        let spec = request().validate().unwrap();
        assert_eq!(spec.network, "pghanet");
        assert_eq!(spec.layout.postgres, 3);
        assert_eq!(spec.nodes, 5);
        assert_eq!(spec.container_name(1), "pgha1");
        assert_eq!(node_name(1), "pgha1");
        assert_eq!(spec.roles(1).label(), "postgres,etcd");
        assert_eq!(spec.roles(4).label(), "etcd");
        assert_eq!(spec.roles(5).label(), "etcd,repo");
        assert_eq!(spec.layout.aliases(5), ["etcd5", "pgbackrest1"]);
        assert_eq!(spec.settings.auth, Auth::Scram);
    }

    #[test]
    fn settings_from_before_tls_read_as_plain() {
        let old: Settings = serde_json::from_str(r#"{"password": "pw", "auth": "md5"}"#).unwrap();
        assert!(!old.tls);
        let spec = Request {
            tls: true,
            ..request()
        }
        .validate()
        .unwrap();
        assert!(spec.settings.tls);
        let json = serde_json::to_string(&spec.settings).unwrap();
        assert!(json.contains(r#""tls":true"#), "{json}");
    }

    #[test]
    fn roles_survive_their_label() {
        for roles in [
            Roles {
                postgres: true,
                etcd: true,
                ..Roles::default()
            },
            Roles {
                etcd: true,
                repo: true,
                ..Roles::default()
            },
            Roles {
                postgres: true,
                etcd: true,
                repo: true,
                ..Roles::default()
            },
            Roles {
                haproxy: true,
                ..Roles::default()
            },
        ] {
            assert_eq!(Roles::from_label(&roles.label()), roles);
        }
    }

    #[test]
    fn bad_names_are_refused_with_a_suggestion() {
        for bad in ["", "a", "Pgha", "pgha1", "1pgha", "pg_ha", "-pg", "pgha-"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        let text = validate_name("PGHA_9").unwrap_err().to_string();
        assert!(text.contains("pgha1, pgha2"), "{text}");
        for good in ["pgha", "alice", "team-b", "lab2x"] {
            validate_name(good).unwrap();
        }
    }

    #[test]
    fn a_class_of_up_to_26_is_lettered_and_beyond_has_two_letters_each() {
        assert_eq!(
            class_names("pgha", 3).unwrap(),
            ["pgha-a", "pgha-b", "pgha-c"]
        );
        let class = class_names("pgha", 26).unwrap();
        assert_eq!(
            (class[0].as_str(), class[25].as_str()),
            ("pgha-a", "pgha-z")
        );
        let class = class_names("class", 30).unwrap();
        assert_eq!(class.len(), 30);
        assert_eq!(
            [&class[0], &class[1], &class[25], &class[26], &class[29]],
            ["class-aa", "class-ab", "class-az", "class-ba", "class-bd"]
        );
        let mut sorted = class.clone();
        sorted.sort();
        assert_eq!(sorted, class, "the names sort in their order");
        let class = class_names("class", MAX_COUNT).unwrap();
        assert_eq!(class[MAX_COUNT - 1], "class-zz");
        for name in &class {
            validate_name(name).unwrap();
        }
    }

    #[test]
    fn a_class_count_or_prefix_out_of_bounds_is_refused() {
        for count in [0, MAX_COUNT + 1] {
            let text = class_names("pgha", count).unwrap_err().to_string();
            assert!(
                text.starts_with(&format!(
                    "--count {count} is out of range: a class has 1 to 676"
                )),
                "{text}"
            );
        }
        // 37 characters take two letters; 38 only one.
        let long = "a".repeat(37);
        assert!(class_names(&long, 30).is_ok());
        assert!(class_names(&format!("{long}b"), 26).is_ok());
        let text = class_names(&format!("{long}b"), 27)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("Use a prefix of at most 37 characters"),
            "{text}"
        );
        assert!(class_names("Pgha", 2).is_err());
    }

    #[test]
    fn node_counts_are_bounded() {
        for nodes in [0, 10] {
            let r = Request {
                nodes: Some(nodes),
                ..request()
            };
            assert!(r.validate().is_err());
        }
        let single = Request {
            nodes: Some(1),
            ..request()
        }
        .validate()
        .unwrap();
        assert_eq!(single.layout.postgres, 1);
        assert_eq!(single.roles(1).label(), "postgres,etcd,repo");
    }

    #[test]
    fn postgres_count_must_fit() {
        let r = Request {
            nodes: Some(5),
            postgres: Some(6),
            ..request()
        };
        assert!(r.validate().is_err());
        let r = Request {
            postgres: Some(0),
            ..request()
        };
        assert!(r.validate().is_err());
    }

    #[test]
    fn even_etcd_clusters_need_force_and_are_explained() {
        let text = Request {
            nodes: Some(4),
            ..request()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(text.contains("N = 2F + 1"), "{text}");
        assert!(text.contains("quorum 3, 1 failure(s) tolerated"), "{text}");
        assert!(text.starts_with("--nodes 4 "), "{text}");
        Request {
            nodes: Some(4),
            force: true,
            ..request()
        }
        .validate()
        .unwrap();
    }

    fn labels(spec: &LabSpec) -> Vec<String> {
        (1..=spec.nodes).map(|i| spec.roles(i).label()).collect()
    }

    #[test]
    fn the_colocated_guides_get_three_full_nodes_and_haproxy() {
        let spec = Request {
            topology: Topology::Colocated,
            ..request()
        }
        .validate()
        .unwrap();
        assert_eq!(
            labels(&spec),
            [
                "postgres,etcd",
                "postgres,etcd",
                "postgres,etcd,repo",
                "haproxy"
            ]
        );
        assert_eq!(spec.layout.aliases(3), ["etcd3", "pgbackrest1"]);
        assert_eq!(spec.layout.aliases(4), ["haproxy1"]);
    }

    #[test]
    fn dedicated_etcd_members_are_numbered_from_one_on_their_own_nodes() {
        let spec = Request {
            topology: Topology::DedicatedEtcd,
            ..request()
        }
        .validate()
        .unwrap();
        assert_eq!(
            labels(&spec),
            [
                "postgres",
                "postgres",
                "postgres",
                "etcd",
                "etcd",
                "etcd,repo",
                "haproxy"
            ]
        );
        assert!(spec.layout.aliases(1).is_empty());
        assert_eq!(spec.layout.aliases(4), ["etcd1"]);
        assert_eq!(spec.layout.aliases(6), ["etcd3", "pgbackrest1"]);
        assert_eq!(spec.layout.aliases(7), ["haproxy1"]);
    }

    #[test]
    fn roles_can_be_given_directly() {
        let spec = Request {
            postgres: Some(2),
            etcd: Some(3),
            repo: Some(RepoPlace::Own),
            haproxy: Some(true),
            ..request()
        }
        .validate()
        .unwrap();
        assert_eq!(
            labels(&spec),
            ["postgres,etcd", "postgres,etcd", "etcd", "repo", "haproxy"]
        );
        let spec = Request {
            topology: Topology::Colocated,
            haproxy: Some(false),
            repo: Some(RepoPlace::Node(1)),
            ..request()
        }
        .validate()
        .unwrap();
        assert_eq!(
            labels(&spec),
            ["postgres,etcd,repo", "postgres,etcd", "postgres,etcd"]
        );
        // More PostgreSQL nodes than etcd members: the last ones run no etcd.
        let spec = Request {
            postgres: Some(3),
            etcd: Some(1),
            ..request()
        }
        .validate()
        .unwrap();
        assert_eq!(
            labels(&spec),
            ["postgres,etcd", "postgres", "postgres,repo"]
        );
    }

    #[test]
    fn every_combination_is_validated() {
        let refused = |r: Request| r.validate().unwrap_err().to_string();
        let e = refused(Request {
            etcd: Some(4),
            ..request()
        });
        assert!(
            e.starts_with("--etcd 4 ") && e.contains("N = 2F + 1"),
            "{e}"
        );
        let e = refused(Request {
            etcd: Some(0),
            ..request()
        });
        assert!(e.contains("at least one etcd member"), "{e}");
        let e = refused(Request {
            postgres: Some(0),
            ..request()
        });
        assert!(e.contains("at least one node"), "{e}");
        let e = refused(Request {
            topology: Topology::DedicatedEtcd,
            nodes: Some(5),
            ..request()
        });
        assert!(e.contains("--postgres P and --etcd E"), "{e}");
        let e = refused(Request {
            topology: Topology::DedicatedEtcd,
            postgres: Some(3),
            etcd: Some(5),
            repo: Some(RepoPlace::Own),
            ..request()
        });
        assert!(e.contains("needs 10 nodes"), "{e}");
        let e = refused(Request {
            repo: Some(RepoPlace::Node(6)),
            ..request()
        });
        assert!(e.contains("--repo 6"), "{e}");
        assert!("x".parse::<RepoPlace>().is_err());
        assert_eq!("own".parse::<RepoPlace>(), Ok(RepoPlace::Own));
        assert_eq!("2".parse::<RepoPlace>(), Ok(RepoPlace::Node(2)));
    }

    #[test]
    fn quorum_arithmetic() {
        assert_eq!(quorum(1), (1, 0));
        assert_eq!(quorum(3), (2, 1));
        assert_eq!(quorum(4), (3, 1));
        assert_eq!(quorum(5), (3, 2));
    }

    #[test]
    fn subnets_must_be_ipv4_cidr_without_host_bits() {
        let r = Request {
            subnet: Some("10.1.2.0/24"),
            ..request()
        };
        assert_eq!(
            r.validate().unwrap().subnet.unwrap().to_string(),
            "10.1.2.0/24"
        );
        for bad in ["10.1.2.0", "fd00::/64", "10.1.2.5/24", "nonsense"] {
            let r = Request {
                subnet: Some(bad),
                ..request()
            };
            assert!(r.validate().is_err(), "{bad}");
        }
    }

    #[test]
    fn docker_s_own_networks_are_refused() {
        for name in ["bridge", "host", "none"] {
            let e = validate_network(name).unwrap_err().to_string();
            assert!(e.contains("one of Docker's own networks"), "{e}");
        }
        assert!(validate_network("pghanet").is_ok());
        assert!(validate_network("bridge2").is_ok());
    }

    #[test]
    fn publish_must_be_an_address_and_password_sane() {
        assert!(
            Request {
                publish: "localhost",
                ..request()
            }
            .validate()
            .is_err()
        );
        assert!(
            Request {
                password: "",
                ..request()
            }
            .validate()
            .is_err()
        );
        assert!(
            Request {
                password: "a\nb",
                ..request()
            }
            .validate()
            .is_err()
        );
        Request {
            password: "it's \"fine\"",
            ..request()
        }
        .validate()
        .unwrap();
    }

    #[test]
    fn the_course_s_password_is_not_published_beyond_this_machine() {
        let everywhere = Request {
            publish: "0.0.0.0",
            ..request()
        };
        let e = everywhere.validate().unwrap_err().to_string();
        assert!(
            e.contains("LAB_PASSWORD") && e.contains("--password-file"),
            "{e}"
        );
        Request {
            password: "s3cret",
            ..everywhere
        }
        .validate()
        .unwrap();
        Request {
            publish: "::1",
            ..request()
        }
        .validate()
        .unwrap();
    }

    #[test]
    fn network_names_follow_docker() {
        assert!(
            Request {
                network: Some("bad name"),
                ..request()
            }
            .validate()
            .is_err()
        );
        assert_eq!(
            Request {
                network: Some("shared.net"),
                ..request()
            }
            .validate()
            .unwrap()
            .network,
            "shared.net"
        );
    }
}
