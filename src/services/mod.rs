//! The services inside a lab's nodes (sshd, etcd, PostgreSQL with Patroni, HAProxy, the
//! pgBackRest repository): their declarations (`catalog`), the order every command walks them
//! in (`lifecycle`), and a module per service with its bootstrap stage and its client (what
//! status, check and drills ask it). `Ctx` is how they reach a lab's nodes. This layer sits on
//! the lab model (`crate::model`) and below the commands (`crate::lab`).

pub mod catalog;
pub mod etcd;
pub mod facts;
pub mod haproxy;
pub mod lifecycle;
pub mod monitoring;
pub mod patroni;
pub mod pgbackrest;
mod probe;
pub mod ssh;
mod tls;

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use crate::engine::{Engine, ExecOutput, UploadFile};
use crate::error::{Error, Result};
use crate::model::Lab;
use crate::render::{Cluster, Member};
use crate::spec::{Roles, Settings, Stage};
use catalog::{Helper, Service};
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

    /// Runs `argv` on the node called `node` (its name in the lab, or its container's).
    pub async fn exec(
        &self,
        node: &str,
        user: &str,
        argv: &[&str],
        timeout: Duration,
    ) -> Result<ExecOutput> {
        self.engine
            .exec(self.lab.container(node), user, argv, timeout)
            .await
    }

    /// Runs a bash script on a node.
    pub async fn sh(
        &self,
        node: &str,
        user: &str,
        script: &str,
        timeout: Duration,
    ) -> Result<ExecOutput> {
        self.exec(node, user, &["bash", "-c", script], timeout)
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

    /// psql on `node` as postgres with `sql` passed as one argument (no shell quoting), which
    /// must succeed; its output.
    pub async fn psql(&self, node: &str, sql: &str) -> Result<String> {
        let out = self
            .exec(
                node,
                "postgres",
                &["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql],
                Duration::from_secs(60),
            )
            .await?;
        if out.ok() {
            Ok(out.stdout.trim().to_string())
        } else {
            Err(Error::Failed(format!(
                "psql on {node} failed ({sql}): {}",
                out.said()
            )))
        }
    }

    /// Runs a node-side probe (`argv`: a script in the image and its arguments) as `user`, and
    /// reads the one JSON object it prints into `T`.
    pub async fn probe<T: serde::de::DeserializeOwned>(
        &self,
        node: &str,
        user: &str,
        argv: &[&str],
        timeout: Duration,
    ) -> Result<T> {
        let out = self.exec(node, user, argv, timeout).await?;
        probe::read(&self.lab.name, node, argv, &out)
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

    /// Starts `service` on every node of `nodes` at once, with its declared helper.
    pub async fn start<N: AsRef<str>>(&self, service: &Service, nodes: &[N]) -> Result<()> {
        self.helper(service, service.start, nodes).await
    }

    /// Stops `service` on every node of `nodes` at once, with its declared helper (its stop
    /// policy is the caller's: see `lifecycle::stop_service`).
    pub async fn stop<N: AsRef<str>>(&self, service: &Service, nodes: &[N]) -> Result<()> {
        self.helper(service, service.stop, nodes).await
    }

    async fn helper<N: AsRef<str>>(
        &self,
        service: &Service,
        helper: Option<Helper>,
        nodes: &[N],
    ) -> Result<()> {
        let Some(h) = helper else { return Ok(()) };
        self.must_on(
            nodes,
            service.stage,
            h.user,
            h.command,
            h.within,
            service.log,
        )
        .await
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
        self.engine.upload(self.lab.container(node), &files).await
    }

    /// The postgres user's uid and gid in the image (the same on every node).
    async fn postgres_ids(&self) -> Result<(u64, u64)> {
        let node = &self.lab.nodes[0].name;
        self.postgres_ids
            .get_or_try_init(|| async {
                let argv = ["getent", "passwd", "postgres"];
                let out = self
                    .exec(node, "root", &argv, Duration::from_secs(10))
                    .await?;
                // name:password:uid:gid:...
                let ids: Vec<u64> = out
                    .stdout
                    .trim()
                    .split(':')
                    .skip(2)
                    .take(2)
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
    pub async fn facts_where(&self, wanted: impl Fn(&Roles) -> bool) -> Result<Vec<Facts>> {
        let nodes = self.lab.nodes.iter();
        futures_util::future::try_join_all(nodes.filter(|n| n.running() && wanted(&n.roles)).map(
            |n| async move {
                let out = self
                    .exec(&n.name, "root", &[facts::PROBE], Duration::from_secs(20))
                    .await?;
                Facts::read(&self.lab.name, &n.name, &out)
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

/// Reads the lab's settings (its password among them) from a running node.
pub async fn settings(ctx: &Ctx<'_>) -> Result<Settings> {
    let Some(node) = ctx.lab.nodes.iter().find(|n| n.running()).map(|n| &n.name) else {
        return Err(Error::Invalid(format!(
            "lab {name} is stopped, and its password is kept inside it; `lab start --name \
             {name}` first",
            name = ctx.lab.name
        )));
    };
    let argv = ["cat", Settings::PATH];
    let out = ctx
        .exec(node, "root", &argv, Duration::from_secs(10))
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
