//! `lab watch`'s events, pure: the lab at one moment (`Snapshot`, filled by `poll`) and what
//! changed from one moment to the next (`Detector`), in the words both the live view and the
//! line log print. No engine and no clock here: the caller stamps each event with its time.

use std::fmt;

use serde::Serialize;
use std::time::SystemTime;

use crate::services::haproxy::Routing;
use crate::spec::{HAPROXY_PRIMARY, quorum};

/// The lab at one moment, as the watch saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    pub lab: String,
    pub presence: Presence,
    pub nodes: Vec<Node>,
    /// The etcd cluster; None in a lab without etcd members.
    pub etcd: Option<Etcd>,
    /// The HAProxy node and where it routes; None in a lab without one.
    pub haproxy: Option<Haproxy>,
}

/// Whether the lab can be seen at all.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", content = "why", rename_all = "snake_case")]
pub enum Presence {
    Here,
    /// There again after it was gone or the engine was lost, its nodes not all asked since:
    /// what is known of it is partial, and says nothing yet.
    Returning,
    /// No container of the lab is left on the engine.
    Gone,
    /// The engine does not answer; the text says why.
    EngineLost(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    /// Its name in the lab, as the course names it (pgha1).
    pub name: String,
    /// Its container's name on the engine (alice1 in lab alice; the same in lab pgha).
    pub container_name: String,
    /// The container's state as the engine says it: running, exited, ...
    pub container: String,
    pub running: bool,
    /// Running, but cut off from the lab network (`lab partition`).
    pub cut_off: bool,
    /// Whether it runs a Patroni member.
    pub postgres: bool,
    /// What a node without a Patroni member runs, as the view names it (etcd, haproxy,
    /// monitor...).
    pub runs: String,
    /// Its Patroni member's own account; None when it does not answer (or the node has none).
    pub member: Option<Member>,
}

/// A Patroni member as its REST API and its PostgreSQL describe it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Member {
    /// Patroni's role: primary, replica, ...
    pub role: String,
    /// Patroni's state: running, starting, stopped, crashed, ...
    pub state: String,
    pub timeline: Option<u64>,
    /// Bytes of WAL a replica has yet to replay, when the leader answers too.
    pub lag: Option<u64>,
    /// The node its WAL receiver streams from, while it streams.
    pub streams_from: Option<String>,
}

/// The etcd cluster as one of its members' neighbours sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Etcd {
    pub members: Vec<String>,
    /// The members that answer.
    pub up: Vec<String>,
    pub leader: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Haproxy {
    pub node: String,
    /// None when its stats page does not answer (HAProxy or its node stopped).
    pub routing: Option<Routing>,
}

impl Member {
    pub fn leads(&self) -> bool {
        self.role == "primary" && self.state == "running"
    }

    /// What it is doing, in a word or two: streaming, running, stopped, ...
    pub fn doing(&self) -> &str {
        match &self.streams_from {
            Some(_) if self.role == "replica" => "streaming",
            _ => &self.state,
        }
    }
}

impl Node {
    /// Why it is down (its container stopped, cut off, or its Patroni member not running),
    /// None while it is up.
    pub fn down(&self) -> Option<String> {
        if !self.running {
            return Some(format!("container {}", self.container));
        }
        if self.cut_off {
            return Some("cut off from the lab network".into());
        }
        if !self.postgres {
            return None;
        }
        match &self.member {
            None => Some("Patroni does not answer".into()),
            // A replica that streams is up, whatever Patroni's loop has yet to notice.
            Some(m) if m.state != "running" && m.streams_from.is_none() => {
                Some(format!("PostgreSQL {}", m.state))
            }
            Some(_) => None,
        }
    }

    /// "member" for a Patroni member, "node" for the others (etcd, HAProxy, repository).
    fn kind(&self) -> &'static str {
        if self.postgres { "member" } else { "node" }
    }
}

impl Etcd {
    pub fn quorum(&self) -> usize {
        quorum(self.members.len()).0
    }

    pub fn has_quorum(&self) -> bool {
        self.up.len() >= self.quorum()
    }

    /// "3 of 3 up (quorum 2), leader pgha4", or "1 of 3 up (quorum 2): no quorum"
    pub fn describe(&self) -> String {
        let counted = format!(
            "{} of {} up (quorum {})",
            self.up.len(),
            self.members.len(),
            self.quorum()
        );
        match &self.leader {
            _ if !self.has_quorum() => format!("{counted}: no quorum"),
            Some(l) => format!("{counted}, leader {l}"),
            None => format!("{counted}, no leader yet"),
        }
    }
}

impl Haproxy {
    /// The servers behind the primary port, None when HAProxy does not answer.
    fn primary(&self) -> Option<&[String]> {
        self.routing.as_ref().map(|r| r.primary.as_slice())
    }
}

impl Snapshot {
    /// Whether the lab is there with every node stopped (one not yet asked has no nodes).
    pub fn stopped(&self) -> bool {
        self.presence == Presence::Here
            && !self.nodes.is_empty()
            && self.nodes.iter().all(|n| !n.running)
    }

    /// The Patroni leader: a running primary, one on the lab network first (a primary cut off
    /// still calls itself one until its leader key expires), then the newest timeline.
    pub fn leader(&self) -> Option<(&str, Option<u64>)> {
        self.nodes
            .iter()
            .filter(|n| n.running)
            .filter_map(|n| n.member.as_ref().filter(|m| m.leads()).map(|m| (n, m)))
            .max_by_key(|(n, m)| (!n.cut_off, m.timeline))
            .map(|(n, m)| (n.name.as_str(), m.timeline))
    }

    /// The whole lab in one line, for the line log's first line.
    pub fn describe(&self) -> String {
        match &self.presence {
            Presence::Gone => return format!("lab {}: gone, no container is left", self.lab),
            Presence::EngineLost(why) => return format!("lab {}: {why}", self.lab),
            Presence::Here | Presence::Returning => {}
        }
        let mut parts = vec![match self.leader() {
            Some((l, Some(t))) => format!("leader {l} (timeline {t})"),
            Some((l, None)) => format!("leader {l}"),
            None => "no leader".into(),
        }];
        for n in &self.nodes {
            match (n.down(), &n.member) {
                (Some(why), _) => parts.push(format!("{} down ({why})", n.name)),
                (None, Some(m)) if !m.leads() => {
                    parts.push(format!("{} {} {}", n.name, m.role, m.doing()))
                }
                _ => {}
            }
        }
        if let Some(e) = &self.etcd {
            parts.push(format!("etcd {}", e.describe()));
        }
        if let Some(h) = &self.haproxy {
            parts.push(match &h.routing {
                Some(r) => format!("HAProxy {}", r.describe()),
                None => "HAProxy not answering".into(),
            });
        }
        format!("lab {}: {}", self.lab, parts.join("; "))
    }
}

/// Something that happened to the lab.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A (new) leader; `from` is the one before it, however long ago it stopped leading.
    LeaderChanged {
        from: Option<String>,
        to: String,
        timeline: Option<u64>,
    },
    /// Nobody leads any more.
    LeaderLost {
        was: String,
    },
    TimelineSwitched {
        from: u64,
        to: u64,
    },
    Down {
        node: String,
        kind: &'static str,
        why: String,
    },
    /// Every node stopped (`lab stop`).
    LabStopped {
        lab: String,
    },
    Back {
        node: String,
        kind: &'static str,
        now: String,
    },
    /// A replica streams again, or from another node.
    Rejoined {
        node: String,
        from: String,
    },
    EtcdMemberDown {
        member: String,
    },
    EtcdMemberBack {
        member: String,
    },
    QuorumLost {
        etcd: String,
    },
    QuorumBack {
        etcd: String,
    },
    /// HAProxy's primary port leads elsewhere (None: its stats page does not answer).
    HaproxySwitched {
        from: Option<Vec<String>>,
        to: Option<Vec<String>>,
    },
    LabGone {
        lab: String,
    },
    EngineLost {
        why: String,
    },
    /// The lab can be seen again; how it stands.
    LabBack {
        now: String,
    },
}

/// How an event reads at a glance: the view colours it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tone {
    Bad,
    Good,
    Change,
}

impl Event {
    pub fn tone(&self) -> Tone {
        match self {
            Event::LeaderLost { .. }
            | Event::Down { .. }
            | Event::EtcdMemberDown { .. }
            | Event::QuorumLost { .. }
            | Event::LabStopped { .. }
            | Event::LabGone { .. }
            | Event::EngineLost { .. } => Tone::Bad,
            Event::HaproxySwitched { to, .. }
                if to.as_ref().is_none_or(|servers| servers.is_empty()) =>
            {
                Tone::Bad
            }
            Event::Back { .. }
            | Event::Rejoined { .. }
            | Event::EtcdMemberBack { .. }
            | Event::QuorumBack { .. }
            | Event::LabBack { .. } => Tone::Good,
            Event::LeaderChanged { .. }
            | Event::TimelineSwitched { .. }
            | Event::HaproxySwitched { .. } => Tone::Change,
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let servers = |s: &Option<Vec<String>>| match s {
            None => "no answer".to_string(),
            Some(s) if s.is_empty() => "nothing".to_string(),
            Some(s) => s.join(", "),
        };
        match self {
            Event::LeaderChanged { from, to, timeline } => {
                let tl = timeline
                    .map(|t| format!(" (timeline {t})"))
                    .unwrap_or_default();
                match from {
                    Some(from) if from == to => write!(f, "leader back: {to}{tl}"),
                    Some(from) => write!(f, "leader changed: {from} -> {to}{tl}"),
                    None => write!(f, "leader elected: {to}{tl}"),
                }
            }
            Event::LeaderLost { was } => write!(f, "no leader: {was} stopped leading"),
            Event::TimelineSwitched { from, to } => write!(f, "timeline switched: {from} -> {to}"),
            Event::Down { node, kind, why } => write!(f, "{kind} down: {node} ({why})"),
            Event::LabStopped { lab } => write!(
                f,
                "lab stopped: no node of it runs; `lab start --name {lab}` starts it again"
            ),
            Event::Back { node, kind, now } => write!(f, "{kind} back: {node} ({now})"),
            Event::Rejoined { node, from } => {
                write!(f, "replica rejoined: {node} streaming from {from}")
            }
            Event::EtcdMemberDown { member } => write!(f, "etcd member down: {member}"),
            Event::EtcdMemberBack { member } => write!(f, "etcd member back: {member}"),
            Event::QuorumLost { etcd } => write!(f, "etcd quorum lost: {etcd}"),
            Event::QuorumBack { etcd } => write!(f, "etcd quorum back: {etcd}"),
            Event::HaproxySwitched { from, to: None } => write!(
                f,
                "HAProxy not answering (its {HAPROXY_PRIMARY} led to {})",
                servers(from)
            ),
            Event::HaproxySwitched { from: None, to } => write!(
                f,
                "HAProxy answering again: {HAPROXY_PRIMARY} -> {}",
                servers(to)
            ),
            Event::HaproxySwitched { from, to } => write!(
                f,
                "HAProxy switched: {HAPROXY_PRIMARY} -> {} (was {})",
                servers(to),
                servers(from)
            ),
            Event::LabGone { lab } => write!(
                f,
                "lab gone: no container of lab {lab} is left on this Docker Engine; watching \
                 for it to come back"
            ),
            Event::EngineLost { why } => write!(f, "engine lost: {why}; trying again"),
            Event::LabBack { now } => write!(f, "lab back: {now}"),
        }
    }
}

/// Finds the events between one snapshot and the next. It remembers the last leader across
/// moments without one, so that a failover reads "pgha1 -> pgha2", not "none -> pgha2".
pub struct Detector {
    last: Snapshot,
    leader: Option<(String, Option<u64>)>,
}

impl Detector {
    /// Starts from `first`, which is taken as it is: no events for it.
    pub fn new(first: &Snapshot) -> Detector {
        Detector {
            last: first.clone(),
            leader: owned(first.leader()),
        }
    }

    /// What happened between the last snapshot and `now`, in the order a trainee follows it:
    /// nodes, the leader and timeline, replicas, etcd, HAProxy.
    pub fn next(&mut self, now: &Snapshot) -> Vec<Event> {
        if now.presence == Presence::Returning {
            return Vec::new();
        }
        let before = std::mem::replace(&mut self.last, now.clone());
        if before.presence != now.presence {
            // What the lab looked like while it could not be seen says nothing: it is taken
            // anew once it can.
            if now.presence == Presence::Here {
                self.leader = owned(now.leader()).or(self.leader.take());
            }
            return vec![match &now.presence {
                Presence::Here | Presence::Returning => Event::LabBack {
                    now: now.describe(),
                },
                Presence::Gone => Event::LabGone {
                    lab: now.lab.clone(),
                },
                Presence::EngineLost(why) => Event::EngineLost { why: why.clone() },
            }];
        }
        if now.presence != Presence::Here {
            return Vec::new();
        }
        let mut events = nodes(&before, now);
        if now.stopped() && !before.stopped() {
            events.push(Event::LabStopped {
                lab: now.lab.clone(),
            });
        }
        events.extend(self.leadership(&before, now));
        events.extend(rejoined(&before, now));
        events.extend(etcd(before.etcd.as_ref(), now.etcd.as_ref()));
        events.extend(haproxy(before.haproxy.as_ref(), now.haproxy.as_ref()));
        events
    }

    fn leadership(&mut self, before: &Snapshot, now: &Snapshot) -> Vec<Event> {
        let mut events = Vec::new();
        match (now.leader(), before.leader()) {
            (Some((to, timeline)), had) => {
                let known = self.leader.as_ref().map(|(n, _)| n.as_str());
                if known != Some(to) || had.is_none() {
                    events.push(Event::LeaderChanged {
                        from: known.map(String::from),
                        to: to.to_string(),
                        timeline,
                    });
                }
                let last_timeline = self.leader.as_ref().and_then(|(_, t)| *t);
                if let (Some(from), Some(to)) = (last_timeline, timeline)
                    && from != to
                {
                    events.push(Event::TimelineSwitched { from, to });
                }
                self.leader = Some((to.to_string(), timeline.or(last_timeline)));
            }
            (None, Some((was, _))) => events.push(Event::LeaderLost {
                was: was.to_string(),
            }),
            (None, None) => {}
        }
        events
    }
}

fn owned(leader: Option<(&str, Option<u64>)>) -> Option<(String, Option<u64>)> {
    leader.map(|(n, t)| (n.to_string(), t))
}

/// Nodes that went down or came back (a node that is no longer there went down).
fn nodes(before: &Snapshot, now: &Snapshot) -> Vec<Event> {
    let mut events = Vec::new();
    for n in &now.nodes {
        let Some(was) = before.nodes.iter().find(|b| b.name == n.name) else {
            continue;
        };
        match (was.down(), n.down()) {
            (None, Some(why)) => events.push(Event::Down {
                node: n.name.clone(),
                kind: n.kind(),
                why,
            }),
            (Some(_), None) => events.push(Event::Back {
                node: n.name.clone(),
                kind: n.kind(),
                now: match &n.member {
                    Some(m) => format!("{} {}", m.role, m.doing()),
                    None => "running".into(),
                },
            }),
            _ => {}
        }
    }
    for gone in before
        .nodes
        .iter()
        .filter(|b| b.down().is_none() && !now.nodes.iter().any(|n| n.name == b.name))
    {
        events.push(Event::Down {
            node: gone.name.clone(),
            kind: gone.kind(),
            why: "container removed".into(),
        });
    }
    events
}

/// Replicas that stream again, or from another node than before.
fn rejoined(before: &Snapshot, now: &Snapshot) -> Vec<Event> {
    now.nodes
        .iter()
        .filter_map(|n| {
            let m = n.member.as_ref().filter(|m| m.role == "replica")?;
            let from = m.streams_from.as_ref()?;
            let was = before
                .nodes
                .iter()
                .find(|b| b.name == n.name)
                .and_then(|b| b.member.as_ref())
                .filter(|b| b.role == "replica")
                .and_then(|b| b.streams_from.as_ref());
            (was != Some(from)).then(|| Event::Rejoined {
                node: n.name.clone(),
                from: from.clone(),
            })
        })
        .collect()
}

/// etcd members that stopped or started answering, and the quorum lost or back.
fn etcd(before: Option<&Etcd>, now: Option<&Etcd>) -> Vec<Event> {
    let (Some(before), Some(now)) = (before, now) else {
        return Vec::new();
    };
    let mut events: Vec<Event> = now
        .members
        .iter()
        .filter_map(|m| match (before.up.contains(m), now.up.contains(m)) {
            (true, false) => Some(Event::EtcdMemberDown { member: m.clone() }),
            (false, true) => Some(Event::EtcdMemberBack { member: m.clone() }),
            _ => None,
        })
        .collect();
    match (before.has_quorum(), now.has_quorum()) {
        (true, false) => events.push(Event::QuorumLost {
            etcd: now.describe(),
        }),
        (false, true) => events.push(Event::QuorumBack {
            etcd: now.describe(),
        }),
        _ => {}
    }
    events
}

/// HAProxy's primary port leading elsewhere.
fn haproxy(before: Option<&Haproxy>, now: Option<&Haproxy>) -> Vec<Event> {
    let (Some(before), Some(now)) = (before, now) else {
        return Vec::new();
    };
    let (from, to) = (before.primary(), now.primary());
    if from == to {
        return Vec::new();
    }
    vec![Event::HaproxySwitched {
        from: from.map(<[String]>::to_vec),
        to: to.map(<[String]>::to_vec),
    }]
}

/// A moment as the log prints it, "22:14:03.412": in UTC, as the nodes' own logs are, so that
/// an event and the log lines around it read alike.
pub fn clock(at: SystemTime) -> String {
    let t = time::OffsetDateTime::from(at);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(role: &str, state: &str, timeline: u64, from: Option<&str>) -> Option<Member> {
        Some(Member {
            role: role.into(),
            state: state.into(),
            timeline: Some(timeline),
            lag: (role == "replica").then_some(0),
            streams_from: from.map(String::from),
        })
    }

    fn node(name: &str, member: Option<Member>) -> Node {
        Node {
            name: name.into(),
            container_name: name.to_string(),
            container: "running".into(),
            running: true,
            cut_off: false,
            postgres: true,
            runs: String::new(),
            member,
        }
    }

    /// pgha1 leads on timeline 1, pgha2 and pgha3 stream from it; etcd on 1-3 with pgha2
    /// leading; HAProxy on pgha4 routes to pgha1.
    fn healthy() -> Snapshot {
        Snapshot {
            lab: "pgha".into(),
            presence: Presence::Here,
            nodes: vec![
                node("pgha1", member("primary", "running", 1, None)),
                node("pgha2", member("replica", "running", 1, Some("pgha1"))),
                node("pgha3", member("replica", "running", 1, Some("pgha1"))),
                Node {
                    postgres: false,
                    ..node("pgha4", None)
                },
            ],
            etcd: Some(Etcd {
                members: vec!["pgha1".into(), "pgha2".into(), "pgha3".into()],
                up: vec!["pgha1".into(), "pgha2".into(), "pgha3".into()],
                leader: Some("pgha2".into()),
            }),
            haproxy: Some(Haproxy {
                node: "pgha4".into(),
                routing: Some(Routing {
                    primary: vec!["pgha1".into()],
                    replicas: vec!["pgha2".into(), "pgha3".into()],
                }),
            }),
        }
    }

    fn lines(events: &[Event]) -> Vec<String> {
        events.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn nothing_changed_is_no_event() {
        let mut d = Detector::new(&healthy());
        assert!(d.next(&healthy()).is_empty());
    }

    #[test]
    fn a_failover_reads_as_the_trainee_follows_it() {
        let mut d = Detector::new(&healthy());
        // pgha1 killed: its container exited, nobody leads yet, etcd lost a member.
        let mut killed = healthy();
        killed.nodes[0].running = false;
        killed.nodes[0].container = "exited".into();
        killed.nodes[0].member = None;
        killed.etcd.as_mut().unwrap().up.remove(0);
        assert_eq!(
            lines(&d.next(&killed)),
            [
                "member down: pgha1 (container exited)",
                "no leader: pgha1 stopped leading",
                "etcd member down: pgha1",
            ]
        );
        // pgha2 takes over on timeline 2; pgha3 follows it; HAProxy follows.
        let mut promoted = killed.clone();
        promoted.nodes[1].member = member("primary", "running", 2, None);
        promoted.nodes[2].member = member("replica", "running", 2, None);
        promoted.haproxy.as_mut().unwrap().routing = Some(Routing {
            primary: vec!["pgha2".into()],
            replicas: vec![],
        });
        assert_eq!(
            lines(&d.next(&promoted)),
            [
                "leader changed: pgha1 -> pgha2 (timeline 2)",
                "timeline switched: 1 -> 2",
                "HAProxy switched: 5000 -> pgha2 (was pgha1)",
            ]
        );
        let mut following = promoted.clone();
        following.nodes[2].member = member("replica", "running", 2, Some("pgha2"));
        assert_eq!(
            lines(&d.next(&following)),
            ["replica rejoined: pgha3 streaming from pgha2"]
        );
        // pgha1 started again: Patroni first, then it streams from the new leader.
        let mut started = following.clone();
        started.nodes[0] = node("pgha1", member("replica", "starting", 2, None));
        started.etcd.as_mut().unwrap().up.push("pgha1".into());
        assert_eq!(
            lines(&d.next(&started)),
            ["etcd member back: pgha1"],
            "a member still starting is not back"
        );
        let mut back = started.clone();
        back.nodes[0].member = member("replica", "running", 2, Some("pgha2"));
        assert_eq!(
            lines(&d.next(&back)),
            [
                "member back: pgha1 (replica streaming)",
                "replica rejoined: pgha1 streaming from pgha2",
            ]
        );
    }

    #[test]
    fn a_switchover_names_both_leaders_without_a_gap() {
        let mut d = Detector::new(&healthy());
        let mut switched = healthy();
        switched.nodes[0].member = member("replica", "running", 2, Some("pgha3"));
        switched.nodes[2].member = member("primary", "running", 2, None);
        switched.nodes[1].member = member("replica", "running", 2, Some("pgha3"));
        let events = d.next(&switched);
        assert_eq!(
            lines(&events),
            [
                "leader changed: pgha1 -> pgha3 (timeline 2)",
                "timeline switched: 1 -> 2",
                "replica rejoined: pgha1 streaming from pgha3",
                "replica rejoined: pgha2 streaming from pgha3",
            ]
        );
        assert_eq!(events[0].tone(), Tone::Change);
    }

    #[test]
    fn the_same_leader_back_after_a_gap_is_said_so() {
        let mut d = Detector::new(&healthy());
        let mut gap = healthy();
        gap.nodes[0].member = member("primary", "stopped", 1, None);
        assert_eq!(
            lines(&d.next(&gap)),
            [
                "member down: pgha1 (PostgreSQL stopped)",
                "no leader: pgha1 stopped leading"
            ]
        );
        assert_eq!(
            lines(&d.next(&healthy())),
            [
                "member back: pgha1 (primary running)",
                "leader back: pgha1 (timeline 1)"
            ]
        );
    }

    #[test]
    fn a_lab_stopped_whole_is_said_after_its_nodes() {
        let mut d = Detector::new(&healthy());
        let mut stopped = healthy();
        for n in &mut stopped.nodes {
            n.running = false;
            n.container = "exited".into();
            n.member = None;
        }
        let events = lines(&d.next(&stopped));
        assert_eq!(events.len(), 6, "{events:?}");
        assert_eq!(events[3], "node down: pgha4 (container exited)");
        assert_eq!(
            events[4],
            "lab stopped: no node of it runs; `lab start --name pgha` starts it again"
        );
        assert_eq!(events[5], "no leader: pgha1 stopped leading");
    }

    #[test]
    fn a_replica_that_streams_is_up_while_patroni_still_says_starting() {
        let mut n = node("pgha2", member("replica", "starting", 1, Some("pgha1")));
        assert_eq!(n.down(), None);
        n.member = member("replica", "starting", 1, None);
        assert_eq!(n.down().as_deref(), Some("PostgreSQL starting"));
    }

    #[test]
    fn a_cut_off_primary_does_not_hide_the_new_leader() {
        let mut s = healthy();
        s.nodes[0].cut_off = true;
        s.nodes[1].member = member("primary", "running", 2, None);
        assert_eq!(s.leader(), Some(("pgha2", Some(2))));
        assert_eq!(
            s.nodes[0].down().as_deref(),
            Some("cut off from the lab network")
        );
    }

    #[test]
    fn etcd_quorum_lost_and_back() {
        let mut d = Detector::new(&healthy());
        let mut lost = healthy();
        lost.etcd.as_mut().unwrap().up = vec!["pgha3".into()];
        lost.etcd.as_mut().unwrap().leader = None;
        let events = d.next(&lost);
        assert_eq!(
            lines(&events),
            [
                "etcd member down: pgha1",
                "etcd member down: pgha2",
                "etcd quorum lost: 1 of 3 up (quorum 2): no quorum",
            ]
        );
        assert_eq!(events[2].tone(), Tone::Bad);
        let events = d.next(&healthy());
        assert_eq!(
            lines(&events)[2],
            "etcd quorum back: 3 of 3 up (quorum 2), leader pgha2"
        );
        assert_eq!(events[2].tone(), Tone::Good);
    }

    #[test]
    fn haproxy_without_a_primary_or_an_answer_is_bad_news() {
        let mut d = Detector::new(&healthy());
        let mut none = healthy();
        none.haproxy.as_mut().unwrap().routing = Some(Routing::default());
        let events = d.next(&none);
        assert_eq!(
            lines(&events),
            ["HAProxy switched: 5000 -> nothing (was pgha1)"]
        );
        assert_eq!(events[0].tone(), Tone::Bad);
        let mut silent = healthy();
        silent.haproxy.as_mut().unwrap().routing = None;
        assert_eq!(
            lines(&d.next(&silent)),
            ["HAProxy not answering (its 5000 led to nothing)"]
        );
        assert_eq!(
            lines(&d.next(&healthy())),
            ["HAProxy answering again: 5000 -> pgha1"]
        );
    }

    #[test]
    fn a_lab_that_goes_away_and_comes_back_is_one_event_each() {
        let mut d = Detector::new(&healthy());
        let gone = Snapshot {
            presence: Presence::Gone,
            nodes: vec![],
            etcd: None,
            haproxy: None,
            ..healthy()
        };
        let events = d.next(&gone);
        assert_eq!(events.len(), 1);
        assert!(
            events[0]
                .to_string()
                .starts_with("lab gone: no container of lab pgha")
        );
        assert!(d.next(&gone).is_empty());
        let lost = Snapshot {
            presence: Presence::EngineLost("the Docker daemon is not running".into()),
            ..gone.clone()
        };
        assert_eq!(
            lines(&d.next(&lost)),
            ["engine lost: the Docker daemon is not running; trying again"]
        );
        let returning = Snapshot {
            presence: Presence::Returning,
            ..healthy()
        };
        assert!(
            d.next(&returning).is_empty(),
            "nothing until every node answered"
        );
        let back = d.next(&healthy());
        assert_eq!(back.len(), 1);
        assert!(
            back[0].to_string().starts_with(
                "lab back: lab pgha: leader pgha1 (timeline 1); pgha2 replica streaming"
            ),
            "{}",
            back[0]
        );
        // Its leader is remembered: a failover after it names the one before.
        let mut promoted = healthy();
        promoted.nodes[0].member = None;
        promoted.nodes[1].member = member("primary", "running", 2, None);
        assert_eq!(
            lines(&d.next(&promoted))[..2],
            [
                "member down: pgha1 (Patroni does not answer)",
                "leader changed: pgha1 -> pgha2 (timeline 2)"
            ]
        );
    }

    #[test]
    fn the_first_line_states_the_whole_lab() {
        let mut s = healthy();
        s.nodes[2].member = member("replica", "starting", 1, None);
        assert_eq!(
            s.describe(),
            "lab pgha: leader pgha1 (timeline 1); pgha2 replica streaming; pgha3 down \
             (PostgreSQL starting); etcd 3 of 3 up (quorum 2), leader pgha2; HAProxy 5000 → \
             pgha1, 5001 → pgha2, pgha3"
        );
    }

    #[test]
    fn the_clock_is_utc_to_the_millisecond() {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(86_400_000 + 3_723_004);
        assert_eq!(clock(at), "01:02:03.004");
    }
}
