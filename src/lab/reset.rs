//! `lab reset`: puts a lab back to the state it was created in (the stage `lab create` stopped
//! at, or the finished bootstrap), with the same names, addresses and ports, in a fraction of a
//! create's time. When a create finishes, every node's state (/pgha, /pgdata, the postgres SSH
//! keys) is archived inside the node with the services cleanly stopped; a reset discards the
//! current state and unpacks that archive.

use std::time::{Duration, Instant};

use super::Lab;
use crate::bootstrap::{Ctx, services};
use crate::engine::{Engine, ExecOutput};
use crate::error::{Error, Result};
use crate::progress::{Progress, seconds};

const SNAPSHOT: &str = "/var/lib/pgha-lab/snapshot.tgz";
/// The snapshot's generation, the same on every node of one snapshot: a reset restores only a
/// lab whose nodes all hold the same one.
const GENERATION: &str = "/var/lib/pgha-lab/snapshot.id";
const STATE: &str = "pgha pgdata var/lib/postgresql/.ssh";

/// Archives every node's state; the services are stopped cleanly around it and the lab is
/// healthy again afterwards.
pub async fn snapshot(engine: &Engine, progress: &Progress, name: &str) -> Result<()> {
    let lab = super::get(engine, name).await?;
    let ctx = Ctx::new(engine, &lab);
    let step = progress.step("snapshot for `lab reset`");
    services::stop(&ctx).await?;
    let generation = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    // The archive holds patroni.yaml, the pgpass files and the SSH private key: root's alone.
    let script = format!(
        "set -e; umask 077; mkdir -p {dir}; chmod 700 {dir}; tar -C / -cpf - \
         --ignore-failed-read {STATE} | gzip -1 > {SNAPSHOT}.new; echo {generation} > \
         {GENERATION}.new; mv {SNAPSHOT}.new {SNAPSHOT}; mv {GENERATION}.new {GENERATION}",
        dir = parent(SNAPSHOT)
    );
    let archived = on_every_node(engine, &lab, &script, Duration::from_secs(120)).await;
    // Whatever happened, the services come back before anything is reported.
    let started = services::start(&ctx).await;
    if let Some((node, why)) = archived.iter().find_map(|(n, r)| failure(n, r)) {
        let services = match &started {
            Ok(health) => format!("the services run again ({health})"),
            Err(e) => format!("starting the services again failed too: {e}"),
        };
        return Err(Error::Failed(format!(
            "could not archive the state of {node} for `lab reset`: {why}. {services}; `lab \
             bootstrap --name {name}` takes the snapshot again."
        )));
    }
    started?;
    step.done(format!(
        "every node's state archived ({} node(s))",
        lab.nodes.len()
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

#[derive(Debug, Clone, Copy, PartialEq)]
enum Archive {
    Missing,
    /// There, but it does not read back whole.
    Damaged,
    Intact,
}

async fn held(engine: &Engine, lab: &Lab) -> Result<Vec<Held>> {
    let probe = format!(
        "echo \"generation=$(cat {GENERATION} 2>/dev/null)\"; if [ ! -e {SNAPSHOT} ]; then \
         echo missing; elif gzip -t {SNAPSHOT} 2>/dev/null; then echo intact; else echo \
         damaged; fi"
    );
    let mut all = Vec::new();
    for (node, result) in on_every_node(engine, lab, &probe, Duration::from_secs(60)).await {
        let out = result?;
        let generation = out
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("generation="))
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(str::to_string);
        let archive = match out.stdout.lines().last().map(str::trim) {
            Some("intact") => Archive::Intact,
            Some("damaged") => Archive::Damaged,
            _ => Archive::Missing,
        };
        all.push(Held {
            node,
            generation,
            archive,
        });
    }
    Ok(all)
}

/// The generation every node holds whole, or why there is none. Snapshots from before
/// generations (every node's archive whole, none marked) count as one.
fn one_generation(held: &[Held]) -> std::result::Result<String, String> {
    if !held.is_empty()
        && held
            .iter()
            .all(|h| h.archive == Archive::Intact && h.generation.is_none())
    {
        return Ok("from before generations".into());
    }
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
    let lab = super::get(engine, name).await?;
    Ok(one_generation(&held(engine, &lab).await?).is_ok())
}

/// Runs `script` as root on every node at once, each to its end; every node's result.
async fn on_every_node(
    engine: &Engine,
    lab: &Lab,
    script: &str,
    timeout: Duration,
) -> Vec<(String, Result<ExecOutput>)> {
    futures_util::future::join_all(lab.nodes.iter().map(|n| async move {
        let out = engine
            .exec(&n.name, "root", &["bash", "-c", script], timeout)
            .await;
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

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("/")
}

/// Resets a lab to its snapshot, all or nothing: nodes restarted or rejoined as needed, every
/// node's snapshot checked (one generation, whole) before anything is touched, services killed
/// (their state is being discarded), state unpacked, services started, health proven. Should a
/// node fail after that, the services come back where they can and the error says which nodes
/// were reset; the snapshots stay, so a second reset finishes the job.
pub async fn reset(engine: &Engine, progress: &Progress, name: &str) -> Result<()> {
    let started = Instant::now();
    let lab = super::get(engine, name).await?;
    let step = progress.step(format!("reset lab {name}"));
    for node in &lab.nodes {
        super::reattach(engine, &lab, node).await?;
        engine.start_container(&node.name).await?;
    }
    let lab = super::get(engine, name).await?;
    if let Err(why) = one_generation(&held(engine, &lab).await?) {
        return Err(Error::Invalid(format!(
            "lab {name} cannot be reset: {why}, and a reset restores every node from one \
             snapshot or none. No node's data or services were touched. `lab bootstrap --name \
             {name}` finishes the lab and snapshots it as it then stands; `lab create --replace --name {name}` makes it \
             anew."
        )));
    }
    // One reset at a time inside a node: a second one waits for an earlier one's unpacking.
    let script = format!(
        "set -e; exec 9>{dir}/reset.lock; flock 9; \
         pkill -KILL -x patroni || true; pkill -KILL -x postgres || true; \
         pkill -KILL -x etcd || true; pkill -KILL -x haproxy || true; \
         while pgrep -x 'patroni|postgres|etcd|haproxy' >/dev/null; do sleep 0.1; done; \
         rm -rf /var/lib/postgresql/.ssh; find /pgha /pgdata -mindepth 1 -delete; \
         gzip -dc {SNAPSHOT} | tar -C / -xpf -",
        dir = parent(SNAPSHOT)
    );
    let restored = on_every_node(engine, &lab, &script, Duration::from_secs(120)).await;
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
        let brought_back = match services::start_on(&ctx, &reset).await {
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
    let health = services::start(&ctx).await?;
    step.done(health);
    progress.line(format!(
        "lab {name} is back to the state it was created in, in {}",
        seconds(started.elapsed())
    ));
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
        // A lab whose snapshots all predate generations keeps them.
        let old = [
            held("pgha1", None, Archive::Intact),
            held("pgha2", None, Archive::Intact),
        ];
        assert!(one_generation(&old).is_ok());
        assert_eq!(
            case(held("pgha2", Some("8"), Archive::Intact)),
            "pgha2's snapshot is from another time than pgha1's"
        );
    }
}
