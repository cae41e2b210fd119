//! What the judge reads of a lab for a running exercise, gathered without touching anything.

use super::faults::{dynamic_hba, node_state};
use crate::engine::Engine;
use crate::error::Result;
use crate::exercise::Exercise;
use crate::exercise::judge::{Drilled, PgNode, Running, Seen};
use crate::lab::records;
use crate::services::{Ctx, etcd, patroni, pgbackrest};

/// Gathers what the judge reads for `run`, touching nothing.
pub(super) async fn see(engine: &Engine, ctx: &Ctx<'_>, run: &Running) -> Result<Seen> {
    let nodes = futures_util::future::join_all(ctx.lab.postgres_nodes().map(|n| async move {
        if !n.running() {
            return PgNode {
                name: n.name.clone(),
                state: None,
                member: None,
            };
        }
        let (state, member) = tokio::join!(node_state(ctx, &n.name), patroni::member(ctx, &n.name));
        PgNode {
            name: n.name.clone(),
            state: state.ok(),
            member: member.ok().flatten(),
        }
    }))
    .await;
    let mut seen = Seen {
        nodes,
        ..Seen::default()
    };
    // What cannot be asked (a node stopped, a service down) is left unseen, and the judge
    // counts it as not mended yet; it never fails the status or `lab check`.
    match run.exercise {
        Exercise::QuorumLost => {
            seen.etcd_members = ctx.lab.etcd_nodes().count();
            if let Ok(view) = etcd::view(ctx).await {
                seen.etcd_up = view.up.len();
                seen.etcd_leader = view.leader.is_some();
            }
        }
        Exercise::HbaLockedOut => {
            let answering = seen
                .nodes
                .iter()
                .find(|n| n.member.is_some())
                .map(|n| n.name.clone());
            if let Some(node) = answering {
                seen.hba = dynamic_hba(ctx, &node).await.ok();
            }
        }
        Exercise::ArchiveFailing => {
            if let Some(repo) = ctx.lab.repo_node().filter(|r| r.running()) {
                seen.newest_backup = pgbackrest::list(ctx, &repo.name)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|l| l.iter().map(|b| b.stop).max());
            }
        }
        Exercise::TuneRto => {
            seen.last_drill = records::last_drill(engine, ctx.lab)
                .await?
                .filter(|d| d.at >= run.started)
                .map(|d| Drilled {
                    scenario: d.scenario,
                    at: d.at,
                    downtime: d.write_downtime,
                    lost: d.lost,
                    mode: d.mode,
                });
        }
        _ => {}
    }
    Ok(seen)
}
