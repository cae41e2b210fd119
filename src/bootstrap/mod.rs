//! The HA stack, bootstrapped through exec and file upload, stage by stage: access (SSH between
//! nodes), etcd, patroni, haproxy (where the lab has it), backup, each as soon as the stages it
//! needs are done (`Stage::needs`). Each stage ends only when its effect is observed,
//! skips what is already in place (so `lab bootstrap` can finish a lab, twice if need be), and
//! on failure names the node and shows the end of the log that says why.

mod access;
pub mod backup;
pub mod etcd;
mod facts;
pub mod haproxy;
pub mod patroni;
pub mod services;
mod tls;

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use crate::engine::{Engine, ExecOutput, UploadFile};
use crate::error::{Error, Result};
use crate::interrupt::Interrupt;
use crate::lab::Lab;
use crate::progress::{Progress, seconds};
use crate::render::{Cluster, Member};
use crate::spec::{Roles, Settings, Stage};
pub use access::ssh_probe;
pub use facts::Facts;

/// What the bootstrap works with: the lab, its topology for rendering, and the way to reach it.
pub struct Ctx<'a> {
    pub engine: &'a Engine,
    pub lab: &'a Lab,
    pub cluster: Cluster,
    postgres_ids: OnceCell<(u64, u64)>,
}

impl<'a> Ctx<'a> {
    pub fn new(engine: &'a Engine, lab: &'a Lab) -> Ctx<'a> {
        let cluster = Cluster {
            members: lab
                .nodes
                .iter()
                .map(|n| Member {
                    name: n.name.clone(),
                    ip: n.ip().unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
                    roles: n.roles,
                })
                .collect(),
            tls: lab.tls,
        };
        Ctx {
            engine,
            lab,
            cluster,
            postgres_ids: OnceCell::new(),
        }
    }

    pub fn member(&self, node: &str) -> &Member {
        self.cluster
            .members
            .iter()
            .find(|m| m.name == node)
            .expect("members mirror the lab's nodes")
    }

    /// Runs a bash script on a node.
    pub async fn sh(
        &self,
        node: &str,
        user: &str,
        script: &str,
        timeout: Duration,
    ) -> Result<ExecOutput> {
        self.engine
            .exec(node, user, &["bash", "-c", script], timeout)
            .await
    }

    /// Runs a bash script that must succeed; its failure becomes the stage's error, with the
    /// end of `log` when one is named.
    pub async fn must(
        &self,
        stage: Stage,
        node: &str,
        user: &str,
        script: &str,
        timeout: Duration,
        log: Option<&str>,
    ) -> Result<String> {
        let out = self.sh(node, user, script, timeout).await?;
        if out.ok() {
            return Ok(out.stdout);
        }
        Err(self
            .failure(
                stage,
                node,
                format!(
                    "`{}` exited with {}: {}",
                    first_line(script),
                    out.code,
                    out.said()
                ),
                log,
            )
            .await)
    }

    /// `must` on every node of `nodes` at once.
    pub async fn must_on<N: AsRef<str>>(
        &self,
        nodes: &[N],
        stage: Stage,
        user: &str,
        script: &str,
        timeout: Duration,
        log: Option<&str>,
    ) -> Result<()> {
        futures_util::future::try_join_all(
            nodes
                .iter()
                .map(|n| self.must(stage, n.as_ref(), user, script, timeout, log)),
        )
        .await
        .map(drop)
    }

    /// A stage error for `node`, with the end of `log` read from it.
    pub async fn failure(
        &self,
        stage: Stage,
        node: &str,
        message: String,
        log: Option<&str>,
    ) -> Error {
        let log = match log {
            Some(path) => Some((path.to_string(), self.tail(node, path).await)),
            None => None,
        };
        Error::Stage {
            stage: stage.name().into(),
            node: node.into(),
            message,
            log,
        }
    }

    /// What a `wait_for` gave up on, as the stage's error for `node` (`say` words what it
    /// last saw, the end of `log` follows); what it waited for, when it came.
    pub async fn waited<T>(
        &self,
        waited: std::result::Result<T, String>,
        stage: Stage,
        node: &str,
        say: impl FnOnce(String) -> String,
        log: Option<&str>,
    ) -> Result<T> {
        match waited {
            Ok(value) => Ok(value),
            Err(seen) => Err(self.failure(stage, node, say(seen), log).await),
        }
    }

    /// The last lines of a log file on a node (a glob picks the newest match).
    pub async fn tail(&self, node: &str, path: &str) -> String {
        let script = format!("{}; [ -n \"$f\" ] && tail -n 25 \"$f\"", newest(path));
        self.sh(node, "root", &script, Duration::from_secs(10))
            .await
            .map(|o| o.stdout)
            .unwrap_or_default()
    }

    /// Places files (path, content, mode), owned by postgres, on a node, in one archive: all
    /// of them or none.
    pub async fn upload(&self, node: &str, files: &[(&str, &str, u32)]) -> Result<()> {
        let (uid, gid) = self.postgres_ids().await?;
        let files: Vec<UploadFile> = files
            .iter()
            .map(|(path, content, mode)| UploadFile {
                path: path.to_string(),
                content: content.as_bytes().to_vec(),
                mode: *mode,
                uid,
                gid,
            })
            .collect();
        self.engine.upload(node, &files).await
    }

    /// The postgres user's uid and gid in the image (the same on every node).
    async fn postgres_ids(&self) -> Result<(u64, u64)> {
        let node = &self.lab.nodes[0].name;
        self.postgres_ids
            .get_or_try_init(|| async {
                let out = self
                    .sh(
                        node,
                        "root",
                        "id -u postgres; id -g postgres",
                        Duration::from_secs(10),
                    )
                    .await?;
                let ids: Vec<u64> = out
                    .stdout
                    .split_whitespace()
                    .filter_map(|w| w.parse().ok())
                    .collect();
                match ids.as_slice() {
                    [uid, gid] => Ok((*uid, *gid)),
                    _ => Err(Error::Failed(format!(
                        "node {node} has no postgres user ({}); is {} a lab image?",
                        out.said(),
                        node
                    ))),
                }
            })
            .await
            .copied()
    }

    /// What is configured and running on every running node (a stopped one has nothing
    /// running and is left out).
    pub async fn facts(&self) -> Result<Vec<Facts>> {
        self.facts_where(|_| true).await
    }

    /// `facts` of the running nodes that `wanted` picks by their roles.
    async fn facts_where(&self, wanted: impl Fn(&Roles) -> bool) -> Result<Vec<Facts>> {
        let nodes = self.lab.nodes.iter();
        futures_util::future::try_join_all(nodes.filter(|n| n.running() && wanted(&n.roles)).map(
            |n| async move {
                let out = self
                    .sh(&n.name, "root", facts::PROBE, Duration::from_secs(20))
                    .await?;
                Ok::<_, Error>(Facts::parse(&n.name, &out.stdout))
            },
        ))
        .await
    }
}

/// Shell that sets `f` to the newest file matching `glob` (empty when none does): logs rotate
/// or carry the weekday in their names.
pub fn newest(glob: &str) -> String {
    format!("f=$(ls -t {glob} 2>/dev/null | head -n 1)")
}

fn first_line(script: &str) -> &str {
    script.lines().next().unwrap_or(script).trim()
}

/// Polls `probe` every `every` until it yields a value or `deadline` passes; on timeout returns
/// the last thing it observed. Engine errors end the wait at once.
pub async fn wait_for<T, S, F, Fut>(
    deadline: Duration,
    every: Duration,
    mut probe: F,
) -> Result<std::result::Result<T, S>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<std::result::Result<T, S>>>,
{
    let started = Instant::now();
    loop {
        match probe().await? {
            Ok(value) => return Ok(Ok(value)),
            Err(seen) if started.elapsed() >= deadline => return Ok(Err(seen)),
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}

/// What a stage did: its report, and whether it changed anything (false when all was in place).
pub struct Outcome {
    pub summary: String,
    pub changed: bool,
}

/// Runs every stage up to `target`, skipping what is done, and reports each stage's time;
/// returns whether anything changed.
/// With `interrupt`, Ctrl-C stops it after the stages in progress (the lab's marks say how far
/// it got, and the next `lab bootstrap` goes on from there).
pub async fn run(
    engine: &Engine,
    progress: &Progress,
    lab: &Lab,
    target: Stage,
    interrupt: Option<&Interrupt>,
) -> Result<bool> {
    let stopped: Vec<&str> = lab
        .nodes
        .iter()
        .filter(|n| !n.running())
        .map(|n| n.name.as_str())
        .collect();
    if !stopped.is_empty() {
        return Err(Error::Invalid(format!(
            "lab {} has stopped nodes ({}); the bootstrap needs them all. Run `lab start --name \
             {}` first.",
            lab.name,
            stopped.join(", "),
            lab.name
        )));
    }
    let ctx = Ctx::new(engine, lab);
    // The containers are `lab create`'s, not the bootstrap's; a lab without HAProxy has no such
    // stage: no word, and no mark.
    let stages: Vec<Stage> = Stage::ALL
        .into_iter()
        .filter(|s| *s != Stage::Containers && *s <= target)
        .filter(|s| *s != Stage::Haproxy || lab.haproxy_node().is_some())
        .collect();
    let started = Instant::now();
    let mut timings = Vec::new();
    let mut changed = false;
    let waves = Stage::waves(&stages, lab.tls);
    for (i, wave) in waves.iter().enumerate() {
        // Every stage of a wave runs to its end, even when another fails: none is cut off
        // halfway, and each one that succeeds is marked.
        let results = futures_util::future::join_all(
            wave.iter().map(|stage| run_stage(&ctx, progress, *stage)),
        )
        .await;
        let mut failure = None;
        for (stage, result) in wave.iter().zip(results) {
            match result {
                Ok((outcome, took)) => {
                    changed |= outcome.changed;
                    timings.push((*stage, took));
                }
                Err(e) => failure = failure.or(Some(e)),
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        if i + 1 < waves.len() && interrupt.is_some_and(Interrupt::was_pressed) {
            let names: Vec<&str> = wave.iter().map(|s| s.name()).collect();
            return Err(Error::InterruptedAfter(format!(
                "stage {}; `lab bootstrap --name {}` goes on from there",
                names.join(" and "),
                lab.name
            )));
        }
    }
    if !timings.is_empty() {
        timings.sort_by_key(|(s, _)| *s);
        let parts: Vec<String> = timings
            .iter()
            .map(|(s, d)| format!("{} {}", s.name(), seconds(*d)))
            .collect();
        progress.line(format!(
            "bootstrap: {} ({} in all, stages that need nothing of each other at once)",
            parts.join(", "),
            seconds(started.elapsed())
        ));
    }
    Ok(changed)
}

/// Runs one stage on what the nodes hold now, marks it done, and says how long it took.
async fn run_stage(
    ctx: &Ctx<'_>,
    progress: &Progress,
    stage: Stage,
) -> Result<(Outcome, Duration)> {
    let step = progress.step(stage.name());
    // Only the nodes the stage works on are asked.
    let facts = ctx
        .facts_where(|r| match stage {
            Stage::Etcd => r.etcd,
            Stage::Patroni => r.postgres,
            Stage::Haproxy => r.haproxy,
            Stage::Backup => r.postgres || r.repo,
            Stage::Access | Stage::Containers => true,
        })
        .await?;
    if stage > Stage::Access
        && let Some(old) = facts.iter().find(|f| !f.helpers)
    {
        return Err(Error::Invalid(format!(
            "lab {name} was made from an image older than this lab tool: {node} has no \
             /etcdSetup.sh or /patroniSetup.sh, which the bootstrap runs as the course does. \
             Recreate the lab on the current image with `lab create --replace --name {name}`.",
            name = ctx.lab.name,
            node = old.node
        )));
    }
    let outcome = match stage {
        Stage::Access => access::run(ctx, &facts, progress).await?,
        Stage::Etcd => etcd::run(ctx, &facts).await?,
        Stage::Patroni => patroni::run(ctx, &facts).await?,
        Stage::Haproxy => haproxy::run(ctx, &facts).await?,
        Stage::Backup => backup::run(ctx, &facts).await?,
        Stage::Containers => unreachable!("not a bootstrap stage"),
    };
    crate::lab::mark(ctx.engine, &ctx.lab.name, stage.name()).await?;
    let took = step.done(&outcome.summary);
    Ok((outcome, took))
}

/// Reads the lab's settings (its password among them) from a running node.
pub async fn settings(ctx: &Ctx<'_>) -> Result<Settings> {
    let Some(node) = ctx.lab.nodes.iter().find(|n| n.running()).map(|n| &n.name) else {
        return Err(Error::Invalid(format!(
            "lab {name} is stopped, and its password is kept inside it; `lab start --name \
             {name}` first",
            name = ctx.lab.name
        )));
    };
    let out = ctx
        .sh(
            node,
            "root",
            &format!("cat {}", Settings::PATH),
            Duration::from_secs(10),
        )
        .await?;
    serde_json::from_str(&out.stdout).map_err(|_| {
        Error::Failed(format!(
            "node {node} has no readable {} ({}); the lab was not made by this version of \
             lab. Recreate it with `lab create --replace --name {}`.",
            Settings::PATH,
            out.said(),
            ctx.lab.name
        ))
    })
}
