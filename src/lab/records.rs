//! What a lab remembers of the instructor's last actions on it, in the lab's own store
//! (`crate::store`): when it was last reset, and the summary of its last drill with the
//! drill's timeline drawn as SVG. `lab reset` and `lab drill` write them; `lab serve` reads
//! them. Failing to write one never fails the command that did the work: it is said, and the
//! work stands.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::drill::Report;
use crate::engine::Engine;
use crate::error::Result;
use crate::model::{self, Lab};
use crate::plot::{self, Format};
use crate::progress::Progress;
use crate::store;

const LAST_RESET: &str = "last-reset.json";
const LAST_DRILL: &str = "last-drill.json";

/// When a lab was last reset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastReset {
    /// Seconds since the Unix epoch.
    pub at: u64,
    /// How long the reset took, in seconds.
    pub took: f64,
}

/// A lab's last drill, in figures, with its timeline drawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastDrill {
    /// Seconds since the Unix epoch, when the drill ended.
    pub at: u64,
    pub scenario: String,
    pub mode: String,
    pub verdict: String,
    pub write_downtime: Option<f64>,
    pub predicted_low: f64,
    pub predicted_high: f64,
    pub acknowledged: usize,
    pub lost: usize,
    /// The new leader, None when the leader stayed.
    pub new_leader: Option<String>,
    /// The timeline as `lab drill --plot x.svg` draws it; None when it could not be drawn.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub svg: Option<String>,
}

impl LastDrill {
    pub fn of(report: &Report, at: u64) -> LastDrill {
        let svg = plot::render(&report.picture(), Format::Svg)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        LastDrill {
            at,
            scenario: report.scenario.name().to_string(),
            mode: report.mode.clone(),
            verdict: report.verdict.clone(),
            write_downtime: report.writes.downtime,
            predicted_low: report.predicted.low,
            predicted_high: report.predicted.high,
            acknowledged: report.writes.acknowledged,
            lost: report.lost.count,
            new_leader: report
                .leader
                .after
                .is_some()
                .then(|| report.leader.node.clone()),
            svg,
        }
    }
}

/// Now, in seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Notes that lab `name` was just reset, in `took` seconds.
pub async fn note_reset(engine: &Engine, progress: &Progress, name: &str, took: f64) {
    let record = LastReset { at: now(), took };
    note(engine, progress, name, LAST_RESET, &record).await;
}

/// Notes a drill's report as the lab's last drill.
pub async fn note_drill(engine: &Engine, progress: &Progress, report: &Report) {
    let record = LastDrill::of(report, now());
    note(engine, progress, &report.lab, LAST_DRILL, &record).await;
}

async fn note<T: Serialize>(engine: &Engine, progress: &Progress, name: &str, key: &str, v: &T) {
    let written = match model::get(engine, name).await {
        Ok(lab) => store::write_json(engine, &lab, key, v).await,
        Err(e) => Err(e),
    };
    if let Err(e) = written {
        progress.line(format!(
            "note: lab {name}'s record {key} could not be written ({e}); the work itself is done"
        ));
    }
}

/// When `lab` was last reset; None when never (or the record cannot be read).
pub async fn last_reset(engine: &Engine, lab: &Lab) -> Result<Option<LastReset>> {
    store::read_json(engine, lab, LAST_RESET).await
}

/// `lab`'s last drill; None when it had none.
pub async fn last_drill(engine: &Engine, lab: &Lab) -> Result<Option<LastDrill>> {
    store::read_json(engine, lab, LAST_DRILL).await
}
