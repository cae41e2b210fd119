//! One declaration per service that runs in a lab's nodes: which role runs it, its course
//! stage, the helpers in `docker/rootfs` that start and stop it, its log, how it is stopped among
//! its peers, and the course steps `lab check` judges for it. `ALL` is in the course's order,
//! which is the order services start in; they stop in the reverse. Bootstrap, `lab start`,
//! `lab stop`, reset, a drill's put-back, restore, `lab check` and the node's own shutdown trap
//! (`pgha-init`, which reads `stop_helpers` from the image) all walk it. A new service is one
//! declaration here and a module of its own.

use std::time::Duration;

use super::facts::Facts;
use crate::spec::{Roles, Stage};

/// etcd's log, as the course's command line writes it.
pub const ETCD_LOG: &str = "/var/log/etcd/etcd-standalone.log";
/// Patroni's log (PostgreSQL's own is beside it).
pub const PATRONI_LOG: &str = "/var/log/patroni/patroni.log";
/// Where startHaproxy sends HAProxy's start-up warnings and errors.
pub const HAPROXY_LOG: &str = "/var/log/haproxy/haproxy.log";
/// Prometheus's log on the monitor node.
pub const PROMETHEUS_LOG: &str = "/var/log/prometheus/prometheus.log";

/// Which service a declaration is: what `lifecycle` and `lab check` match on where a service
/// needs behaviour of its own (a wait, a client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sshd,
    Etcd,
    Patroni,
    Haproxy,
    Repository,
    Exporters,
    Prometheus,
}

/// A helper script in the image, with the user it runs as and how long it may take.
#[derive(Debug, Clone, Copy)]
pub struct Helper {
    pub command: &'static str,
    pub user: &'static str,
    pub within: Duration,
}

/// How a service is stopped across the nodes that run it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopPolicy {
    /// Everywhere at once.
    Together,
    /// The replicas, then the primary: a primary stopping while replicas run would hand its
    /// leadership over.
    ReplicasBeforePrimary,
    /// The followers, then the leader: a leader stopping among stopping followers spends seconds
    /// on a leadership transfer that cannot succeed.
    FollowersBeforeLeader,
}

#[derive(Debug)]
pub struct Service {
    pub kind: Kind,
    /// As reports print it.
    pub name: &'static str,
    /// The course stage that sets it up.
    pub stage: Stage,
    pub runs_on: fn(&Roles) -> bool,
    /// A lab may be made without it (`--no-haproxy`); every lab has the others.
    pub optional: bool,
    pub start: Option<Helper>,
    pub stop: Option<Helper>,
    /// Its log, whose end a failure shows.
    pub log: Option<&'static str>,
    /// Its processes' names, in the order they are frozen for a snapshot (`labSnapshot`): the
    /// one that watches the others first, so that it never sees them stop answering.
    pub processes: &'static [&'static str],
    pub stop_policy: StopPolicy,
    /// Where a start starts it: configured (and, for some, not running yet).
    pub start_where: fn(&Facts) -> bool,
    /// Where a stop stops it: running.
    pub stop_where: fn(&Facts) -> bool,
    /// The course steps `lab check` judges for it, in order.
    pub steps: &'static [&'static str],
}

/// The course steps `lab check` judges, by the title it prints (NODE stands for each node's
/// name).
pub mod step {
    pub const SSH: &str = "ssh between nodes";
    pub const CERTIFICATES: &str = "TLS certificates";
    pub const ETCD_CONFIGURED: &str = "etcd configured";
    pub const ETCD_RUNNING: &str = "etcd running";
    pub const ETCD_QUORUM: &str = "etcd quorum";
    pub const PATRONI_CONFIGURED: &str = "Patroni configured on NODE";
    pub const PATRONI_LEADER: &str = "Patroni leader";
    pub const IN_THE_CLUSTER: &str = "NODE in the cluster";
    pub const HAPROXY_CONFIGURED: &str = "HAProxy configured";
    pub const HAPROXY_ROUTES: &str = "HAProxy routes to the leader";
    pub const REPOSITORY_HOST: &str = "repository host configured";
    pub const DATABASE_SERVERS: &str = "database servers configured";
    pub const STANZA: &str = "stanza";
    pub const ARCHIVE_COMMAND: &str = "archive_command";
    pub const FULL_BACKUP: &str = "full backup";
    pub const EXPORTERS: &str = "exporters running";
    pub const PROMETHEUS_TARGETS: &str = "Prometheus scrapes every target";
}

const fn helper(command: &'static str, user: &'static str, secs: u64) -> Option<Helper> {
    Some(Helper {
        command,
        user,
        within: Duration::from_secs(secs),
    })
}

pub const SSHD: Service = Service {
    kind: Kind::Sshd,
    name: "sshd",
    stage: Stage::Access,
    runs_on: |_| true,
    optional: false,
    start: helper("startSshd", "root", 30),
    // Stopped with its container: nothing depends on it going first.
    stop: None,
    log: None,
    // Left running through a snapshot: it holds nothing of the lab's state.
    processes: &[],
    stop_policy: StopPolicy::Together,
    start_where: |f| f.host_keys && !f.sshd_running,
    stop_where: |_| false,
    steps: &[step::SSH, step::CERTIFICATES],
};

pub const ETCD: Service = Service {
    kind: Kind::Etcd,
    name: "etcd",
    stage: Stage::Etcd,
    runs_on: |r| r.etcd,
    optional: false,
    start: helper("startEtcd", "postgres", 30),
    stop: helper("stopEtcd", "root", 60),
    log: Some(ETCD_LOG),
    processes: &["etcd"],
    stop_policy: StopPolicy::FollowersBeforeLeader,
    start_where: |f| f.etcd_config && f.etcd_data,
    stop_where: |f| f.etcd_running,
    steps: &[step::ETCD_CONFIGURED, step::ETCD_RUNNING, step::ETCD_QUORUM],
};

pub const PATRONI: Service = Service {
    kind: Kind::Patroni,
    name: "Patroni",
    stage: Stage::Patroni,
    runs_on: |r| r.postgres,
    optional: false,
    start: helper("startPatroni", "postgres", 30),
    // PostgreSQL finishes a checkpoint first: up to stopPatroni's own 120 s.
    stop: helper("stopPatroni", "root", 150),
    log: Some(PATRONI_LOG),
    // Patroni first, so that it never sees its PostgreSQL stop answering.
    processes: &["patroni", "postgres"],
    stop_policy: StopPolicy::ReplicasBeforePrimary,
    start_where: |f| f.patroni_config && f.pg_data,
    stop_where: |f| f.patroni_running,
    steps: &[
        step::PATRONI_CONFIGURED,
        step::PATRONI_LEADER,
        step::IN_THE_CLUSTER,
    ],
};

pub const HAPROXY: Service = Service {
    kind: Kind::Haproxy,
    name: "HAProxy",
    stage: Stage::Haproxy,
    runs_on: |r| r.haproxy,
    optional: true,
    // Stands for the guide's `sudo systemctl restart haproxy`.
    start: helper("startHaproxy", "root", 30),
    stop: helper("stopHaproxy", "root", 30),
    log: Some(HAPROXY_LOG),
    processes: &["haproxy"],
    stop_policy: StopPolicy::Together,
    start_where: |f| f.haproxy_config && !f.haproxy_running,
    stop_where: |f| f.haproxy_running,
    steps: &[step::HAPROXY_CONFIGURED, step::HAPROXY_ROUTES],
};

/// The pgBackRest repository: no daemon of its own (the database servers reach it over SSH),
/// so nothing to start or stop; its steps close the course.
pub const REPOSITORY: Service = Service {
    kind: Kind::Repository,
    name: "pgBackRest",
    stage: Stage::Backup,
    runs_on: |r| r.repo,
    optional: false,
    start: None,
    stop: None,
    log: None,
    processes: &[],
    stop_policy: StopPolicy::Together,
    start_where: |_| false,
    stop_where: |_| false,
    steps: &[
        step::REPOSITORY_HOST,
        step::DATABASE_SERVERS,
        step::STANZA,
        step::ARCHIVE_COMMAND,
        step::FULL_BACKUP,
    ],
};

/// The exporters of a monitored lab: PostgreSQL's on every PostgreSQL node, pgBackRest's on the
/// repository host. Only nodes the monitoring stage configured run them.
pub const EXPORTERS: Service = Service {
    kind: Kind::Exporters,
    name: "exporters",
    stage: Stage::Monitoring,
    runs_on: |r| r.exporters,
    optional: true,
    start: helper("startExporters", "root", 30),
    stop: helper("stopExporters", "root", 30),
    log: None,
    // They hold no state: a snapshot need not freeze them, and they reconnect after a restore.
    processes: &[],
    stop_policy: StopPolicy::Together,
    start_where: |f| f.exporters_config && !f.exporters_running,
    stop_where: |f| f.exporters_running,
    steps: &[step::EXPORTERS],
};

/// Prometheus on the monitor node of a monitored lab (`--monitoring`): it starts last, so that
/// it finds every target up, and stops first, so that it records no stop as a failure.
pub const PROMETHEUS: Service = Service {
    kind: Kind::Prometheus,
    name: "Prometheus",
    stage: Stage::Monitoring,
    runs_on: |r| r.monitor,
    optional: true,
    start: helper("startPrometheus", "root", 40),
    stop: helper("stopPrometheus", "root", 30),
    log: Some(PROMETHEUS_LOG),
    processes: &["prometheus"],
    stop_policy: StopPolicy::Together,
    start_where: |f| f.prometheus_config && !f.prometheus_running,
    stop_where: |f| f.prometheus_running,
    steps: &[step::PROMETHEUS_TARGETS],
};

/// Every service, in the course's order: the order they are set up and started in.
pub const ALL: [&Service; 7] = [
    &SSHD,
    &ETCD,
    &PATRONI,
    &HAPROXY,
    &REPOSITORY,
    &EXPORTERS,
    &PROMETHEUS,
];

/// The services a start walks, in order, with the nodes among `facts` to start each on.
pub fn starting(facts: &[Facts]) -> Vec<(&'static Service, Vec<String>)> {
    walk(ALL.into_iter(), facts, |s| s.start, |s| s.start_where)
}

/// The services a stop walks, in order (the reverse of a start), with the nodes among `facts`
/// to stop each on.
pub fn stopping(facts: &[Facts]) -> Vec<(&'static Service, Vec<String>)> {
    walk(ALL.into_iter().rev(), facts, |s| s.stop, |s| s.stop_where)
}

/// `services` that have the `helper` a walk runs, each with the nodes among `facts` that its
/// `wanted` predicate picks.
fn walk(
    services: impl Iterator<Item = &'static Service>,
    facts: &[Facts],
    helper: fn(&Service) -> Option<Helper>,
    wanted: fn(&Service) -> fn(&Facts) -> bool,
) -> Vec<(&'static Service, Vec<String>)> {
    services
        .filter(|s| helper(s).is_some())
        .map(|s| {
            let nodes = facts
                .iter()
                .filter(|f| wanted(s)(f))
                .map(|f| f.node.clone())
                .collect();
            (s, nodes)
        })
        .collect()
}

/// `nodes` in the groups a stop takes them in: `last` (the primary, the leader), where the
/// policy names one, after all the others.
pub fn stop_groups(policy: StopPolicy, nodes: &[String], last: Option<&str>) -> Vec<Vec<String>> {
    match policy {
        StopPolicy::Together => vec![nodes.to_vec()],
        StopPolicy::ReplicasBeforePrimary | StopPolicy::FollowersBeforeLeader => {
            let (lasts, firsts): (Vec<String>, Vec<String>) = nodes
                .iter()
                .cloned()
                .partition(|n| Some(n.as_str()) == last);
            vec![firsts, lasts]
        }
    }
}

/// The helpers a node's shutdown trap runs, one a line, in stop order: each node stops its own
/// services when its container is stopped from outside `lab` (docker stop, a daemon restart).
pub fn stop_helpers() -> String {
    ALL.into_iter()
        .rev()
        .filter_map(|s| s.stop)
        .map(|h| format!("{}\n", h.command))
        .collect()
}

/// Every service's processes, in stop order (HAProxy, Patroni, PostgreSQL, etcd): what a snapshot
/// freezes, each before those it relies on, and what a restore kills (`labSnapshot`).
pub fn stop_processes() -> Vec<&'static str> {
    ALL.into_iter()
        .rev()
        .flat_map(|s| s.processes.iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Topology;

    /// A lab of `topology` whose every service is configured and running, as facts.
    fn running_lab(topology: Topology) -> Vec<Facts> {
        let layout = topology.preset();
        (1..=layout.nodes())
            .map(|i| (i, layout.roles(i)))
            .map(|(i, r)| Facts {
                node: format!("pgha{i}"),
                host_keys: true,
                etcd_config: r.etcd,
                etcd_data: r.etcd,
                etcd_running: r.etcd,
                patroni_config: r.postgres,
                pg_data: r.postgres,
                patroni_running: r.postgres,
                haproxy_config: r.haproxy,
                haproxy_running: r.haproxy,
                repo_config: r.repo,
                ..Facts::default()
            })
            .collect()
    }

    /// A lab of `topology` just started: configured, nothing running.
    fn stopped_lab(topology: Topology) -> Vec<Facts> {
        running_lab(topology)
            .into_iter()
            .map(|f| Facts {
                etcd_running: false,
                patroni_running: false,
                haproxy_running: false,
                ..f
            })
            .collect()
    }

    fn order(walk: Vec<(&Service, Vec<String>)>) -> Vec<(&str, String)> {
        walk.into_iter()
            .filter(|(_, nodes)| !nodes.is_empty())
            .map(|(s, nodes)| (s.name, nodes.join(" ")))
            .collect()
    }

    #[test]
    fn the_stop_order_of_every_topology_is_the_one_lab_stop_always_had() {
        // HAProxy (the clients' entry) first, then Patroni, then etcd.
        assert_eq!(
            order(stopping(&running_lab(Topology::Course))),
            [
                ("Patroni", "pgha1 pgha2 pgha3".into()),
                ("etcd", "pgha1 pgha2 pgha3 pgha4 pgha5".into()),
            ]
        );
        assert_eq!(
            order(stopping(&running_lab(Topology::Colocated))),
            [
                ("HAProxy", "pgha4".into()),
                ("Patroni", "pgha1 pgha2 pgha3".into()),
                ("etcd", "pgha1 pgha2 pgha3".into()),
            ]
        );
        assert_eq!(
            order(stopping(&running_lab(Topology::DedicatedEtcd))),
            [
                ("HAProxy", "pgha7".into()),
                ("Patroni", "pgha1 pgha2 pgha3".into()),
                ("etcd", "pgha4 pgha5 pgha6".into()),
            ]
        );
        assert_eq!(
            (PATRONI.stop_policy, ETCD.stop_policy, HAPROXY.stop_policy),
            (
                StopPolicy::ReplicasBeforePrimary,
                StopPolicy::FollowersBeforeLeader,
                StopPolicy::Together
            )
        );
    }

    #[test]
    fn the_start_order_of_every_topology_is_the_one_lab_start_always_had() {
        // sshd, etcd, Patroni, then HAProxy, which finds the leader by its checks.
        assert_eq!(
            order(starting(&stopped_lab(Topology::Course))),
            [
                ("sshd", "pgha1 pgha2 pgha3 pgha4 pgha5".into()),
                ("etcd", "pgha1 pgha2 pgha3 pgha4 pgha5".into()),
                ("Patroni", "pgha1 pgha2 pgha3".into()),
            ]
        );
        assert_eq!(
            order(starting(&stopped_lab(Topology::Colocated))),
            [
                ("sshd", "pgha1 pgha2 pgha3 pgha4".into()),
                ("etcd", "pgha1 pgha2 pgha3".into()),
                ("Patroni", "pgha1 pgha2 pgha3".into()),
                ("HAProxy", "pgha4".into()),
            ]
        );
        assert_eq!(
            order(starting(&stopped_lab(Topology::DedicatedEtcd))),
            [
                ("sshd", "pgha1 pgha2 pgha3 pgha4 pgha5 pgha6 pgha7".into()),
                ("etcd", "pgha4 pgha5 pgha6".into()),
                ("Patroni", "pgha1 pgha2 pgha3".into()),
                ("HAProxy", "pgha7".into()),
            ]
        );
    }

    #[test]
    fn the_primary_and_the_leader_stop_last() {
        let nodes: Vec<String> = ["pgha1", "pgha2", "pgha3"].map(String::from).to_vec();
        let groups = stop_groups(StopPolicy::ReplicasBeforePrimary, &nodes, Some("pgha2"));
        assert_eq!(groups, [vec!["pgha1", "pgha3"], vec!["pgha2"]]);
        let groups = stop_groups(StopPolicy::FollowersBeforeLeader, &nodes, None);
        assert_eq!(groups, [nodes.clone(), vec![]]);
        assert_eq!(
            stop_groups(StopPolicy::Together, &nodes, Some("pgha1")),
            [nodes]
        );
    }

    #[test]
    fn a_node_shuts_down_in_the_same_order() {
        assert_eq!(
            stop_helpers(),
            "stopPrometheus\nstopExporters\nstopHaproxy\nstopPatroni\nstopEtcd\n"
        );
    }

    #[test]
    fn a_snapshot_freezes_the_processes_in_stop_order() {
        assert_eq!(
            stop_processes(),
            ["prometheus", "haproxy", "patroni", "postgres", "etcd"]
        );
    }

    #[test]
    fn stages_follow_the_course_order() {
        let stages: Vec<Stage> = ALL.iter().map(|s| s.stage).collect();
        assert!(stages.is_sorted(), "{stages:?}");
    }
}
