//! `lab start` and `lab stop`: the lab's containers, and the services inside them in the order
//! that keeps the cluster intact: HAProxy, Patroni replicas, then the primary, then etcd on the
//! way down; sshd, etcd, Patroni, then HAProxy on the way up, waiting until the cluster is
//! healthy again and HAProxy routes to it.

use std::time::Instant;

use serde::Serialize;

use crate::engine::{Engine, NODE_STOP_GRACE};
use crate::error::Result;
use crate::lock::LabLock;
use crate::model;
use crate::progress::Progress;
use crate::services::{self, Ctx};

/// What `lab start` or `lab stop` did, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct PowerReport {
    pub lab: String,
    /// The nodes started or stopped.
    pub nodes: Vec<String>,
    /// What became of the services, as the step line says it.
    pub services: String,
    pub seconds: f64,
}

impl PowerReport {
    pub fn new(lab: &str, nodes: &[String], services: String, since: Instant) -> PowerReport {
        PowerReport {
            lab: lab.to_string(),
            nodes: nodes.to_vec(),
            services,
            seconds: since.elapsed().as_secs_f64(),
        }
    }
}

/// Starts the lab's containers and brings its services back.
pub async fn start(engine: &Engine, progress: &Progress, lock: &LabLock) -> Result<PowerReport> {
    let (name, since) = (lock.lab(), Instant::now());
    let lab = model::get(engine, name).await?;
    let step = progress.step(format!("start the nodes of lab {name}"));
    for node in &lab.nodes {
        step.detail(&node.name);
        model::reattach(engine, &lab, node).await?;
        engine.start_container(&node.container.name).await?;
    }
    step.done(format!("{} node(s) running", lab.nodes.len()));
    let lab = model::get(engine, name).await?;
    let step = progress.step("start the services");
    let summary = services::lifecycle::start(&Ctx::new(engine, &lab)).await?;
    step.done(&summary);
    Ok(PowerReport::new(name, &lab.node_names(), summary, since))
}

/// Stops the services cleanly, then the lab's containers.
pub async fn stop(engine: &Engine, progress: &Progress, lock: &LabLock) -> Result<PowerReport> {
    let (name, since) = (lock.lab(), Instant::now());
    let lab = model::get(engine, name).await?;
    let step = progress.step("stop the services");
    let summary = services::lifecycle::stop(&Ctx::new(engine, &lab)).await?;
    step.done(&summary);
    let step = progress.step(format!("stop the nodes of lab {name}"));
    for node in &lab.nodes {
        step.detail(&node.name);
        engine
            .stop_container(&node.container.name, NODE_STOP_GRACE)
            .await?;
    }
    step.done(format!("{} node(s) stopped", lab.nodes.len()));
    Ok(PowerReport::new(name, &lab.node_names(), summary, since))
}
