//! `lab create` of a class over several engines: every engine asked first (one that does not
//! answer, or a class that does not fit, is refused before anything is made anywhere), each lab
//! placed whole on one engine by room, the image shipped to the engines without it, then each
//! engine's share made at the same time as the others', as many at once as it has cores.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::engine::{Engine, EngineInfo};
use crate::error::{Error, Result};
use crate::image;
use crate::interrupt::Interrupt;
use crate::plan::placement::{self, Room};
use crate::progress::Progress;

/// Where each lab goes: the engines with a share, in the order given.
pub struct Spread {
    pub shares: Vec<Share>,
}

/// One engine's share of a class, with what its daemon said of itself when it was placed.
pub struct Share {
    pub engine: Engine,
    pub labs: Vec<String>,
    info: EngineInfo,
}

/// Places `names` over `engines` by room (see `plan::placement`); a lab that exists already
/// stays on its engine.
pub async fn place(engines: &[Engine], names: &[String]) -> Result<Spread> {
    let asks = engines.iter().map(|e| async move {
        let (info, labs) = tokio::try_join!(e.info(), crate::model::all(e))?;
        Ok::<_, Error>((info, labs))
    });
    let answers = futures_util::future::try_join_all(asks).await?;
    let mut existing = BTreeMap::new();
    let rooms: Vec<Room> = engines
        .iter()
        .zip(&answers)
        .map(|(engine, (info, labs))| {
            for lab in labs {
                existing.insert(lab.name.clone(), engine.name().to_string());
            }
            Room {
                engine: engine.name().to_string(),
                memory_bytes: info.memory_bytes,
                labs: labs.len(),
            }
        })
        .collect();
    let placed = placement::place(&rooms, names, &existing)?;
    let shares = engines
        .iter()
        .zip(answers)
        .map(|(engine, (info, _))| Share {
            labs: names
                .iter()
                .zip(&placed)
                .filter(|(_, e)| e.as_str() == engine.name())
                .map(|(n, _)| n.clone())
                .collect(),
            engine: engine.clone(),
            info,
        })
        .filter(|share| !share.labs.is_empty())
        .collect();
    Ok(Spread { shares })
}

/// Makes sure every engine with a share has the image: shipped from an engine that has it, or
/// (none has it) built on the first and shipped from there.
pub async fn ship_image(
    spread: &Spread,
    all: &[Engine],
    progress: &Progress,
    tag: &str,
) -> Result<()> {
    let mut with = None;
    let mut without = Vec::new();
    for Share { engine, .. } in &spread.shares {
        match engine.image(tag).await? {
            Some(_) if with.is_none() => with = Some(engine.clone()),
            Some(_) => {}
            None => without.push(engine.clone()),
        }
    }
    if with.is_none() {
        // Any engine given may have it, a share or not.
        for engine in all {
            if engine.image(tag).await?.is_some() {
                with = Some(engine.clone());
                break;
            }
        }
    }
    let source = match with {
        Some(source) => source,
        None => {
            let first = without.remove(0);
            image::ensure(&first, progress, tag).await?;
            first
        }
    };
    for target in &without {
        ship(&source, target, progress, tag).await?;
    }
    Ok(())
}

/// Ships the image from `source` to `target` as a step of its own.
async fn ship(source: &Engine, target: &Engine, progress: &Progress, tag: &str) -> Result<()> {
    let step = progress.step(format!("image {tag} to {}", target.name()));
    let mut say = |line: &str| step.detail(line);
    let moved = image::ship(source, target, tag, &mut say).await?;
    step.done(format!(
        "shipped from {} ({:.0} MB)",
        source.name(),
        moved as f64 / 1e6
    ));
    Ok(())
}

/// For a create on one engine that lacks the image: shipped from the docker CLI's own engine
/// when that is another one and has it (else `image::ensure` builds it, as on any engine).
pub async fn ship_from_default(engine: &Engine, progress: &Progress, tag: &str) -> Result<()> {
    if engine.image(tag).await?.is_some() {
        return Ok(());
    }
    let target = crate::engine::Target::resolve(None, &crate::engine::target::process_env())?;
    if target.endpoint == engine.target().endpoint {
        return Ok(());
    }
    let Ok(source) = Engine::connect_to(target).await else {
        return Ok(());
    };
    if source.image(tag).await?.is_none() {
        return Ok(());
    }
    ship(&source, engine, progress, tag).await
}

/// Runs each engine's share at the same time; `make` makes one lab on its engine. Engines that
/// share a machine plan one lab at a time (`machine`), as their networks share its routes.
pub async fn create<F, Fut>(
    spread: &Spread,
    progress: &Progress,
    interrupt: &Interrupt,
    make: F,
) -> Result<()>
where
    F: Fn(Engine, String, Progress, Arc<tokio::sync::Mutex<()>>) -> Fut + Clone,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut machines: BTreeMap<String, Arc<tokio::sync::Mutex<()>>> = BTreeMap::new();
    let mut runs = Vec::new();
    for Share { engine, labs, info } in &spread.shares {
        let machine = machines.entry(info.name.clone()).or_default().clone();
        let at_once = usize::try_from(info.cpus).unwrap_or(1).max(1);
        let make = make.clone();
        let engine = engine.clone();
        runs.push(async move {
            super::class::each_at(progress, labs, at_once, interrupt, |name, progress| {
                make(engine.clone(), name, progress, machine.clone())
            })
            .await
        });
    }
    let results = futures_util::future::join_all(runs).await;
    let mut errors: Vec<Error> = results.into_iter().filter_map(|r| r.err()).collect();
    if errors.len() <= 1 {
        return errors.pop().map_or(Ok(()), Err);
    }
    // Several engines' shares failed: one error saying each, in their own words.
    let interrupted = errors
        .iter()
        .any(|e| matches!(e, Error::Interrupted | Error::InterruptedAfter(_)));
    let said: Vec<String> = errors
        .iter()
        .map(|e| match e {
            Error::Failed(s) | Error::InterruptedAfter(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    Err(if interrupted {
        Error::InterruptedAfter(said.join("; "))
    } else {
        Error::Failed(said.join("; "))
    })
}
