//! The locks, kept on the Docker Engine so they hold across every machine driving it: the
//! engine's planning lock, held by a create from reading what the engine holds until the lab's
//! containers exist (and so hold their addresses and ports), so two `lab create` runs at the
//! same time can never pick the same subnet, addresses or ports, and by a `--tls` lab's
//! certificate check and issue, so two bootstraps at once never hand a lab two CAs; and a lock
//! per lab (`LabLock`) that every command changing the lab holds, so a second one on the same
//! lab is refused (or, asked to, waits) instead of spoiling the first. Each is a lock container
//! (engine::HeldLock) labelled with its holder, gone with its holder, kill -9 included.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use crate::engine::{Engine, HeldLock, LockSpec};
use crate::error::{Error, Result};
use crate::image::definition::IMAGE;
use crate::interrupt::Interrupt;
use crate::labels;
use crate::progress::Progress;

/// The planning lock's container: one per engine. Lab names hold no '.', so no lab's lock
/// container (`pgha-lab-lock.NAME`) or objects can be named alike.
const PLANNING: &str = "pgha-lab-lock";

/// Lab `name`'s lock container.
fn lab_lock(name: &str) -> String {
    format!("{PLANNING}.{name}")
}

/// Released when dropped.
pub struct PlanningLock {
    _held: HeldLock,
}

/// How long a command waits for another to let go of the planning lock before it gives up.
const PATIENCE: Duration = Duration::from_secs(120);

/// Takes the engine's planning lock, waiting while another command holds it (for seconds: a
/// create until its containers exist). Says who holds it while waiting, and gives up after
/// PATIENCE. `purpose` names what waits, in the words of "so {purpose} cannot go on safely".
pub async fn acquire(engine: &Engine, progress: &Progress, purpose: &str) -> Result<PlanningLock> {
    let spec = spec(PLANNING, "planning", None, purpose);
    // The patience is per holder: behind a queue of creates (a class made with --count), the
    // lock changes hands, and only one that keeps it too long is a fault.
    let mut since = Instant::now();
    let mut told: Option<String> = None;
    loop {
        let holder = match take(engine, &spec).await? {
            Ok(held) => return Ok(PlanningLock { _held: held }),
            Err(holder) => holder,
        };
        if told.as_ref().is_some_and(|t| *t != holder) {
            since = Instant::now();
        }
        if since.elapsed() >= PATIENCE {
            return Err(Error::Failed(format!(
                "{holder} has held the engine's planning lock (container {PLANNING}) for over \
                 {} s, so {purpose} cannot go on safely. Wait for it to finish (or stop it if it \
                 hangs) and run the command again.",
                PATIENCE.as_secs()
            )));
        }
        if told.as_ref() != Some(&holder) {
            progress.line(format!(
                "waiting for the engine's planning lock, held by {holder} (up to {} s)",
                PATIENCE.as_secs()
            ));
            told = Some(holder);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A lab's own lock, held while a command changes that lab: every command that does (create,
/// bootstrap, start, stop, reset, destroy, the drills and fault commands, sync, backup,
/// restore) takes a `&LabLock` rather than a lab's name, so none can run without it. Read-only
/// commands never take it.
pub struct LabLock {
    lab: String,
    _held: HeldLock,
}

impl LabLock {
    /// The lab this lock is for.
    pub fn lab(&self) -> &str {
        &self.lab
    }
}

/// Takes lab `name`'s lock for `purpose` ("a stop", "the kill-primary drill"). Another command
/// changing the same lab is a conflict to report at once, naming it; with `wait`, it is waited
/// for instead (saying so), until it ends or Ctrl-C (through `interrupt`) gives up.
pub async fn lab(
    engine: &Engine,
    name: &str,
    purpose: &str,
    wait: bool,
    progress: &Progress,
    interrupt: Option<&Interrupt>,
) -> Result<LabLock> {
    let spec = spec(&lab_lock(name), "lab", Some(name), purpose);
    let mut told: Option<String> = None;
    loop {
        let holder = match take(engine, &spec).await? {
            Ok(held) => {
                return Ok(LabLock {
                    lab: name.to_string(),
                    _held: held,
                });
            }
            Err(holder) => holder,
        };
        if !wait {
            return Err(Error::Busy(format!(
                "{holder} is changing lab {name} right now (it holds the lab's lock, container \
                 {} on the Docker Engine), so {purpose} is refused rather than spoil both. Run \
                 this again once that ends, or add --wait to wait for it.",
                spec.name
            )));
        }
        if told.as_ref() != Some(&holder) {
            progress.line(format!(
                "waiting for {holder} to finish with lab {name} before {purpose} (Ctrl-C gives \
                 up)"
            ));
            told = Some(holder);
        }
        if interrupt.is_some_and(Interrupt::was_pressed) {
            return Err(Error::Interrupted);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Takes lab `name`'s lock if it is free; when another command holds it, that command's name,
/// for commands over a whole class that pass a busy lab by.
pub async fn lab_if_free(engine: &Engine, name: &str) -> Result<Result<LabLock, String>> {
    let spec = spec(&lab_lock(name), "lab", Some(name), "a change to every lab");
    Ok(take(engine, &spec).await?.map(|held| LabLock {
        lab: name.to_string(),
        _held: held,
    }))
}

/// Waits until the locks this process let go of are gone from the engine: called once before
/// the process exits, so the next command finds them free.
pub async fn settle() {
    crate::engine::released(None).await;
}

/// How long a lock container may stay "created" (its holder between create and start, a few
/// milliseconds) before it is taken for one whose holder died in between.
const STALE_AFTER: Duration = Duration::from_secs(10);

/// How long one attempt may go on breaking stale locks, or waiting out one being made or
/// removed, before it reports the lock as held.
const ATTEMPT: Duration = Duration::from_secs(3);

/// One attempt at a lock: held now, or who holds it. A stale lock on the way is broken and
/// the attempt goes on.
async fn take(engine: &Engine, spec: &LockSpec) -> Result<Result<HeldLock, String>> {
    let started = Instant::now();
    let mut seen = None;
    while started.elapsed() < ATTEMPT {
        if let Some(held) = engine.claim_lock(spec).await? {
            return Ok(Ok(held));
        }
        // Its name is taken before the engine shows the container (while it is being made),
        // and it may have gone since the create: look again in a moment.
        let Some(lock) = engine.lock(&spec.name).await? else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        match verdict(&lock.state, lock.age) {
            Verdict::Held => return Ok(Err(holder(&lock.labels))),
            Verdict::Stale => engine.break_lock(&lock.id).await?,
            Verdict::Going => tokio::time::sleep(Duration::from_millis(50)).await,
        }
        seen = Some(lock.labels);
    }
    Ok(Err(
        seen.map_or_else(|| "another command".into(), |l| holder(&l))
    ))
}

/// What a lock container found in the way means.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// A live holder has it.
    Held,
    /// Its holder is gone and the engine has not cleaned it up: break it.
    Stale,
    /// The engine is removing it right now: try again in a moment.
    Going,
}

/// Judges a lock container by its state and, while "created", its age.
fn verdict(state: &str, age: Option<Duration>) -> Verdict {
    match state {
        "removing" => Verdict::Going,
        // The holder died between create and start (or never could start it).
        "created" if age.is_some_and(|a| a >= STALE_AFTER) => Verdict::Stale,
        // `cat` ended, so the holder's attach closed: AutoRemove is about to take it.
        "exited" | "dead" => Verdict::Stale,
        _ => Verdict::Held,
    }
}

/// The lock container to create for `purpose`: `kind` is `planning` or `lab`, with the lab's
/// name for a lab lock; labelled with this process as its holder.
fn spec(name: &str, kind: &str, lab: Option<&str>, purpose: &str) -> LockSpec {
    let since = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut labels = HashMap::from([
        (labels::LOCK.to_string(), kind.to_string()),
        (labels::LOCK_HOST.to_string(), host_name()),
        (labels::LOCK_PID.to_string(), std::process::id().to_string()),
        (labels::LOCK_COMMAND.to_string(), command_line()),
        (labels::LOCK_PURPOSE.to_string(), purpose.to_string()),
        (labels::LOCK_SINCE.to_string(), since.to_string()),
    ]);
    if let Some(lab) = lab {
        labels.insert(labels::LOCK_LAB.to_string(), lab.to_string());
    }
    LockSpec {
        name: name.to_string(),
        // Labs exist only on an engine that has their image, so every engine with a lab to
        // lock has it; `cat` is all the lock runs.
        image: IMAGE.to_string(),
        labels,
    }
}

/// This machine's host name, as the holder of a lock is told to others.
fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// "lab reset --name alice": this process's command line, its program by file name only.
fn command_line() -> String {
    let mut args = std::env::args();
    let program = args.next().unwrap_or_default();
    let program = std::path::Path::new(&program)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or(program);
    std::iter::once(program)
        .chain(args)
        .collect::<Vec<_>>()
        .join(" ")
}

/// "lab reset --name alice (pid 1234 on host ws7, since 04:51:07 UTC)": a lock's holder, as
/// its labels tell.
fn holder(labels: &HashMap<String, String>) -> String {
    let get = |key: &str| {
        labels
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let command = get(labels::LOCK_COMMAND).unwrap_or("another lab command");
    let mut about = Vec::new();
    if let Some(pid) = get(labels::LOCK_PID) {
        about.push(format!("pid {pid}"));
    }
    if let Some(host) = get(labels::LOCK_HOST) {
        about.push(format!("on host {host}"));
    }
    let since = get(labels::LOCK_SINCE)
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .map(|t| {
            format!(
                "since {:02}:{:02}:{:02} UTC",
                t.hour(),
                t.minute(),
                t.second()
            )
        });
    let about = match (about.is_empty(), since) {
        (true, None) => return command.to_string(),
        (true, Some(since)) => since,
        (false, None) => about.join(" "),
        (false, Some(since)) => format!("{}, {since}", about.join(" ")),
    };
    format!("{command} ({about})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_is_judged_by_its_state() {
        assert_eq!(verdict("running", None), Verdict::Held);
        assert_eq!(verdict("removing", None), Verdict::Going);
        assert_eq!(verdict("exited", None), Verdict::Stale);
        assert_eq!(verdict("dead", None), Verdict::Stale);
        // A holder between create and start, or one that died there.
        let created = |s| verdict("created", Some(Duration::from_secs(s)));
        assert_eq!(created(0), Verdict::Held);
        assert_eq!(created(9), Verdict::Held);
        assert_eq!(created(10), Verdict::Stale);
        // No age read: never broken on a guess.
        assert_eq!(verdict("created", None), Verdict::Held);
    }

    #[test]
    fn the_holder_is_named_from_the_labels() {
        let labels = HashMap::from([
            (
                labels::LOCK_COMMAND.to_string(),
                "lab reset --name itlock".to_string(),
            ),
            (labels::LOCK_PID.to_string(), "1234".to_string()),
            (labels::LOCK_HOST.to_string(), "ws7".to_string()),
            // 2025-12-06 04:51:07 UTC
            (labels::LOCK_SINCE.to_string(), "1764996667".to_string()),
        ]);
        assert_eq!(
            holder(&labels),
            "lab reset --name itlock (pid 1234 on host ws7, since 04:51:07 UTC)"
        );
        assert_eq!(holder(&HashMap::new()), "another lab command");
    }

    #[test]
    fn lock_containers_are_named_apart_from_labs() {
        assert_eq!(lab_lock("alice"), "pgha-lab-lock.alice");
        let spec = spec(&lab_lock("alice"), "lab", Some("alice"), "a stop");
        assert!(!spec.labels.contains_key(labels::LAB));
        assert_eq!(spec.labels[labels::LOCK_LAB], "alice");
        assert_eq!(
            spec.labels[labels::LOCK_PID],
            std::process::id().to_string()
        );
    }
}
