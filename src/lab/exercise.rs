//! `lab exercise`: starts an exercise (breaks the lab quietly, keeps what it broke in the lab's
//! store), judges it from what the lab shows (`exercise::judge`), gives hints, takes
//! split-brain's answer, and stops it: the exercise's own undo, then the cluster proven healthy,
//! or a reset as the last resort. The node-side part of each fault is `labExercise` in the
//! image; this side chooses the nodes, writes what a fault needs through SQL or Patroni's API,
//! and gathers what the judge reads.

use std::time::Duration;

use serde::Serialize;

use super::drills::{etcd_service, healthy_before};
use super::records::{self, now};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::exercise::judge::{self, Drilled, NodeState, PgNode, Running, Seen, Verdict};
use crate::exercise::{Broken, Exercise};
use crate::lock::LabLock;
use crate::model::{self, Lab};
use crate::progress::Progress;
use crate::services::{Ctx, catalog, etcd, patroni, pgbackrest};
use crate::store;

/// The record that holds the running exercise (JSON null once it is stopped).
const RECORD: &str = "exercise.json";
const SCRIPT: &str = "/usr/local/sbin/labExercise";
const SCOPE: &str = "pgha_patroni_cluster";
/// The pg_hba addresses hba-locked-out puts in place of 0.0.0.0/0: the material's own example
/// network, as a copy from the guide would, or another when the lab happens to be on it.
const WRONG_NETWORKS: [&str; 2] = ["10.0.1.0/24", "10.99.99.0/24"];

/// The first of WRONG_NETWORKS none of the lab's nodes is on.
fn wrong_network(lab: &Lab) -> &'static str {
    let outside = |net: &str| {
        let net: ipnet::Ipv4Net = net.parse().expect("a network");
        !lab.nodes
            .iter()
            .filter_map(|n| n.ip())
            .any(|ip| net.contains(&ip))
    };
    WRONG_NETWORKS
        .into_iter()
        .find(|n| outside(n))
        .unwrap_or(WRONG_NETWORKS[0])
}

/// What `lab exercise status` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub lab: String,
    pub exercise: Exercise,
    pub symptom: String,
    pub solved: bool,
    /// What is still wrong, in the trainee's terms.
    pub wrong: Vec<String>,
    /// Seconds since it started.
    pub elapsed: u64,
    /// Seconds it took to solve, when solved.
    pub took: Option<u64>,
    pub hints: usize,
}

impl Status {
    pub fn text(&self) -> String {
        let mut out = format!(
            "lab {}, exercise {} (started {} ago): {}\n  symptom: {}\n",
            self.lab,
            self.exercise.name(),
            duration(self.elapsed),
            if self.solved {
                "solved"
            } else {
                "not solved yet"
            },
            self.symptom
        );
        for w in &self.wrong {
            out.push_str(&format!("  ✗ {w}\n"));
        }
        match self.took {
            Some(t) if self.solved => out.push_str(&format!(
                "  solved in {} with {} of 3 hints; `lab exercise stop --name {}` ends it",
                duration(t),
                self.hints,
                self.lab
            )),
            _ => out.push_str(&format!(
                "  {} of 3 hints given; `lab exercise hint --name {}` gives the next",
                self.hints, self.lab
            )),
        }
        out
    }
}

/// One lab's line in `lab exercise status --all`.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub lab: String,
    /// None when no exercise runs there.
    pub status: Option<Status>,
    /// Why it could not be judged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Row {
    pub fn of(lab: &str, status: Option<Status>) -> Row {
        Row {
            lab: lab.to_string(),
            status,
            error: None,
        }
    }

    pub fn failed(lab: &str, e: &Error) -> Row {
        Row {
            lab: lab.to_string(),
            status: None,
            error: Some(e.to_string()),
        }
    }
}

/// Who solved what, in how long: a row per lab.
pub fn table(rows: &[Row]) -> String {
    let cells = rows.iter().map(|r| match (&r.status, &r.error) {
        (_, Some(e)) => vec![
            r.lab.clone(),
            "-".into(),
            "not judged".into(),
            "-".into(),
            "-".into(),
            e.clone(),
        ],
        (None, None) => vec![
            r.lab.clone(),
            "-".into(),
            "no exercise".into(),
            "-".into(),
            "-".into(),
            String::new(),
        ],
        (Some(s), None) => vec![
            r.lab.clone(),
            s.exercise.name().to_string(),
            if s.solved {
                "solved".into()
            } else {
                "not solved".into()
            },
            match s.took {
                Some(t) if s.solved => duration(t),
                _ => format!("{} so far", duration(s.elapsed)),
            },
            format!("{}/3", s.hints),
            s.wrong.first().cloned().unwrap_or_default(),
        ],
    });
    crate::table::render(
        &["LAB", "EXERCISE", "STATE", "TIME", "HINTS", "STILL WRONG"],
        cells,
    )
}

/// `lab exercise status --all`'s exit code: 0 every running exercise solved, 1 one is not (or
/// could not be judged), 2 none runs.
pub fn class_code(rows: &[Row]) -> i32 {
    if rows
        .iter()
        .any(|r| r.error.is_some() || r.status.as_ref().is_some_and(|s| !s.solved))
    {
        1
    } else if rows.iter().any(|r| r.status.is_some()) {
        0
    } else {
        2
    }
}

/// "4m 05s", "42s".
pub fn duration(seconds: u64) -> String {
    if seconds >= 60 {
        format!("{}m {:02}s", seconds / 60, seconds % 60)
    } else {
        format!("{seconds}s")
    }
}

/// The exercise running on `lab`, if one.
pub async fn running(engine: &Engine, lab: &Lab) -> Result<Option<Running>> {
    Ok(store::read_json::<Option<Running>>(engine, lab, RECORD)
        .await?
        .flatten())
}

async fn keep(engine: &Engine, lab: &Lab, run: Option<&Running>) -> Result<()> {
    store::write_json(engine, lab, RECORD, &run).await
}

/// Forgets the running exercise, as a reset does (the lab is back as it was made).
pub async fn forget(engine: &Engine, lab: &Lab) -> Result<()> {
    keep(engine, lab, None).await
}

fn none_runs(name: &str) -> Error {
    Error::Invalid(format!(
        "no exercise runs on lab {name}; `lab exercise list` shows them, `lab exercise start \
         NAME --name {name}` starts one"
    ))
}

/// `lab exercise start`: checks the lab fits, keeps the record, then makes the fault; the
/// symptom is what it returns. A fault that cannot be made is taken back.
pub async fn start(
    engine: &Engine,
    progress: &Progress,
    lock: &LabLock,
    exercise: Exercise,
) -> Result<String> {
    let lab = model::get(engine, lock.lab()).await?;
    let name = &lab.name;
    let stopped: Vec<&str> = lab
        .nodes
        .iter()
        .filter(|n| !n.running() || n.partitioned(&lab.network))
        .map(|n| n.name.as_str())
        .collect();
    if !stopped.is_empty() {
        return Err(Error::Invalid(format!(
            "lab {name} has nodes stopped or cut off ({}), so an exercise would not start from \
             a healthy lab; `lab start --name {name}` or `lab heal` first",
            stopped.join(", ")
        )));
    }
    if let Some(run) = running(engine, &lab).await? {
        return Err(Error::Invalid(format!(
            "exercise {} already runs on lab {name} (started {} ago); `lab exercise stop --name \
             {name}` ends it first",
            run.exercise.name(),
            duration(now().saturating_sub(run.started))
        )));
    }
    let ctx = Ctx::new(engine, &lab);
    let healthy = healthy_before(&ctx, "an exercise would not start from a healthy lab").await?;
    let mut replicas = healthy.replicas.clone();
    replicas.sort_by_key(|r| lab.node(r).map_or(0, |n| n.index));
    let replica = replicas.last().cloned();
    let needs = |what: &str| {
        Error::Invalid(format!(
            "exercise {} needs {what}, which lab {name} does not have",
            exercise.name()
        ))
    };
    let etcd_nodes: Vec<String> = lab.etcd_nodes().map(|n| n.name.clone()).collect();
    let node = match exercise {
        Exercise::QuorumLost | Exercise::TuneRto => None,
        Exercise::ArchiveFailing => Some(
            lab.repo_node()
                .ok_or_else(|| needs("a pgBackRest repository"))?
                .name
                .clone(),
        ),
        _ => Some(replica.ok_or_else(|| needs("a replica"))?),
    };
    let nodes = match exercise {
        // A majority, the members last in node order: the primary's own etcd is the last to go.
        Exercise::QuorumLost => {
            let majority = etcd_nodes.len() / 2 + 1;
            etcd_nodes[etcd_nodes.len() - majority..].to_vec()
        }
        _ => Vec::new(),
    };
    let mut run = Running {
        exercise,
        started: now(),
        broken: Broken {
            node,
            nodes,
            primary: healthy.primary.clone(),
            scope: SCOPE.into(),
            tls: lab.tls,
        },
        lost: Vec::new(),
        answer: None,
        hints: 0,
        solved: None,
        saved: serde_json::Value::Null,
    };
    prepare(&ctx, &mut run).await?;
    // Kept before the fault is made: a start killed halfway still leaves what stop undoes.
    keep(engine, &lab, Some(&run)).await?;
    let step = progress.step(format!("exercise {} on lab {name}", exercise.name()));
    match make(&ctx, &run).await {
        Ok(()) => {
            step.done("ready");
            Ok(exercise.symptom(&run.broken))
        }
        Err(e) => {
            let back = undo(&ctx, &run).await.and(Ok(()));
            let back = match back {
                Ok(()) => forget(engine, &lab).await,
                Err(e) => Err(e),
            };
            Err(Error::Failed(match back {
                Ok(()) => format!(
                    "exercise {} could not be started on lab {name}: {e}; what it had done is \
                     taken back",
                    exercise.name()
                ),
                Err(left) => format!(
                    "exercise {} could not be started on lab {name}: {e}; taking it back failed \
                     too ({left}): `lab exercise stop --name {name}` tries again, `lab reset` \
                     puts the lab back whole",
                    exercise.name()
                ),
            }))
        }
    }
}

/// What a fault needs known before it is made: split-brain's lost writes, what hba-locked-out
/// and tune-rto change (to put it back).
async fn prepare(ctx: &Ctx<'_>, run: &mut Running) -> Result<()> {
    let primary = run.broken.primary.clone();
    match run.exercise {
        Exercise::SplitBrain => {
            let ids = random_ids(6)?;
            run.lost = ids[..3].to_vec();
            run.saved = serde_json::json!({ "kept": ids[3..] });
        }
        Exercise::HbaLockedOut => {
            let original = dynamic_hba(ctx, &primary).await?;
            let wrong = wrong_network(ctx.lab);
            let broken: Vec<String> = original
                .iter()
                .map(|line| {
                    if line.contains(" replication ") && line.contains("0.0.0.0/0") {
                        line.replace("0.0.0.0/0", wrong)
                    } else {
                        line.clone()
                    }
                })
                .collect();
            if broken == original {
                return Err(Error::Invalid(format!(
                    "exercise hba-locked-out changes the pg_hba line that lets replicas in from \
                     anywhere (replication ... 0.0.0.0/0), and lab {}'s dynamic configuration \
                     has none",
                    ctx.lab.name
                )));
            }
            run.saved = serde_json::json!({
                "original": original,
                "broken": broken,
                "wrong": wrong,
            });
        }
        Exercise::TuneRto => {
            let d = patroni::dynamic(ctx, &primary).await?;
            let haproxy = match ctx.lab.haproxy_node() {
                Some(h) => Some(read_file(ctx, &h.name, HAPROXY_CFG).await?),
                None => None,
            };
            run.saved = serde_json::json!({
                "patroni": {
                    "ttl": d.ttl,
                    "loop_wait": d.loop_wait,
                    "retry_timeout": d.retry_timeout,
                    "synchronous_mode": d.synchronous_mode,
                    "synchronous_mode_strict": d.synchronous_mode_strict,
                },
                "haproxy": haproxy,
            });
        }
        _ => {}
    }
    Ok(())
}

/// HAProxy's configuration: /etc/haproxy/haproxy.cfg links to it, and a reset restores it.
const HAPROXY_CFG: &str = "/pgha/config/haproxy.cfg";

/// `n` distinct order ids, 100 to 999, from the system's random source.
fn random_ids(n: usize) -> Result<Vec<i64>> {
    use ring::rand::SecureRandom;
    let rng = ring::rand::SystemRandom::new();
    let mut ids: Vec<i64> = Vec::new();
    while ids.len() < n {
        let mut b = [0u8; 2];
        rng.fill(&mut b)
            .map_err(|_| Error::Failed("the system's random source failed".into()))?;
        let id = 100 + i64::from(u16::from_le_bytes(b) % 900);
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

async fn read_file(ctx: &Ctx<'_>, node: &str, path: &str) -> Result<String> {
    let out = ctx
        .exec(node, "root", &["cat", path], Duration::from_secs(15))
        .await?;
    if !out.ok() {
        return Err(Error::Failed(format!(
            "{path} on {node} could not be read: {}",
            out.said()
        )));
    }
    Ok(out.stdout)
}

/// `labExercise ARGS...` on `node`, as root, which must succeed.
async fn script(ctx: &Ctx<'_>, node: &str, args: &[&str], within: Duration) -> Result<String> {
    let argv: Vec<&str> = std::iter::once(SCRIPT)
        .chain(args.iter().copied())
        .collect();
    let out = ctx.exec(node, "root", &argv, within).await?;
    if out.ok() {
        Ok(out.stdout)
    } else {
        Err(Error::Failed(format!(
            "`labExercise {}` on {node} failed: {}",
            args.join(" "),
            out.said()
        )))
    }
}

/// SQL on `node` as postgres, which must succeed; its output.
async fn sql(ctx: &Ctx<'_>, node: &str, query: &str) -> Result<String> {
    let out = ctx
        .exec(
            node,
            "postgres",
            &["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", query],
            Duration::from_secs(60),
        )
        .await?;
    if out.ok() {
        Ok(out.stdout.trim().to_string())
    } else {
        Err(Error::Failed(format!(
            "SQL on {node} failed: {} ({query})",
            out.said()
        )))
    }
}

/// The pg_hba lines of Patroni's dynamic configuration.
async fn dynamic_hba(ctx: &Ctx<'_>, node: &str) -> Result<Vec<String>> {
    let out = ctx
        .exec(
            node,
            "postgres",
            &["patroniApi", "/config"],
            Duration::from_secs(15),
        )
        .await?;
    let config: serde_json::Value = serde_json::from_str(out.stdout.trim()).map_err(|_| {
        Error::Failed(format!(
            "Patroni's REST API on {node} did not give its dynamic configuration ({})",
            out.said()
        ))
    })?;
    Ok(config
        .pointer("/postgresql/pg_hba")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default())
}

/// Sets pg_hba in Patroni's dynamic configuration through `node`'s REST API.
async fn set_hba(ctx: &Ctx<'_>, node: &str, lines: &serde_json::Value) -> Result<()> {
    let patch = serde_json::json!({ "postgresql": { "pg_hba": lines } });
    let out = patroni::patch_config(ctx, node, &patch).await?;
    if out.ok() {
        Ok(())
    } else {
        Err(Error::Failed(format!(
            "Patroni on {node} refused the pg_hba change: {}",
            out.said()
        )))
    }
}

/// Polls `check` every second until it holds or `deadline` passes; whether it held.
async fn until<F, Fut>(deadline: Duration, mut check: F) -> Result<bool>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let started = std::time::Instant::now();
    loop {
        if check().await? {
            return Ok(true);
        }
        if started.elapsed() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn node_state(ctx: &Ctx<'_>, node: &str) -> Result<NodeState> {
    ctx.probe(node, "root", &[SCRIPT, "seen"], Duration::from_secs(30))
        .await
}

/// Makes the exercise's fault, and waits until its symptom shows.
async fn make(ctx: &Ctx<'_>, run: &Running) -> Result<()> {
    let b = &run.broken;
    let node = b.node.as_deref().unwrap_or_default();
    let primary = b.primary.as_str();
    let long = Duration::from_secs(180);
    match run.exercise {
        Exercise::EtcdUnreachable => {
            let tls: &[&str] = if b.tls { &["tls"] } else { &[] };
            let args: Vec<&str> = ["break", "etcd-unreachable"]
                .into_iter()
                .chain(tls.iter().copied())
                .collect();
            script(ctx, node, &args, long).await?;
        }
        Exercise::QuorumLost => {
            etcd_service(ctx, &b.nodes, false).await?;
            // Writes fail once the primary finds it cannot renew its leader key and demotes:
            // its PostgreSQL then runs again, read-only.
            let demoted = until(Duration::from_secs(90), || async {
                Ok(node_state(ctx, primary).await?.recovery == Some(true))
            })
            .await?;
            shown(demoted, &format!("{primary} was not read-only after 90 s"))?;
        }
        Exercise::LaggingReplica => {
            script(ctx, node, &["break", "lagging-replica"], long).await?;
            script(ctx, primary, &["wal", "64"], long).await?;
        }
        Exercise::BrokenReplica => {
            script(ctx, node, &["break", "broken-replica"], long).await?;
        }
        Exercise::SplitBrain => {
            let kept: Vec<i64> =
                serde_json::from_value(run.saved["kept"].clone()).unwrap_or_default();
            sql(
                ctx,
                primary,
                &format!(
                    "DROP TABLE IF EXISTS exercise_orders; CREATE TABLE exercise_orders (id int \
                     PRIMARY KEY, note text); INSERT INTO exercise_orders VALUES ({}, 'written \
                     on {primary} before')",
                    kept[0]
                ),
            )
            .await?;
            let replicated = until(Duration::from_secs(30), || async {
                Ok(node_state(ctx, node).await?.rows == Some(vec![kept[0]]))
            })
            .await?;
            shown(
                replicated,
                &format!("{node} did not replay the exercise's first order within 30 s"),
            )?;
            let rogue: Vec<String> = run.lost.iter().map(i64::to_string).collect();
            let args: Vec<&str> = ["break", "split-brain"]
                .into_iter()
                .chain(rogue.iter().map(String::as_str))
                .collect();
            script(ctx, node, &args, long).await?;
            let values: Vec<String> = kept[1..]
                .iter()
                .map(|id| format!("({id}, 'written on {primary}')"))
                .collect();
            sql(
                ctx,
                primary,
                &format!("INSERT INTO exercise_orders VALUES {}", values.join(", ")),
            )
            .await?;
        }
        Exercise::ArchiveFailing => {
            script(ctx, node, &["break", "archive-failing"], long).await?;
            let before = node_state(ctx, primary)
                .await?
                .archiver
                .map_or(0, |a| a.failed);
            script(ctx, primary, &["wal", "1"], long).await?;
            let failing = until(Duration::from_secs(60), || async {
                Ok(node_state(ctx, primary)
                    .await?
                    .archiver
                    .is_some_and(|a| a.failed > before))
            })
            .await?;
            shown(
                failing,
                &format!("archiving on {primary} still succeeded after 60 s"),
            )?;
        }
        Exercise::HbaLockedOut => {
            set_hba(ctx, primary, &run.saved["broken"]).await?;
            let wrong = run.saved["wrong"].as_str().unwrap_or(WRONG_NETWORKS[0]);
            let address = wrong.split('/').next().unwrap_or_default();
            let loaded = until(Duration::from_secs(60), || async {
                Ok(sql(
                    ctx,
                    primary,
                    &format!("SELECT count(*) FROM pg_hba_file_rules WHERE address = '{address}'"),
                )
                .await?
                    != "0")
            })
            .await?;
            shown(
                loaded,
                &format!("Patroni did not load the changed pg_hba on {primary} within 60 s"),
            )?;
            // Streaming connections made before the change stand; the replicas' next ones are
            // refused.
            sql(
                ctx,
                primary,
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_replication",
            )
            .await?;
        }
        Exercise::TuneRto => {}
    }
    Ok(())
}

/// A fault whose effect did not show as it should is a failed start (and is taken back).
fn shown(held: bool, otherwise: &str) -> Result<()> {
    if held {
        Ok(())
    } else {
        Err(Error::Failed(format!(
            "the fault did not take: {otherwise}"
        )))
    }
}

/// Takes the fault back, whatever the trainee did meanwhile; says what it did.
async fn undo(ctx: &Ctx<'_>, run: &Running) -> Result<String> {
    let b = &run.broken;
    let node = b.node.as_deref().unwrap_or_default();
    let long = Duration::from_secs(600);
    let leader = patroni::current_primary(ctx, &ctx.lab.postgres_names())
        .await?
        .unwrap_or_else(|| b.primary.clone());
    Ok(match run.exercise {
        Exercise::EtcdUnreachable => script(ctx, node, &["undo", "etcd-unreachable"], long).await?,
        Exercise::QuorumLost => {
            let down: Vec<String> = ctx
                .facts()
                .await?
                .into_iter()
                .filter(|f| !f.etcd_running && ctx.lab.etcd_nodes().any(|n| n.name == f.node))
                .map(|f| f.node)
                .collect();
            etcd_service(ctx, &down, true).await?;
            format!("etcd started on {}", list_or_none(&down))
        }
        Exercise::LaggingReplica => script(ctx, node, &["undo", "lagging-replica"], long).await?,
        Exercise::BrokenReplica => script(ctx, node, &["undo", "broken-replica"], long).await?,
        Exercise::SplitBrain => script(ctx, node, &["undo", "split-brain"], long).await?,
        Exercise::ArchiveFailing => script(ctx, node, &["undo", "archive-failing"], long).await?,
        Exercise::HbaLockedOut => {
            set_hba(ctx, &leader, &run.saved["original"]).await?;
            "pg_hba put back in Patroni's configuration".into()
        }
        Exercise::TuneRto => {
            let patch = &run.saved["patroni"];
            let out = patroni::patch_config(ctx, &leader, patch).await?;
            if !out.ok() {
                return Err(Error::Failed(format!(
                    "Patroni on {leader} refused the settings put back: {}",
                    out.said()
                )));
            }
            if let (Some(h), Some(cfg)) = (ctx.lab.haproxy_node(), run.saved["haproxy"].as_str())
                && read_file(ctx, &h.name, HAPROXY_CFG).await? != cfg
            {
                ctx.upload(&h.name, &[(HAPROXY_CFG, cfg, 0o644)]).await?;
                ctx.stop(&catalog::HAPROXY, &[&h.name]).await?;
                ctx.start(&catalog::HAPROXY, &[&h.name]).await?;
            }
            "Patroni's settings and HAProxy's configuration put back".into()
        }
    }
    .trim()
    .to_string())
}

fn list_or_none(nodes: &[String]) -> String {
    if nodes.is_empty() {
        "no member (all ran)".into()
    } else {
        nodes.join(", ")
    }
}

/// Gathers what the judge reads for `run`, touching nothing.
async fn see(engine: &Engine, ctx: &Ctx<'_>, run: &Running) -> Result<Seen> {
    let nodes = futures_util::future::try_join_all(ctx.lab.postgres_nodes().map(|n| async move {
        if !n.running() {
            return Ok::<_, Error>(PgNode {
                name: n.name.clone(),
                state: None,
                member: None,
            });
        }
        let (state, member) = tokio::join!(node_state(ctx, &n.name), patroni::member(ctx, &n.name));
        Ok(PgNode {
            name: n.name.clone(),
            state: state.ok(),
            member: member.ok().flatten(),
        })
    }))
    .await?;
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

/// Judges the running exercise of lab `lab`; None when none runs. The first time it is seen
/// solved is kept, for the class's table.
pub async fn judged(engine: &Engine, lab: &Lab) -> Result<Option<Status>> {
    let Some(mut run) = running(engine, lab).await? else {
        return Ok(None);
    };
    let ctx = Ctx::new(engine, lab);
    let seen = see(engine, &ctx, &run).await?;
    let Verdict { solved, wrong } = judge::judge(&run, &seen);
    let at = now();
    if solved && run.solved.is_none() {
        run.solved = Some(at);
        keep(engine, lab, Some(&run)).await?;
    }
    Ok(Some(Status {
        lab: lab.name.clone(),
        exercise: run.exercise,
        symptom: run.exercise.symptom(&run.broken),
        solved,
        wrong,
        elapsed: at.saturating_sub(run.started),
        took: run.solved.map(|s| s.saturating_sub(run.started)),
        hints: run.hints,
    }))
}

/// `lab exercise status` of one lab: an error when none runs.
pub async fn status(engine: &Engine, name: &str) -> Result<Status> {
    let lab = model::get(engine, name).await?;
    judged(engine, &lab).await?.ok_or_else(|| none_runs(name))
}

/// `lab exercise hint`: the next of the three hints (the last again once all are given).
pub async fn hint(engine: &Engine, name: &str) -> Result<String> {
    let lab = model::get(engine, name).await?;
    let mut run = running(engine, &lab)
        .await?
        .ok_or_else(|| none_runs(name))?;
    let hints = run.exercise.hints(&run.broken);
    let n = (run.hints + 1).min(hints.len());
    if n > run.hints {
        run.hints = n;
        keep(engine, &lab, Some(&run)).await?;
    }
    Ok(format!("hint {n} of {}: {}", hints.len(), hints[n - 1]))
}

/// `lab exercise answer ID...`: split-brain's lost writes, kept for the judge.
pub async fn answer(engine: &Engine, name: &str, ids: Vec<i64>) -> Result<String> {
    let lab = model::get(engine, name).await?;
    let mut run = running(engine, &lab)
        .await?
        .ok_or_else(|| none_runs(name))?;
    if !run.exercise.takes_answer() {
        return Err(Error::Invalid(format!(
            "exercise {} takes no answer: it is judged by the lab's state alone (`lab exercise \
             status --name {name}`)",
            run.exercise.name()
        )));
    }
    let said = judge::ids(&ids);
    run.answer = Some(ids);
    keep(engine, &lab, Some(&run)).await?;
    Ok(format!(
        "answer kept: orders {said} were lost; `lab exercise status --name {name}` judges it"
    ))
}

/// `lab exercise stop`: the exercise's undo, then the cluster proven healthy; a reset when
/// that fails. What was done, in a sentence.
pub async fn stop(engine: &Engine, progress: &Progress, lock: &LabLock) -> Result<String> {
    let lab = model::get(engine, lock.lab()).await?;
    let name = &lab.name;
    let run = running(engine, &lab)
        .await?
        .ok_or_else(|| none_runs(name))?;
    let ctx = Ctx::new(engine, &lab);
    let step = progress.step(format!("put lab {name} back from {}", run.exercise.name()));
    let undone = match undo(&ctx, &run).await {
        Ok(did) => proven(&ctx).await.map(|()| did),
        Err(e) => Err(e),
    };
    let said = match undone {
        Ok(did) => {
            step.done(&did);
            format!(
                "exercise {} stopped on lab {name}: {did}; the cluster is healthy",
                run.exercise.name()
            )
        }
        Err(e) => {
            step.done(format!("its undo did not bring the lab back ({e})"));
            if !super::has_snapshot(engine, name).await? {
                return Err(Error::Failed(format!(
                    "exercise {} could not be undone on lab {name} ({e}), and the lab has no \
                     snapshot to reset to (it was not made by `lab create`); `lab status --name \
                     {name}` shows what is wrong",
                    run.exercise.name()
                )));
            }
            super::reset(engine, progress, lock).await?;
            format!(
                "exercise {} stopped on lab {name}: its undo did not bring the lab back ({e}), \
                 so the lab was reset to how it was made, losing what was written since",
                run.exercise.name()
            )
        }
    };
    forget(engine, &lab).await?;
    Ok(said)
}

/// Every etcd member answers and the cluster is healthy, within two minutes.
async fn proven(ctx: &Ctx<'_>) -> Result<()> {
    let members: Vec<String> = ctx.lab.etcd_nodes().map(|n| n.name.clone()).collect();
    if !members.is_empty() {
        etcd::wait_healthy(ctx, &members, Duration::from_secs(60)).await?;
    }
    patroni::wait_healthy(ctx, &ctx.lab.postgres_names(), Duration::from_secs(120)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(solved: bool, elapsed: u64, took: Option<u64>) -> Status {
        Status {
            lab: "a".into(),
            exercise: Exercise::QuorumLost,
            symptom: "writes fail".into(),
            solved,
            wrong: if solved {
                Vec::new()
            } else {
                vec!["etcd has no quorum".into()]
            },
            elapsed,
            took,
            hints: 1,
        }
    }

    #[test]
    fn durations_read_as_minutes_and_seconds() {
        assert_eq!(duration(42), "42s");
        assert_eq!(duration(245), "4m 05s");
    }

    #[test]
    fn a_class_table_says_who_solved_what_in_how_long() {
        let rows = vec![
            Row::of("c-a", Some(status(true, 400, Some(245)))),
            Row::of("c-b", Some(status(false, 400, None))),
            Row::of("c-c", None),
            Row::failed("c-d", &Error::Failed("engine gone".into())),
        ];
        let table = table(&rows);
        let line = |lab: &str| table.lines().find(|l| l.starts_with(lab)).unwrap();
        assert!(line("c-a").contains("solved") && line("c-a").contains("4m 05s"));
        assert!(line("c-b").contains("6m 40s so far") && line("c-b").contains("etcd has no"));
        assert!(line("c-c").contains("no exercise"));
        assert!(line("c-d").contains("engine gone"));
        assert_eq!(class_code(&rows), 1);
        assert_eq!(class_code(&rows[..1]), 0, "all running ones solved");
        assert_eq!(class_code(&rows[2..3]), 2, "none runs");
    }

    #[test]
    fn the_status_text_ends_with_what_to_do_next() {
        let open = status(false, 70, None).text();
        assert!(open.contains("not solved yet") && open.contains("✗ etcd has no quorum"));
        assert!(
            open.ends_with("`lab exercise hint --name a` gives the next"),
            "{open}"
        );
        let done = status(true, 300, Some(250)).text();
        assert!(
            done.contains("solved in 4m 10s with 1 of 3 hints"),
            "{done}"
        );
    }
}
