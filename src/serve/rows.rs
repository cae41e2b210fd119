//! What the pages show, pure: a lab as its shared poller last saw it (`LabView`, watch's
//! `Snapshot` with its recent events, its course step, its records and the action running on
//! it), and the class page's one row per lab (`Row`) made from it. These are the JSON the API
//! sends and the page's script draws.

use serde::Serialize;

use crate::lab::exercise::Status as ExerciseStatus;
use crate::lab::watch::events::{Event, Presence, Snapshot, Tone};
use crate::lab::{CheckReport, Next};
use crate::lab::{LastDrill, LastReset};

/// How many events a lab page keeps.
pub const EVENTS_KEPT: usize = 50;

/// One event, stamped with its time of day (UTC, as `lab watch` prints it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Logged {
    pub at: String,
    pub text: String,
    pub tone: Tone,
}

impl Logged {
    pub fn of(at: &str, event: &Event) -> Logged {
        Logged {
            at: at.to_string(),
            text: event.to_string(),
            tone: event.tone(),
        }
    }
}

/// An instructor's action on a lab, as the pages show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Action {
    /// "reset" or "check".
    pub what: String,
    pub running: bool,
    /// None while running; then whether it worked.
    pub ok: Option<bool>,
    /// What it said: progress while running, the result or the error after.
    pub message: String,
    /// Seconds since the Unix epoch.
    pub started: u64,
}

/// The lab's course step, as `lab check` judged it, and when.
#[derive(Debug, Clone, Serialize)]
pub struct Course {
    pub report: CheckReport,
    /// Seconds since the Unix epoch.
    pub at: u64,
}

/// One lab as its page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LabView {
    pub lab: String,
    /// None until the poller's first answer.
    pub snapshot: Option<Snapshot>,
    /// The newest last.
    pub events: Vec<Logged>,
    pub course: Option<Course>,
    /// Why the course could not be judged, when it could not.
    pub course_error: Option<String>,
    pub last_reset: Option<LastReset>,
    /// Without its picture, which `/api/labs/NAME/drill.svg` serves.
    pub last_drill: Option<LastDrill>,
    pub action: Option<Action>,
}

impl LabView {
    pub fn new(lab: &str) -> LabView {
        LabView {
            lab: lab.to_string(),
            snapshot: None,
            events: Vec::new(),
            course: None,
            course_error: None,
            last_reset: None,
            last_drill: None,
            action: None,
        }
    }

    /// Keeps `events`, dropping the oldest past EVENTS_KEPT.
    pub fn log(&mut self, events: impl IntoIterator<Item = Logged>) {
        self.events.extend(events);
        let over = self.events.len().saturating_sub(EVENTS_KEPT);
        self.events.drain(..over);
    }
}

/// The class page's row for a lab.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub lab: String,
    /// healthy, degraded, stopped, gone, engine lost, asking.
    pub health: String,
    /// What is wrong, in words; empty when healthy.
    pub problems: Vec<String>,
    pub leader: Option<String>,
    pub timeline: Option<u64>,
    /// Replicas streaming, of the PostgreSQL nodes that are not the leader.
    pub streaming: usize,
    pub replicas: usize,
    /// None in a lab without etcd.
    pub etcd: Option<EtcdCell>,
    /// Where HAProxy's primary port leads; None in a lab without HAProxy.
    pub haproxy: Option<String>,
    pub step: Option<Step>,
    /// The exercise running on the lab, as `lab exercise status` judges it.
    pub exercise: Option<ExerciseStatus>,
    pub last_reset: Option<u64>,
    pub last_drill: Option<LastDrill>,
    pub action: Option<Action>,
    /// The trainee's link, for the instructor's page only.
    pub link: Option<String>,
}

/// etcd in a row: members up of all, whether they make a quorum, and the leader.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EtcdCell {
    pub up: usize,
    pub members: usize,
    pub quorum: bool,
    pub leader: Option<String>,
}

/// The course step in a row: how many steps are done, and the next one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub done: usize,
    pub total: usize,
    /// The first step not done; None when every step is.
    pub next: Option<String>,
    /// What to type for it.
    pub command: Option<Next>,
}

/// The row for `view`.
pub fn row(view: &LabView) -> Row {
    let mut row = Row {
        lab: view.lab.clone(),
        health: "asking".into(),
        problems: Vec::new(),
        leader: None,
        timeline: None,
        streaming: 0,
        replicas: 0,
        etcd: None,
        haproxy: None,
        step: view.course.as_ref().map(|c| step(&c.report)),
        exercise: view.course.as_ref().and_then(|c| c.report.exercise.clone()),
        last_reset: view.last_reset.as_ref().map(|r| r.at),
        last_drill: view
            .last_drill
            .clone()
            .map(|d| LastDrill { svg: None, ..d }),
        action: view.action.clone(),
        link: None,
    };
    let Some(snap) = &view.snapshot else {
        return row;
    };
    match &snap.presence {
        Presence::Gone => {
            row.health = "gone".into();
            row.problems
                .push("no container of the lab is left on the Docker Engine".into());
            return row;
        }
        Presence::EngineLost(why) => {
            row.health = "engine lost".into();
            row.problems.push(why.clone());
            return row;
        }
        Presence::Returning => return row,
        Presence::Here => {}
    }
    if snap.stopped() {
        row.health = "stopped".into();
        row.problems.push("every node is stopped".into());
        return row;
    }
    let leader = snap.leader();
    row.leader = leader.map(|(l, _)| l.to_string());
    row.timeline = leader.and_then(|(_, t)| t);
    if leader.is_none() {
        row.problems.push("no leader".into());
    }
    for n in &snap.nodes {
        if let Some(why) = n.down() {
            row.problems.push(format!("{} down ({why})", n.name));
        }
    }
    let replicas: Vec<_> = snap
        .nodes
        .iter()
        .filter(|n| n.postgres && row.leader.as_deref() != Some(n.name.as_str()))
        .collect();
    row.replicas = replicas.len();
    row.streaming = replicas
        .iter()
        .filter(|n| n.member.as_ref().is_some_and(|m| m.streams_from.is_some()))
        .count();
    if row.streaming < row.replicas {
        row.problems.push(format!(
            "{} of {} replicas streaming",
            row.streaming, row.replicas
        ));
    }
    if let Some(e) = &snap.etcd {
        row.etcd = Some(EtcdCell {
            up: e.up.len(),
            members: e.members.len(),
            quorum: e.has_quorum(),
            leader: e.leader.clone(),
        });
        if !e.has_quorum() {
            row.problems.push("etcd has no quorum".into());
        }
    }
    if let Some(h) = &snap.haproxy {
        row.haproxy = Some(match &h.routing {
            Some(r) if r.primary.is_empty() => "routes nowhere".into(),
            Some(r) => r.primary.join(", "),
            None => "not answering".into(),
        });
        let follows = h
            .routing
            .as_ref()
            .is_some_and(|r| row.leader.as_ref().is_some_and(|l| r.primary.contains(l)));
        if !follows {
            row.problems
                .push("HAProxy does not lead to the leader".into());
        }
    }
    // A lab whose trainee has not set Patroni up yet is where the course has it, not broken:
    // its step says what comes next.
    let unbuilt = !snap.nodes.iter().any(|n| n.member.is_some())
        && view.course.as_ref().is_some_and(|c| !c.report.done);
    row.health = if unbuilt {
        row.problems.clear();
        "in the course"
    } else if row.problems.is_empty() {
        "healthy"
    } else {
        "degraded"
    }
    .into();
    row
}

/// The course step of a check's report.
pub fn step(report: &CheckReport) -> Step {
    let first = report.steps.iter().find(|s| !s.done);
    Step {
        done: report.steps.iter().filter(|s| s.done).count(),
        total: report.steps.len(),
        next: first.map(|s| s.step.clone()),
        command: report
            .steps
            .iter()
            .find_map(|s| s.next.clone())
            .filter(|_| first.is_some()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::watch::events::{Etcd, Haproxy, Member, Node};
    use crate::services::haproxy::Routing;

    fn node(name: &str, role: &str, streams: bool) -> Node {
        Node {
            name: name.into(),
            container_name: name.to_string(),
            container: "running".into(),
            running: true,
            cut_off: false,
            postgres: true,
            runs: "etcd".into(),
            member: Some(Member {
                role: role.into(),
                state: if role == "primary" {
                    "running"
                } else {
                    "streaming"
                }
                .into(),
                timeline: Some(2),
                lag: (role == "replica").then_some(0),
                streams_from: streams.then(|| "a1".into()),
            }),
        }
    }

    fn view(nodes: Vec<Node>, up: &[&str], routes: &[&str]) -> LabView {
        let mut v = LabView::new("a");
        v.snapshot = Some(Snapshot {
            lab: "a".into(),
            presence: Presence::Here,
            nodes,
            etcd: Some(Etcd {
                members: vec!["a1".into(), "a2".into(), "a3".into()],
                up: up.iter().map(|s| s.to_string()).collect(),
                leader: Some("a2".into()),
            }),
            haproxy: Some(Haproxy {
                node: "a4".into(),
                routing: Some(Routing {
                    primary: routes.iter().map(|s| s.to_string()).collect(),
                    replicas: vec![],
                }),
            }),
        });
        v
    }

    #[test]
    fn a_whole_lab_is_healthy() {
        let v = view(
            vec![
                node("a1", "primary", false),
                node("a2", "replica", true),
                node("a3", "replica", true),
            ],
            &["a1", "a2", "a3"],
            &["a1"],
        );
        let r = row(&v);
        assert_eq!(r.health, "healthy", "{:?}", r.problems);
        assert_eq!(r.leader.as_deref(), Some("a1"));
        assert_eq!(r.timeline, Some(2));
        assert_eq!((r.streaming, r.replicas), (2, 2));
        assert_eq!(r.etcd.as_ref().map(|e| (e.up, e.quorum)), Some((3, true)));
        assert_eq!(r.haproxy.as_deref(), Some("a1"));
        assert_eq!(r.step, None);
        assert_eq!(r.last_reset, None);
    }

    #[test]
    fn a_killed_primary_degrades_the_row_and_says_why() {
        let mut dead = node("a1", "primary", false);
        dead.running = false;
        dead.container = "exited".into();
        dead.member = None;
        let v = view(
            vec![
                dead,
                node("a2", "replica", false),
                node("a3", "replica", false),
            ],
            &["a2", "a3"],
            &["a1"],
        );
        let r = row(&v);
        assert_eq!(r.health, "degraded");
        assert_eq!(r.leader, None);
        assert!(r.problems.contains(&"no leader".to_string()), "{r:?}");
        assert!(r.problems.iter().any(|p| p.starts_with("a1 down")), "{r:?}");
        assert!(
            r.problems
                .contains(&"HAProxy does not lead to the leader".to_string())
        );
        // Two of three etcd members still make a quorum.
        assert_eq!(r.etcd.map(|e| (e.up, e.quorum)), Some((2, true)));
    }

    #[test]
    fn a_lab_before_patroni_is_in_the_course_not_degraded() {
        let mut bare = node("a1", "primary", false);
        bare.member = None;
        let mut v = view(vec![bare], &["a1", "a2", "a3"], &[]);
        assert_eq!(row(&v).health, "degraded", "no course judged yet");
        v.course = Some(Course {
            report: CheckReport {
                lab: "a".into(),
                done: false,
                steps: vec![],
                exercise: None,
            },
            at: 0,
        });
        let r = row(&v);
        assert_eq!(r.health, "in the course");
        assert!(r.problems.is_empty(), "{r:?}");
        assert_eq!(r.etcd.map(|e| e.up), Some(3), "etcd is shown all the same");
    }

    #[test]
    fn a_lab_that_cannot_be_seen_says_so() {
        let mut v = LabView::new("a");
        assert_eq!(row(&v).health, "asking");
        v.snapshot = Some(Snapshot {
            lab: "a".into(),
            presence: Presence::EngineLost("the Docker Engine does not answer".into()),
            nodes: vec![],
            etcd: None,
            haproxy: None,
        });
        let r = row(&v);
        assert_eq!(r.health, "engine lost");
        assert_eq!(r.problems, vec!["the Docker Engine does not answer"]);
    }

    #[test]
    fn the_step_is_the_first_not_done_with_its_command() {
        let s = |name: &str, done: bool, next: bool| crate::lab::CheckStep {
            step: name.into(),
            done,
            seen: String::new(),
            next: next.then(|| Next {
                on: "a1".into(),
                user: "postgres".into(),
                command: format!("do {name}"),
            }),
        };
        let report = CheckReport {
            lab: "a".into(),
            done: false,
            steps: vec![
                s("nodes", true, false),
                s("etcd", false, true),
                s("patroni", false, false),
            ],
            exercise: None,
        };
        let step = step(&report);
        assert_eq!((step.done, step.total), (1, 3));
        assert_eq!(step.next.as_deref(), Some("etcd"));
        assert_eq!(step.command.map(|c| c.command).as_deref(), Some("do etcd"));
    }

    #[test]
    fn the_log_keeps_the_newest_events() {
        let mut v = LabView::new("a");
        let e = |i: usize| Logged {
            at: i.to_string(),
            text: String::new(),
            tone: Tone::Change,
        };
        v.log((0..EVENTS_KEPT + 5).map(e));
        assert_eq!(v.events.len(), EVENTS_KEPT);
        assert_eq!(v.events[0].at, "5");
    }
}
