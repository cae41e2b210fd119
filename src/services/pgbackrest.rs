//! Stage 4, backup: the pgBackRest repository on the last node (pgbackrest1), the configuration
//! on it and on every PostgreSQL node, stanza-create and archive_command set through Patroni's
//! dynamic configuration, then a first full backup (which proves archiving as `pgbackrest check`
//! would); done when `pgbackrest info` reports status ok with that backup.

use std::cell::Cell;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::facts::of;
use super::{Ctx, Facts, Outcome, patroni, wait_for};
use crate::error::{Error, Result};
use crate::render::{ARCHIVE_COMMAND, PGBACKREST_CONF, STANZA, archives_to_pgbackrest};
use crate::spec::Stage;

const LOGS: &str = "/var/log/pgbackrest/pgha-*.log";

/// What `pgbackrest info` says of the stanza.
#[derive(Debug, Clone, PartialEq)]
pub struct Info {
    pub status: String,
    pub full_backups: usize,
    /// The newest backup: (label, type).
    pub last: Option<(String, String)>,
}

impl Info {
    pub fn ok(&self) -> bool {
        self.status == "ok"
    }
}

pub async fn run(ctx: &Ctx<'_>, facts: &[Facts]) -> Result<Outcome> {
    let Some(repo) = ctx.lab.repo_node().map(|n| n.name.clone()) else {
        return Err(Error::Failed(format!(
            "lab {} has no repository node (no node has the repo role)",
            ctx.lab.name
        )));
    };
    let mut targets = ctx.lab.postgres_names();
    if !targets.contains(&repo) {
        targets.push(repo.clone());
    }
    futures_util::future::try_join_all(
        targets
            .iter()
            .filter(|node| !of(facts, node).pgbackrest_config)
            .map(|node| async move {
                let conf = ctx.cluster.pgbackrest_conf(ctx.member(node));
                ctx.upload(node, &[(PGBACKREST_CONF, &conf, 0o640)]).await
            }),
    )
    .await?;

    let before = info(ctx, &repo).await?;
    let has_full = before.as_ref().is_some_and(|i| i.full_backups > 0);
    if let Some(info) = before
        && info.ok()
        && has_full
        && archive_command_set(ctx).await?
    {
        return Ok(Outcome {
            summary: describe(&info),
            changed: false,
        });
    }

    // Independent until a WAL segment is archived, which only the backup brings about: after
    // archive_command=/bin/true nothing is left waiting for the new one.
    let ((), primary) = tokio::try_join!(
        command(ctx, &repo, "stanza-create", Duration::from_secs(120)),
        set_archive_command(ctx)
    )?;
    // No `pgbackrest check` before it: the backup makes the same proof, waiting until the WAL
    // it needs has reached the repository through archive_command. The replicas' reload of
    // archive_command (theirs matters only once one is promoted) is waited for meanwhile.
    let backup = async {
        if !has_full {
            command(ctx, &repo, "--type=full backup", Duration::from_secs(900)).await?;
        }
        Ok(())
    };
    let replicas = futures_util::future::try_join_all(
        ctx.lab
            .postgres_names()
            .into_iter()
            .filter(|n| *n != primary)
            .map(|n| async move { archive_command_applied(ctx, &n).await }),
    );
    tokio::try_join!(backup, replicas)?;
    match info(ctx, &repo).await? {
        Some(info) if info.ok() && info.full_backups > 0 => Ok(Outcome {
            summary: describe(&info),
            changed: true,
        }),
        seen => Err(ctx
            .failure(
                Stage::Backup,
                &repo,
                format!(
                    "pgbackrest info does not report status ok with a full backup ({})",
                    seen.map(|i| format!("status {}, {} full", i.status, i.full_backups))
                        .unwrap_or_else(|| "no answer".into())
                ),
                Some(LOGS),
            )
            .await),
    }
}

fn describe(info: &Info) -> String {
    let last = info
        .last
        .as_ref()
        .map(|(label, kind)| format!(", newest {label} ({kind})"))
        .unwrap_or_default();
    format!(
        "stanza {STANZA} status {}, {} full backup(s){last}; WAL archived to pgbackrest1",
        info.status, info.full_backups
    )
}

pub async fn command(ctx: &Ctx<'_>, repo: &str, command: &str, timeout: Duration) -> Result<()> {
    ctx.must(
        Stage::Backup,
        repo,
        "postgres",
        &format!("pgbackrest --stanza={STANZA} {command}"),
        timeout,
        Some(LOGS),
    )
    .await
    .map(drop)
}

/// `pgbackrest info` from the repository host, or None when it cannot say.
pub async fn info(ctx: &Ctx<'_>, repo: &str) -> Result<Option<Info>> {
    Ok(parse_info(&info_json(ctx, repo).await?))
}

/// What `pgbackrest info --output=json` prints on the repository host.
async fn info_json(ctx: &Ctx<'_>, repo: &str) -> Result<String> {
    let stanza = format!("--stanza={STANZA}");
    let argv = ["pgbackrest", &stanza, "info", "--output=json"];
    let out = ctx
        .exec(repo, "postgres", &argv, Duration::from_secs(60))
        .await?;
    Ok(out.stdout)
}

#[derive(Deserialize)]
struct Stanza {
    status: StanzaStatus,
    #[serde(default)]
    backup: Vec<Backup>,
}

#[derive(Deserialize)]
struct StanzaStatus {
    message: String,
}

#[derive(Deserialize)]
struct Backup {
    label: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    timestamp: Option<Span>,
    #[serde(default)]
    archive: Option<WalSpan>,
    #[serde(default)]
    info: Option<Sizes>,
}

#[derive(Deserialize)]
struct Span {
    start: i64,
    stop: i64,
}

#[derive(Deserialize)]
struct WalSpan {
    start: Option<String>,
    stop: Option<String>,
}

#[derive(Deserialize)]
struct Sizes {
    size: Option<u64>,
    repository: Option<RepoSize>,
}

#[derive(Deserialize)]
struct RepoSize {
    size: Option<u64>,
}

/// One backup in the repository, as `pgbackrest info` lists it (times as Unix seconds).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Listed {
    pub label: String,
    pub kind: String,
    pub start: i64,
    pub stop: i64,
    /// The database's size, and the backup's in the repository (bytes).
    pub size: u64,
    pub repo_size: u64,
    pub wal_start: String,
    pub wal_stop: String,
}

/// Every backup of the stanza, oldest first; None when pgBackRest cannot say.
pub async fn list(ctx: &Ctx<'_>, repo: &str) -> Result<Option<Vec<Listed>>> {
    Ok(parse_list(&info_json(ctx, repo).await?))
}

fn parse_list(json: &str) -> Option<Vec<Listed>> {
    let stanzas: Vec<Stanza> = serde_json::from_str(json.trim()).ok()?;
    let stanza = stanzas.into_iter().next()?;
    Some(
        stanza
            .backup
            .into_iter()
            .map(|b| Listed {
                start: b.timestamp.as_ref().map_or(0, |t| t.start),
                stop: b.timestamp.as_ref().map_or(0, |t| t.stop),
                size: b.info.as_ref().and_then(|i| i.size).unwrap_or(0),
                repo_size: b
                    .info
                    .as_ref()
                    .and_then(|i| i.repository.as_ref())
                    .and_then(|r| r.size)
                    .unwrap_or(0),
                wal_start: b
                    .archive
                    .as_ref()
                    .and_then(|a| a.start.clone())
                    .unwrap_or_default(),
                wal_stop: b
                    .archive
                    .as_ref()
                    .and_then(|a| a.stop.clone())
                    .unwrap_or_default(),
                label: b.label,
                kind: b.kind,
            })
            .collect(),
    )
}

fn parse_info(json: &str) -> Option<Info> {
    let stanzas: Vec<Stanza> = serde_json::from_str(json.trim()).ok()?;
    let stanza = stanzas.into_iter().next()?;
    Some(Info {
        status: stanza.status.message,
        full_backups: stanza.backup.iter().filter(|b| b.kind == "full").count(),
        last: stanza
            .backup
            .last()
            .map(|b| (b.label.clone(), b.kind.clone())),
    })
}

/// Whether every PostgreSQL node runs with pgBackRest's archive_command.
async fn archive_command_set(ctx: &Ctx<'_>) -> Result<bool> {
    for node in ctx.lab.postgres_nodes() {
        if !archive_command(ctx, &node.name)
            .await?
            .is_some_and(|c| archives_to_pgbackrest(&c))
        {
            return Ok(false);
        }
    }
    Ok(true)
}

pub async fn archive_command(ctx: &Ctx<'_>, node: &str) -> Result<Option<String>> {
    let argv = ["psql", "-XAtc", "SHOW archive_command"];
    let out = ctx
        .exec(node, "postgres", &argv, Duration::from_secs(15))
        .await?;
    Ok(out.ok().then(|| out.stdout.trim().to_string()))
}

/// Sets archive_command in Patroni's dynamic configuration (where the course's `patronictl
/// edit-config` puts it) and waits until the primary has reloaded it: until then it would
/// still "archive" with /bin/true. Returns the primary.
async fn set_archive_command(ctx: &Ctx<'_>) -> Result<String> {
    let nodes = ctx.lab.postgres_names();
    let healthy = patroni::wait_healthy(ctx, &nodes, Duration::from_secs(60)).await?;
    let primary = &healthy.primary;
    if !archive_command(ctx, primary)
        .await?
        .is_some_and(|c| archives_to_pgbackrest(&c))
    {
        let patch = serde_json::json!({
            "postgresql": {"parameters": {"archive_command": ARCHIVE_COMMAND}}
        });
        let set = patroni::patch_config(ctx, primary, &patch).await?;
        if !set.ok() {
            return Err(ctx
                .failure(
                    Stage::Backup,
                    primary,
                    format!(
                        "Patroni's REST API did not take archive_command: {}",
                        set.said()
                    ),
                    Some(patroni::LOG),
                )
                .await);
        }
    }
    archive_command_applied(ctx, primary).await?;
    Ok(primary.clone())
}

/// Waits until `node` runs with pgBackRest's archive_command (Patroni reloads it on the HA loop
/// that the changed configuration wakes). A replica that Patroni 4.0 has only just cloned can
/// take the change without applying it ("No PostgreSQL configuration items changed" in its
/// log, and the old value for good); after 3 s it is asked to reload (`POST /reload`, as
/// `patronictl reload` does), which rewrites postgresql.conf from what it holds.
async fn archive_command_applied(ctx: &Ctx<'_>, node: &str) -> Result<()> {
    let started = Instant::now();
    let reloaded = Cell::new(false);
    let applied = wait_for(
        Duration::from_secs(60),
        Duration::from_millis(200),
        || async {
            Ok(match archive_command(ctx, node).await? {
                Some(c) if archives_to_pgbackrest(&c) => Ok(()),
                other => {
                    if !reloaded.get() && started.elapsed() >= Duration::from_secs(3) {
                        reloaded.set(true);
                        patroni::reload(ctx, node).await?;
                    }
                    Err(other.unwrap_or_else(|| "no answer from psql".into()))
                }
            })
        },
    )
    .await?;
    let say = |seen| format!("archive_command is still {seen:?} after 60 s");
    ctx.waited(applied, Stage::Backup, node, say, Some(patroni::LOG))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_reports_status_and_full_backups() {
        let json = r#"[{"archive":[{"database":{"id":1},"id":"17-1","max":"000000010000000000000005","min":"000000010000000000000001"}],
            "backup":[{"label":"20251122-064336F","type":"full","info":{"size":1}},
                      {"label":"20251122-064336F_20251122-070000I","type":"incr"}],
            "cipher":"none","db":[{"id":1,"system-id":7575415324175827441,"version":"17"}],
            "name":"pgha","repo":[{"cipher":"none","key":1,"status":{"code":0,"message":"ok"}}],
            "status":{"code":0,"lock":{"backup":{"held":false}},"message":"ok"}}]"#;
        let info = parse_info(json).unwrap();
        assert!(info.ok());
        assert_eq!(info.full_backups, 1);
        assert_eq!(
            info.last,
            Some(("20251122-064336F_20251122-070000I".into(), "incr".into()))
        );
    }

    #[test]
    fn a_stanza_without_backups_is_not_ok() {
        let json =
            r#"[{"backup":[],"name":"pgha","status":{"code":2,"message":"no valid backups"}}]"#;
        let info = parse_info(json).unwrap();
        assert!(!info.ok());
        assert_eq!(info.full_backups, 0);
        assert_eq!(parse_info("not json"), None);
        assert_eq!(parse_info("[]"), None);
    }

    #[test]
    fn the_list_reads_times_sizes_and_wal() {
        let json = r#"[{"backup":[{"label":"20251122-064336F","type":"full",
            "timestamp":{"start":1763793816,"stop":1763793820},
            "archive":{"start":"000000010000000000000002","stop":"000000010000000000000002"},
            "info":{"size":23000000,"repository":{"size":3000000,"delta":3000000}}}],
            "name":"pgha","status":{"code":0,"message":"ok"}}]"#;
        let list = parse_list(json).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!((list[0].start, list[0].stop), (1763793816, 1763793820));
        assert_eq!((list[0].size, list[0].repo_size), (23000000, 3000000));
        assert_eq!(list[0].wal_start, "000000010000000000000002");
        assert_eq!(parse_list("[]"), None);
    }
}
