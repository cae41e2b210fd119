//! Locks kept on the engine itself, so that they hold for every machine driving it: a lock is a
//! small container with a well-known name (creating a taken name fails, atomically, on every
//! engine), running `cat` on a stdin its holder keeps attached. When the holder goes, however
//! it goes (kill -9 included), its connection closes, `cat` reads EOF and exits, and the engine
//! removes the container (AutoRemove): a dead holder's lock is no lock.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig};
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, InspectContainerOptions,
    RemoveContainerOptions, RenameContainerOptions, StartContainerOptions,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{Engine, api, is_not_found};
use crate::error::{Error, Result};

/// A lock to take: its container's name, the image to run it from, and the labels that say who
/// holds it.
#[derive(Debug, Clone)]
pub struct LockSpec {
    pub name: String,
    pub image: String,
    pub labels: HashMap<String, String>,
}

/// A lock container someone holds, as the engine shows it.
#[derive(Debug, Clone)]
pub struct LockInfo {
    pub id: String,
    pub labels: HashMap<String, String>,
    /// The Engine's word for the state: created, running, exited, removing, ...
    pub state: String,
    /// How long ago it was created, by the engine's own clock; read only for a container still
    /// in "created" (the one case where age decides anything).
    pub age: Option<Duration>,
}

/// A lock this process holds. Dropping it lets go: a task frees the lock's name and closes the
/// attach (`released` lets the process wait for that before it exits); should the process die
/// first, the closed attach lets go all the same.
pub struct HeldLock {
    name: String,
    release: Option<oneshot::Sender<()>>,
    keeper: Option<JoinHandle<()>>,
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        drop(self.release.take());
        if let Some(keeper) = self.keeper.take() {
            let mut pending = PENDING.lock().unwrap_or_else(PoisonError::into_inner);
            pending.retain(|(_, k)| !k.is_finished());
            pending.push((self.name.clone(), keeper));
        }
    }
}

/// Locks this process let go of whose containers may not be gone yet, by name.
static PENDING: Mutex<Vec<(String, JoinHandle<()>)>> = Mutex::new(Vec::new());

/// How long letting go of a lock may take before it is left to the engine (the closed attach).
const RELEASE: Duration = Duration::from_secs(5);

/// Waits until the locks this process let go of (those named `name`, or all) are free on the
/// engine, so that the next command, or this one taking the lock again, finds them free.
pub async fn released(name: Option<&str>) {
    let keepers: Vec<JoinHandle<()>> = {
        let mut pending = PENDING.lock().unwrap_or_else(PoisonError::into_inner);
        let (mine, rest) = std::mem::take(&mut *pending)
            .into_iter()
            .partition(|(n, _)| name.is_none_or(|name| name == n));
        *pending = rest;
        mine.into_iter().map(|(_, k)| k).collect()
    };
    if !keepers.is_empty() {
        let _ = tokio::time::timeout(RELEASE, futures_util::future::join_all(keepers)).await;
    }
}

impl Engine {
    /// Takes the lock `spec` names: Some when this process now holds it, None when its name is
    /// taken (someone else's lock, live or stale: `lock` tells which).
    pub async fn claim_lock(&self, spec: &LockSpec) -> Result<Option<HeldLock>> {
        released(Some(&spec.name)).await;
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            // `cat` ends at EOF on its stdin: when the holder's attach closes.
            entrypoint: Some(vec!["cat".into()]),
            labels: Some(spec.labels.clone()),
            open_stdin: Some(true),
            stdin_once: Some(true),
            attach_stdin: Some(true),
            host_config: Some(HostConfig {
                auto_remove: Some(true),
                // No address and no log: the planner reads every container's addresses and
                // ports, and a lock has neither.
                network_mode: Some("none".into()),
                log_config: Some(HostConfigLogConfig {
                    typ: Some("none".into()),
                    config: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptions {
            name: Some(spec.name.clone()),
            ..Default::default()
        };
        let id = match self.docker.create_container(Some(options), body).await {
            Ok(created) => created.id,
            Err(e) if status(&e) == Some(409) => return Ok(None),
            Err(e) if is_not_found(&e) => return Err(image_missing(self, &spec.image, &spec.name)),
            Err(e) => return Err(api(format!("create the lock container {}", spec.name))(e)),
        };
        // Attached before it starts, as `docker run -i` does: `cat` must never run without
        // its holder's stdin.
        let attach = AttachContainerOptions {
            stdin: true,
            stream: true,
            ..Default::default()
        };
        let attached = match self.docker.attach_container(&id, Some(attach)).await {
            Ok(attached) => attached,
            Err(e) => return self.abandon(&id, &spec.name, "attach to", e).await,
        };
        if let Err(e) = self
            .docker
            .start_container(&id, None::<StartContainerOptions>)
            .await
        {
            return self.abandon(&id, &spec.name, "start", e).await;
        }
        let (release, let_go) = oneshot::channel::<()>();
        let (engine, name) = (self.clone(), spec.name.clone());
        let keeper = tokio::spawn(async move {
            // Until the HeldLock drops (the sender with it).
            let _ = let_go.await;
            engine.let_go(&id, &name).await;
            // EOF for `cat`: it ends, and AutoRemove takes the container.
            drop(attached);
        });
        Ok(Some(HeldLock {
            name: spec.name.clone(),
            release: Some(release),
            keeper: Some(keeper),
        }))
    }

    /// A lock container whose attach or start failed: removed again. Gone under us means a
    /// contender judged it stale and broke it, so the lock is taken (None); anything else is
    /// an error.
    async fn abandon(
        &self,
        id: &str,
        name: &str,
        action: &str,
        err: bollard::errors::Error,
    ) -> Result<Option<HeldLock>> {
        self.gone(id).await;
        if is_not_found(&err) {
            return Ok(None);
        }
        Err(api(format!("{action} the lock container {name}"))(err))
    }

    /// The lock container `name`, or None when nobody holds that lock.
    pub async fn lock(&self, name: &str) -> Result<Option<LockInfo>> {
        let c = match self
            .docker
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
        {
            Ok(c) => c,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(api(format!("inspect the lock container {name}"))(e)),
        };
        let state = c
            .state
            .and_then(|s| s.status)
            .map(|s| s.to_string())
            .unwrap_or_else(|| "unknown".into());
        let age = if state == "created" {
            self.age(c.created.as_deref()).await?
        } else {
            None
        };
        Ok(Some(LockInfo {
            id: c.id.unwrap_or_default(),
            labels: c.config.and_then(|c| c.labels).unwrap_or_default(),
            state,
            age,
        }))
    }

    /// Time since `created` by the engine's clock, not this machine's, which may be off.
    async fn age(&self, created: Option<&str>) -> Result<Option<Duration>> {
        let info = self
            .docker
            .info()
            .await
            .map_err(api("read the engine's time"))?;
        let parse = |t: Option<&str>| t.and_then(crate::lab::parse_time);
        Ok(match (parse(created), parse(info.system_time.as_deref())) {
            (Some(created), Some(now)) => Some(Duration::from_secs_f64((now - created).max(0.0))),
            _ => None,
        })
    }

    /// Breaks a stale lock: removes its container, by id so a newer lock of the same name is
    /// never hit.
    pub async fn break_lock(&self, id: &str) -> Result<()> {
        match self.docker.remove_container(id, Some(force())).await {
            Err(e) if !is_not_found(&e) && status(&e) != Some(409) => {
                Err(api(format!("remove the stale lock container {id}"))(e))
            }
            _ => Ok(()),
        }
    }

    /// Frees lock `name` at once: its container is renamed out of the way (milliseconds, where
    /// removing it takes a tenth of a second or more) and left for AutoRemove once its attach
    /// closes. Should the rename fail, it is removed here instead.
    async fn let_go(&self, id: &str, name: &str) {
        let released = format!("{name}.released.{}", &id[..id.len().min(12)]);
        let renamed = self
            .docker
            .rename_container(id, RenameContainerOptions { name: released })
            .await;
        if renamed.is_err() {
            self.gone(id).await;
        }
    }

    /// Removes a lock container and waits until the engine no longer has it (the engine's own
    /// AutoRemove may be at it too), so its name is free when this returns. Best effort: what
    /// is left, the engine removes once the attach closes.
    async fn gone(&self, id: &str) {
        let _ = self.docker.remove_container(id, Some(force())).await;
        let deadline = tokio::time::Instant::now() + RELEASE;
        while tokio::time::Instant::now() < deadline {
            match self
                .docker
                .inspect_container(id, None::<InspectContainerOptions>)
                .await
            {
                // Gone, or the engine no longer answers: nothing more to wait for.
                Err(_) => return,
                Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
}

fn force() -> RemoveContainerOptions {
    RemoveContainerOptions {
        force: true,
        ..Default::default()
    }
}

fn status(err: &bollard::errors::Error) -> Option<u16> {
    match err {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

fn image_missing(engine: &Engine, image: &str, lock: &str) -> Error {
    Error::Failed(format!(
        "the lock {lock} cannot be taken: the lab image {image} is not on the Docker Engine \
         {}, and lab keeps its locks there as small containers of that image (so that every \
         machine driving the engine sees them). Build it there with `lab image build --engine \
         {}` (a few minutes, once), or let `lab create` ship it from an engine that has it, then \
         run the command again.",
        engine.name(),
        engine.name()
    ))
}
