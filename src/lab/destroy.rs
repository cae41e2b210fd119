//! `lab destroy`: removes a lab's containers and volumes, and its network when the lab created
//! it and nothing foreign uses it. Only objects carrying the lab's labels are touched.

use std::collections::BTreeSet;

use crate::engine::Engine;
use crate::error::Result;
use crate::labels;
use crate::lock::{self, LabLock};
use crate::progress::Progress;

/// Destroys the lab; returns whether there was anything to destroy.
pub async fn destroy(engine: &Engine, progress: &Progress, lock: &LabLock) -> Result<bool> {
    let name = lock.lab();
    let filter = labels::of_lab(name);
    let (containers, volumes, networks) = tokio::try_join!(
        engine.containers(Some(&filter)),
        engine.volumes(Some(&filter)),
        engine.networks(),
    )?;
    let networks: Vec<_> = networks
        .into_iter()
        .filter(|n| {
            n.labels.get(labels::LAB).map(String::as_str) == Some(name)
                && n.labels.get(labels::NETWORK_CREATED).map(String::as_str) == Some("true")
        })
        .collect();
    if containers.is_empty() && volumes.is_empty() && networks.is_empty() {
        return Ok(false);
    }
    let step = progress.step(format!("destroy lab {name}"));
    futures_util::future::try_join_all(containers.iter().map(|c| engine.remove_container(&c.name)))
        .await?;
    // With the containers gone, neither the volumes nor the network wait for the other.
    let volumes_removed =
        futures_util::future::try_join_all(volumes.iter().map(|v| engine.remove_volume(&v.name)));
    let networks_removed =
        futures_util::future::try_join_all(networks.iter().map(|network| async {
            let users = foreign_users(engine, &network.name).await?;
            if users.is_empty() {
                engine.remove_network(&network.name).await?;
                return Ok(None);
            }
            Ok::<_, crate::error::Error>(Some(format!(
                "network {} stays: {} still use(s) it",
                network.name,
                users.into_iter().collect::<Vec<_>>().join(", ")
            )))
        }));
    let (_, kept) = tokio::try_join!(volumes_removed, networks_removed)?;
    let kept: Vec<String> = kept.into_iter().flatten().collect();
    // The marker volumes are bookkeeping (labels::MARK), not the lab's data.
    let data = volumes
        .iter()
        .filter(|v| !v.labels.contains_key(labels::MARK))
        .count();
    let mut summary = format!(
        "{} container(s), {} volume(s), {} network(s) removed",
        containers.len(),
        data,
        networks.len() - kept.len()
    );
    for k in kept {
        summary.push_str("; ");
        summary.push_str(&k);
    }
    step.done(summary);
    Ok(true)
}

/// Containers other than the lab's own that are attached to the network now, or would attach
/// when started (a stopped container's endpoint config names it).
async fn foreign_users(engine: &Engine, network: &str) -> Result<BTreeSet<String>> {
    let mut users: BTreeSet<String> = engine
        .network(network)
        .await?
        .map(|n| n.attached.into_iter().collect())
        .unwrap_or_default();
    for c in engine.containers(None).await? {
        if c.endpoints.iter().any(|e| e.network == network) {
            users.insert(c.name);
        }
    }
    Ok(users)
}

/// What `lab destroy --all` did: the labs removed, and those passed by because another
/// command was changing them (with that command).
pub struct DestroyedAll {
    pub destroyed: Vec<String>,
    pub busy: Vec<(String, String)>,
}

/// The name of every lab on the engine, including what a failed run may have left behind (a
/// volume or a network without containers): what `lab destroy --all` removes.
pub async fn all_names(engine: &Engine) -> Result<BTreeSet<String>> {
    let (containers, volumes, networks) = tokio::try_join!(
        engine.containers(Some(labels::LAB)),
        engine.volumes(Some(labels::LAB)),
        engine.networks(),
    )?;
    Ok(containers
        .iter()
        .map(|c| &c.labels)
        .chain(volumes.iter().map(|v| &v.labels))
        .chain(networks.iter().map(|n| &n.labels))
        .filter_map(|l| l.get(labels::LAB).cloned())
        .collect())
}

/// Destroys the labs named (`all_names`); a lab that another command is changing (a create, a
/// reset) is passed by and reported, not removed under it.
pub async fn destroy_all(
    engine: &Engine,
    progress: &Progress,
    names: BTreeSet<String>,
) -> Result<DestroyedAll> {
    let mut done = DestroyedAll {
        destroyed: Vec::new(),
        busy: Vec::new(),
    };
    for name in names {
        match lock::lab_if_free(engine, &name).await? {
            Ok(lock) => {
                destroy(engine, progress, &lock).await?;
                done.destroyed.push(name);
            }
            Err(holder) => {
                progress.line(format!(
                    "lab {name} is left as it is: {holder} is changing it"
                ));
                done.busy.push((name, holder));
            }
        }
    }
    Ok(done)
}
