//! `lab bootstrap`, and the end of `lab create`: the HA stack bootstrapped through exec and
//! file upload, stage by stage: access (SSH between nodes), etcd, patroni, haproxy (where the lab
//! has it), backup, each as soon as the stages it needs are done (`Stage::needs`). Each stage
//! ends only when its effect is observed, skips what is already in place (so `lab bootstrap` can
//! finish a lab, twice if need be), and on failure names the node and shows the end of the log
//! that says why.

use std::time::{Duration, Instant};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::interrupt::Interrupt;
use crate::labels;
use crate::lock::LabLock;
use crate::model::{self, Lab};
use crate::progress::{Progress, seconds};
use crate::services::{Ctx, Outcome, etcd, haproxy, monitoring, patroni, pgbackrest, ssh};
use crate::spec::Stage;

/// Runs every stage up to `target`, skipping what is done, and reports each stage's time;
/// returns whether anything changed.
/// With `interrupt`, Ctrl-C stops it after the stages in progress (the lab's marks say how far
/// it got, and the next `lab bootstrap` goes on from there).
pub(super) async fn stages(
    engine: &Engine,
    progress: &Progress,
    lab: &Lab,
    target: Stage,
    interrupt: Option<&Interrupt>,
) -> Result<bool> {
    let stopped = lab.stopped_names();
    if !stopped.is_empty() {
        return Err(Error::Invalid(format!(
            "lab {} has stopped nodes ({}); the bootstrap needs them all. Run `lab start --name \
             {}` first.",
            lab.name,
            stopped.join(", "),
            lab.name
        )));
    }
    let ctx = Ctx::new(engine, lab);
    // The containers are `lab create`'s, not the bootstrap's; a lab without HAProxy has no such
    // stage: no word, and no mark.
    let stages: Vec<Stage> = Stage::ALL
        .into_iter()
        .filter(|s| *s != Stage::Containers && *s <= target)
        .filter(|s| *s != Stage::Haproxy || lab.haproxy_node().is_some())
        .filter(|s| *s != Stage::Monitoring || lab.monitor_node().is_some())
        .collect();
    let started = Instant::now();
    let mut timings = Vec::new();
    let mut changed = false;
    let waves = Stage::waves(&stages, lab.tls);
    for (i, wave) in waves.iter().enumerate() {
        // Every stage of a wave runs to its end, even when another fails: none is cut off
        // halfway, and each one that succeeds is marked.
        let results = futures_util::future::join_all(
            wave.iter().map(|stage| run_stage(&ctx, progress, *stage)),
        )
        .await;
        let mut failure = None;
        for (stage, result) in wave.iter().zip(results) {
            match result {
                Ok((outcome, took)) => {
                    changed |= outcome.changed;
                    timings.push((*stage, took));
                }
                Err(e) => failure = failure.or(Some(e)),
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        if i + 1 < waves.len() && interrupt.is_some_and(Interrupt::was_pressed) {
            let names: Vec<&str> = wave.iter().map(|s| s.name()).collect();
            return Err(Error::InterruptedAfter(format!(
                "stage {}; `lab bootstrap --name {}` goes on from there",
                names.join(" and "),
                lab.name
            )));
        }
    }
    if !timings.is_empty() {
        timings.sort_by_key(|(s, _)| *s);
        let parts: Vec<String> = timings
            .iter()
            .map(|(s, d)| format!("{} {}", s.name(), seconds(*d)))
            .collect();
        progress.line(format!(
            "bootstrap: {} ({} in all, stages that need nothing of each other at once)",
            parts.join(", "),
            seconds(started.elapsed())
        ));
    }
    Ok(changed)
}

/// Runs one stage on what the nodes hold now, marks it done, and says how long it took.
async fn run_stage(
    ctx: &Ctx<'_>,
    progress: &Progress,
    stage: Stage,
) -> Result<(Outcome, Duration)> {
    let step = progress.step(stage.name());
    // Only the nodes the stage works on are asked.
    let facts = ctx
        .facts_where(|r| match stage {
            Stage::Etcd => r.etcd,
            Stage::Patroni => r.postgres,
            Stage::Haproxy => r.haproxy,
            Stage::Backup => r.postgres || r.repo,
            Stage::Monitoring => r.exporters || r.monitor,
            Stage::Access | Stage::Containers => true,
        })
        .await?;
    if stage > Stage::Access
        && let Some(old) = facts.iter().find(|f| !f.helpers)
    {
        return Err(Error::Invalid(format!(
            "lab {name} was made from an image older than this lab tool: {node} has no \
             /etcdSetup.sh or /patroniSetup.sh, which the bootstrap runs as the course does. \
             Recreate the lab on the current image with `lab create --replace --name {name}`.",
            name = ctx.lab.name,
            node = old.node
        )));
    }
    let outcome = match stage {
        Stage::Access => ssh::run(ctx, &facts, progress).await?,
        Stage::Etcd => etcd::run(ctx, &facts).await?,
        Stage::Patroni => patroni::run(ctx, &facts).await?,
        Stage::Haproxy => haproxy::run(ctx, &facts).await?,
        Stage::Backup => pgbackrest::run(ctx, &facts).await?,
        Stage::Monitoring => monitoring::run(ctx, &facts).await?,
        Stage::Containers => unreachable!("not a bootstrap stage"),
    };
    model::mark(ctx.engine, &ctx.lab.name, stage.name()).await?;
    let took = step.done(&outcome.summary);
    Ok((outcome, took))
}

/// `lab bootstrap`: the stages up to `target` on lab `lock`'s, then, for a lab without a whole
/// snapshot (a create cut short before its own), the snapshot `lab reset` returns to (a reset
/// returns a lab to the state it was created in, an exercise's starting point, so an existing
/// one is kept); then the lab is marked ready. Ctrl-C stops it after the stages in progress.
pub async fn bootstrap(
    engine: &Engine,
    progress: &Progress,
    lock: &LabLock,
    target: Stage,
    interrupt: &Interrupt,
) -> Result<()> {
    let lab = model::get(engine, lock.lab()).await?;
    let changed = stages(engine, progress, &lab, target, Some(interrupt)).await?;
    if !super::has_snapshot(engine, lock.lab()).await? {
        super::snapshot(engine, progress, lock).await?;
    } else if changed {
        progress.line(
            "the snapshot for `lab reset` is kept: reset returns the lab to the state it was \
             created in",
        );
    } else {
        progress.line("everything was in place; the snapshot for `lab reset` is kept");
    }
    model::mark(engine, lock.lab(), labels::READY).await
}
