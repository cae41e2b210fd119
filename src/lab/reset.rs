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
const STATE: &str = "pgha pgdata var/lib/postgresql/.ssh";

/// Archives every node's state; the services are stopped cleanly around it and the lab is
/// healthy again afterwards.
pub async fn snapshot(engine: &Engine, progress: &Progress, name: &str) -> Result<()> {
    let lab = super::get(engine, name).await?;
    let ctx = Ctx::new(engine, &lab);
    let step = progress.step("snapshot for `lab reset`");
    services::stop(&ctx).await?;
    // The archive holds patroni.yaml, the pgpass files and the SSH private key: root's alone.
    let script = format!(
        "set -e; umask 077; mkdir -p {dir}; chmod 700 {dir}; tar -C / -cpf - \
         --ignore-failed-read {STATE} | gzip -1 > {SNAPSHOT}.new; mv {SNAPSHOT}.new {SNAPSHOT}",
        dir = parent(SNAPSHOT)
    );
    on_every_node(engine, &lab, &script, |node, out| {
        Error::Failed(format!(
            "could not archive the state of {node} for `lab reset`: {}",
            out.said()
        ))
    })
    .await?;
    services::start(&ctx).await?;
    step.done(format!(
        "every node's state archived ({} node(s))",
        lab.nodes.len()
    ));
    Ok(())
}

/// Whether every node holds a snapshot.
pub async fn has_snapshot(engine: &Engine, name: &str) -> Result<bool> {
    let lab = super::get(engine, name).await?;
    let probe = format!("[ -s {SNAPSHOT} ]");
    Ok(on_every_node(engine, &lab, &probe, |node, _| {
        Error::Failed(format!("{node} has no snapshot"))
    })
    .await
    .is_ok())
}

/// Runs `script` as root on every node at once; `failed` says what a failure on a node means.
async fn on_every_node(
    engine: &Engine,
    lab: &Lab,
    script: &str,
    failed: impl Fn(&str, &ExecOutput) -> Error,
) -> Result<()> {
    let failed = &failed;
    futures_util::future::try_join_all(lab.nodes.iter().map(|n| async move {
        let out = engine
            .exec(
                &n.name,
                "root",
                &["bash", "-c", script],
                Duration::from_secs(120),
            )
            .await?;
        if out.ok() {
            Ok(())
        } else {
            Err(failed(&n.name, &out))
        }
    }))
    .await
    .map(drop)
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("/")
}

/// Resets a lab to its snapshot: nodes restarted or rejoined as needed, services killed (their
/// state is being discarded), state unpacked, services started, health proven.
pub async fn reset(engine: &Engine, progress: &Progress, name: &str) -> Result<()> {
    let started = Instant::now();
    let lab = super::get(engine, name).await?;
    let step = progress.step(format!("reset lab {name}"));
    for node in &lab.nodes {
        super::reattach(engine, &lab, node).await?;
        engine.start_container(&node.name).await?;
    }
    let lab = super::get(engine, name).await?;
    let script = format!(
        "set -e; [ -s {SNAPSHOT} ] || {{ echo 'no snapshot on this node'; exit 3; }}; \
         pkill -KILL -x patroni || true; pkill -KILL -x postgres || true; \
         pkill -KILL -x etcd || true; \
         while pgrep -x 'patroni|postgres|etcd' >/dev/null; do sleep 0.1; done; \
         rm -rf /var/lib/postgresql/.ssh; find /pgha /pgdata -mindepth 1 -delete; \
         gzip -dc {SNAPSHOT} | tar -C / -xpf -"
    );
    on_every_node(engine, &lab, &script, |node, out| match out.code {
        3 => Error::Invalid(format!(
            "lab {name} has no snapshot on {node} to reset to: snapshots are taken when a \
             bootstrap finishes (`lab create`, `lab bootstrap`). Run `lab bootstrap --name \
             {name}` to take one, or recreate the lab."
        )),
        _ => Error::Failed(format!(
            "could not restore the state of {node}: {}",
            out.said()
        )),
    })
    .await?;
    let ctx = Ctx::new(engine, &lab);
    let health = services::start(&ctx).await?;
    step.done(health);
    progress.line(format!(
        "lab {name} is back to the state it was created in, in {}",
        seconds(started.elapsed())
    ));
    Ok(())
}
