//! `lab create`: plan against everything the engine and host hold, make the network, volumes
//! and containers, start them and bootstrap the stack. A failure or Ctrl-C midway removes what
//! was made (unless --keep-on-failure).

use std::net::{IpAddr, TcpListener};
use std::time::Duration;

use crate::engine::{Engine, UploadFile};
use crate::error::{Error, Result};
use crate::image;
use crate::interrupt::Interrupt;
use crate::labels;
use crate::lock::{LabLock, PlanningLock};
use crate::model;
use crate::plan::host::HostView;
use crate::plan::{self, Plan, World};
use crate::progress::Progress;
use crate::render::access::SSH_ENTRY;
use crate::spec::{Entry, LabSpec, Settings, Stage};

#[derive(Clone)]
pub struct CreateOptions {
    pub stage: Stage,
    pub replace: bool,
    pub keep_on_failure: bool,
    /// Held from planning until the lab's network and containers exist, when engines that
    /// share one machine (and so its routes) get labs at the same time: one plans at a time.
    pub machine: Option<std::sync::Arc<tokio::sync::Mutex<()>>>,
}

/// Creates one lab; Ctrl-C (through `interrupt`) stops it and removes what was made.
pub async fn create(
    engine: &Engine,
    progress: &Progress,
    spec: &LabSpec,
    options: &CreateOptions,
    interrupt: &Interrupt,
    lock: &LabLock,
) -> Result<()> {
    check_publish_address(engine, spec.publish)?;
    let mut stop = interrupt.clone();
    let machine = match &options.machine {
        Some(m) => Some(m.clone().lock_owned().await),
        None => None,
    };
    let prepared = tokio::select! {
        prepared = prepare(engine, progress, spec, options) => prepared?,
        _ = stop.pressed() => return Err(Error::Interrupted),
    };
    let (mut plan, planning) = prepared;
    if options.replace {
        // Past this point Ctrl-C waits: the old lab is removed whole, never halfway.
        if super::destroy(engine, progress, lock).await? {
            progress.line(format!(
                "replacing lab {}: the old one is removed",
                spec.name
            ));
            // Planned again against what is there now: the old lab's ports are free again.
            let (world, host) = snapshot(engine, &spec.image).await?;
            plan = plan::plan(spec, &world, &port_bound(engine, &host, spec.publish))?;
        }
        if stop.was_pressed() {
            return Err(Error::InterruptedAfter(format!(
                "the old lab {} was removed; the new one was not made",
                spec.name
            )));
        }
    }

    // From here on everything made carries the lab's labels, which is how it is undone.
    let made = tokio::select! {
        made = async {
            make(engine, progress, &plan, &spec.settings, planning).await?;
            drop(machine);
            let lab = model::get(engine, &spec.name).await?;
            if let Some(entry) = &spec.access {
                let step = progress.step("trainee access");
                super::access::open(engine, &lab, entry, spec).await?;
                step.done(format!(
                    "root on {} over SSH at {}:{}, {}; `lab class sheet` lists it",
                    lab.nodes[0].name,
                    lab.host,
                    lab.nodes[0].host_port(SSH_ENTRY).unwrap_or(SSH_ENTRY),
                    match entry {
                        Entry::Password => "with a password of the lab's own",
                        Entry::Key(_) => "with the trainee's key",
                    }
                ));
            }
            super::bootstrap::stages(engine, progress, &lab, options.stage, None).await?;
            super::snapshot(engine, progress, lock).await?;
            model::mark(engine, &spec.name, labels::READY).await
        } => made,
        _ = stop.pressed() => Err(Error::Interrupted),
    };
    if let Err(e) = made {
        if options.keep_on_failure {
            progress.line(format!(
                "lab {} is left as it is for inspection (--keep-on-failure); `lab destroy \
                 --name {}` removes it",
                spec.name, spec.name
            ));
        } else {
            roll_back(engine, progress, lock).await;
        }
        return Err(e);
    }
    let lab = model::get(engine, &spec.name).await?;
    super::show::print_nodes(&lab);
    Ok(())
}

/// Everything before the first object is made or removed: the image, and the plan, made under
/// the planning lock (returned, still held). With --replace, the plan leaves the old lab out;
/// the caller removes it only once this plan holds, so a refused replace leaves it exactly as
/// it was.
async fn prepare(
    engine: &Engine,
    progress: &Progress,
    spec: &LabSpec,
    options: &CreateOptions,
) -> Result<(Plan, PlanningLock)> {
    image::ensure(engine, progress, &spec.image).await?;
    let planning = crate::lock::acquire(
        engine,
        progress,
        "this create's choice of addresses and ports",
    )
    .await?;
    let (mut world, host) = snapshot(engine, &spec.image).await?;
    if options.replace {
        world.forget(&spec.name);
    }
    let plan = plan::plan(spec, &world, &port_bound(engine, &host, spec.publish))?;
    if let Some(note) = &plan.network.note {
        progress.line(format!("note: {note}"));
    }
    Ok((plan, planning))
}

/// `--dry-run`: each lab's plan, counting the labs planned before it as made; nothing is
/// touched.
pub async fn dry_run(engine: &Engine, specs: &[LabSpec], replace: bool) -> Result<String> {
    let image = &specs
        .first()
        .map_or(crate::image::definition::IMAGE, |s| &s.image);
    let (mut world, host) = snapshot(engine, image).await?;
    let mut plans = Vec::new();
    for spec in specs {
        check_publish_address(engine, spec.publish)?;
        if replace {
            world.forget(&spec.name);
        }
        let plan = plan::plan(spec, &world, &port_bound(engine, &host, spec.publish))?;
        plans.push(plan.describe());
        world.reserve(&plan);
        if engine.image(&spec.image).await?.is_none() {
            plans.push(format!(
                "note: the image {} is not built yet; create builds it first",
                spec.image
            ));
        }
    }
    Ok(plans.join("\n"))
}

/// What the engine and its machine hold right now: for an engine on this machine, the host is
/// read here (and its ports tried by binding them); for one elsewhere, by a probe container on
/// that machine's network, run from `image` (which a create has made sure is there).
async fn snapshot(engine: &Engine, image: &str) -> Result<(World, Option<HostView>)> {
    let (containers, networks, volumes) = tokio::try_join!(
        engine.containers(None),
        engine.networks(),
        engine.volumes(None)
    )?;
    let (routes, host) = if engine.is_local() {
        (plan::routes::read(), None)
    } else {
        let out = engine
            .run_on_host(image, &["sh", "-c", plan::host::PROBE])
            .await?;
        if out.code != 0 {
            return Err(Error::Failed(format!(
                "the routes and listening ports of the Docker Engine {}'s machine could not \
                 be read (a probe container exited with {}: {}), so a lab's subnet and ports \
                 cannot be checked there. Check that the engine can run containers on its host \
                 network, then try again.",
                engine.name(),
                out.code,
                out.stderr.trim()
            )));
        }
        let mut view = HostView::parse(&out.stdout);
        (std::mem::take(&mut view.routes), Some(view))
    };
    Ok((
        World {
            containers,
            networks,
            volumes,
            host_routes: routes,
        },
        host,
    ))
}

/// Whether something on the engine's machine listens on `port` at the publish address right
/// now: tried by binding it here when the engine is on this machine, else as the probe saw it.
fn port_bound<'a>(
    engine: &Engine,
    host: &'a Option<HostView>,
    publish: IpAddr,
) -> impl Fn(u16) -> bool + 'a {
    let local = engine.is_local();
    move |port| match host {
        Some(view) if !local => view.bound(publish, port),
        _ => TcpListener::bind((publish, port)).is_err(),
    }
}

/// Refuses a publish address the engine's ports could not be bound to, or reached at.
fn check_publish_address(engine: &Engine, publish: IpAddr) -> Result<()> {
    if !engine.target().reachable(publish) {
        return Err(Error::Invalid(format!(
            "--publish {publish} would bind the lab's ports to the loopback of the machine the \
             Docker Engine {} runs on, which cannot be reached from here. Give that machine's \
             address, or 0.0.0.0 for every interface (then each lab gets a postgres password \
             of its own with --access).",
            engine.name()
        )));
    }
    if !engine.is_local() {
        // Whether the address is that machine's shows when the container starts.
        return Ok(());
    }
    TcpListener::bind((publish, 0)).map(drop).map_err(|e| {
        Error::Invalid(format!(
            "cannot publish ports on {publish}: {e}. Give an address of this host with \
             --publish (127.0.0.1 for this machine only, 0.0.0.0 for every interface)."
        ))
    })
}

async fn make(
    engine: &Engine,
    progress: &Progress,
    plan: &Plan,
    credentials: &Settings,
    planning: PlanningLock,
) -> Result<()> {
    // First of all: from here on, a create cut short leaves a lab known to be unfinished.
    model::mark(engine, &plan.lab, labels::STARTED).await?;
    if plan.network.create {
        let step = progress.step(format!("network {}", plan.network.name));
        engine.create_network(&plan.network_spec()).await?;
        step.done(format!(
            "created, {} with gateway {}",
            plan.network.subnet, plan.network.gateway
        ));
    }

    let step = progress.step("nodes");
    let secrets = serde_json::to_vec_pretty(credentials).map_err(|e| Error::Io {
        action: "encode the lab's credentials".into(),
        source: e.into(),
    })?;
    // Node by node the engine spends most of this waiting on itself: all at once.
    futures_util::future::try_join_all(plan.nodes.iter().map(|node| {
        let secrets = &secrets;
        async move {
            for (volume, _) in plan::volumes_of(&node.container) {
                engine
                    .create_volume(&volume, &plan.node_labels(node))
                    .await?;
            }
            engine.create_container(&plan.container_spec(node)).await?;
            engine
                .upload(
                    &node.container,
                    &[UploadFile {
                        path: Settings::PATH.into(),
                        content: secrets.clone(),
                        mode: 0o600,
                        uid: 0,
                        gid: 0,
                    }],
                )
                .await
        }
    }))
    .await?;
    // The containers now hold their addresses and ports for any other planner to see.
    drop(planning);
    step.detail("starting");
    futures_util::future::try_join_all(
        plan.nodes
            .iter()
            .map(|node| engine.start_container(&node.container)),
    )
    .await?;
    model::mark(engine, &plan.lab, Stage::Containers.name()).await?;
    step.done(format!(
        "{} running: {}",
        plan.nodes.len(),
        plan.nodes
            .iter()
            .map(|n| format!("{} {}", n.name, n.ip))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok(())
}

/// Removes everything carrying the lab's labels. A request cut short by Ctrl-C may still
/// complete inside the daemon, so the sweep repeats until a pass finds nothing left.
async fn roll_back(engine: &Engine, progress: &Progress, lock: &LabLock) {
    let name = lock.lab();
    let step = progress.step(format!("roll back lab {name}"));
    for _ in 0..4 {
        match super::destroy(engine, progress, lock).await {
            Ok(false) => {
                step.done("everything the lab made is removed");
                return;
            }
            Ok(true) => {}
            Err(e) => progress.line(format!("rollback: {e}")),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    progress.line(format!(
        "rollback could not remove everything; `lab destroy --name {name}` finishes it"
    ));
}
