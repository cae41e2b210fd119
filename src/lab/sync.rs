//! `lab sync on|off [--strict]`: Patroni's synchronous_mode switched in the DCS with
//! `patronictl edit-config`, as a trainee would, then waited for until the primary's
//! pg_stat_replication shows it: a synchronous standby, or none.

use std::time::Duration;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::lock::LabLock;
use crate::model;
use crate::progress::Progress;
use crate::services::{Ctx, patroni, wait_for};

/// How long Patroni may take to apply it: a loop_wait, with room.
const APPLIED: Duration = Duration::from_secs(60);

/// The replication mode a switch left, as `--json` prints it.
#[derive(Debug, serde::Serialize)]
pub struct SyncReport {
    pub lab: String,
    /// async, sync or sync (strict).
    pub mode: String,
    pub primary: String,
    /// The primary's pg_stat_replication once the mode took.
    pub standbys: Vec<patroni::Standby>,
}

pub async fn sync(
    engine: &Engine,
    progress: &Progress,
    lock: &LabLock,
    on: bool,
    strict: bool,
) -> Result<SyncReport> {
    let name = lock.lab();
    if strict && !on {
        return Err(Error::Invalid(
            "--strict goes with `lab sync on`; `lab sync off` turns strict mode off as well".into(),
        ));
    }
    let lab = model::get(engine, name).await?;
    let ctx = Ctx::new(engine, &lab);
    let healthy =
        super::drills::healthy_before(&ctx, "its replication mode is not changed").await?;
    if on && healthy.replicas.is_empty() {
        return Err(Error::Invalid(format!(
            "lab {name} has no replica, and synchronous replication needs one"
        )));
    }
    let primary = healthy.primary;
    let mode = format!("synchronous_mode={on}");
    let strictness = format!("synchronous_mode_strict={strict}");
    let step = progress.step(format!("patronictl edit-config -s {mode} -s {strictness}"));
    let out = patroni::edit_config(&ctx, &primary, &["-s", &mode, "-s", &strictness]).await?;
    if !out.ok() {
        return Err(Error::Failed(format!(
            "patronictl edit-config on {primary} failed: {}",
            out.said()
        )));
    }
    let listed = |states: &[patroni::Standby]| {
        states
            .iter()
            .map(|s| format!("{} {}", s.name, s.state))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let seen = wait_for(APPLIED, Duration::from_millis(500), || async {
        let states = patroni::standbys(&ctx, &primary).await?;
        let synchronous = states.iter().any(patroni::Standby::synchronous);
        Ok(if synchronous == on {
            Ok(states)
        } else {
            Err(listed(&states))
        })
    })
    .await?;
    match seen {
        Ok(standbys) => {
            let mode = if on && strict {
                "sync (strict)"
            } else if on {
                "sync"
            } else {
                "async"
            };
            step.done(format!(
                "{mode} mode; pg_stat_replication on {primary}: {}",
                listed(&standbys)
            ));
            Ok(SyncReport {
                lab: name.to_string(),
                mode: mode.to_string(),
                primary,
                standbys,
            })
        }
        Err(listed) => Err(Error::Failed(format!(
            "Patroni took the change, but after {} s pg_stat_replication on {primary} still \
             shows {listed:?}; `lab logs {primary} patroni` says why",
            APPLIED.as_secs()
        ))),
    }
}
