//! `lab watch`'s polling, the effects: the lab's containers from the engine, and one probe per
//! running node at most once a second, every node at once. Each node's questions (its Patroni
//! member; HAProxy's routing on the HAProxy node; etcd's view on one node) go in one exec, so a
//! node costs one `docker exec` a second. A probe runs on its own: a node that is slow or dead
//! delays only its own answer, never the others', and never the next snapshot.
//!
//! What costs the nodes CPU is asked less often than what must show at once: a member's role
//! and state (curl on its REST API) every second, as a new leader must show within 2 s; its WAL
//! receiver (memberState, Python and psql) every third second; HAProxy's routing every other
//! second; etcd's view (etcdctl on every member) every third second. Each `docker exec` costs
//! the node some 20 ms of CPU before the command even starts.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::{Interval, MissedTickBehavior, timeout};

use super::events::{Etcd, Haproxy, Member, Node, Presence, Snapshot};
use crate::engine::{Engine, ExecOutput};
use crate::error::{Error, Result};
use crate::model::{self, Lab};
use crate::services::haproxy::{self, Routing};
use crate::services::{Ctx, etcd, patroni};
use crate::shell;
use crate::spec::Roles;

/// How often `lab watch` asks every node, at most.
pub const EVERY: Duration = Duration::from_secs(1);
/// Every how many rounds a member's WAL receiver is read, HAProxy's routing and etcd's view
/// asked.
const RECEIVER_EVERY: u64 = 3;
const ROUTING_EVERY: u64 = 2;
const ETCD_EVERY: u64 = 3;
/// At a light pace (`Poller::set_pace`), every how many rounds a known WAL receiver is read
/// again: a member's REST API (curl) says the rest, and Python is what costs.
const LIGHT_RECEIVER_EVERY: u64 = 6;
/// How long one node's probe may take before it counts as no answer; what it runs in the node
/// ends there too (`Engine::exec` bounds it with coreutils' timeout).
const PROBE_WITHIN: Duration = Duration::from_secs(4);
/// What each etcd member is given to answer, in seconds: a stopped member costs no more.
const ETCD_WITHIN: u64 = 1;
/// How long the engine may take to list the lab's containers.
const ENGINE_WITHIN: Duration = Duration::from_secs(5);
/// How long the first snapshot waits for every node's first answer.
const FIRST_WITHIN: Duration = Duration::from_secs(8);
/// What each question's answer is followed by in a combined probe's output, with its exit code.
const MARK: &str = "@@lab-watch-exit:";

/// A question asked of a node.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Question {
    /// The member's REST API and its WAL receiver.
    Member,
    /// The member's REST API alone.
    Rest,
    Routing,
    Etcd,
}

/// What a finished task brings back.
enum Done {
    Lab(Result<Option<Lab>>),
    Node(String, Vec<(Question, Answer)>),
}

/// One question's answer; None where the node did not answer.
enum Answer {
    Member(Option<patroni::MemberState>),
    Rest(Option<patroni::MemberState>),
    Routing(Option<Routing>),
    Etcd(Option<etcd::View>),
}

/// Keeps the lab's latest answers and asks again every second.
pub struct Poller {
    engine: Engine,
    name: String,
    presence: Presence,
    lab: Option<Lab>,
    tasks: JoinSet<Done>,
    /// Nodes whose probe has not come back yet, and whether the lab is being listed.
    asking: HashSet<String>,
    listing: bool,
    members: HashMap<String, patroni::MemberState>,
    routing: Option<Routing>,
    etcd: Option<etcd::View>,
    ticks: Interval,
    /// How many times the nodes were asked.
    rounds: u64,
    /// Asked lightly: a WAL receiver read only when unknown, or every LIGHT_RECEIVER_EVERY
    /// rounds (see `set_pace`).
    light: bool,
    every: Duration,
    /// The nodes that answered since the lab came back, while it is coming back (None once all
    /// did, or when it never went).
    returning: Option<HashSet<String>>,
}

impl Poller {
    /// A poller asking every node at most once per `every`.
    pub fn new(engine: &Engine, lab: Lab, every: Duration) -> Poller {
        let mut ticks = tokio::time::interval(every);
        // A late tick is not made up for with a burst of probes.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Poller {
            engine: engine.clone(),
            name: lab.name.clone(),
            presence: Presence::Here,
            lab: Some(lab),
            tasks: JoinSet::new(),
            asking: HashSet::new(),
            listing: false,
            members: HashMap::new(),
            routing: None,
            etcd: None,
            ticks,
            rounds: 0,
            light: false,
            every,
            returning: None,
        }
    }

    /// Asks every `every` from now on, lightly or not: a page that shows a whole class needs
    /// each lab's roles and health, not each replica's receiver every few seconds, and a
    /// class of labs asked at `lab watch`'s pace costs more than a core.
    pub fn set_pace(&mut self, every: Duration, light: bool) {
        self.light = light;
        if every != self.every {
            self.every = every;
            self.ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            self.ticks
                .set_missed_tick_behavior(MissedTickBehavior::Delay);
        }
    }

    /// The lab before any answer: its name alone, for the view to show while it asks.
    pub fn placeholder(&self) -> Snapshot {
        Snapshot {
            lab: self.name.clone(),
            presence: Presence::Here,
            nodes: Vec::new(),
            etcd: None,
            haproxy: None,
        }
    }

    /// The first snapshot: once every running node has answered once, or after FIRST_WITHIN.
    pub async fn first(&mut self) -> Result<Snapshot> {
        self.ticks.tick().await;
        self.ask();
        let deadline = tokio::time::Instant::now() + FIRST_WITHIN;
        while !self.asking.is_empty() || self.listing {
            match tokio::time::timeout_at(deadline, self.tasks.join_next()).await {
                Ok(Some(done)) => self.take(done)?,
                Ok(None) | Err(_) => break,
            }
        }
        Ok(self.snapshot())
    }

    /// The next snapshot: when an answer comes, or at the next tick (which asks again).
    pub async fn next(&mut self) -> Result<Snapshot> {
        tokio::select! {
            _ = self.ticks.tick() => self.ask(),
            Some(done) = self.tasks.join_next() => self.take(done)?,
        }
        Ok(self.snapshot())
    }

    /// Lists the lab again, and asks every running node that has no probe out.
    fn ask(&mut self) {
        if !self.listing {
            self.listing = true;
            let (engine, name) = (self.engine.clone(), self.name.clone());
            self.tasks.spawn(async move {
                let found = timeout(ENGINE_WITHIN, model::find(&engine, &name)).await;
                Done::Lab(found.unwrap_or_else(|_| {
                    Err(Error::DockerUnavailable(format!(
                        "the Docker Engine did not list lab {name}'s containers within {} s",
                        ENGINE_WITHIN.as_secs()
                    )))
                }))
            });
        }
        let Some(lab) = self.lab.clone() else { return };
        let round = self.rounds;
        self.rounds += 1;
        // The first round asks everything, so that the first snapshot is whole; so do those
        // after the lab came back.
        let whole = round == 0 || self.returning.is_some();
        let asker = etcd_asker(&lab).filter(|_| whole || round.is_multiple_of(ETCD_EVERY));
        for node in lab.nodes.iter().filter(|n| n.running()) {
            if self.asking.contains(&node.name) {
                continue;
            }
            let mut questions = Vec::new();
            if node.roles.postgres {
                // Spread over the rounds, so that each round's cost is about the same.
                let receiver = if self.light {
                    let known = self
                        .members
                        .get(&node.name)
                        .is_some_and(|m| m.role != "replica" || m.receiver.is_some());
                    whole
                        || !known
                        || (round + node.index as u64).is_multiple_of(LIGHT_RECEIVER_EVERY)
                } else {
                    whole || (round + node.index as u64).is_multiple_of(RECEIVER_EVERY)
                };
                questions.push(if receiver {
                    Question::Member
                } else {
                    Question::Rest
                });
            }
            if node.roles.haproxy && (whole || round.is_multiple_of(ROUTING_EVERY)) {
                questions.push(Question::Routing);
            }
            if asker.as_deref() == Some(node.name.as_str()) {
                questions.push(Question::Etcd);
            }
            if questions.is_empty() {
                continue;
            }
            self.asking.insert(node.name.clone());
            let (engine, lab, name) = (self.engine.clone(), lab.clone(), node.name.clone());
            self.tasks.spawn(async move {
                let answers = probe(&engine, &lab, &name, &questions).await;
                Done::Node(name, answers)
            });
        }
    }

    /// Keeps what a task brought back; a task that panicked ends the watch, saying so.
    fn take(&mut self, done: std::result::Result<Done, tokio::task::JoinError>) -> Result<()> {
        let done = done.map_err(|e| {
            Error::Failed(format!(
                "lab watch stopped: asking lab {} failed inside lab itself ({e}). This is a bug \
                 in lab; `lab status --name {}` shows the lab meanwhile.",
                self.name, self.name
            ))
        })?;
        match done {
            Done::Lab(found) => {
                self.listing = false;
                match found {
                    Ok(Some(lab)) => {
                        if self.presence != Presence::Here {
                            self.returning = Some(HashSet::new());
                        }
                        self.presence = Presence::Here;
                        // What a stopped node said before it stopped is no longer so.
                        for n in lab.nodes.iter().filter(|n| !n.running()) {
                            self.members.remove(&n.name);
                        }
                        if lab.haproxy_node().is_none_or(|n| !n.running()) {
                            self.routing = None;
                        }
                        if etcd_asker(&lab).is_none() {
                            self.etcd = None;
                        }
                        self.lab = Some(lab);
                    }
                    Ok(None) => self.lost(Presence::Gone),
                    Err(e) => self.lost(Presence::EngineLost(format!(
                        "the Docker Engine does not answer ({e})"
                    ))),
                }
            }
            Done::Node(node, answers) => {
                self.asking.remove(&node);
                if let Some(answered) = &mut self.returning {
                    answered.insert(node.clone());
                }
                for (_, answer) in answers {
                    match answer {
                        Answer::Member(Some(m)) => {
                            self.members.insert(node.clone(), m);
                        }
                        Answer::Rest(Some(mut m)) => {
                            // The receiver last read still holds while Patroni says the
                            // replica streams.
                            m.receiver = self
                                .members
                                .get(&node)
                                .filter(|_| m.role == "replica")
                                .filter(|_| {
                                    m.replication_state
                                        .as_deref()
                                        .is_none_or(|r| r == "streaming")
                                })
                                .and_then(|was| was.receiver.clone());
                            self.members.insert(node.clone(), m);
                        }
                        Answer::Member(None) | Answer::Rest(None) => {
                            self.members.remove(&node);
                        }
                        Answer::Routing(r) => self.routing = r,
                        // A view that could not be had keeps the last one: one asker's hiccup
                        // is not etcd losing its quorum.
                        Answer::Etcd(Some(v)) => self.etcd = Some(v),
                        Answer::Etcd(None) => {}
                    }
                }
            }
        }
        Ok(())
    }

    /// The lab cannot be seen: nothing it said still holds.
    fn lost(&mut self, presence: Presence) {
        self.presence = presence;
        self.lab = None;
        self.members.clear();
        self.routing = None;
        self.etcd = None;
    }

    /// The lab as the latest answers have it.
    fn snapshot(&mut self) -> Snapshot {
        let Some(lab) = self
            .lab
            .as_ref()
            .filter(|_| self.presence == Presence::Here)
        else {
            return Snapshot {
                lab: self.name.clone(),
                presence: self.presence.clone(),
                nodes: Vec::new(),
                etcd: None,
                haproxy: None,
            };
        };
        // Back once every running node with a question has answered.
        let asker = etcd_asker(lab);
        let asked = |n: &&crate::model::Node| {
            n.roles.postgres || n.roles.haproxy || asker.as_deref() == Some(n.name.as_str())
        };
        let presence = match &self.returning {
            Some(answered)
                if lab
                    .nodes
                    .iter()
                    .filter(|n| n.running())
                    .filter(asked)
                    .any(|n| !answered.contains(&n.name)) =>
            {
                Presence::Returning
            }
            _ => Presence::Here,
        };
        let primary = self.members.values().find(|m| m.is_primary());
        let nodes = lab
            .nodes
            .iter()
            .map(|n| Node {
                name: n.name.clone(),
                container_name: n.container.name.clone(),
                container: n.container.state.clone(),
                running: n.running(),
                cut_off: n.running() && n.partitioned(&lab.network),
                postgres: n.roles.postgres,
                runs: runs(n.roles),
                member: self.members.get(&n.name).map(|m| Member {
                    role: m.role.clone(),
                    state: m.state.clone(),
                    timeline: m.timeline,
                    lag: primary
                        .filter(|_| m.role == "replica")
                        .and_then(|p| m.lag_behind(p)),
                    streams_from: m
                        .receiver
                        .as_ref()
                        .filter(|r| m.is_streaming() && !r.sender.is_empty())
                        .map(|r| r.sender.clone()),
                }),
            })
            .collect();
        let members: Vec<String> = lab.etcd_nodes().map(|n| n.name.clone()).collect();
        let etcd = (!members.is_empty()).then(|| Etcd {
            up: self.etcd.as_ref().map(|v| v.up.clone()).unwrap_or_default(),
            leader: self.etcd.as_ref().and_then(|v| v.leader.clone()),
            members,
        });
        let haproxy = lab.haproxy_node().map(|n| Haproxy {
            node: n.name.clone(),
            routing: self.routing.clone(),
        });
        if presence == Presence::Here {
            self.returning = None;
        }
        Snapshot {
            lab: lab.name.clone(),
            presence,
            nodes,
            etcd,
            haproxy,
        }
    }
}

/// What a node runs besides PostgreSQL, as `lab status` labels it: "etcd,repo", "haproxy",
/// "monitor" (exporters go with what they export).
fn runs(roles: Roles) -> String {
    let rest = Roles {
        postgres: false,
        exporters: false,
        ..roles
    };
    rest.label()
}

/// The node that asks etcd how it stands: a running node on the lab network, one without a
/// Patroni member first (etcd alone, or HAProxy), so that a member's answer never waits for
/// etcdctl's (a member down costs its dial timeout); any node can ask, as etcdctl reaches the
/// members over the network (on a `--tls` lab with the node's own certificate). None in a lab
/// without etcd members, or with no node running.
fn etcd_asker(lab: &Lab) -> Option<String> {
    lab.etcd_nodes().next()?;
    let mut nodes: Vec<_> = lab
        .nodes
        .iter()
        .filter(|n| n.running() && !n.partitioned(&lab.network))
        .collect();
    nodes.sort_by_key(|n| n.roles.postgres);
    nodes.first().map(|n| n.name.clone())
}

/// Asks `node` its `questions` in one exec, as postgres (the probes read as it does); each
/// answer None where the node did not answer.
async fn probe(
    engine: &Engine,
    lab: &Lab,
    node: &str,
    questions: &[Question],
) -> Vec<(Question, Answer)> {
    let ctx = Ctx::new(engine, lab);
    let argvs: Vec<Vec<String>> = questions
        .iter()
        .map(|q| match q {
            Question::Member => patroni::member_probe(lab.tls),
            Question::Rest => patroni::rest_probe(lab.tls),
            Question::Routing => haproxy::routing_probe(),
            Question::Etcd => etcd::view_probe(&ctx, node, ETCD_WITHIN),
        })
        .collect();
    let script;
    let combined: Vec<&str> = match argvs.as_slice() {
        [one] => one.iter().map(String::as_str).collect(),
        _ => {
            script = combine(&argvs);
            vec!["bash", "-c", script.as_str()]
        }
    };
    // A hung engine must not hold this node's next probe for exec's own longer deadline.
    let asked = timeout(
        PROBE_WITHIN,
        engine.exec(lab.container(node), "postgres", &combined, PROBE_WITHIN),
    )
    .await;
    let outputs = match asked {
        Ok(Ok(out)) if questions.len() == 1 => vec![Some(out)],
        Ok(Ok(out)) => split(&out, questions.len()),
        _ => vec![None; questions.len()],
    };
    questions
        .iter()
        .zip(argvs.iter())
        .zip(outputs)
        .map(|((q, argv), out)| {
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            let answer = match q {
                Question::Member => Answer::Member(out.and_then(|o| {
                    patroni::read_member(&lab.name, node, &argv, &o)
                        .ok()
                        .flatten()
                })),
                Question::Rest => Answer::Rest(out.and_then(|o| patroni::read_rest(&o))),
                Question::Routing => Answer::Routing(out.and_then(|o| haproxy::read_routing(&o))),
                Question::Etcd => Answer::Etcd(
                    out.and_then(|o| etcd::read_view(&ctx, node, &argv, &o).ok().flatten()),
                ),
            };
            (*q, answer)
        })
        .collect()
}

/// One shell script asking every question in turn, each answer followed by MARK and its exit
/// code on a line of their own.
fn combine(argvs: &[Vec<String>]) -> String {
    argvs
        .iter()
        .map(|argv| {
            let words: Vec<String> = argv.iter().map(|w| shell::quote(w)).collect();
            format!("{}; printf '\\n{MARK}%s\\n' $?", words.join(" "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A combined probe's output, back into each question's own; None for a question whose MARK
/// never came (the script was cut short).
fn split(out: &ExecOutput, questions: usize) -> Vec<Option<ExecOutput>> {
    let mut outputs = Vec::new();
    let mut text = String::new();
    for line in out.stdout.lines() {
        match line.strip_prefix(MARK) {
            Some(code) => outputs.push(Some(ExecOutput {
                code: code.trim().parse().unwrap_or(-1),
                stdout: std::mem::take(&mut text),
                stderr: out.stderr.clone(),
            })),
            None => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    outputs.resize(questions, None);
    outputs
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_node_without_postgres_says_what_it_runs() {
        let roles = |label: &str| super::runs(super::Roles::from_label(label));
        assert_eq!(roles("etcd,repo,exporters"), "etcd,repo");
        assert_eq!(roles("monitor"), "monitor");
        assert_eq!(roles("postgres,etcd,exporters"), "etcd");
    }

    use super::*;

    #[test]
    fn a_combined_probe_splits_back_into_each_answer() {
        let script = combine(&[
            vec![
                "/x/memberState".into(),
                "http://localhost:8008/patroni".into(),
            ],
            vec![
                "curl".into(),
                "http://127.0.0.1:7000/;csv".into(),
                "it's".into(),
            ],
        ]);
        assert_eq!(
            script,
            "'/x/memberState' 'http://localhost:8008/patroni'; printf '\\n@@lab-watch-exit:%s\\n' $?\n\
             'curl' 'http://127.0.0.1:7000/;csv' 'it'\\''s'; printf '\\n@@lab-watch-exit:%s\\n' $?"
        );
        let out = ExecOutput {
            code: 0,
            stdout: "{\"a\": 1}\n\n@@lab-watch-exit:0\n# csv\nx,y\n\n@@lab-watch-exit:7\n".into(),
            stderr: "curl: (7)".into(),
        };
        let parts = split(&out, 3);
        let first = parts[0].as_ref().unwrap();
        assert_eq!((first.code, first.stdout.trim()), (0, "{\"a\": 1}"));
        let second = parts[1].as_ref().unwrap();
        assert_eq!((second.code, second.stdout.trim()), (7, "# csv\nx,y"));
        assert!(parts[2].is_none(), "a question cut short has no answer");
    }
}
