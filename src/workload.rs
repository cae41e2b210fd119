//! A drill's client workload, as an application sees the lab: a writer inserting numbered rows,
//! each in its own transaction, through the read-write entry, and optionally a reader asking the
//! read-only entry; both reconnect on failure and record every acknowledgement and error with
//! its time. The pure half sums a record up: the longest time without an acknowledgement after
//! the fault, which acknowledged rows are missing, and what the client was told.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::client::{self, Client, Entry};

/// The drill's table, made afresh by each drill on the primary.
pub const TABLE: &str = "lab_drill";
/// Time between two writes (or reads): about 50 a second, a light load for two cores.
const PACE: Duration = Duration::from_millis(20);
/// How long one statement, or one connection attempt, may take before it counts as failed.
const PATIENCE: Duration = Duration::from_secs(2);

/// One acknowledged operation: the row's number (the highest seen, for a read), when the
/// acknowledgement came (since the workload began) and which server gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct Ack {
    pub id: i64,
    pub at: Duration,
    pub server: String,
}

/// What one side of the workload saw.
#[derive(Debug, Clone, Default)]
pub struct Record {
    pub acks: Vec<Ack>,
    /// (when, the client's words, grouped by `kind`).
    pub failures: Vec<(Duration, String)>,
    /// Writes sent whose outcome the client never learnt (the connection died under them):
    /// they may or may not have committed.
    pub in_doubt: Vec<i64>,
}

/// The writer (and reader) running in the background until `stop`.
pub struct Workload {
    started: Instant,
    stop: watch::Sender<bool>,
    writer: JoinHandle<Record>,
    reader: Option<JoinHandle<Record>>,
    /// The writer's newest acknowledgement, live.
    latest: watch::Receiver<Option<Ack>>,
}

/// Makes the drill's table afresh on whatever `entry` reaches (the primary).
pub async fn prepare(entry: &Entry) -> Result<(), String> {
    let client = client::connect(entry, Duration::from_secs(10)).await?;
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {TABLE}; CREATE TABLE {TABLE} (id bigint PRIMARY KEY, \
             at timestamptz NOT NULL DEFAULT clock_timestamp())"
        ))
        .await
        .map_err(|e| client::said(&e))
}

/// The ids of the drill's rows on whatever `entry` reaches.
pub async fn rows(entry: &Entry) -> Result<BTreeSet<i64>, String> {
    let client = client::connect(entry, Duration::from_secs(10)).await?;
    let rows = client
        .query(&format!("SELECT id FROM {TABLE}"), &[])
        .await
        .map_err(|e| client::said(&e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

impl Workload {
    pub fn start(write: Entry, read: Option<Entry>) -> Workload {
        let started = Instant::now();
        let (stop, stopped) = watch::channel(false);
        let (acked, latest) = watch::channel(None);
        let writer = tokio::spawn(run(write, started, stopped.clone(), Side::Write, acked));
        let reader = read.map(|r| {
            let (acked, _) = watch::channel(None);
            tokio::spawn(run(r, started, stopped, Side::Read, acked))
        });
        Workload {
            started,
            stop,
            writer,
            reader,
            latest,
        }
    }

    /// Now, on the workload's clock.
    pub fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Stops both sides; their records.
    pub async fn stop(mut self) -> (Record, Option<Record>) {
        let _ = self.stop.send(true);
        let writes = (&mut self.writer).await.unwrap_or_default();
        let reads = match self.reader.as_mut() {
            Some(r) => Some(r.await.unwrap_or_default()),
            None => None,
        };
        (writes, reads)
    }

    /// Waits until the writer has an acknowledgement from `server` after `since` (any server
    /// when None), for at most `deadline`; whether it came.
    pub async fn wait_ack(
        &self,
        server: Option<&str>,
        since: Duration,
        deadline: Duration,
    ) -> bool {
        let until = Instant::now() + deadline;
        while Instant::now() < until {
            if self
                .latest
                .borrow()
                .as_ref()
                .is_some_and(|a| a.at > since && server.is_none_or(|s| a.server == s))
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        self.writer.abort();
        if let Some(r) = &self.reader {
            r.abort();
        }
    }
}

#[derive(Clone, Copy)]
enum Side {
    Write,
    Read,
}

/// One side's loop: connect (noting which server answered), then one statement per PACE,
/// until told to stop; any failure drops the connection and the next round reconnects.
async fn run(
    entry: Entry,
    started: Instant,
    stopped: watch::Receiver<bool>,
    side: Side,
    acked: watch::Sender<Option<Ack>>,
) -> Record {
    let mut record = Record::default();
    let mut conn: Option<(Client, String)> = None;
    let mut next_id: i64 = 1;
    while !*stopped.borrow() {
        let round = Instant::now();
        if conn.is_none() {
            match connect(&entry).await {
                Ok(c) => conn = Some(c),
                Err(e) => record.failures.push((started.elapsed(), e)),
            }
        }
        if let Some((client, server)) = &conn {
            let done = match side {
                Side::Write => {
                    let id = next_id;
                    next_id += 1;
                    let args: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&id];
                    let insert = client.execute("INSERT INTO lab_drill (id) VALUES ($1)", &args);
                    match tokio::time::timeout(PATIENCE, insert).await {
                        Ok(Ok(_)) => Ok(id),
                        Ok(Err(e)) => {
                            // A server's refusal is an answer: the row is certainly not there.
                            if e.as_db_error().is_none() {
                                record.in_doubt.push(id);
                            }
                            Err(kind(&e))
                        }
                        Err(_) => {
                            record.in_doubt.push(id);
                            Err(format!("no answer within {} s", PATIENCE.as_secs()))
                        }
                    }
                }
                Side::Read => {
                    let select =
                        client.query_one("SELECT coalesce(max(id), 0) FROM lab_drill", &[]);
                    match tokio::time::timeout(PATIENCE, select).await {
                        Ok(Ok(row)) => Ok(row.get(0)),
                        Ok(Err(e)) => Err(kind(&e)),
                        Err(_) => Err(format!("no answer within {} s", PATIENCE.as_secs())),
                    }
                }
            };
            match done {
                Ok(id) => {
                    let ack = Ack {
                        id,
                        at: started.elapsed(),
                        server: server.clone(),
                    };
                    acked.send_replace(Some(ack.clone()));
                    record.acks.push(ack);
                }
                Err(e) => {
                    record.failures.push((started.elapsed(), e));
                    conn = None;
                }
            }
        }
        if let Some(rest) = PACE.checked_sub(round.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
    record
}

/// A connection and the address of the server behind it.
async fn connect(entry: &Entry) -> Result<(Client, String), String> {
    let client = client::connect(entry, PATIENCE).await?;
    let who = tokio::time::timeout(PATIENCE, client::ask_who(&client))
        .await
        .map_err(|_| format!("no answer within {} s", PATIENCE.as_secs()))??;
    Ok((client, who.server))
}

/// An error as a kind: the server's message and SQLSTATE when the server answered, otherwise
/// what the client saw of the connection.
fn kind(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None if e.is_closed() => "connection closed".into(),
        None => client::said(e),
    }
}

/// A stretch of time with no acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Gap {
    /// The last acknowledgement before it (or the fault, when nothing came before).
    pub from: f64,
    /// The first after it.
    pub to: f64,
}

impl Gap {
    pub fn length(&self) -> f64 {
        self.to - self.from
    }
}

/// The longest time without an acknowledgement that ends after `fault`: the outage a client saw.
/// None when nothing was acknowledged after the fault.
pub fn outage(acks: &[Ack], fault: Duration) -> Option<Gap> {
    let mut before = acks
        .iter()
        .rev()
        .find(|a| a.at <= fault)
        .map_or(fault, |a| a.at);
    let mut longest: Option<Gap> = None;
    for a in acks.iter().filter(|a| a.at > fault) {
        let gap = Gap {
            from: before.as_secs_f64(),
            to: a.at.as_secs_f64(),
        };
        if longest.is_none_or(|l| gap.length() > l.length()) {
            longest = Some(gap);
        }
        before = a.at;
    }
    longest
}

/// The acknowledged writes whose rows are not in `present`.
pub fn lost(acks: &[Ack], present: &BTreeSet<i64>) -> Vec<i64> {
    acks.iter()
        .map(|a| a.id)
        .filter(|id| !present.contains(id))
        .collect()
}

/// Ids as ranges: "12-15, 20".
pub fn ranges(ids: &[i64]) -> String {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            sorted[i].to_string()
        } else {
            format!("{}-{}", sorted[i], sorted[j])
        });
        i = j + 1;
    }
    parts.join(", ")
}

/// The errors a client saw, by kind: how often, first and last (seconds on the workload's clock).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Errors {
    pub kind: String,
    pub count: usize,
    pub first: f64,
    pub last: f64,
}

pub fn errors(failures: &[(Duration, String)]) -> Vec<Errors> {
    let mut by_kind: BTreeMap<&str, Errors> = BTreeMap::new();
    for (at, kind) in failures {
        let at = at.as_secs_f64();
        by_kind
            .entry(kind)
            .and_modify(|e| {
                e.count += 1;
                e.last = at;
            })
            .or_insert(Errors {
                kind: kind.clone(),
                count: 1,
                first: at,
                last: at,
            });
    }
    let mut all: Vec<Errors> = by_kind.into_values().collect();
    all.sort_by(|a, b| a.first.total_cmp(&b.first));
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(id: i64, ms: u64) -> Ack {
        Ack {
            id,
            at: Duration::from_millis(ms),
            server: "10.0.0.2".into(),
        }
    }

    #[test]
    fn the_outage_runs_from_the_last_ack_before_the_fault_to_the_first_after() {
        let acks = [ack(1, 100), ack(2, 120), ack(3, 5_120), ack(4, 5_140)];
        let gap = outage(&acks, Duration::from_millis(130)).unwrap();
        assert_eq!((gap.from, gap.to), (0.12, 5.12));
        // A later, longer stall counts too: the client saw it after the fault.
        let acks = [ack(1, 100), ack(2, 200), ack(3, 300), ack(4, 9_300)];
        let gap = outage(&acks, Duration::from_millis(150)).unwrap();
        assert_eq!((gap.from, gap.to), (0.3, 9.3));
        // Nothing before the fault: the gap starts at the fault.
        let gap = outage(&[ack(1, 2_000)], Duration::from_millis(500)).unwrap();
        assert_eq!((gap.from, gap.to), (0.5, 2.0));
        assert_eq!(outage(&acks, Duration::from_secs(10)), None);
    }

    #[test]
    fn lost_writes_are_the_acknowledged_ids_missing_and_read_as_ranges() {
        let acks: Vec<Ack> = (1..=10).map(|i| ack(i, i as u64)).collect();
        let present: BTreeSet<i64> = [1, 2, 3, 4, 5, 7, 10].into();
        let gone = lost(&acks, &present);
        assert_eq!(gone, vec![6, 8, 9]);
        assert_eq!(ranges(&gone), "6, 8-9");
        assert_eq!(ranges(&[]), "");
        assert_eq!(ranges(&[3, 1, 2, 2]), "1-3");
    }

    #[test]
    fn errors_are_grouped_by_kind_in_the_order_first_seen() {
        let failures = [
            (Duration::from_secs(2), "connection closed".to_string()),
            (Duration::from_secs(3), "refused".to_string()),
            (Duration::from_secs(4), "refused".to_string()),
            (Duration::from_secs(5), "connection closed".to_string()),
        ];
        let grouped = errors(&failures);
        assert_eq!(grouped.len(), 2);
        assert_eq!(grouped[0].kind, "connection closed");
        assert_eq!(
            (grouped[0].count, grouped[0].first, grouped[0].last),
            (2, 2.0, 5.0)
        );
        assert_eq!((grouped[1].count, grouped[1].first), (2, 3.0));
    }
}
