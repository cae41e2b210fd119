//! `lab reset`: puts a lab back to the state it was created in (the stage `lab create` stopped
//! at, or the finished bootstrap), with the same names, addresses and ports, in a fraction of a
//! create's time. When a create finishes, every node's state (/pgha, /pgdata, the postgres SSH
//! keys) is archived inside the node by `labSnapshot`, with the services frozen for the moment
//! it takes instead of stopped and started again: the archive holds what a file-system snapshot
//! would, which PostgreSQL and etcd recover from as from a power cut. A reset discards the
//! current state, unpacks that archive, and starts the snapshot's primary before Patroni, so
//! that it recovers as the primary it was, on its timeline.

use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::engine::{Engine, ExecOutput};
use crate::error::{Error, Result};
use crate::lock::LabLock;
use crate::model::{self, Lab};
use crate::progress::{Progress, seconds};
use crate::services::{Ctx, catalog, lifecycle, patroni};
use crate::spec::Stage;

/// The node-side script that takes, probes and restores a node's snapshot; it freezes (and
/// kills) the services' processes `lab` declares (`catalog::stop_processes`), in that order.
const TOOL: &str = "labSnapshot";

/// What `labSnapshot take` reports of one node.
#[derive(Deserialize)]
struct Taken {
    bytes: u64,
    frozen_seconds: f64,
}

/// Archives every node's state, each node's services frozen for as long as it takes, and
/// proves the cluster healthy afterwards.
pub async fn snapshot(engine: &Engine, progress: &Progress, lock: &LabLock) -> Result<()> {
    let name = lock.lab();
    let lab = model::get(engine, name).await?;
    let step = progress.step("snapshot for `lab reset`");
    let generation = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
        .to_string();
    let take: Vec<&str> = [TOOL, "take", &generation]
        .into_iter()
        .chain(catalog::stop_processes())
        .collect();
    let taken = on_every_node(engine, &lab, &take, Duration::from_secs(60)).await;
    if let Some((node, why)) = taken.iter().find_map(|(n, r)| failure(n, r)) {
        return Err(Error::Failed(format!(
            "could not archive the state of {node} for `lab reset`: {why}. Its services were \
             only frozen for it and run on; `lab bootstrap --name {name}` takes the snapshot \
             again."
        )));
    }
    let taken: Vec<Taken> = taken
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .filter_map(|out| serde_json::from_str(out.stdout.trim()).ok())
        .collect();
    let bytes: u64 = taken.iter().map(|t| t.bytes).sum();
    let frozen = taken.iter().map(|t| t.frozen_seconds).fold(0.0, f64::max);
    // A frozen moment is nothing to Patroni (ttl 30 s); proven all the same where it runs.
    let health = if lab.marks.iter().any(|m| m == Stage::Patroni.name()) {
        let ctx = Ctx::new(engine, &lab);
        let nodes = lab.postgres_names();
        let healthy = patroni::wait_healthy(&ctx, &nodes, Duration::from_secs(60)).await?;
        format!("; {}", healthy.describe())
    } else {
        String::new()
    };
    step.done(format!(
        "every node's state archived ({} node(s), {:.1} MiB, services frozen {frozen:.1} s at \
         most){health}",
        lab.nodes.len(),
        bytes as f64 / (1024.0 * 1024.0)
    ));
    Ok(())
}

/// What a node holds for `lab reset`: its snapshot's generation, and its archive.
#[derive(Debug, Clone, PartialEq)]
struct Held {
    node: String,
    generation: Option<String>,
    archive: Archive,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Archive {
    Missing,
    /// There, but it does not read back whole.
    Damaged,
    Intact,
}

/// What `labSnapshot probe` prints.
#[derive(Deserialize)]
struct Probed {
    generation: String,
    archive: Archive,
}

async fn held(engine: &Engine, lab: &Lab) -> Result<Vec<Held>> {
    let mut all = Vec::new();
    for (node, result) in
        on_every_node(engine, lab, &[TOOL, "probe"], Duration::from_secs(60)).await
    {
        let out = result?;
        if out.code == 127 {
            return Err(Error::Invalid(format!(
                "lab {name} was made from an image older than this lab tool: {node} has no \
                 {TOOL}, which takes and restores its snapshot. Recreate the lab on the current \
                 image with `lab create --replace --name {name}`.",
                name = lab.name
            )));
        }
        let probed: Probed = serde_json::from_str(out.stdout.trim()).map_err(|_| {
            Error::Failed(format!(
                "{TOOL} probe on {node} did not say what it holds: {}",
                out.said()
            ))
        })?;
        all.push(Held {
            node,
            generation: Some(probed.generation).filter(|g| !g.is_empty()),
            archive: probed.archive,
        });
    }
    Ok(all)
}

/// The generation every node holds whole, or why there is none.
fn one_generation(held: &[Held]) -> std::result::Result<String, String> {
    let mut found: Option<&str> = None;
    for h in held {
        let generation = match (h.archive, h.generation.as_deref()) {
            (Archive::Missing, _) => return Err(format!("{} has no snapshot", h.node)),
            (Archive::Damaged, _) => return Err(format!("{}'s snapshot is damaged", h.node)),
            (Archive::Intact, None) => {
                return Err(format!(
                    "{}'s snapshot carries no generation (it is older than this lab tool, or \
                     was cut short)",
                    h.node
                ));
            }
            (Archive::Intact, Some(g)) => g,
        };
        match found {
            None => found = Some(generation),
            Some(f) if f != generation => {
                return Err(format!(
                    "{}'s snapshot is from another time than {}'s",
                    h.node, held[0].node
                ));
            }
            Some(_) => {}
        }
    }
    found
        .map(str::to_string)
        .ok_or_else(|| "the lab has no nodes".into())
}

/// Whether every node holds a whole snapshot of one generation.
pub async fn has_snapshot(engine: &Engine, name: &str) -> Result<bool> {
    let lab = model::get(engine, name).await?;
    Ok(one_generation(&held(engine, &lab).await?).is_ok())
}

/// Runs `cmd` as root on every node at once, each to its end; every node's result.
async fn on_every_node(
    engine: &Engine,
    lab: &Lab,
    cmd: &[&str],
    timeout: Duration,
) -> Vec<(String, Result<ExecOutput>)> {
    futures_util::future::join_all(lab.nodes.iter().map(|n| async move {
        let out = engine.exec(&n.container.name, "root", cmd, timeout).await;
        (n.name.clone(), out)
    }))
    .await
}

/// What went wrong on `node`, if anything.
fn failure(node: &str, result: &Result<ExecOutput>) -> Option<(String, String)> {
    match result {
        Ok(out) if out.ok() => None,
        Ok(out) => Some((node.to_string(), out.said())),
        Err(e) => Some((node.to_string(), e.to_string())),
    }
}

/// What `labSnapshot restore` prints: what the node's PostgreSQL was in the snapshot
/// ("primary", "replica", or "none" before the patroni stage).
#[derive(Deserialize)]
struct Restored {
    postgres: String,
}

/// Whether a node's restore says its PostgreSQL was the primary.
fn restored_primary(stdout: &str) -> bool {
    serde_json::from_str::<Restored>(stdout.trim()).is_ok_and(|r| r.postgres == "primary")
}

/// Resets a lab to its snapshot, all or nothing: nodes restarted or rejoined as needed, every
/// node's snapshot checked (one generation, whole) before anything is touched, services killed
/// (their state is being discarded), state unpacked, services started, health proven. Should a
/// node fail after that, the services come back where they can and the error says which nodes
/// were reset; the snapshots stay, so a second reset finishes the job.
pub async fn reset(engine: &Engine, progress: &Progress, lock: &LabLock) -> Result<()> {
    let name = lock.lab();
    let started = Instant::now();
    let lab = model::get(engine, name).await?;
    let step = progress.step(format!("reset lab {name}"));
    for node in &lab.nodes {
        model::reattach(engine, &lab, node).await?;
        engine.start_container(&node.container.name).await?;
    }
    let lab = model::get(engine, name).await?;
    if let Err(why) = one_generation(&held(engine, &lab).await?) {
        return Err(Error::Invalid(format!(
            "lab {name} cannot be reset: {why}, and a reset restores every node from one \
             snapshot or none. No node's data or services were touched. `lab bootstrap --name \
             {name}` finishes the lab and snapshots it as it then stands; `lab create --replace --name {name}` makes it \
             anew."
        )));
    }
    let restore: Vec<&str> = [TOOL, "restore"]
        .into_iter()
        .chain(catalog::stop_processes())
        .collect();
    let restored = on_every_node(engine, &lab, &restore, Duration::from_secs(120)).await;
    let ctx = Ctx::new(engine, &lab);
    let failed: Vec<(String, String)> =
        restored.iter().filter_map(|(n, r)| failure(n, r)).collect();
    if !failed.is_empty() {
        let reset: Vec<String> = restored
            .iter()
            .filter(|(n, _)| !failed.iter().any(|(f, _)| f == n))
            .map(|(n, _)| n.clone())
            .collect();
        // Only where the state is whole again: a failed node's is half gone.
        let brought_back = match lifecycle::start_on(&ctx, &reset).await {
            Ok(()) if reset.is_empty() => "every service is stopped".to_string(),
            Ok(()) => format!(
                "the services were started again on {}, and are stopped on the others",
                reset.join(", ")
            ),
            Err(e) => format!("starting the services again failed too: {e}"),
        };
        let so_far = match reset.as_slice() {
            [] => "no node was reset".to_string(),
            [one] => format!("{one} was reset to the snapshot, the others were not"),
            many => format!(
                "{} were reset to the snapshot, the others were not",
                many.join(", ")
            ),
        };
        let names: Vec<&str> = failed.iter().map(|(n, _)| n.as_str()).collect();
        return Err(Error::Failed(format!(
            "the reset of lab {name} failed on {}: {}. So far {so_far}; {brought_back}. Run \
             `lab reset --name {name}` again to finish: every snapshot is still there.",
            names.join(", "),
            failed[0].1
        )));
    }
    let primary = restored
        .iter()
        .find(|(_, r)| r.as_ref().is_ok_and(|out| restored_primary(&out.stdout)))
        .map(|(n, _)| n.as_str());
    let health = lifecycle::start_restored(&ctx, primary).await?;
    step.done(health);
    // The snapshot brought back the password the lab was made with; a rotated one is the
    // lab's now.
    super::access::after_reset(engine, progress, &lab).await?;
    progress.line(format!(
        "lab {name} is back to the state it was created in, in {}",
        seconds(started.elapsed())
    ));
    super::records::note_reset(engine, progress, name, started.elapsed().as_secs_f64()).await;
    // Whatever exercise ran, its fault is gone with the rest.
    if let Err(e) = super::exercise::forget(engine, &lab).await {
        progress.line(format!(
            "note: lab {name}'s exercise could not be marked as ended ({e}); `lab exercise stop              --name {name}` ends it"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(node: &str, generation: Option<&str>, archive: Archive) -> Held {
        Held {
            node: node.into(),
            generation: generation.map(str::to_string),
            archive,
        }
    }

    #[test]
    fn the_node_side_reports_read_back() {
        let probed: Probed =
            serde_json::from_str(r#"{"generation": "17", "archive": "damaged"}"#).unwrap();
        assert_eq!(
            (probed.generation.as_str(), probed.archive),
            ("17", Archive::Damaged)
        );
        assert!(restored_primary("{\"postgres\": \"primary\"}\n"));
        assert!(!restored_primary(r#"{"postgres": "replica"}"#));
        assert!(!restored_primary("labSnapshot: not found"));
        let taken: Taken =
            serde_json::from_str(r#"{"bytes": 1048576, "frozen_seconds": 0.42}"#).unwrap();
        assert_eq!((taken.bytes, taken.frozen_seconds), (1048576, 0.42));
    }

    #[test]
    fn one_whole_generation_everywhere_is_a_snapshot() {
        let all = [
            held("pgha1", Some("7"), Archive::Intact),
            held("pgha2", Some("7"), Archive::Intact),
        ];
        assert_eq!(one_generation(&all), Ok("7".to_string()));
    }

    #[test]
    fn a_missing_damaged_unmarked_or_mixed_snapshot_is_none() {
        let ok = held("pgha1", Some("7"), Archive::Intact);
        let case = |other: Held| one_generation(&[ok.clone(), other]).unwrap_err();
        assert_eq!(
            case(held("pgha2", Some("7"), Archive::Missing)),
            "pgha2 has no snapshot"
        );
        assert_eq!(
            case(held("pgha2", Some("7"), Archive::Damaged)),
            "pgha2's snapshot is damaged"
        );
        assert!(case(held("pgha2", None, Archive::Intact)).contains("carries no generation"));
        // Unmarked everywhere is no snapshot either: each take was cut short.
        let cut = [
            held("pgha1", None, Archive::Intact),
            held("pgha2", None, Archive::Intact),
        ];
        assert!(
            one_generation(&cut)
                .unwrap_err()
                .contains("carries no generation")
        );
        assert_eq!(
            case(held("pgha2", Some("8"), Archive::Intact)),
            "pgha2's snapshot is from another time than pgha1's"
        );
    }
}
