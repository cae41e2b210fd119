//! Point-in-time recovery with pgBackRest: `lab restore --time T`, and `lab drill pitr`, which
//! drops a table of known rows and brings it back. The recovery is the one Patroni's
//! documentation describes for a restore: Patroni stopped everywhere, the cluster's state in
//! etcd cleared (its dynamic configuration kept), pgBackRest's `--type=time` restore on one
//! node, the cluster started from that node, the replicas rebuilt from it.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::drills::REJOIN;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::lock::LabLock;
use crate::model::{self, Lab};
use crate::progress::Progress;
use crate::render::{PGDATA, STANZA};
use crate::services::{Ctx, catalog, etcd, patroni, pgbackrest};
use crate::shell;
use crate::spec::Stage;
use crate::table;

/// Patroni's keys in etcd: namespace and scope, as /patroniSetup.sh writes them.
const DCS_PREFIX: &str = "/pgha/pgha_patroni_cluster/";
/// The PITR drill's table and its rows.
const TABLE: &str = "lab_pitr";
const ROWS: u32 = 1000;

/// One step of a recovery and how long it took.
#[derive(Debug, Serialize)]
pub struct Timed {
    pub step: String,
    pub seconds: f64,
    pub result: String,
}

/// Runs one step under a progress line and records it.
async fn timed<T>(
    progress: &Progress,
    steps: &mut Vec<Timed>,
    label: &str,
    work: impl std::future::Future<Output = Result<(T, String)>>,
) -> Result<T> {
    let step = progress.step(label);
    let (value, result) = work.await?;
    let took = step.done(&result);
    steps.push(Timed {
        step: label.to_string(),
        seconds: took.as_secs_f64(),
        result,
    });
    Ok(value)
}

/// A time as PostgreSQL prints a timestamptz ("2026-12-03 12:34:56.789012+00"), also with a
/// "T", "Z", "+01:00" or no offset (the nodes' UTC): Unix seconds.
pub fn parse_time(text: &str) -> Option<f64> {
    use time::{Date, Month, PrimitiveDateTime, Time, UtcOffset};
    let text = text.trim();
    let (date, rest) = text.split_at_checked(10)?;
    let rest = rest.strip_prefix([' ', 'T'])?;
    let mut d = date.split('-');
    let (y, m, day) = (d.next()?, d.next()?, d.next()?);
    let date = Date::from_calendar_date(
        y.parse().ok()?,
        Month::try_from(m.parse::<u8>().ok()?).ok()?,
        day.parse().ok()?,
    )
    .ok()?;
    let split = rest.find(['+', '-', 'Z']).unwrap_or(rest.len());
    let (clock, zone) = rest.split_at(split);
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, "0"));
    let mut t = hms.split(':');
    let (h, mi, s) = (t.next()?, t.next()?, t.next().unwrap_or("0"));
    if t.next().is_some() || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let micros: u32 = format!("{frac:0<6}")[..6].parse().ok()?;
    let clock =
        Time::from_hms_micro(h.parse().ok()?, mi.parse().ok()?, s.parse().ok()?, micros).ok()?;
    let offset = match zone {
        "" | "Z" => UtcOffset::UTC,
        z => {
            let sign: i8 = if z.starts_with('-') { -1 } else { 1 };
            let digits: String = z[1..].chars().filter(|c| *c != ':').collect();
            let (oh, om) = match digits.len() {
                2 => (digits.parse::<i8>().ok()?, 0),
                4 => (digits[..2].parse().ok()?, digits[2..].parse().ok()?),
                _ => return None,
            };
            UtcOffset::from_hms(sign * oh, sign * om, 0).ok()?
        }
    };
    let at = PrimitiveDateTime::new(date, clock).assume_offset(offset);
    Some(at.unix_timestamp() as f64 + f64::from(at.microsecond()) / 1e6)
}

/// Unix seconds as PostgreSQL prints them in UTC: "2026-12-03 12:34:56+00".
pub fn print_time(unix: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}+00",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => unix.to_string(),
    }
}

/// Why `target` cannot be restored to, given the backups' stop times and the time now; None
/// when it can.
pub fn refuse_target(target: f64, stops: &[i64], now: f64) -> Option<String> {
    let Some(earliest) = stops.iter().min() else {
        return Some("the repository holds no backup to restore from".into());
    };
    if target < *earliest as f64 {
        return Some(format!(
            "it is before the end of the oldest backup ({}), the earliest time a restore can \
             reach",
            print_time(*earliest)
        ));
    }
    if target > now {
        return Some(format!(
            "it is in the future (now is {})",
            print_time(now as i64)
        ));
    }
    None
}

/// Closes the primary's current WAL segment and waits until pgBackRest has archived it, so
/// a recovery finds everything written so far; the segment's name.
async fn archive_now(ctx: &Ctx<'_>, primary: &str) -> Result<String> {
    let segment = ctx
        .psql(primary, "SELECT pg_walfile_name(pg_switch_wal())")
        .await?;
    let started = Instant::now();
    loop {
        let last = ctx
            .psql(
                primary,
                "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver",
            )
            .await?;
        // Segment names sort as their order within a timeline.
        if last.len() >= 24 && last[..24] >= *segment.as_str() {
            return Ok(segment);
        }
        if started.elapsed() > Duration::from_secs(60) {
            return Err(Error::Failed(format!(
                "WAL segment {segment} was not archived within 60 s (last archived: {last:?}); \
                 `lab logs {primary} postgresql` shows archive_command's errors"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `lab restore --time T`: asks first unless `yes`.
pub async fn restore(
    engine: &Engine,
    progress: &Progress,
    lock: &LabLock,
    target: &str,
    yes: bool,
) -> Result<Vec<Timed>> {
    let name = lock.lab();
    let lab = model::get(engine, name).await?;
    let repo = check_target(engine, &lab, target).await?;
    let restored = restored_node(engine, &lab).await?;
    if !yes {
        confirm(&lab, &restored, target)?;
    }
    recover(engine, progress, &lab, &repo, target, &restored).await
}

/// The node a restore starts the cluster from: the primary, or the first node when none runs.
async fn restored_node(engine: &Engine, lab: &Lab) -> Result<String> {
    let pg = lab.postgres_names();
    Ok(patroni::current_primary(&Ctx::new(engine, lab), &pg)
        .await?
        .unwrap_or_else(|| pg[0].clone()))
}

/// What `lab restore` needs before it touches anything: every PostgreSQL node running, a
/// repository with a backup that ends before `target`, and `target` not in the future. The
/// repository node's name.
async fn check_target(engine: &Engine, lab: &Lab, target: &str) -> Result<String> {
    let name = &lab.name;
    let Some(at) = parse_time(target) else {
        return Err(Error::Invalid(format!(
            "{target:?} is not a time as PostgreSQL prints one (such as `2026-12-03 \
             12:34:56.789+00`, the output of `select now()`)"
        )));
    };
    let stopped: Vec<&str> = lab
        .postgres_nodes()
        .filter(|n| n.out_of_reach(&lab.network))
        .map(|n| n.name.as_str())
        .collect();
    if !stopped.is_empty() {
        return Err(Error::Invalid(format!(
            "{} of lab {name} is stopped or cut off, and a restore rebuilds every PostgreSQL \
             node; `lab start --name {name}` (or `lab heal`) first",
            stopped.join(", ")
        )));
    }
    let Some(repo) = lab.repo_node().filter(|n| n.running()) else {
        return Err(Error::Invalid(format!(
            "lab {name} has no running repository node (pgbackrest1) to restore from"
        )));
    };
    let ctx = Ctx::new(engine, lab);
    let listed = pgbackrest::list(&ctx, &repo.name)
        .await?
        .unwrap_or_default();
    let stops: Vec<i64> = listed.iter().map(|b| b.stop).collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    if let Some(why) = refuse_target(at, &stops, now) {
        return Err(Error::Invalid(format!(
            "lab {name} cannot be restored to {target}: {why}; `lab backups --name {name}` \
             lists what the repository holds"
        )));
    }
    Ok(repo.name.clone())
}

fn confirm(lab: &Lab, restored: &str, target: &str) -> Result<()> {
    let what = format!(
        "lab restore stops Patroni on {}, restores {restored} to {target} and rebuilds the \
         others from it: everything written after {target} is lost",
        lab.postgres_names().join(", "),
    );
    crate::terminal::confirm(&what, "--yes", "restore cancelled; nothing was changed")
}

/// The recovery itself; each step timed.
async fn recover(
    engine: &Engine,
    progress: &Progress,
    lab: &Lab,
    repo: &str,
    target: &str,
    restored: &str,
) -> Result<Vec<Timed>> {
    let ctx = Ctx::new(engine, lab);
    let pg = lab.postgres_names();
    let mut steps = Vec::new();
    let restored = restored.to_string();
    if patroni::member(&ctx, &restored)
        .await?
        .is_some_and(|m| m.is_primary())
    {
        timed(
            progress,
            &mut steps,
            "archive the WAL written so far",
            async {
                let seg = archive_now(&ctx, &restored).await?;
                Ok(((), format!("{seg} archived from {restored}")))
            },
        )
        .await?;
    }
    timed(progress, &mut steps, "stop Patroni everywhere", async {
        // By Patroni's stop policy, the node to restore (the primary) last, so that no replica
        // is promoted in between.
        let policy = catalog::PATRONI.stop_policy;
        for group in catalog::stop_groups(policy, &pg, Some(&restored)) {
            ctx.stop(&catalog::PATRONI, &group).await?;
        }
        Ok(((), format!("stopped on {}", pg.join(", "))))
    })
    .await?;
    timed(
        progress,
        &mut steps,
        "clear the cluster's state in etcd",
        async {
            let removed = etcd::clear_except_config(&ctx, &restored, DCS_PREFIX).await?;
            Ok((
                (),
                format!("{removed} keys under {DCS_PREFIX} removed, its config kept"),
            ))
        },
    )
    .await?;
    let timeline = timed(
        progress,
        &mut steps,
        &format!("restore {restored} to {target}"),
        async {
            let out = ctx
                .must(
                    Stage::Backup,
                    &restored,
                    "postgres",
                    &format!("restoreTo {}", shell::quote(target)),
                    Duration::from_secs(900),
                    Some("/tmp/restoreTo.log"),
                )
                .await?;
            let timeline = serde_json::from_str::<serde_json::Value>(out.trim())
                .ok()
                .and_then(|v| v["timeline"].as_u64())
                .unwrap_or(0);
            Ok((
                timeline,
                format!(
                    "pgBackRest restored and replayed to {target}; promoted on timeline {timeline}"
                ),
            ))
        },
    )
    .await?;
    timed(
        progress,
        &mut steps,
        &format!("start the cluster from {restored}"),
        async {
            ctx.start(&catalog::PATRONI, &[&restored]).await?;
            patroni::wait_primary(&ctx, &restored, Duration::from_secs(120)).await?;
            // Patroni starts the data as a replica and promotes it once it holds the leader
            // key: one timeline more.
            let now = patroni::member(&ctx, &restored)
                .await?
                .and_then(|m| m.timeline)
                .unwrap_or(timeline);
            Ok(((), format!("{restored} leads on timeline {now}")))
        },
    )
    .await?;
    let replicas: Vec<String> = pg.iter().filter(|n| **n != restored).cloned().collect();
    if !replicas.is_empty() {
        timed(progress, &mut steps, "rebuild the replicas", async {
            for node in &replicas {
                let wipe = format!("rm -rf {PGDATA:?}");
                let wait = Duration::from_secs(30);
                ctx.must(Stage::Patroni, node, "postgres", &wipe, wait, None)
                    .await?;
                ctx.start(&catalog::PATRONI, &[node]).await?;
            }
            let healthy = patroni::wait_healthy(&ctx, &pg, REJOIN).await?;
            Ok(((), healthy.describe()))
        })
        .await?;
    }
    timed(progress, &mut steps, "check archiving", async {
        pgbackrest::command(&ctx, repo, "check", Duration::from_secs(180)).await?;
        Ok(((), format!("pgbackrest check passes on {repo}")))
    })
    .await?;
    Ok(steps)
}

/// The PITR drill's report.
#[derive(Debug, Serialize)]
pub struct Report {
    pub lab: String,
    pub target: String,
    pub rows: u32,
    pub rows_back: u64,
    pub identical: bool,
    pub steps: Vec<Timed>,
    pub total_seconds: f64,
}

impl Report {
    pub fn table(&self) -> String {
        let mut out = format!(
            "drill pitr on lab {}: {} of {} rows of {TABLE} back ({}), restored to {}\n",
            self.lab,
            self.rows_back,
            self.rows,
            if self.identical {
                "identical to what was dropped"
            } else {
                "NOT identical to what was dropped"
            },
            self.target
        );
        let rows = self
            .steps
            .iter()
            .map(|s| {
                [
                    format!("{:.2} s", s.seconds),
                    s.step.clone(),
                    s.result.clone(),
                ]
            })
            .chain([[
                format!("{:.2} s", self.total_seconds),
                "in all".into(),
                String::new(),
            ]]);
        out.push_str(&table::render(&[], rows));
        out.push('\n');
        out
    }
}

/// `lab drill pitr`.
pub async fn drill(engine: &Engine, progress: &Progress, lock: &LabLock) -> Result<Report> {
    let name = lock.lab();
    let started = Instant::now();
    let lab = model::get(engine, name).await?;
    let ctx = Ctx::new(engine, &lab);
    let pg = lab.postgres_names();
    let healthy =
        super::drills::healthy_before(&ctx, "the drill cannot start from a known state").await?;
    let primary = healthy.primary.clone();
    let fingerprint =
        format!("SELECT count(*) || ' ' || md5(string_agg(note, ',' ORDER BY id)) FROM {TABLE}");
    let mut steps = Vec::new();
    let before = timed(
        progress,
        &mut steps,
        &format!("make {TABLE} with {ROWS} known rows"),
        async {
            ctx.psql(
                &primary,
                &format!(
                    "DROP TABLE IF EXISTS {TABLE}; CREATE TABLE {TABLE} AS SELECT g AS id, \
                     md5(g::text) AS note FROM generate_series(1, {ROWS}) g"
                ),
            )
            .await?;
            let f = ctx.psql(&primary, &fingerprint).await?;
            Ok((f.clone(), format!("on {primary}: {f}")))
        },
    )
    .await?;
    timed(progress, &mut steps, "let it reach the archive", async {
        let seg = archive_now(&ctx, &primary).await?;
        Ok(((), format!("{seg} archived")))
    })
    .await?;
    let target = ctx.psql(&primary, "SELECT now()").await?;
    // The drop must come strictly after the time noted.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    timed(
        progress,
        &mut steps,
        &format!("the accident: DROP TABLE {TABLE}"),
        async {
            ctx.psql(&primary, &format!("DROP TABLE {TABLE}")).await?;
            Ok(((), format!("dropped after {target}")))
        },
    )
    .await?;
    let repo = check_target(engine, &lab, &target).await?;
    steps.extend(recover(engine, progress, &lab, &repo, &target, &primary).await?);

    let lab = model::get(engine, name).await?;
    let ctx = Ctx::new(engine, &lab);
    let now_primary = patroni::current_primary(&ctx, &pg)
        .await?
        .unwrap_or(primary);
    let after = timed(progress, &mut steps, &format!("read {TABLE} back"), async {
        let f = ctx.psql(&now_primary, &fingerprint).await?;
        Ok((f.clone(), format!("on {now_primary}: {f}")))
    })
    .await?;
    timed(progress, &mut steps, "take a new backup", async {
        pgbackrest::command(&ctx, &repo, "--type=incr backup", Duration::from_secs(600)).await?;
        let newest = pgbackrest::list(&ctx, &repo)
            .await?
            .and_then(|l| l.last().map(|b| format!("{} ({})", b.label, b.kind)))
            .unwrap_or_else(|| "?".into());
        Ok(((), format!("{newest} in stanza {STANZA}")))
    })
    .await?;
    let rows_back = after
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Ok(Report {
        lab: name.to_string(),
        target,
        rows: ROWS,
        rows_back,
        identical: after == before,
        steps,
        total_seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::starts;

    #[test]
    fn times_read_as_postgresql_prints_them() {
        let t = parse_time("2026-12-03 12:34:56.789012+00").unwrap();
        assert!((t - 1_796_301_296.789_012).abs() < 1e-6, "{t}");
        assert_eq!(parse_time("2026-12-03 12:34:56+00"), Some(1_796_301_296.0));
        assert_eq!(parse_time("2026-12-03T12:34:56Z"), Some(1_796_301_296.0));
        assert_eq!(
            parse_time("2026-12-03 13:34:56+01:00"),
            Some(1_796_301_296.0)
        );
        assert_eq!(
            parse_time("2026-12-03 07:04:56-0530"),
            Some(1_796_301_296.0)
        );
        assert_eq!(parse_time("2026-12-03 12:34:56"), Some(1_796_301_296.0));
        for bad in [
            "yesterday",
            "2026-13-03 12:00:00",
            "2026-12-03",
            "2026-12-03 25:00:00",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
        assert_eq!(print_time(1_796_301_296), "2026-12-03 12:34:56+00");
    }

    #[test]
    fn a_target_needs_a_backup_that_ended_before_it_and_must_not_be_ahead() {
        assert!(
            refuse_target(100.0, &[], 200.0)
                .unwrap()
                .contains("no backup")
        );
        assert!(
            refuse_target(50.0, &[60, 90], 200.0)
                .unwrap()
                .contains("oldest backup")
        );
        assert!(
            refuse_target(300.0, &[60], 200.0)
                .unwrap()
                .contains("future")
        );
        assert_eq!(refuse_target(100.0, &[60, 150], 200.0), None);
    }

    #[test]
    fn the_report_keeps_its_steps_in_line() {
        let step = |step: &str, seconds: f64| Timed {
            step: step.into(),
            seconds,
            result: format!("{step} done"),
        };
        let report = Report {
            lab: "wtt-a-very-long-lab-name-for-a-trainee-x".into(),
            target: "2026-12-03 12:34:56.789012+00".into(),
            rows: 1000,
            rows_back: 1000,
            identical: true,
            steps: vec![
                step("make pitr_drill with 1000 known rows", 0.35),
                step("restore the whole cluster to just before the DROP", 123.45),
            ],
            total_seconds: 130.5,
        };
        let text = report.table();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("drill pitr on lab wtt-a-very-long"),
            "{text}"
        );
        let at = starts(
            lines[1],
            &[
                "0.35 s",
                "make",
                "make pitr_drill with 1000 known rows done",
            ],
        );
        assert_eq!(at[0], 0, "{text}");
        assert_eq!(
            starts(
                lines[2],
                &[
                    "123.45 s",
                    "restore",
                    "restore the whole cluster to just before the DROP done"
                ]
            ),
            at,
            "{text}"
        );
        assert_eq!(starts(lines[3], &["130.50 s", "in all"]), at[..2], "{text}");
        assert_eq!(lines.len(), 4, "{text}");
        assert!(text.ends_with("in all\n"), "{text:?}");
    }
}
