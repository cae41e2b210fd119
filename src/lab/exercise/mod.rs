//! `lab exercise`: starts an exercise (breaks the lab quietly, keeps what it broke in the lab's
//! store), judges it from what the lab shows (`exercise::judge`), gives hints, takes
//! split-brain's answer, and stops it: the exercise's own undo, then the cluster proven healthy,
//! or a reset as the last resort. `faults` makes and takes back each fault, `seen` gathers what
//! the judge reads, `report` says it.

mod faults;
mod report;
mod seen;

use std::time::Duration;

use super::drills::healthy_before;
use super::records::now;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::exercise::judge::{self, Running, Verdict};
use crate::exercise::{Broken, Exercise};
use crate::lock::LabLock;
use crate::model::{self, Lab};
use crate::progress::Progress;
use crate::services::{Ctx, etcd, haproxy, patroni};
use crate::store;
use faults::{SCOPE, make, prepare, undo};
pub use report::{Row, Status, class_code, duration, table};
use seen::see;

/// The record that holds the running exercise (JSON null once it is stopped).
const RECORD: &str = "exercise.json";

/// The exercise running on `lab`, if one.
pub async fn running(engine: &Engine, lab: &Lab) -> Result<Option<Running>> {
    Ok(store::read_json::<Option<Running>>(engine, lab, RECORD)
        .await?
        .flatten())
}

async fn keep(engine: &Engine, lab: &Lab, run: Option<&Running>) -> Result<()> {
    store::write_json(engine, lab, RECORD, &run).await
}

/// Forgets the running exercise, as a reset does (the lab is back as it was made).
pub async fn forget(engine: &Engine, lab: &Lab) -> Result<()> {
    keep(engine, lab, None).await
}

fn none_runs(name: &str) -> Error {
    Error::Invalid(format!(
        "no exercise runs on lab {name}; `lab exercise list` shows them, `lab exercise start \
         NAME --name {name}` starts one"
    ))
}

/// `lab exercise start`: checks the lab fits, keeps the record, then makes the fault; the
/// symptom is what it returns. A fault that cannot be made is taken back.
pub async fn start(
    engine: &Engine,
    progress: &Progress,
    lock: &LabLock,
    exercise: Exercise,
) -> Result<String> {
    let lab = model::get(engine, lock.lab()).await?;
    let name = &lab.name;
    let stopped: Vec<&str> = lab
        .nodes
        .iter()
        .filter(|n| n.out_of_reach(&lab.network))
        .map(|n| n.name.as_str())
        .collect();
    if !stopped.is_empty() {
        return Err(Error::Invalid(format!(
            "lab {name} has nodes stopped or cut off ({}), so an exercise would not start from \
             a healthy lab; `lab start --name {name}` or `lab heal` first",
            stopped.join(", ")
        )));
    }
    if let Some(run) = running(engine, &lab).await? {
        return Err(Error::Invalid(format!(
            "exercise {} already runs on lab {name} (started {} ago); `lab exercise stop --name \
             {name}` ends it first",
            run.exercise.name(),
            duration(now().saturating_sub(run.started))
        )));
    }
    let ctx = Ctx::new(engine, &lab);
    let healthy = healthy_before(&ctx, "an exercise would not start from a healthy lab").await?;
    let mut replicas = healthy.replicas.clone();
    replicas.sort_by_key(|r| lab.node(r).map_or(0, |n| n.index));
    let replica = replicas.last().cloned();
    let needs = |what: &str| {
        Error::Invalid(format!(
            "exercise {} needs {what}, which lab {name} does not have",
            exercise.name()
        ))
    };
    let etcd_nodes: Vec<String> = lab.etcd_nodes().map(|n| n.name.clone()).collect();
    let node = match exercise {
        Exercise::QuorumLost | Exercise::TuneRto => None,
        Exercise::ArchiveFailing => Some(
            lab.repo_node()
                .ok_or_else(|| needs("a pgBackRest repository"))?
                .name
                .clone(),
        ),
        _ => Some(replica.ok_or_else(|| needs("a replica"))?),
    };
    let nodes = match exercise {
        // A majority, the members last in node order: the primary's own etcd is the last to go.
        Exercise::QuorumLost => {
            let majority = etcd_nodes.len() / 2 + 1;
            etcd_nodes[etcd_nodes.len() - majority..].to_vec()
        }
        _ => Vec::new(),
    };
    let mut run = Running {
        exercise,
        started: now(),
        broken: Broken {
            node,
            nodes,
            primary: healthy.primary.clone(),
            scope: SCOPE.into(),
            tls: lab.tls,
        },
        lost: Vec::new(),
        answer: None,
        hints: 0,
        solved: None,
        saved: serde_json::Value::Null,
    };
    prepare(&ctx, &mut run).await?;
    // Kept before the fault is made: a start killed halfway still leaves what stop undoes.
    keep(engine, &lab, Some(&run)).await?;
    let step = progress.step(format!("exercise {} on lab {name}", exercise.name()));
    match make(&ctx, &run).await {
        Ok(()) => {
            step.done("ready");
            Ok(exercise.symptom(&run.broken))
        }
        Err(e) => {
            let back = match undo(&ctx, &run).await {
                Ok(_) => forget(engine, &lab).await,
                Err(e) => Err(e),
            };
            Err(Error::Failed(match back {
                Ok(()) => format!(
                    "exercise {} could not be started on lab {name}: {e}; what it had done is \
                     taken back",
                    exercise.name()
                ),
                Err(left) => format!(
                    "exercise {} could not be started on lab {name}: {e}; taking it back failed \
                     too ({left}): `lab exercise stop --name {name}` tries again, `lab reset` \
                     puts the lab back whole",
                    exercise.name()
                ),
            }))
        }
    }
}

/// Judges the running exercise of lab `lab`; None when none runs. The first time it is seen
/// solved is kept, for the class's table.
pub async fn judged(engine: &Engine, lab: &Lab) -> Result<Option<Status>> {
    let Some(mut run) = running(engine, lab).await? else {
        return Ok(None);
    };
    let ctx = Ctx::new(engine, lab);
    let seen = see(engine, &ctx, &run).await?;
    let Verdict { solved, wrong } = judge::judge(&run, &seen);
    let at = now();
    if solved && run.solved.is_none() {
        run.solved = Some(at);
        keep(engine, lab, Some(&run)).await?;
    }
    Ok(Some(Status {
        lab: lab.name.clone(),
        exercise: run.exercise,
        symptom: run.exercise.symptom(&run.broken),
        solved,
        wrong,
        elapsed: at.saturating_sub(run.started),
        took: run.solved.map(|s| s.saturating_sub(run.started)),
        hints: run.hints,
    }))
}

/// `lab exercise status` of one lab: an error when none runs.
pub async fn status(engine: &Engine, name: &str) -> Result<Status> {
    let lab = model::get(engine, name).await?;
    judged(engine, &lab).await?.ok_or_else(|| none_runs(name))
}

/// `lab exercise hint`: the next of the three hints (the last again once all are given).
pub async fn hint(engine: &Engine, name: &str) -> Result<String> {
    let lab = model::get(engine, name).await?;
    let mut run = running(engine, &lab)
        .await?
        .ok_or_else(|| none_runs(name))?;
    let hints = run.exercise.hints(&run.broken);
    let n = (run.hints + 1).min(hints.len());
    if n > run.hints {
        run.hints = n;
        keep(engine, &lab, Some(&run)).await?;
    }
    Ok(format!("hint {n} of {}: {}", hints.len(), hints[n - 1]))
}

/// `lab exercise answer ID...`: split-brain's lost writes, kept for the judge.
pub async fn answer(engine: &Engine, name: &str, ids: Vec<i64>) -> Result<String> {
    let lab = model::get(engine, name).await?;
    let mut run = running(engine, &lab)
        .await?
        .ok_or_else(|| none_runs(name))?;
    if !run.exercise.takes_answer() {
        return Err(Error::Invalid(format!(
            "exercise {} takes no answer: it is judged by the lab's state alone (`lab exercise \
             status --name {name}`)",
            run.exercise.name()
        )));
    }
    let said = judge::ids(&ids);
    run.answer = Some(ids);
    keep(engine, &lab, Some(&run)).await?;
    Ok(format!(
        "answer kept: orders {said} were lost; `lab exercise status --name {name}` judges it"
    ))
}

/// `lab exercise stop`: the exercise's undo, then the cluster proven healthy; a reset when
/// that fails. What was done, in a sentence.
pub async fn stop(engine: &Engine, progress: &Progress, lock: &LabLock) -> Result<String> {
    let lab = model::get(engine, lock.lab()).await?;
    let name = &lab.name;
    let run = running(engine, &lab)
        .await?
        .ok_or_else(|| none_runs(name))?;
    let ctx = Ctx::new(engine, &lab);
    let step = progress.step(format!("put lab {name} back from {}", run.exercise.name()));
    let undone = match undo(&ctx, &run).await {
        Ok(did) => proven(&ctx).await.map(|()| did),
        Err(e) => Err(e),
    };
    match undone {
        Ok(did) => {
            step.done(&did);
            forget(engine, &lab).await?;
            Ok(format!(
                "exercise {} stopped on lab {name}: {did}; the cluster is healthy",
                run.exercise.name()
            ))
        }
        Err(e) => {
            drop(step);
            progress.line(format!(
                "the exercise's undo did not bring lab {name} back ({e}); resetting it"
            ));
            // The reset starts stopped nodes itself, refuses a lab without a snapshot, and
            // ends the exercise once it is done.
            if let Err(r) = super::reset(engine, progress, lock).await {
                return Err(Error::Failed(format!(
                    "exercise {} could not be undone on lab {name} ({e}), and resetting the \
                     lab failed too: {r}",
                    run.exercise.name()
                )));
            }
            Ok(format!(
                "exercise {} stopped on lab {name}: its undo did not bring the lab back, so the \
                 lab was reset to how it was made, losing what was written since",
                run.exercise.name()
            ))
        }
    }
}

/// Every etcd member answers, the cluster is healthy and HAProxy (where there is one) routes
/// to it as Patroni says, within two minutes.
async fn proven(ctx: &Ctx<'_>) -> Result<()> {
    let members: Vec<String> = ctx.lab.etcd_nodes().map(|n| n.name.clone()).collect();
    if !members.is_empty() {
        etcd::wait_healthy(ctx, &members, Duration::from_secs(60)).await?;
    }
    patroni::wait_healthy(ctx, &ctx.lab.postgres_names(), Duration::from_secs(120)).await?;
    if ctx.lab.haproxy_node().is_some() {
        haproxy::wait_routing(ctx, Duration::from_secs(30)).await?;
    }
    Ok(())
}
