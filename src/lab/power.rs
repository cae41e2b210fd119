//! `lab start` and `lab stop`: the lab's containers, and the services inside them in the order
//! that keeps the cluster intact: HAProxy, Patroni replicas, then the primary, then etcd on the
//! way down; sshd, etcd, Patroni, then HAProxy on the way up, waiting until the cluster is
//! healthy again and HAProxy routes to it.

use crate::bootstrap::{self, Ctx};
use crate::engine::{Engine, NODE_STOP_GRACE};
use crate::error::Result;
use crate::progress::Progress;

/// Starts the lab's containers and brings its services back.
pub async fn start(engine: &Engine, progress: &Progress, name: &str) -> Result<()> {
    let lab = super::get(engine, name).await?;
    let step = progress.step(format!("start the nodes of lab {name}"));
    for node in &lab.nodes {
        step.detail(&node.name);
        super::reattach(engine, &lab, node).await?;
        engine.start_container(&node.name).await?;
    }
    step.done(format!("{} node(s) running", lab.nodes.len()));
    let lab = super::get(engine, name).await?;
    let step = progress.step("start the services");
    let summary = bootstrap::services::start(&Ctx::new(engine, &lab)).await?;
    step.done(summary);
    Ok(())
}

/// Stops the services cleanly, then the lab's containers.
pub async fn stop(engine: &Engine, progress: &Progress, name: &str) -> Result<()> {
    let lab = super::get(engine, name).await?;
    let step = progress.step("stop the services");
    let summary = bootstrap::services::stop(&Ctx::new(engine, &lab)).await?;
    step.done(summary);
    let step = progress.step(format!("stop the nodes of lab {name}"));
    for node in &lab.nodes {
        step.detail(&node.name);
        engine.stop_container(&node.name, NODE_STOP_GRACE).await?;
    }
    step.done(format!("{} node(s) stopped", lab.nodes.len()));
    Ok(())
}
