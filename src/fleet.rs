//! The engines a command spans: the one the docker CLI would use, the ones `--engine` names, or
//! every engine with a Docker context (`--all-engines`); reached at the same time, each that
//! does not answer reported by name while the others carry on, and asked which holds a lab.

use crate::engine::Engine;
use crate::engine::target::{self, Target};
use crate::error::{Error, Result};
use crate::model;

/// The engines a command was given, resolved (nothing is connected yet).
pub struct Fleet {
    targets: Vec<Target>,
}

/// An engine that did not answer, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Down {
    pub engine: String,
    pub error: String,
}

impl Fleet {
    /// From `--engine` (repeated) and `--all-engines`: without either, the docker CLI's own
    /// choice; with `--all-engines`, that one and every context's, once each.
    pub fn resolve(given: &[String], all: bool) -> Result<Fleet> {
        let env = target::process_env();
        let mut targets: Vec<Target> = Vec::new();
        let mut add = |t: Target| {
            if !targets.iter().any(|k| k.endpoint == t.endpoint) {
                targets.push(t);
            }
        };
        if given.is_empty() || all {
            add(Target::resolve(None, &env)?);
        }
        for name in given {
            add(Target::resolve(Some(name), &env)?);
        }
        if all {
            for context in target::contexts(&target::config_dir(&env)) {
                add(Target::resolve(Some(&context), &env)?);
            }
        }
        Ok(Fleet { targets })
    }

    /// The engines' names, as given.
    pub fn names(&self) -> Vec<String> {
        self.targets.iter().map(|t| t.name.clone()).collect()
    }

    /// The URL of the engine called `name`.
    pub fn url_of(&self, name: &str) -> Option<String> {
        self.targets
            .iter()
            .find(|t| t.name == name)
            .map(Target::url)
    }

    /// The address a lab is published on by default on the first engine (see
    /// `Target::default_publish`), and whether that engine is on another machine.
    pub fn default_publish(&self) -> (String, bool) {
        self.targets
            .first()
            .map_or(("127.0.0.1".into(), false), |t| {
                (t.default_publish().to_string(), t.remote_host().is_some())
            })
    }

    /// Whether the command spans more than one engine.
    pub fn several(&self) -> bool {
        self.targets.len() > 1
    }

    /// Every engine, connected at the same time; any that cannot be is an error naming each
    /// one (for what must not begin on some engines only: a class's create).
    pub async fn connect_all(&self) -> Result<Vec<Engine>> {
        let (up, down) = self.reach().await;
        if down.is_empty() {
            return Ok(up);
        }
        Err(Error::DockerUnavailable(
            down.iter()
                .map(|d| d.error.clone())
                .collect::<Vec<_>>()
                .join(" — "),
        ))
    }

    /// The engines that answer, in the order given, and those that do not.
    pub async fn reach(&self) -> (Vec<Engine>, Vec<Down>) {
        let tries = self.targets.iter().map(|t| Engine::connect_to(t.clone()));
        let mut up = Vec::new();
        let mut down = Vec::new();
        for (target, result) in self
            .targets
            .iter()
            .zip(futures_util::future::join_all(tries).await)
        {
            match result {
                Ok(engine) => up.push(engine),
                Err(e) => down.push(Down {
                    engine: target.name.clone(),
                    error: e.to_string(),
                }),
            }
        }
        (up, down)
    }

    /// The one engine of a command that takes one (an image, a class's sheet).
    pub async fn only(&self, command: &str) -> Result<Engine> {
        match self.targets.as_slice() {
            [one] => Engine::connect_to(one.clone()).await,
            _ => Err(Error::Invalid(format!(
                "{command} works on one Docker Engine at a time, and {} were given ({}). Give \
                 one --engine.",
                self.targets.len(),
                self.names().join(", ")
            ))),
        }
    }

    /// The engine holding lab `name`: the only one given, or of several the one where the lab
    /// is (none, or two, is an error naming them).
    pub async fn holding(&self, name: &str) -> Result<Engine> {
        if let [one] = self.targets.as_slice() {
            return Engine::connect_to(one.clone()).await;
        }
        let (up, down) = self.reach().await;
        let looks = up.iter().map(|e| model::find(e, name));
        let mut found = Vec::new();
        for (engine, lab) in up.iter().zip(futures_util::future::join_all(looks).await) {
            if lab?.is_some() {
                found.push(engine.clone());
            }
        }
        let silent = if down.is_empty() {
            String::new()
        } else {
            format!(
                " ({} did not answer, so the lab may be there)",
                down.iter()
                    .map(|d| d.engine.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(Error::Invalid(format!(
                "there is no lab called {name} on the engines {}{silent}. `lab list` with the \
                 same engines shows the labs there are.",
                up.iter().map(Engine::name).collect::<Vec<_>>().join(", ")
            ))),
            _ => Err(Error::Invalid(format!(
                "a lab called {name} is on several engines ({}); name the one you mean with \
                 --engine.",
                found
                    .iter()
                    .map(Engine::name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }
}

/// `--publish-host` for the engine called `engine` (of `engines`, all given): its ENGINE=HOST,
/// else a HOST given alone; an ENGINE= naming no engine given is refused.
pub fn publish_host(given: &[String], engine: &str, engines: &[String]) -> Result<Option<String>> {
    // Every entry is checked, whichever engine is asked for, so one call refuses them all.
    let (mut own, mut alone) = (None, None);
    for given in given {
        match given.split_once('=') {
            Some((name, _)) if !engines.iter().any(|e| e == name) => {
                return Err(Error::Invalid(format!(
                    "--publish-host {given} names the engine {name}, which is not one of those \
                     given ({}); name one of them, or give HOST alone.",
                    engines.join(", ")
                )));
            }
            Some((name, host)) if host.is_empty() || host.contains(char::is_whitespace) => {
                return Err(Error::Invalid(format!(
                    "--publish-host {given}: {host:?} is not a host name or address for \
                     engine {name}."
                )));
            }
            Some((name, host)) if name == engine => {
                own.get_or_insert_with(|| host.to_string());
            }
            Some(_) => {}
            None if given.is_empty() || given.contains(char::is_whitespace) => {
                return Err(Error::Invalid(format!(
                    "--publish-host {given:?} is not a host name or address."
                )));
            }
            None => alone = Some(given.clone()),
        }
    }
    Ok(own.or(alone))
}

/// Says, once per engine that did not answer, that it did not and why (on stderr), so that a
/// command over several engines reports every one it could not reach.
pub fn report_down(progress: &crate::progress::Progress, down: &[Down]) {
    for d in down {
        progress.line(format!("engine {} is unreachable: {}", d.engine, d.error));
    }
}

/// A command over several engines exits 1 when one did not answer, its work on the others done.
pub fn exit_code(down: &[Down]) -> i32 {
    if down.is_empty() { 0 } else { 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_host_is_per_engine_or_for_the_others() {
        let engines = ["teach1".to_string(), "teach2".to_string()];
        let given = ["teach2=lab2.example".to_string(), "gw.example".to_string()];
        let host = |e| publish_host(&given, e, &engines).unwrap();
        assert_eq!(host("teach2").as_deref(), Some("lab2.example"));
        assert_eq!(host("teach1").as_deref(), Some("gw.example"));
        assert_eq!(publish_host(&[], "teach1", &engines).unwrap(), None);
        let e = publish_host(&["teach9=x".into()], "teach1", &engines)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("names the engine teach9, which is not one of those given"),
            "{e}"
        );
        assert!(publish_host(&["teach1=".into()], "teach1", &engines).is_err());
    }
}
