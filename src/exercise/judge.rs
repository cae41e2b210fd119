//! Whether a running exercise is solved, from what the lab shows (`Seen`), with no I/O: the
//! cluster's own state, never the commands typed. What is still wrong is said in the trainee's
//! terms, first things first.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{Broken, Exercise};
use crate::services::patroni::MemberState;

/// A replica as the primary's pg_stat_replication shows it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Replica {
    pub name: String,
    pub state: Option<String>,
    /// Bytes of WAL the replica has not replayed yet.
    pub lag: Option<f64>,
}

/// pg_stat_archiver, times in seconds since the epoch.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Archiver {
    pub archived: u64,
    pub failed: u64,
    pub last_archived: Option<f64>,
    pub last_failed: Option<f64>,
}

/// One PostgreSQL node as `labExercise seen` reports it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NodeState {
    pub node: String,
    pub postgres: bool,
    pub patroni: bool,
    /// pg_is_in_recovery(); None when PostgreSQL does not answer.
    pub recovery: Option<bool>,
    pub replay_paused: Option<bool>,
    pub replicas: Vec<Replica>,
    pub archiver: Option<Archiver>,
    pub ready: usize,
    /// The split-brain exercise's order ids on this node (None without its table).
    pub rows: Option<Vec<i64>>,
}

/// A PostgreSQL node: its own state and Patroni's account of it (None when either does not
/// answer, a stopped node's included).
#[derive(Debug, Clone)]
pub struct PgNode {
    pub name: String,
    pub state: Option<NodeState>,
    pub member: Option<MemberState>,
}

/// What the judge needs; what an exercise does not need is left empty.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub nodes: Vec<PgNode>,
    /// etcd members that answer, out of those the lab has; and whether one leads.
    pub etcd_up: usize,
    pub etcd_members: usize,
    pub etcd_leader: bool,
    /// The pg_hba lines in Patroni's dynamic configuration.
    pub hba: Option<Vec<String>>,
    /// The newest backup's end, in seconds since the epoch.
    pub newest_backup: Option<i64>,
    /// The last drill since the exercise started: its scenario, write downtime and lost writes.
    pub last_drill: Option<Drilled>,
}

/// A drill's figures, as the lab's record keeps them.
#[derive(Debug, Clone, PartialEq)]
pub struct Drilled {
    pub scenario: String,
    pub at: u64,
    pub downtime: Option<f64>,
    pub lost: usize,
    pub mode: String,
}

/// A running exercise as the lab keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Running {
    pub exercise: Exercise,
    /// Seconds since the epoch.
    pub started: u64,
    pub broken: Broken,
    /// The writes the trainee must name (split-brain's rogue orders).
    #[serde(default)]
    pub lost: Vec<i64>,
    #[serde(default)]
    pub answer: Option<Vec<i64>>,
    /// Hints given so far.
    #[serde(default)]
    pub hints: usize,
    /// When it was first seen solved.
    #[serde(default)]
    pub solved: Option<u64>,
    /// What `stop` puts back (hba-locked-out's pg_hba, tune-rto's settings).
    #[serde(default)]
    pub saved: serde_json::Value,
}

/// The verdict: solved, or what is still wrong.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub solved: bool,
    pub wrong: Vec<String>,
}

/// At most this much replay lag counts as caught up (the 1 MiB).
pub const CAUGHT_UP: f64 = 1_048_576.0;
/// The write downtime tune-rto asks for, in seconds.
pub const RTO: f64 = 15.0;

pub fn judge(run: &Running, seen: &Seen) -> Verdict {
    let node = run.broken.node.as_deref().unwrap_or_default();
    let mut wrong = Vec::new();
    match run.exercise {
        Exercise::EtcdUnreachable | Exercise::BrokenReplica => {
            member_streams(seen, node, &mut wrong);
        }
        Exercise::QuorumLost => {
            if seen.etcd_up * 2 <= seen.etcd_members || !seen.etcd_leader {
                wrong.push(format!(
                    "etcd has no quorum: {} of {} members run{}",
                    seen.etcd_up,
                    seen.etcd_members,
                    if seen.etcd_leader { "" } else { ", none leads" }
                ));
            }
            if leader(seen).is_none() {
                wrong.push("Patroni has no leader: writes fail".into());
            }
        }
        Exercise::LaggingReplica => {
            member_streams(seen, node, &mut wrong);
            replays(seen, node, &mut wrong);
        }
        Exercise::HbaLockedOut => {
            for n in &seen.nodes {
                if leader(seen) != Some(n.name.as_str()) {
                    member_streams(seen, &n.name, &mut wrong);
                }
            }
            if let (Some(hba), Some(broken)) = (&seen.hba, run.saved.get("broken")) {
                let broken: Vec<String> =
                    serde_json::from_value(broken.clone()).unwrap_or_default();
                if *hba == broken {
                    wrong.push(
                        "pg_hba in Patroni's configuration is still the one that refuses the \
                         replicas"
                            .into(),
                    );
                }
            }
        }
        Exercise::SplitBrain => split_brain(run, seen, node, &mut wrong),
        Exercise::ArchiveFailing => archiving(run, seen, &mut wrong),
        Exercise::TuneRto => drilled(seen, &mut wrong),
    }
    Verdict {
        solved: wrong.is_empty(),
        wrong,
    }
}

/// The node Patroni runs as the primary, if exactly one.
fn leader(seen: &Seen) -> Option<&str> {
    let mut leaders = seen
        .nodes
        .iter()
        .filter(|n| n.member.as_ref().is_some_and(MemberState::is_primary));
    match (leaders.next(), leaders.next()) {
        (Some(one), None) => Some(one.name.as_str()),
        _ => None,
    }
}

fn pg_node<'a>(seen: &'a Seen, name: &str) -> Option<&'a PgNode> {
    seen.nodes.iter().find(|n| n.name == name)
}

/// `node` is a Patroni replica streaming from the leader, or what is wrong with it.
fn member_streams(seen: &Seen, node: &str, wrong: &mut Vec<String>) {
    let Some(n) = pg_node(seen, node) else {
        wrong.push(format!("{node} is not in the lab"));
        return;
    };
    match &n.member {
        None if n.state.as_ref().is_some_and(|s| !s.patroni) => {
            wrong.push(format!("Patroni does not run on {node}"));
        }
        None => wrong.push(format!(
            "{node} is not in the cluster: Patroni there does not answer"
        )),
        Some(m) if m.is_streaming() => {}
        Some(m) => wrong.push(format!(
            "{node} is not a streaming replica (Patroni says {} / {})",
            m.role, m.state
        )),
    }
}

/// `node` has replayed to within CAUGHT_UP of the primary.
fn replays(seen: &Seen, node: &str, wrong: &mut Vec<String>) {
    let on_primary = leader(seen)
        .and_then(|l| pg_node(seen, l))
        .and_then(|l| l.state.as_ref())
        .and_then(|s| s.replicas.iter().find(|r| r.name == node));
    match on_primary.and_then(|r| r.lag) {
        Some(lag) if lag < CAUGHT_UP => {}
        Some(lag) => wrong.push(format!(
            "{node} has {:.1} MiB of WAL left to replay (under 1 MiB is caught up)",
            lag / CAUGHT_UP
        )),
        None => wrong.push(format!(
            "the primary's pg_stat_replication shows no replay position for {node}"
        )),
    }
    if pg_node(seen, node)
        .and_then(|n| n.state.as_ref())
        .and_then(|s| s.replay_paused)
        == Some(true)
    {
        wrong.push(format!("replay is paused on {node}"));
    }
}

fn split_brain(run: &Running, seen: &Seen, node: &str, wrong: &mut Vec<String>) {
    let primaries: Vec<&str> = seen
        .nodes
        .iter()
        .filter(|n| n.state.as_ref().is_some_and(|s| s.recovery == Some(false)))
        .map(|n| n.name.as_str())
        .collect();
    if primaries.len() > 1 {
        wrong.push(format!(
            "{} answer as primaries: {}",
            primaries.len(),
            primaries.join(" and ")
        ));
    }
    member_streams(seen, node, wrong);
    let lost: BTreeSet<i64> = run.lost.iter().copied().collect();
    match &run.answer {
        None => wrong.push(
            "which writes were lost is not answered yet (`lab exercise answer ID...`)".into(),
        ),
        Some(given) if given.iter().copied().collect::<BTreeSet<i64>>() != lost => {
            wrong.push(format!(
                "the writes named as lost ({}) are not the ones {node} took alone",
                ids(given)
            ))
        }
        Some(_) => {}
    }
}

fn archiving(run: &Running, seen: &Seen, wrong: &mut Vec<String>) {
    let archiver = leader(seen)
        .and_then(|l| pg_node(seen, l))
        .and_then(|l| l.state.as_ref())
        .and_then(|s| s.archiver.as_ref().map(|a| (a, s.ready)));
    match archiver {
        None => wrong.push("the primary's pg_stat_archiver could not be read".into()),
        Some((a, ready)) => {
            let failing = match (a.last_failed, a.last_archived) {
                (Some(failed), Some(archived)) => failed >= archived,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if failing {
                wrong.push(format!(
                    "archiving fails on the primary: {} failures, {ready} WAL segments waiting",
                    a.failed
                ));
            }
        }
    }
    match seen.newest_backup {
        Some(at) if at >= run.started as i64 => {}
        _ => wrong.push("no backup was taken since the exercise started".into()),
    }
}

fn drilled(seen: &Seen, wrong: &mut Vec<String>) {
    let Some(d) = &seen.last_drill else {
        wrong.push(
            "no kill-primary drill since the exercise started (`lab drill kill-primary`)".into(),
        );
        return;
    };
    if d.scenario != "kill-primary" {
        wrong.push(format!(
            "the last drill was {}, not kill-primary (`lab drill kill-primary`)",
            d.scenario
        ));
        return;
    }
    match d.downtime {
        Some(s) if s < RTO => {}
        Some(s) => wrong.push(format!(
            "the last kill-primary drill ({} mode) kept writes down {s:.1} s (goal: under {RTO} s)",
            d.mode
        )),
        None => wrong.push("the last kill-primary drill saw no write succeed again".into()),
    }
    if d.lost > 0 {
        wrong.push(format!(
            "the last kill-primary drill lost {} acknowledged writes (goal: none)",
            d.lost
        ));
    }
}

/// Ids as `lab exercise answer` takes them.
pub fn ids(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(" ")
}
