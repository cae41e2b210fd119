//! Stage 3, patroni: createRoles.sh and patroni.yaml on every PostgreSQL node, put there by the
//! course's own commands (`cp -p /createRoles.sh /pgha/config/`, `/patroniSetup.sh`) and
//! validated by Patroni itself; the first node started and waited for as primary, then the
//! others, each waited for until it streams. The state is read live from every node's REST
//! API, not from the DCS copy that refreshes only every loop_wait.

use std::time::Duration;

use serde::Deserialize;

use super::facts::of;
use super::{Ctx, Facts, Outcome, catalog, etcd, wait_for};
use crate::certs::CA_CERT;
use crate::engine::ExecOutput;
use crate::error::{Error, Result};
use crate::render::{PATRONI_API_PORT, PATRONI_CONF};
use crate::spec::Stage;

pub use super::catalog::PATRONI_LOG as LOG;
/// The course's commands for a node's post_bootstrap script and patroni.yaml.
pub const COPY_ROLES: &str = "cp -p /createRoles.sh /pgha/config/";
pub const SETUP: &str = "/patroniSetup.sh";
const SETUP_WAIT: Duration = Duration::from_secs(30);

/// A member as its REST API (`GET /patroni`) describes itself.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct MemberState {
    pub state: String,
    pub role: String,
    #[serde(default)]
    pub timeline: Option<u64>,
    #[serde(default)]
    pub replication_state: Option<String>,
    #[serde(default)]
    pub database_system_identifier: Option<String>,
    #[serde(default)]
    pub xlog: Option<Xlog>,
    /// PostgreSQL's own WAL receiver, read at the same moment: Patroni refreshes
    /// replication_state only once per loop_wait, and does not say where a replica streams
    /// from.
    #[serde(skip)]
    pub receiver: Option<Receiver>,
    /// The replication slots its PostgreSQL holds (read with the receiver; empty on a replica).
    #[serde(skip)]
    pub slots: Vec<String>,
}

/// A replica's WAL receiver: its status and the host it receives from.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Receiver {
    pub status: String,
    pub sender: String,
}

/// WAL positions: `location` on a primary, the received and replayed ones on a replica.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Xlog {
    #[serde(default)]
    pub location: Option<u64>,
    #[serde(default)]
    pub replayed_location: Option<u64>,
}

impl MemberState {
    pub fn is_primary(&self) -> bool {
        self.role == "primary" && self.state == "running"
    }

    pub fn is_streaming(&self) -> bool {
        self.role == "replica"
            && match &self.receiver {
                Some(r) => r.status == "streaming",
                None => self.replication_state.as_deref() == Some("streaming"),
            }
    }

    /// Streaming from `primary`, as its own WAL receiver says: a receiver still attached to a
    /// primary that was cut off reads "streaming" until wal_receiver_timeout.
    pub fn streams_from(&self, primary: &str) -> bool {
        self.is_streaming() && self.receiver.as_ref().is_some_and(|r| r.sender == primary)
    }

    /// How many bytes of WAL this replica has yet to replay from `primary`.
    pub fn lag_behind(&self, primary: &MemberState) -> Option<u64> {
        let ahead = primary.xlog.as_ref()?.location?;
        let replayed = self.xlog.as_ref()?.replayed_location?;
        Some(ahead.saturating_sub(replayed))
    }

    /// "replica streaming", "primary running", ...
    pub fn describe(&self) -> String {
        match &self.receiver {
            Some(r) if self.is_streaming() && !r.sender.is_empty() => {
                return format!("replica streaming from {}", r.sender);
            }
            _ if self.is_streaming() => return "replica streaming".into(),
            _ => {}
        }
        match &self.replication_state {
            Some(r) if self.role == "replica" => format!("replica {r}"),
            _ => format!("{} {}", self.role, self.state),
        }
    }
}

/// The healthy cluster: its primary and its streaming replicas.
#[derive(Debug, Clone)]
pub struct Healthy {
    pub primary: String,
    pub timeline: Option<u64>,
    pub system: Option<String>,
    pub replicas: Vec<String>,
}

impl Healthy {
    pub fn describe(&self) -> String {
        let replicas = if self.replicas.is_empty() {
            "no replicas".to_string()
        } else {
            format!("{} streaming", self.replicas.join(", "))
        };
        let mut about = Vec::new();
        if let Some(t) = self.timeline {
            about.push(format!("timeline {t}"));
        }
        if let Some(s) = &self.system {
            about.push(format!("system {s}"));
        }
        format!(
            "{} primary ({}); {replicas}",
            self.primary,
            about.join(", ")
        )
    }
}

pub async fn run(ctx: &Ctx<'_>, facts: &[Facts]) -> Result<Outcome> {
    let nodes = ctx.lab.postgres_names();
    futures_util::future::try_join_all(nodes.iter().map(|node| async move {
        let f = of(facts, node);
        // What is already there (written by hand, or by an earlier run) is kept; what is
        // missing is typed as the course has it, in one go.
        let mut commands = Vec::new();
        if !f.create_roles {
            commands.push(COPY_ROLES.to_string());
        }
        if !f.patroni_config {
            if !f.patroni_vars {
                // patroniVars comes from /etcdSetup.sh; an etcd configuration already there
                // (a trainee's own, say) is kept as it was.
                commands.push(format!(
                    "(set -e; cd /pgha/config; kept=$(mktemp -d); \
                     cp -p etcd.yaml etcd.conf \"$kept\" 2>/dev/null || true; {}; \
                     cp -p \"$kept\"/* . 2>/dev/null || true; rm -rf \"$kept\")",
                    etcd::SETUP
                ));
            }
            commands.push(SETUP.to_string());
        }
        if !commands.is_empty() {
            let script = commands.join(" && ");
            ctx.must(Stage::Patroni, node, "postgres", &script, SETUP_WAIT, None)
                .await?;
        }
        Ok::<_, Error>(())
    }))
    .await?;

    let running = if facts.iter().any(|f| f.patroni_running) {
        current_primary(ctx, &nodes).await?
    } else {
        None
    };
    let changed = running.is_none()
        || nodes.iter().any(|n| {
            let f = of(facts, n);
            !f.patroni_config || !f.create_roles || !f.pg_data
        });
    let primary = match running {
        Some(primary) => primary,
        None => {
            // A node that already holds data leads; on a fresh lab, the first.
            let first = nodes
                .iter()
                .find(|n| of(facts, n).pg_data)
                .unwrap_or(&nodes[0])
                .clone();
            ctx.start(&catalog::PATRONI, &[&first]).await?;
            if of(facts, &first).pg_data {
                wait_primary(ctx, &first, Duration::from_secs(120)).await?;
            } else {
                wait_bootstrapping(ctx, &first).await?;
            }
            first
        }
    };
    let others: Vec<&String> = nodes.iter().filter(|n| **n != primary).collect();
    ctx.start(&catalog::PATRONI, &others).await?;
    let healthy = wait_healthy(ctx, &nodes, Duration::from_secs(180)).await?;
    Ok(Outcome {
        summary: healthy.describe(),
        changed,
    })
}

/// The node-side probe of a member, run as postgres: `memberState URL [CAFILE]`.
const MEMBER_STATE: &str = "/usr/local/lib/pgha-lab/memberState";

/// What `memberState` prints: the REST API's answer (None when there is none, or none that
/// reads as a member's), PostgreSQL's WAL receiver and its replication slots.
#[derive(Deserialize)]
struct Probed {
    #[serde(deserialize_with = "super::probe::or_none")]
    patroni: Option<MemberState>,
    receiver: Option<Receiver>,
    slots: Vec<String>,
}

impl Probed {
    /// The member's account of itself, with what its PostgreSQL said at the same moment.
    fn member(self) -> Option<MemberState> {
        self.patroni.map(|m| MemberState {
            receiver: self.receiver,
            slots: self.slots,
            ..m
        })
    }
}

/// The member's own account of itself, or None when its REST API does not answer (a stopped
/// node's included).
pub async fn member(ctx: &Ctx<'_>, node: &str) -> Result<Option<MemberState>> {
    if !ctx.lab.nodes.iter().any(|n| n.name == node && n.running()) {
        return Ok(None);
    }
    let argv = member_probe(ctx.lab.tls);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let asked = ctx
        .exec(node, "postgres", &argv, Duration::from_secs(15))
        .await;
    // A node killed a moment ago cannot be asked, or is killed while it answers: it does not
    // answer.
    let out = match asked {
        Ok(out) => out,
        Err(Error::Docker { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    read_member(&ctx.lab.name, node, &argv, &out)
}

/// The probe `member` runs on a node, as postgres: its argv.
pub fn member_probe(tls: bool) -> Vec<String> {
    let (url, ca) = rest_url(tls, "/patroni");
    [MEMBER_STATE, &url]
        .into_iter()
        .chain(ca)
        .map(String::from)
        .collect()
}

/// What `member_probe` (`argv`) printed on `node` of lab `lab`: the member's account of
/// itself, or None when it does not answer (killed while it answered: exit code above 128).
pub fn read_member(
    lab: &str,
    node: &str,
    argv: &[&str],
    out: &ExecOutput,
) -> Result<Option<MemberState>> {
    if out.code > 128 {
        return Ok(None);
    }
    let probed: Probed = super::probe::read(lab, node, argv, out)?;
    Ok(probed.member())
}

/// A lighter probe of a node's member than `member_probe`: its REST API's answer alone, asked
/// with curl (no Python, no psql), without the WAL receiver and slots: its argv.
pub fn rest_probe(tls: bool) -> Vec<String> {
    let (url, ca) = rest_url(tls, "/patroni");
    let ca = ca.map(|ca| ["--cacert", ca]);
    ["curl", "-s", "--max-time", "3"]
        .into_iter()
        .chain(ca.into_iter().flatten())
        .chain([url.as_str()])
        .map(String::from)
        .collect()
}

/// What `rest_probe` printed: the member's account of itself (receiver and slots unknown), or
/// None when the REST API did not answer with one.
pub fn read_rest(out: &ExecOutput) -> Option<MemberState> {
    if !out.ok() {
        return None;
    }
    serde_json::from_str(out.stdout.trim()).ok()
}

/// The running primary among `nodes`, asked of each node's REST API.
pub async fn current_primary(ctx: &Ctx<'_>, nodes: &[String]) -> Result<Option<String>> {
    let states = states(ctx, nodes).await?;
    Ok(primary_of(&states).map(|(n, _)| n.clone()))
}

/// Every node's own account of itself, asked of all at once.
async fn states(ctx: &Ctx<'_>, nodes: &[String]) -> Result<Vec<(String, Option<MemberState>)>> {
    futures_util::future::try_join_all(
        nodes
            .iter()
            .map(|n| async move { Ok::<_, Error>((n.clone(), member(ctx, n).await?)) }),
    )
    .await
}

/// Waits until `node` has taken the new cluster's initialize key (its REST API says it is
/// initializing, or it already leads). From then on the others may start: they wait for the
/// leader to clone from instead of racing it to initialize, their Python starts while initdb
/// runs, and the new primary's first HA loop already finds them and makes their slots.
async fn wait_bootstrapping(ctx: &Ctx<'_>, node: &str) -> Result<()> {
    let begun = |m: &MemberState| m.is_primary() || m.state == "initializing new cluster";
    let deadline = Duration::from_secs(60);
    wait_member(ctx, node, deadline, begun, "has not begun a new cluster").await
}

pub async fn wait_primary(ctx: &Ctx<'_>, node: &str, deadline: Duration) -> Result<()> {
    wait_member(
        ctx,
        node,
        deadline,
        MemberState::is_primary,
        "is not a running primary",
    )
    .await
}

/// Polls `node`'s own account of itself until `done` holds; after `deadline`, a stage error
/// saying it still `is_not`, with what it last said and the end of its log.
async fn wait_member(
    ctx: &Ctx<'_>,
    node: &str,
    deadline: Duration,
    done: impl Fn(&MemberState) -> bool,
    is_not: &str,
) -> Result<()> {
    let waited = wait_for(deadline, Duration::from_millis(250), || async {
        Ok(match member(ctx, node).await? {
            Some(m) if done(&m) => Ok(()),
            Some(m) => Err(m.describe()),
            None => Err("the REST API does not answer".into()),
        })
    })
    .await?;
    let say = |seen| format!("it {is_not} after {} s ({seen})", deadline.as_secs());
    ctx.waited(waited, Stage::Patroni, node, say, Some(LOG))
        .await
}

/// Waits until exactly one of `nodes` is a running primary and every other one streams.
pub async fn wait_healthy(ctx: &Ctx<'_>, nodes: &[String], deadline: Duration) -> Result<Healthy> {
    let waited = wait_for(deadline, Duration::from_millis(500), || async {
        let states = states(ctx, nodes).await?;
        let primary = async {
            match owes_a_slot(&states) {
                Some(primary) => nudge(ctx, &primary).await,
                None => Ok(()),
            }
        };
        let replicas = futures_util::future::try_join_all(
            slot_made_too_late(&states)
                .into_iter()
                .map(|replica| wake_receiver(ctx, replica)),
        );
        tokio::try_join!(primary, replicas)?;
        Ok(healthy(&states))
    })
    .await?;
    // What is wrong begins with the node it is wrong on.
    let node = match &waited {
        Err(seen) => seen
            .split(':')
            .next()
            .filter(|n| nodes.iter().any(|x| x == n)),
        Ok(_) => None,
    }
    .unwrap_or(&nodes[0])
    .to_string();
    let say = |seen| {
        format!(
            "the cluster is not healthy after {} s: {seen}",
            deadline.as_secs()
        )
    };
    ctx.waited(waited, Stage::Patroni, &node, say, Some(LOG))
        .await
}

/// The first running primary among `states`, with its account of itself.
fn primary_of(states: &[(String, Option<MemberState>)]) -> Option<(&String, &MemberState)> {
    states
        .iter()
        .find_map(|(n, s)| s.as_ref().filter(|s| s.is_primary()).map(|s| (n, s)))
}

/// The primary, when it lacks the slot of a member whose Patroni answers: with use_slots, the
/// primary makes a new member's slot only on its next HA loop, up to loop_wait (10 s) later, and
/// a replica whose WAL receiver is refused for want of it retries only after
/// wal_retrieve_retry_interval (5 s). Waking the loop before the replica's PostgreSQL asks
/// spares both.
fn owes_a_slot(states: &[(String, Option<MemberState>)]) -> Option<String> {
    let (primary, p) = primary_of(states)?;
    states
        .iter()
        .filter(|(n, s)| n != primary && s.is_some())
        .any(|(n, _)| !p.slots.contains(&slot_name(n)))
        .then(|| primary.clone())
}

/// Replicas whose PostgreSQL runs without a WAL receiver although the primary now holds their
/// slot: a receiver refused for want of the slot is started again only after
/// wal_retrieve_retry_interval (5 s), which `wake_receiver` cuts short.
fn slot_made_too_late(states: &[(String, Option<MemberState>)]) -> Vec<&str> {
    let Some((_, p)) = primary_of(states) else {
        return Vec::new();
    };
    states
        .iter()
        .filter(|(n, s)| {
            s.as_ref().is_some_and(|s| {
                s.role == "replica" && s.state == "running" && s.receiver.is_none()
            }) && p.slots.contains(&slot_name(n))
        })
        .map(|(n, _)| n.as_str())
        .collect()
}

/// A standby as the primary's pg_stat_replication lists it.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct Standby {
    /// Its application_name: the member's name.
    pub name: String,
    /// async, potential, sync or quorum.
    pub state: String,
}

impl Standby {
    /// Whether commits wait for it.
    pub fn synchronous(&self) -> bool {
        self.state == "sync" || self.state == "quorum"
    }
}

/// The standbys the primary's pg_stat_replication lists, by name; read as one JSON array.
pub async fn standbys(ctx: &Ctx<'_>, primary: &str) -> Result<Vec<Standby>> {
    const QUERY: &str = "SELECT coalesce(json_agg(json_build_object('name', application_name, \
                         'state', sync_state) ORDER BY application_name), '[]') FROM \
                         pg_stat_replication";
    let argv = ["psql", "-XAtc", QUERY];
    ctx.probe(primary, "postgres", &argv, Duration::from_secs(15))
        .await
}

/// Has a replica's PostgreSQL reload its configuration: the signal also wakes its startup
/// process from the wait between attempts to stream, and it asks the primary again at once.
async fn wake_receiver(ctx: &Ctx<'_>, replica: &str) -> Result<()> {
    // Best effort: a replica that does not answer is waited for all the same.
    let argv = ["psql", "-XAtc", "SELECT pg_reload_conf()"];
    ctx.exec(replica, "postgres", &argv, Duration::from_secs(15))
        .await
        .map(drop)
}

/// The physical slot Patroni makes for a member (its `slot_name_from_member_name`): the name in
/// lower case, dashes and periods as `_`, any other character PostgreSQL does not allow as `u`
/// and its code point in decimal, at most 64 characters.
fn slot_name(member: &str) -> String {
    let mut name = String::new();
    for c in member.to_lowercase().chars() {
        match c {
            'a'..='z' | '0'..='9' | '_' => name.push(c),
            '-' | '.' => name.push('_'),
            other => name.push_str(&format!("u{:04}", other as u32)),
        }
    }
    name.chars().take(64).collect()
}

/// `patronictl edit-config --force` on `node` with `changes` (`-s key=value` for Patroni's own
/// settings, `-p name=value` for PostgreSQL's), as a trainee changes the dynamic configuration.
pub async fn edit_config(ctx: &Ctx<'_>, node: &str, changes: &[&str]) -> Result<ExecOutput> {
    let mut cmd = vec!["patronictl", "-c", PATRONI_CONF, "edit-config", "--force"];
    cmd.extend_from_slice(changes);
    ctx.exec(node, "postgres", &cmd, Duration::from_secs(60))
        .await
}

/// The part of Patroni's dynamic configuration (`GET /config`) that sets a failover's pace and
/// whether commits wait for a standby.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Dynamic {
    pub ttl: u64,
    pub loop_wait: u64,
    pub retry_timeout: u64,
    pub synchronous_mode: bool,
    pub synchronous_mode_strict: bool,
}

impl Dynamic {
    /// "async", "sync" or "sync (strict)".
    pub fn mode(&self) -> &'static str {
        match (self.synchronous_mode, self.synchronous_mode_strict) {
            (false, _) => "async",
            (true, false) => "sync",
            (true, true) => "sync (strict)",
        }
    }

    /// From `GET /config`'s JSON; Patroni's own defaults for what it leaves out.
    fn parse(json: &str) -> Option<Dynamic> {
        let v: serde_json::Value = serde_json::from_str(json.trim()).ok()?;
        let secs = |key: &str, default: u64| v.get(key).and_then(|x| x.as_u64()).unwrap_or(default);
        // synchronous_mode is a boolean, or "quorum" since Patroni 4.
        let sync = match v.get("synchronous_mode") {
            Some(serde_json::Value::Bool(b)) => *b,
            Some(serde_json::Value::String(s)) => s != "off" && s != "false",
            _ => false,
        };
        Some(Dynamic {
            ttl: secs("ttl", 30),
            loop_wait: secs("loop_wait", 10),
            retry_timeout: secs("retry_timeout", 10),
            synchronous_mode: sync,
            synchronous_mode_strict: v
                .get("synchronous_mode_strict")
                .and_then(|x| x.as_bool())
                .unwrap_or(false),
        })
    }
}

/// A GET of `path` on `node`'s REST API, from the node itself (over verified https on a
/// `--tls` lab).
async fn rest_get(ctx: &Ctx<'_>, node: &str, path: &str) -> Result<ExecOutput> {
    let (url, ca) = rest_url(ctx.lab.tls, path);
    let cacert = ca.map(|ca| ["--cacert", ca]);
    let argv: Vec<&str> = ["curl", "-sf", "--max-time", "5"]
        .into_iter()
        .chain(cacert.into_iter().flatten())
        .chain([url.as_str()])
        .collect();
    ctx.exec(node, "postgres", &argv, Duration::from_secs(15))
        .await
}

/// The dynamic configuration as `node`'s REST API serves it from the DCS.
pub async fn dynamic(ctx: &Ctx<'_>, node: &str) -> Result<Dynamic> {
    let out = rest_get(ctx, node, "/config").await?;
    Dynamic::parse(&out.stdout).ok_or_else(|| {
        Error::Failed(format!(
            "Patroni's REST API on {node} did not give its dynamic configuration ({}); \
             `lab logs {node} patroni` shows why",
            out.said()
        ))
    })
}

/// When `node` was last promoted, as Patroni's timeline history on it says (`GET /history`):
/// the time of the newest timeline's history file, which PostgreSQL writes as it promotes. In
/// seconds since the Unix epoch; None when the newest timeline is not `node`'s or the REST API
/// does not answer, which leaves the promotion's moment unknown, not the drill failed.
pub async fn promoted(ctx: &Ctx<'_>, node: &str) -> Result<Option<f64>> {
    let out = rest_get(ctx, node, "/history").await?;
    Ok(promotion_in(&out.stdout, node))
}

/// The newest entry of a `/history` answer, `[[timeline, lsn, reason, "2026-12-05T22:39:04.412765+00:00",
/// "pgha2"], ...]`, as seconds since the epoch when it names `node`.
fn promotion_in(history: &str, node: &str) -> Option<f64> {
    let entries: Vec<Vec<serde_json::Value>> = serde_json::from_str(history).ok()?;
    let newest = entries.last()?;
    if newest.get(4)?.as_str()? != node {
        return None;
    }
    iso_seconds(newest.get(3)?.as_str()?)
}

/// `2026-12-05T22:39:04.412765+00:00` (Python's isoformat, the fraction optional) as seconds
/// since the epoch.
fn iso_seconds(text: &str) -> Option<f64> {
    fn parts<T: std::str::FromStr>(text: &str, by: char) -> Option<[T; 3]> {
        let mut it = text.split(by).map(|p| p.parse().ok());
        let parts = [it.next()??, it.next()??, it.next()??];
        it.next().is_none().then_some(parts)
    }
    let (date, rest) = text.split_once('T')?;
    // The offset begins at the last sign: the time has none.
    let (clock, offset) = rest.split_at(rest.rfind(['+', '-'])?);
    let (hms, fraction) = clock.split_once('.').unwrap_or((clock, "0"));
    let [year, month, day]: [i32; 3] = parts(date, '-')?;
    let [hour, minute, second]: [u8; 3] = parts(hms, ':')?;
    let (oh, om) = offset[1..].split_once(':')?;
    let east = (oh.parse::<i64>().ok()? * 60 + om.parse::<i64>().ok()?) * 60;
    let east = if offset.starts_with('-') { -east } else { east };
    let month = time::Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date = time::Date::from_calendar_date(year, month, u8::try_from(day).ok()?).ok()?;
    let clock = time::Time::from_hms(hour, minute, second).ok()?;
    let utc = time::PrimitiveDateTime::new(date, clock)
        .assume_utc()
        .unix_timestamp()
        - east;
    let fraction: f64 = format!("0.{fraction}").parse().ok()?;
    Some(utc as f64 + fraction)
}

/// This node's REST API at `path`, and on a `--tls` lab the CA to verify its https against (the
/// certificate names localhost).
fn rest_url(tls: bool, path: &str) -> (String, Option<&'static str>) {
    if tls {
        (
            format!("https://localhost:{PATRONI_API_PORT}{path}"),
            Some(CA_CERT),
        )
    } else {
        (format!("http://localhost:{PATRONI_API_PORT}{path}"), None)
    }
}

/// Wakes `node`'s HA loop at once: an empty patch of the dynamic configuration changes
/// nothing, but Patroni runs its loop right after any PATCH /config. patroniApi authenticates
/// it as patronictl would on a lab whose REST API requires it (`--tls`).
async fn nudge(ctx: &Ctx<'_>, node: &str) -> Result<()> {
    patch_config(ctx, node, &serde_json::json!({"postgresql": {}}))
        .await
        .map(drop)
}

/// `POST /reload` on `node`'s REST API (`patronictl reload`): Patroni rereads its configuration,
/// writes PostgreSQL's anew and has it reload, on its next HA loop, which a nudge wakes at once.
pub async fn reload(ctx: &Ctx<'_>, node: &str) -> Result<()> {
    ctx.exec(
        node,
        "postgres",
        &["patroniApi", "POST", "/reload"],
        Duration::from_secs(15),
    )
    .await?;
    nudge(ctx, node).await
}

/// `PATCH /config` with `patch` on `node`'s REST API: a change of the dynamic configuration,
/// as `patronictl edit-config` makes it, without starting patronictl's heavier Python.
pub async fn patch_config(
    ctx: &Ctx<'_>,
    node: &str,
    patch: &serde_json::Value,
) -> Result<ExecOutput> {
    let patch = patch.to_string();
    ctx.exec(
        node,
        "postgres",
        &["patroniApi", "PATCH", "/config", &patch],
        Duration::from_secs(15),
    )
    .await
}

/// One primary and every other member streaming, or what is wrong (first the node).
fn healthy(states: &[(String, Option<MemberState>)]) -> std::result::Result<Healthy, String> {
    let primaries: Vec<&(String, Option<MemberState>)> = states
        .iter()
        .filter(|(_, s)| s.as_ref().is_some_and(|s| s.is_primary()))
        .collect();
    let [(primary, Some(p))] = primaries.as_slice() else {
        let names: Vec<&str> = primaries.iter().map(|(n, _)| n.as_str()).collect();
        let first = states.first().map(|(n, _)| n.as_str()).unwrap_or("");
        return Err(format!(
            "{first}: {} running primaries ({})",
            names.len(),
            summary(states)
        ));
    };
    for (node, state) in states {
        if node == primary {
            continue;
        }
        match state {
            Some(s) if s.streams_from(primary) => {}
            _ => return Err(format!("{node}: not streaming yet ({})", summary(states))),
        }
    }
    Ok(Healthy {
        primary: primary.clone(),
        timeline: p.timeline,
        system: p.database_system_identifier.clone(),
        replicas: states
            .iter()
            .filter(|(n, _)| n != primary)
            .map(|(n, _)| n.clone())
            .collect(),
    })
}

fn summary(states: &[(String, Option<MemberState>)]) -> String {
    states
        .iter()
        .map(|(n, s)| {
            format!(
                "{n} {}",
                s.as_ref()
                    .map(|s| s.describe())
                    .unwrap_or_else(|| "not answering".into())
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_promotion_is_read_from_patroni_s_history() {
        let history = r#"[[1, 134217888, "no recovery target specified",
            "2026-12-05T22:39:04.412765+00:00", "pgha2"],
            [2, 134218000, "no recovery target specified", "2026-12-05T23:39:05+01:00", "pgha1"]]"#;
        // 2026-12-05T22:39:05Z.
        assert_eq!(promotion_in(history, "pgha1"), Some(1_796_510_345.0));
        // The newest timeline is not pgha2's: its promotion is an older one.
        assert_eq!(promotion_in(history, "pgha2"), None);
        let at = iso_seconds("2026-12-05T22:39:04.412765+00:00").unwrap();
        assert!((at - 1_796_510_344.412_765).abs() < 1e-6, "{at}");
        assert_eq!(
            iso_seconds("2026-12-05T17:39:04-05:00"),
            Some(1_796_510_344.0)
        );
        assert_eq!(promotion_in("[]", "pgha1"), None);
        assert_eq!(promotion_in("not json", "pgha1"), None);
        assert_eq!(iso_seconds("yesterday"), None);
    }

    fn state(json: &str) -> Option<MemberState> {
        Some(serde_json::from_str(json).unwrap())
    }

    const PRIMARY: &str = r#"{"state":"running","postmaster_start_time":"x","role":"primary",
        "server_version":170011,"xlog":{"location":1000},"timeline":1,
        "database_system_identifier":"7575415324175827441",
        "patroni":{"version":"4.0.7","scope":"pgha_patroni_cluster","name":"pgha1"}}"#;
    const STREAMING: &str = r#"{"state":"running","role":"replica","timeline":1,
        "replication_state":"streaming","database_system_identifier":"7575415324175827441"}"#;
    const STARTING: &str = r#"{"state":"starting","role":"replica"}"#;

    /// A WAL receiver streaming from `sender`.
    fn streaming(sender: &str) -> Receiver {
        Receiver {
            status: "streaming".into(),
            sender: sender.into(),
        }
    }

    /// A replica whose WAL receiver streams from `primary`.
    fn streaming_from(primary: &str) -> Option<MemberState> {
        let mut m = state(STREAMING)?;
        m.receiver = Some(streaming(primary));
        Some(m)
    }

    #[test]
    fn standbys_are_read_from_pg_stat_replication_as_json() {
        let listed: Vec<Standby> = serde_json::from_str(
            r#"[{"name": "pgha2", "state": "sync"}, {"name": "pgha3", "state": "potential"}]"#,
        )
        .unwrap();
        let sync: Vec<&str> = listed
            .iter()
            .filter(|s| s.synchronous())
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(sync, ["pgha2"]);
    }

    #[test]
    fn one_primary_and_streaming_replicas_is_healthy() {
        let states = vec![
            ("pgha1".to_string(), state(PRIMARY)),
            ("pgha2".to_string(), streaming_from("pgha1")),
            ("pgha3".to_string(), streaming_from("pgha1")),
        ];
        let h = healthy(&states).unwrap();
        assert_eq!(h.primary, "pgha1");
        assert_eq!(h.replicas, ["pgha2", "pgha3"]);
        assert_eq!(
            h.describe(),
            "pgha1 primary (timeline 1, system 7575415324175827441); pgha2, pgha3 streaming"
        );
    }

    #[test]
    fn a_replica_not_streaming_is_named() {
        let states = vec![
            ("pgha1".to_string(), state(PRIMARY)),
            ("pgha2".to_string(), state(STARTING)),
            ("pgha3".to_string(), None),
        ];
        let seen = healthy(&states).unwrap_err();
        assert!(seen.starts_with("pgha2: not streaming yet"), "{seen}");
        assert!(seen.contains("pgha3 not answering"), "{seen}");
    }

    #[test]
    fn lag_is_what_the_replica_has_yet_to_replay() {
        let p = state(PRIMARY).unwrap();
        let r: MemberState = serde_json::from_str(
            r#"{"state":"running","role":"replica","xlog":{"received_location":900,
            "replayed_location":800}}"#,
        )
        .unwrap();
        assert_eq!(r.lag_behind(&p), Some(200));
        assert_eq!(p.lag_behind(&r), None);
    }

    #[test]
    fn a_streaming_wal_receiver_counts_before_patroni_notices() {
        let mut m = state(STARTING).unwrap();
        m.state = "running".into();
        assert!(!m.is_streaming());
        m.receiver = Some(streaming("pgha1"));
        assert!(m.is_streaming());
        assert!(m.streams_from("pgha1"));
        assert_eq!(m.describe(), "replica streaming from pgha1");
    }

    #[test]
    fn a_replica_still_attached_to_a_lost_primary_is_not_healthy() {
        let mut stale = state(STREAMING).unwrap();
        stale.receiver = Some(streaming("pgha1"));
        let states = vec![
            ("pgha2".to_string(), state(PRIMARY)),
            ("pgha3".to_string(), Some(stale)),
        ];
        assert!(
            healthy(&states)
                .unwrap_err()
                .starts_with("pgha3: not streaming")
        );
    }

    #[test]
    fn a_primary_without_a_member_s_slot_is_woken() {
        let mut primary = state(PRIMARY).unwrap();
        let starting = state(STARTING);
        let states = |p: &MemberState| {
            vec![
                ("pgha-a1".to_string(), Some(p.clone())),
                ("pgha-a2".to_string(), starting.clone()),
                ("pgha-a3".to_string(), None),
            ]
        };
        assert_eq!(owes_a_slot(&states(&primary)).as_deref(), Some("pgha-a1"));
        // A member that does not answer has no key in the DCS yet: nothing to wake for.
        primary.slots = vec!["pgha_a2".into()];
        assert_eq!(owes_a_slot(&states(&primary)), None);
        let no_primary = vec![("pgha1".to_string(), starting.clone())];
        assert_eq!(owes_a_slot(&no_primary), None);
    }

    #[test]
    fn a_replica_refused_for_want_of_its_slot_is_woken_once_the_slot_is_there() {
        let mut primary = state(PRIMARY).unwrap();
        let mut waiting = state(STARTING).unwrap();
        waiting.state = "running".into();
        let states = |p: &MemberState| {
            vec![
                ("pgha1".to_string(), Some(p.clone())),
                ("pgha2".to_string(), Some(waiting.clone())),
                ("pgha3".to_string(), streaming_from("pgha1")),
                ("pgha4".to_string(), state(STARTING)),
            ]
        };
        // No slot yet: waking the replica would only have it refused again.
        assert!(slot_made_too_late(&states(&primary)).is_empty());
        primary.slots = ["pgha2", "pgha3", "pgha4"].map(String::from).to_vec();
        assert_eq!(slot_made_too_late(&states(&primary)), vec!["pgha2"]);
        assert!(slot_made_too_late(&[("pgha2".to_string(), Some(waiting.clone()))]).is_empty());
    }

    #[test]
    fn slots_are_named_as_patroni_names_them() {
        assert_eq!(slot_name("pgha2"), "pgha2");
        assert_eq!(slot_name("Class-B.3"), "class_b_3");
        assert_eq!(slot_name("n+1"), "nu00431");
        assert_eq!(slot_name(&"x".repeat(70)).len(), 64);
    }

    #[test]
    fn the_rest_api_is_asked_over_verified_https_on_a_tls_lab() {
        assert_eq!(
            rest_url(false, "/patroni"),
            ("http://localhost:8008/patroni".into(), None)
        );
        assert_eq!(
            rest_url(true, "/patroni"),
            (
                "https://localhost:8008/patroni".into(),
                Some("/pgha/certs/ca.crt")
            )
        );
    }

    fn probed(json: &str) -> Option<MemberState> {
        serde_json::from_str::<Probed>(json).unwrap().member()
    }

    #[test]
    fn the_probe_s_answer_reads_as_the_member_with_its_receiver_and_slots() {
        let m = probed(&format!(
            r#"{{"patroni": {STREAMING}, "receiver": {{"status": "streaming", "sender": "pgha1"}},
            "slots": ["pgha1", "pgha3"]}}"#
        ))
        .unwrap();
        assert!(m.streams_from("pgha1"));
        assert_eq!(m.slots, ["pgha1", "pgha3"]);
        let p = probed(&format!(
            r#"{{"patroni": {PRIMARY}, "receiver": null, "slots": []}}"#
        ))
        .unwrap();
        assert!(p.is_primary() && p.receiver.is_none());
        // No REST API, or one that answers something else, is no member.
        assert_eq!(
            probed(r#"{"patroni": null, "receiver": null, "slots": []}"#),
            None
        );
        assert_eq!(
            probed(r#"{"patroni": {"error": "starting"}, "receiver": null, "slots": []}"#),
            None
        );
    }

    #[test]
    fn the_rest_probe_is_curl_verified_on_a_tls_lab_and_reads_without_a_receiver() {
        assert_eq!(
            rest_probe(false),
            [
                "curl",
                "-s",
                "--max-time",
                "3",
                "http://localhost:8008/patroni"
            ]
        );
        let tls = rest_probe(true);
        assert_eq!(tls[4..6], ["--cacert", CA_CERT]);
        assert_eq!(tls[6], "https://localhost:8008/patroni");
        let out = |code, stdout: &str| ExecOutput {
            code,
            stdout: stdout.into(),
            stderr: String::new(),
        };
        let m = read_rest(&out(
            0,
            r#"{"state": "running", "role": "primary", "timeline": 4}"#,
        ));
        assert_eq!(
            m.map(|m| (m.is_primary(), m.timeline, m.receiver)),
            Some((true, Some(4), None))
        );
        assert!(read_rest(&out(7, "")).is_none());
        assert!(read_rest(&out(0, "<html>")).is_none());
    }

    #[test]
    fn no_primary_or_two_is_unhealthy() {
        let none = vec![("pgha1".to_string(), state(STREAMING))];
        assert!(healthy(&none).unwrap_err().contains("0 running primaries"));
        let two = vec![
            ("pgha1".to_string(), state(PRIMARY)),
            ("pgha2".to_string(), state(PRIMARY)),
        ];
        assert!(healthy(&two).unwrap_err().contains("2 running primaries"));
    }

    #[test]
    fn the_dynamic_configuration_reads_with_patroni_s_defaults() {
        let d =
            Dynamic::parse(r#"{"ttl": 30, "loop_wait": 10, "synchronous_mode": true}"#).unwrap();
        assert_eq!((d.ttl, d.loop_wait, d.retry_timeout), (30, 10, 10));
        assert_eq!(d.mode(), "sync");
        let d =
            Dynamic::parse(r#"{"synchronous_mode": "quorum", "synchronous_mode_strict": true}"#)
                .unwrap();
        assert_eq!(d.mode(), "sync (strict)");
        assert_eq!(Dynamic::parse("{}").unwrap().mode(), "async");
        assert_eq!(Dynamic::parse("not json"), None);
    }
}
