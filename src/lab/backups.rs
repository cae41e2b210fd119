//! `lab backup [--type full|diff|incr]` and `lab backups`: pgBackRest's backups taken and listed
//! from the repository host (pgbackrest1), as the course runs them.

use std::time::Duration;

use super::pitr::print_time;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::lock::LabLock;
use crate::model;
use crate::progress::Progress;
use crate::render::STANZA;
use crate::services::{Ctx, pgbackrest};
use crate::table;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackupType {
    Full,
    Diff,
    Incr,
}

/// The running repository node, or why there is none.
fn repo_of(lab: &model::Lab) -> Result<String> {
    match lab.repo_node() {
        Some(n) if n.running() => Ok(n.name.clone()),
        Some(n) => Err(Error::Invalid(format!(
            "{} (pgbackrest1) of lab {} is stopped; `lab start --name {} {}` first",
            n.name, lab.name, lab.name, n.name
        ))),
        None => Err(Error::Invalid(format!(
            "lab {} has no repository node (pgbackrest1)",
            lab.name
        ))),
    }
}

pub async fn take(
    engine: &Engine,
    progress: &Progress,
    lock: &LabLock,
    kind: BackupType,
) -> Result<Option<pgbackrest::Listed>> {
    let name = lock.lab();
    let lab = model::get(engine, name).await?;
    let repo = repo_of(&lab)?;
    let ctx = Ctx::new(engine, &lab);
    let kind = match kind {
        BackupType::Full => "full",
        BackupType::Diff => "diff",
        BackupType::Incr => "incr",
    };
    let command = format!("pgbackrest --stanza={STANZA} --type={kind} backup");
    let step = progress.step(format!("{command} on {repo}"));
    pgbackrest::command(
        &ctx,
        &repo,
        &format!("--type={kind} backup"),
        Duration::from_secs(900),
    )
    .await?;
    let newest = pgbackrest::list(&ctx, &repo)
        .await?
        .and_then(|l| l.into_iter().last());
    step.done(match &newest {
        Some(b) => format!(
            "{} ({}), {} of WAL {}..{}",
            b.label,
            b.kind,
            mib(b.repo_size),
            b.wal_start,
            b.wal_stop
        ),
        None => "done; pgbackrest info does not list it".into(),
    });
    Ok(newest)
}

pub async fn list(engine: &Engine, name: &str) -> Result<Vec<pgbackrest::Listed>> {
    let lab = model::get(engine, name).await?;
    let repo = repo_of(&lab)?;
    pgbackrest::list(&Ctx::new(engine, &lab), &repo)
        .await?
        .ok_or_else(|| {
            Error::Failed(format!(
                "pgbackrest info on {repo} gave no stanza {STANZA}: the backup stage has not \
                 run yet (`lab check --name {name}` says where the lab stands)"
            ))
        })
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1_048_576.0)
}

/// The columns of `lab backups`.
const COLUMNS: [&str; 7] = [
    "label", "type", "started", "ended", "database", "stored", "WAL",
];

/// The table people read; the times are the window a restore can reach from each backup on.
pub fn table(backups: &[pgbackrest::Listed]) -> String {
    if backups.is_empty() {
        return "no backups yet\n".into();
    }
    let rows = backups.iter().map(|b| {
        [
            b.label.clone(),
            b.kind.clone(),
            print_time(b.start),
            print_time(b.stop),
            mib(b.size),
            mib(b.repo_size),
            format!("{}..{}", b.wal_start, b.wal_stop),
        ]
    });
    let mut out = table::render(&COLUMNS, rows);
    out.push('\n');
    out.push_str(
        "a restore (`lab restore --time T`) can reach any time after the end of the oldest backup\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::starts;

    #[test]
    fn the_table_keeps_its_columns_and_every_backup_whole() {
        let backup = |label: &str, kind: &str, start: i64, wal: &str| pgbackrest::Listed {
            label: label.into(),
            kind: kind.into(),
            start,
            stop: start + 7,
            size: 31_457_280,
            repo_size: 4_299_161,
            wal_start: format!("{wal}0"),
            wal_stop: format!("{wal}1"),
        };
        let wal = "00000001000000000000000";
        let backups = [
            backup("20261203-123456F", "full", 1_796_300_096, wal),
            backup(
                "20261203-123456F_20261203-130000I",
                "incr",
                1_796_302_800,
                wal,
            ),
        ];
        let text = table(&backups);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        let at = starts(lines[0], &COLUMNS);
        for (line, b) in lines[1..3].iter().zip(&backups) {
            let cells = [
                b.label.clone(),
                b.kind.clone(),
                print_time(b.start),
                print_time(b.stop),
                "30.0 MiB".into(),
                "4.1 MiB".into(),
                format!("{wal}0..{wal}1"),
            ];
            let cells: Vec<&str> = cells.iter().map(String::as_str).collect();
            assert_eq!(starts(line, &cells), at, "{text}");
        }
        assert!(
            lines[3].starts_with("a restore (`lab restore --time T`)"),
            "{text}"
        );
        assert!(text.ends_with('\n'));
    }
}
