//! Stage 2, etcd: /pgha/config/etcd.yaml on every member, written by the course's own
//! `/etcdSetup.sh -y` as a trainee runs it, etcd started everywhere, done when every member
//! reports healthy and exactly one leads. Also the etcd view `lab status` and the
//! drills read.

use std::time::Duration;

use serde::Deserialize;

use super::facts::of;
use super::{Ctx, Facts, Outcome, catalog, wait_for};
use crate::certs::{CA_CERT, cert_path, key_path};
use crate::engine::ExecOutput;
use crate::error::{Error, Result};
use crate::spec::{Stage, quorum};

pub use super::catalog::ETCD_LOG as LOG;
/// The course's command for this node's etcd.yaml (and patroniVars), from NODELIST.
pub const SETUP: &str = "/etcdSetup.sh -y";

/// The etcd cluster as its members report it.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    /// Members whose etcd answers at all (with or without a quorum).
    pub up: Vec<String>,
    /// Members that serve a linearizable read: up and part of a quorum.
    pub healthy: Vec<String>,
    /// (member, why) for every member that is not healthy.
    pub unhealthy: Vec<(String, String)>,
    pub leader: Option<String>,
}

impl View {
    pub fn members(&self) -> usize {
        self.healthy.len() + self.unhealthy.len()
    }

    /// "5 members: quorum 3, tolerates 2 failure(s) (N = 2F + 1); 5 of 5 up, leader pgha2"
    pub fn describe(&self) -> String {
        let n = self.members();
        let (q, f) = quorum(n);
        let members = if n == 1 { "member" } else { "members" };
        format!(
            "{n} {members}: quorum {q}, tolerates {f} failure(s) (N = 2F + 1); {}",
            self.health()
        )
    }

    /// "4 of 5 up, leader pgha2", or "2 of 5 up, no quorum — Patroni cannot elect a leader"
    pub fn health(&self) -> String {
        let n = self.members();
        let (q, _) = quorum(n);
        let up = self.up.len();
        match &self.leader {
            _ if up < q => {
                format!("{up} of {n} up, no quorum — Patroni cannot elect a leader")
            }
            Some(l) if up == q && n > 1 => {
                format!("{up} of {n} up, leader {l} — one more failure and the quorum is lost")
            }
            Some(l) => format!("{up} of {n} up, leader {l}"),
            None => format!("{up} of {n} up, no leader yet"),
        }
    }
}

pub async fn run(ctx: &Ctx<'_>, facts: &[Facts]) -> Result<Outcome> {
    let members: Vec<_> = ctx.lab.etcd_nodes().collect();
    // A configuration already there (written by hand, or by an earlier run) is kept.
    let unconfigured: Vec<&str> = members
        .iter()
        .filter(|n| !of(facts, &n.name).etcd_config)
        .map(|n| n.name.as_str())
        .collect();
    let wait = Duration::from_secs(30);
    ctx.must_on(&unconfigured, Stage::Etcd, "postgres", SETUP, wait, None)
        .await?;
    // One member after another, as a trainee starts them: a new member first asks every other
    // one whether it was bootstrapped already, and one that listens without serving yet (as
    // all do when started at once) keeps it waiting a second. startEtcd returns once its
    // member serves the others, so each one after it gets its answers at once.
    for member in &members {
        ctx.start(&catalog::ETCD, &[&member.name]).await?;
    }
    let names: Vec<String> = members.iter().map(|n| n.name.clone()).collect();
    let view = wait_healthy(ctx, &names, Duration::from_secs(60)).await?;
    // The leader, elected as soon as a quorum served, decided the cluster's version before the
    // last members answered: 3.0, which Patroni cannot use, until etcd looks again 4 s later.
    // A leader decides it on taking office, so a second election settles it at once.
    if version_outdated(ctx).await? {
        transfer_leadership(ctx).await?;
    }
    wait_versioned(ctx, Duration::from_secs(30)).await?;
    Ok(Outcome {
        summary: view.describe(),
        changed: names.iter().any(|n| {
            let f = of(facts, n);
            !f.etcd_config || !f.etcd_data
        }),
    })
}

/// Waits until `members` are healthy and one member leads.
pub async fn wait_healthy(ctx: &Ctx<'_>, members: &[String], deadline: Duration) -> Result<View> {
    let waited = wait_for(deadline, Duration::from_millis(300), || async {
        let view = view_within(ctx, 1).await?;
        Ok(
            if view.leader.is_some() && members.iter().all(|m| view.healthy.contains(m)) {
                Ok(view)
            } else {
                Err(view)
            },
        )
    })
    .await?;
    match waited {
        Ok(view) => Ok(view),
        Err(view) => {
            let (node, why) = view.unhealthy.first().cloned().unwrap_or_else(|| {
                (
                    members.first().cloned().unwrap_or_default(),
                    "no leader".into(),
                )
            });
            Err(ctx
                .failure(
                    Stage::Etcd,
                    &node,
                    format!(
                        "the etcd cluster is not healthy after {} s ({}); {node}: {why}",
                        deadline.as_secs(),
                        view.describe()
                    ),
                    Some(LOG),
                )
                .await)
        }
    }
}

/// The cluster's health and leader, asked from the first node on the lab network that reaches
/// a member: health in one call to every member at once, each member's status in parallel
/// calls (a stopped member costs a one-second timeout, not a sequential one).
pub async fn view(ctx: &Ctx<'_>) -> Result<View> {
    view_within(ctx, 2).await
}

/// The node-side probe of the etcd cluster, run as postgres: `etcdState view|versions|clear
/// SECONDS ENDPOINTS [PREFIX] [CACERT CERT KEY]`.
const ETCD_STATE: &str = "/usr/local/lib/pgha-lab/etcdState";

/// `etcdState FORM` asked on `node`, each member given `seconds` to answer; None when the node
/// was killed while it asked.
async fn ask<T: serde::de::DeserializeOwned>(
    ctx: &Ctx<'_>,
    node: &str,
    form: &str,
    seconds: u64,
) -> Result<Option<T>> {
    ask_with(ctx, node, form, seconds, &[]).await
}

/// `ask` for a form that takes `extra` arguments after the endpoints.
async fn ask_with<T: serde::de::DeserializeOwned>(
    ctx: &Ctx<'_>,
    node: &str,
    form: &str,
    seconds: u64,
    extra: &[&str],
) -> Result<Option<T>> {
    let argv = probe(ctx, node, form, seconds, extra);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = ctx
        .exec(node, "postgres", &argv, Duration::from_secs(30))
        .await?;
    if out.code > 128 {
        return Ok(None);
    }
    super::probe::read(&ctx.lab.name, node, &argv, &out).map(Some)
}

/// `etcdState FORM`'s argv on `node` (run as postgres), each member given `seconds`.
fn probe(ctx: &Ctx<'_>, node: &str, form: &str, seconds: u64, extra: &[&str]) -> Vec<String> {
    [
        ETCD_STATE,
        form,
        &seconds.to_string(),
        &ctx.cluster.etcd_endpoints(),
    ]
    .into_iter()
    .chain(extra.iter().copied())
    .map(String::from)
    .chain(tls_files(ctx.lab.tls, node))
    .collect()
}

/// The probe `view` runs on `node`, as postgres, each member given `seconds`: its argv, for a
/// caller that runs it itself (`lab watch`, with its other questions to the node).
pub fn view_probe(ctx: &Ctx<'_>, node: &str, seconds: u64) -> Vec<String> {
    probe(ctx, node, "view", seconds, &[])
}

/// What `view_probe` (`argv`) printed on `node`, as the view; None when the node was killed
/// while it asked.
pub fn read_view(
    ctx: &Ctx<'_>,
    node: &str,
    argv: &[&str],
    out: &ExecOutput,
) -> Result<Option<View>> {
    if out.code > 128 {
        return Ok(None);
    }
    let seen: Seen = super::probe::read(&ctx.lab.name, node, argv, out)?;
    Ok(Some(parse(ctx, &seen)))
}

/// `view`, each member given `seconds` to answer: a wait that asks again soon gives a cluster
/// still electing its first leader less time than a one-off look does.
async fn view_within(ctx: &Ctx<'_>, seconds: u64) -> Result<View> {
    let mut last = None;
    let reachable = ctx
        .lab
        .nodes
        .iter()
        .filter(|n| n.running() && !n.partitioned(&ctx.lab.network));
    for node in reachable {
        let Some(seen) = ask::<Seen>(ctx, &node.name, "view", seconds).await? else {
            continue;
        };
        let view = parse(ctx, &seen);
        if !view.up.is_empty() {
            return Ok(view);
        }
        last = Some(view);
    }
    Ok(last.unwrap_or_else(|| View {
        up: vec![],
        healthy: vec![],
        unhealthy: ctx
            .lab
            .etcd_nodes()
            .map(|n| (n.name.clone(), "node not reachable".into()))
            .collect(),
        leader: None,
    }))
}

/// Whether every member answers and the cluster's version they report is older than their own.
async fn version_outdated(ctx: &Ctx<'_>) -> Result<bool> {
    let Some(versions) = cluster_versions(ctx).await? else {
        return Ok(false);
    };
    Ok(versions.iter().all(|v| *v != ClusterVersion::Undecided)
        && versions.contains(&ClusterVersion::Older))
}

/// Has the leader hand over to another member (`etcdctl move-leader`), which holds an election
/// at once. At worst it does not happen (the leader changed meanwhile, say), and etcd's own
/// look 4 s later settles the version.
async fn transfer_leadership(ctx: &Ctx<'_>) -> Result<()> {
    let Some(node) = asker(ctx) else {
        return Ok(());
    };
    let Some(seen) = ask::<Seen>(ctx, &node, "view", 2).await? else {
        return Ok(());
    };
    if let Some((leader, to)) = handover(&seen.statuses) {
        let endpoint = format!("--endpoints={leader}");
        let to = format!("{to:x}");
        let tls = tls_files(ctx.lab.tls, &node);
        let flags = etcdctl_tls(&tls);
        let argv: Vec<&str> = [
            "etcdctl",
            &endpoint,
            "--dial-timeout=1s",
            "--command-timeout=2s",
        ]
        .into_iter()
        .chain(flags.iter().map(String::as_str))
        .chain(["move-leader", &to])
        .collect();
        ctx.exec(&node, "postgres", &argv, Duration::from_secs(30))
            .await?;
    }
    Ok(())
}

/// From every member's status: the leader's endpoint, and the member that follows it with the
/// lowest id, to hand over to.
fn handover(all: &[Status]) -> Option<(String, u64)> {
    let leader = all.iter().find(|s| s.leads())?;
    let lead = leader.status.leader;
    let to = all
        .iter()
        .filter(|s| s.status.leader == lead && s.status.header.member_id != lead)
        .map(|s| s.status.header.member_id)
        .min()?;
    Some((leader.endpoint.clone(), to))
}

/// What a member's `GET /version` says of the cluster's version, against its own.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ClusterVersion {
    /// The member's own major.minor.
    Settled,
    /// Decided, but older (3.0 where the member is 3.5).
    Older,
    /// Not decided yet, or no answer.
    Undecided,
}

/// The node that asks the members about the cluster's version and leader: the first etcd node
/// (None in a lab without one).
fn asker(ctx: &Ctx<'_>) -> Option<String> {
    ctx.lab.etcd_nodes().next().map(|n| n.name.clone())
}

/// Every member's `GET /version`, asked from `asker`; None in a lab without etcd nodes.
async fn cluster_versions(ctx: &Ctx<'_>) -> Result<Option<Vec<ClusterVersion>>> {
    let Some(node) = asker(ctx) else {
        return Ok(None);
    };
    let answered = ask::<Versions>(ctx, &node, "versions", 1).await?;
    let mut versions: Vec<ClusterVersion> = answered
        .map(|a| a.versions.iter().map(cluster_version).collect())
        .unwrap_or_default();
    versions.resize(ctx.lab.etcd_nodes().count(), ClusterVersion::Undecided);
    Ok(Some(versions))
}

/// Waits until every member reports the cluster's version settled at its own. A new or
/// restarted cluster has a leader a moment before it settles its version: `GET /version` says
/// "not_decided", then "3.0.0", and a Patroni started in that moment takes etcd for 3.0, finds
/// no v3 API where 3.0 has it, and waits 5 s before it asks again.
pub async fn wait_versioned(ctx: &Ctx<'_>, deadline: Duration) -> Result<()> {
    let Some(node) = asker(ctx) else {
        return Ok(());
    };
    let members = ctx.lab.etcd_nodes().count();
    let waited = wait_for(deadline, Duration::from_millis(200), || async {
        let versions = cluster_versions(ctx).await?.unwrap_or_default();
        let settled = versions
            .iter()
            .filter(|v| **v == ClusterVersion::Settled)
            .count();
        Ok(if settled == members {
            Ok(())
        } else {
            Err(format!(
                "{settled} of {members} member(s) report the cluster's version"
            ))
        })
    })
    .await?;
    let say = |seen| {
        format!(
            "the etcd cluster has not settled its version after {} s ({seen})",
            deadline.as_secs()
        )
    };
    ctx.waited(waited, Stage::Etcd, &node, say, Some(LOG)).await
}

/// What `etcdState versions` prints: the `GET /version` of every member that answered.
#[derive(Deserialize)]
struct Versions {
    #[serde(deserialize_with = "super::probe::those_that_fit")]
    versions: Vec<Version>,
}

/// A member's `GET /version`.
#[derive(Deserialize)]
struct Version {
    etcdserver: String,
    etcdcluster: String,
}

/// A member's `GET /version`: the cluster's major.minor against the member's own.
fn cluster_version(v: &Version) -> ClusterVersion {
    let major_minor = |v: &str| -> Option<(u32, u32)> {
        let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
        Some((parts.next()??, parts.next()??))
    };
    match (major_minor(&v.etcdcluster), major_minor(&v.etcdserver)) {
        (Some(cluster), Some(own)) if cluster == own => ClusterVersion::Settled,
        (Some(cluster), Some(own)) if cluster < own => ClusterVersion::Older,
        _ => ClusterVersion::Undecided,
    }
}

/// Deletes every key under `prefix` but Patroni's dynamic configuration (`.../config`), which a
/// restored cluster keeps, asked from `node`; how many went.
pub async fn clear_except_config(ctx: &Ctx<'_>, node: &str, prefix: &str) -> Result<usize> {
    #[derive(Deserialize)]
    struct Cleared {
        removed: usize,
    }
    match ask_with::<Cleared>(ctx, node, "clear", 5, &[prefix]).await? {
        Some(cleared) => Ok(cleared.removed),
        None => Err(Error::Failed(format!(
            "{node} stopped while it cleared the cluster's keys in etcd; `lab status --name {}` \
             shows where the lab stands",
            ctx.lab.name
        ))),
    }
}

/// The files a `--tls` lab's etcd requires of a client on `node`: the lab's CA, the node's own
/// certificate and key (none on a lab without TLS).
fn tls_files(tls: bool, node: &str) -> Vec<String> {
    if tls {
        vec![CA_CERT.to_string(), cert_path(node), key_path(node)]
    } else {
        Vec::new()
    }
}

/// etcdctl's flags for `tls_files`.
fn etcdctl_tls(files: &[String]) -> Vec<String> {
    ["--cacert", "--cert", "--key"]
        .iter()
        .zip(files)
        .map(|(flag, file)| format!("{flag}={file}"))
        .collect()
}

/// What `etcdState view` prints: `endpoint health` of every member, and the `endpoint status`
/// of every member that answered.
#[derive(Deserialize)]
struct Seen {
    #[serde(deserialize_with = "super::probe::those_that_fit")]
    health: Vec<Health>,
    #[serde(deserialize_with = "super::probe::those_that_fit")]
    statuses: Vec<Status>,
}

#[derive(Deserialize)]
struct Health {
    endpoint: String,
    health: bool,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Status {
    #[serde(rename = "Endpoint")]
    endpoint: String,
    #[serde(rename = "Status")]
    status: StatusBody,
}

#[derive(Deserialize)]
struct StatusBody {
    header: Header,
    /// Absent while the member knows no leader.
    #[serde(default)]
    leader: u64,
}

#[derive(Deserialize)]
struct Header {
    member_id: u64,
}

impl Status {
    /// The member says it is the leader.
    fn leads(&self) -> bool {
        self.status.leader != 0 && self.status.header.member_id == self.status.leader
    }
}

fn parse(ctx: &Ctx<'_>, seen: &Seen) -> View {
    let name_of = |endpoint: &str| {
        ctx.cluster
            .members
            .iter()
            .find(|m| {
                let bare = endpoint.trim_start_matches("http://");
                bare.trim_start_matches("https://") == format!("{}:2379", m.ip)
            })
            .map(|m| m.name.clone())
            .unwrap_or_else(|| endpoint.to_string())
    };
    let names: Vec<String> = ctx.lab.etcd_nodes().map(|n| n.name.clone()).collect();
    view_from(&names, seen, name_of)
}

/// Builds the view from what the members answered; members that appear in neither their
/// health nor their statuses are down.
fn view_from(members: &[String], seen: &Seen, name_of: impl Fn(&str) -> String) -> View {
    let Seen { health, statuses } = seen;
    let mut healthy = Vec::new();
    let mut unhealthy = Vec::new();
    for member in members {
        match health.iter().find(|h| &name_of(&h.endpoint) == member) {
            Some(h) if h.health => healthy.push(member.clone()),
            Some(h) => unhealthy.push((
                member.clone(),
                h.error.clone().unwrap_or_else(|| "unhealthy".into()),
            )),
            None => unhealthy.push((member.clone(), "no answer".into())),
        }
    }
    let answered: Vec<String> = statuses.iter().map(|s| name_of(&s.endpoint)).collect();
    let up = members
        .iter()
        .filter(|m| healthy.contains(m) || answered.contains(m))
        .cloned()
        .collect();
    let leaders: Vec<String> = statuses
        .iter()
        .filter(|s| s.leads())
        .map(|s| name_of(&s.endpoint))
        .collect();
    View {
        up,
        healthy,
        unhealthy,
        leader: match leaders.as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_version_counts_once_decided_at_the_member_s_own() {
        let answered: Versions = serde_json::from_str(
            r#"{"versions": [{"etcdserver":"3.5.16","etcdcluster":"3.5.0"},
            {"etcdserver":"3.5.16","etcdcluster":"not_decided"},
            {"etcdserver":"3.5.16","etcdcluster":"3.0.0"}, null, {"other": 1}]}"#,
        )
        .unwrap();
        let versions: Vec<ClusterVersion> = answered.versions.iter().map(cluster_version).collect();
        // The third: where a leader was elected before every member answered. Those that did
        // not answer are left out (and counted undecided).
        assert_eq!(
            versions,
            [
                ClusterVersion::Settled,
                ClusterVersion::Undecided,
                ClusterVersion::Older
            ]
        );
    }

    #[test]
    fn leadership_is_handed_to_the_lowest_follower() {
        // Member 22 leads; 11 follows it.
        let statuses = seen(HEALTH, STATUS).statuses;
        assert_eq!(handover(&statuses), Some(("10.0.0.11:2379".into(), 11)));
        assert_eq!(handover(&statuses[1..]), None);
        assert_eq!(handover(&[]), None);
    }

    /// What `etcdState view` prints, from etcdctl's health array and statuses array.
    fn seen(health: &str, statuses: &str) -> Seen {
        serde_json::from_str(&format!(
            r#"{{"health": {health}, "statuses": {statuses}}}"#
        ))
        .unwrap()
    }

    fn names() -> Vec<String> {
        (1..=3).map(|i| format!("pgha{i}")).collect()
    }

    fn name_of(endpoint: &str) -> String {
        match endpoint {
            "10.0.0.10:2379" => "pgha1".into(),
            "10.0.0.11:2379" => "pgha2".into(),
            "10.0.0.12:2379" => "pgha3".into(),
            other => other.into(),
        }
    }

    const HEALTH: &str = r#"[{"endpoint":"10.0.0.10:2379","health":true,"took":"1ms"},
        {"endpoint":"10.0.0.11:2379","health":true,"took":"1ms"},
        {"endpoint":"10.0.0.12:2379","health":false,"took":"3s","error":"context deadline exceeded"}]"#;
    const STATUS: &str = r#"[{"Endpoint":"10.0.0.10:2379","Status":{"header":{"cluster_id":1,"member_id":11,"revision":5,"raft_term":2},"version":"3.5.16","leader":22}},
        {"Endpoint":"10.0.0.11:2379","Status":{"header":{"cluster_id":1,"member_id":22,"revision":5,"raft_term":2},"version":"3.5.16","leader":22}}]"#;

    #[test]
    fn health_and_leader_are_read() {
        let v = view_from(&names(), &seen(HEALTH, STATUS), name_of);
        assert_eq!(v.up, ["pgha1", "pgha2"]);
        assert_eq!(v.healthy, ["pgha1", "pgha2"]);
        assert_eq!(
            v.unhealthy,
            [("pgha3".to_string(), "context deadline exceeded".to_string())]
        );
        assert_eq!(v.leader.as_deref(), Some("pgha2"));
        assert_eq!(
            v.describe(),
            "3 members: quorum 2, tolerates 1 failure(s) (N = 2F + 1); 2 of 3 up, leader pgha2 \
             — one more failure and the quorum is lost"
        );
    }

    #[test]
    fn silence_means_unhealthy_and_no_quorum() {
        let v = view_from(&names(), &seen("[]", "[]"), name_of);
        assert!(v.healthy.is_empty());
        assert_eq!(v.unhealthy.len(), 3);
        assert_eq!(v.leader, None);
        assert_eq!(
            v.health(),
            "0 of 3 up, no quorum — Patroni cannot elect a leader"
        );
    }

    #[test]
    fn members_that_answer_without_a_quorum_are_up_but_not_healthy() {
        let health = r#"[{"endpoint":"10.0.0.10:2379","health":false,"error":"context deadline exceeded"},
            {"endpoint":"10.0.0.11:2379","health":false,"error":"context deadline exceeded"},
            {"endpoint":"10.0.0.12:2379","health":false,"error":"context deadline exceeded"}]"#;
        let status = r#"[{"Endpoint":"10.0.0.10:2379","Status":{"header":{"member_id":11},"errors":["etcdserver: no leader"]}}]"#;
        let v = view_from(&names(), &seen(health, status), name_of);
        assert_eq!(v.up, ["pgha1"]);
        assert!(v.healthy.is_empty());
        assert_eq!(
            v.health(),
            "1 of 3 up, no quorum — Patroni cannot elect a leader"
        );
    }

    #[test]
    fn huge_member_ids_parse() {
        let status = r#"[{"Endpoint":"10.0.0.10:2379","Status":{"header":{"member_id":17196340209185994919},"leader":17196340209185994919}}]"#;
        let v = view_from(&names(), &seen(HEALTH, status), name_of);
        assert_eq!(v.leader.as_deref(), Some("pgha1"));
    }
}
