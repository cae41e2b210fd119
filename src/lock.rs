//! The host-wide lock: held by a create from reading what the engine holds until the lab's
//! containers exist (and so hold their addresses and ports), so two `lab create` runs at the same
//! time can never pick the same subnet, addresses or ports; and by a `--tls` lab's certificate
//! check and issue, so two bootstraps at once never hand a lab two CAs. Beside it, a lock per
//! lab (`LabLock`) that every command changing the lab holds, so a second one on the same lab
//! is refused (or, asked to, waits) instead of spoiling the first.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::interrupt::Interrupt;
use crate::progress::Progress;

/// In /tmp itself rather than $TMPDIR, which may differ between the users of one engine.
const PATH: &str = "/tmp/pgha-lab.lock";

/// Released when dropped.
pub struct PlanningLock {
    _file: File,
}

/// Opens the lock file, creating it (open to every user) when it does not exist yet. An
/// existing one is opened without O_CREAT: in a sticky /tmp, create-opening another user's
/// file is refused (fs.protected_regular).
fn open(path: &Path) -> std::io::Result<File> {
    match File::open(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(path)?;
            let _ = file.set_permissions(std::fs::Permissions::from_mode(0o666));
            Ok(file)
        }
        opened => opened,
    }
}

/// How long a command waits for another to let go of the lock before it gives up.
const PATIENCE: Duration = Duration::from_secs(120);

/// Takes the lock, waiting while another command holds it (for seconds: a create until its
/// containers exist). Says who holds it while waiting, and gives up after PATIENCE. `purpose`
/// names what waits, in the words of "so {purpose} cannot go on safely".
pub async fn acquire(progress: &Progress, purpose: &str) -> Result<PlanningLock> {
    let file =
        open(Path::new(PATH)).map_err(Error::io(format!("open the planning lock {PATH}")))?;
    // The patience is per holder: behind a queue of creates (a class made with --count), the
    // lock changes hands, and only one that keeps it too long is a fault.
    let mut since = Instant::now();
    let mut told: Option<String> = None;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(PlanningLock { _file: file }),
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => {
                return Err(Error::io(format!("take the planning lock {PATH}"))(e));
            }
        }
        let holder = holder(&file).unwrap_or_else(|| "another process".into());
        if told.as_ref().is_some_and(|t| *t != holder) {
            since = Instant::now();
        }
        if since.elapsed() >= PATIENCE {
            return Err(Error::Failed(format!(
                "{holder} has held the lock {PATH} for over {} s, so {purpose} cannot go on \
                 safely. Wait for it to finish (or stop it if it hangs) and run the command \
                 again.",
                PATIENCE.as_secs()
            )));
        }
        if told.as_ref() != Some(&holder) {
            progress.line(format!(
                "waiting for the lock {PATH}, held by {holder} (up to {} s)",
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
/// commands never take it. The kernel lets go of it when its holder dies, kill -9 included.
pub struct LabLock {
    lab: String,
    _file: File,
}

impl LabLock {
    /// The lab this lock is for.
    pub fn lab(&self) -> &str {
        &self.lab
    }
}

/// Where lab `name`'s lock lives.
fn lab_path(name: &str) -> String {
    format!("/tmp/pgha-lab-{name}.lock")
}

/// Takes lab `name`'s lock for `purpose` ("a stop", "the kill-primary drill"). Another command
/// changing the same lab is a conflict to report at once, naming it; with `wait`, it is waited
/// for instead (saying so), until it ends or Ctrl-C (through `interrupt`) gives up.
pub async fn lab(
    name: &str,
    purpose: &str,
    wait: bool,
    progress: &Progress,
    interrupt: Option<&Interrupt>,
) -> Result<LabLock> {
    let mut told: Option<String> = None;
    loop {
        let holder = match lab_if_free(name)? {
            Ok(lock) => return Ok(lock),
            Err(holder) => holder,
        };
        if !wait {
            return Err(Error::Busy(format!(
                "{holder} is changing lab {name} right now (it holds {}), so {purpose} is \
                 refused rather than spoil both. Run this again once that ends, or add --wait \
                 to wait for it.",
                lab_path(name)
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

/// Takes lab `name`'s lock if it is free; when another command holds it, that command's name, for commands over a whole class that pass a busy lab by.
pub fn lab_if_free(name: &str) -> Result<std::result::Result<LabLock, String>> {
    let path = lab_path(name);
    let file = open(Path::new(&path)).map_err(Error::io(format!("open the lab's lock {path}")))?;
    match file.try_lock() {
        Ok(()) => Ok(Ok(LabLock {
            lab: name.to_string(),
            _file: file,
        })),
        Err(TryLockError::WouldBlock) => Ok(Err(
            holder(&file).unwrap_or_else(|| "another process".into())
        )),
        Err(TryLockError::Error(e)) => Err(Error::io(format!("take the lab's lock {path}"))(e)),
    }
}

/// "pid 1234 (lab create --name alice)": the process holding the lock, as /proc/locks and its
/// command line tell.
fn holder(file: &File) -> Option<String> {
    let inode = file.metadata().ok()?.ino();
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let pid = holder_in(&locks, inode)?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let command = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    let command = command.trim();
    Some(if command.is_empty() {
        format!("pid {pid}")
    } else {
        format!("pid {pid} ({command})")
    })
}

/// The pid holding a lock on `inode` in /proc/locks ("1: FLOCK ADVISORY WRITE 1425
/// fe:00:753934 0 EOF").
fn holder_in(locks: &str, inode: u64) -> Option<u32> {
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (pid, file) = (fields.get(4)?, fields.get(5)?);
        let ino: u64 = file.rsplit(':').next()?.parse().ok()?;
        (ino == inode).then(|| pid.parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_is_found_by_inode() {
        let locks = "1: FLOCK  ADVISORY  WRITE 1425 fe:00:753934 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 77 fe:00:753923 0 EOF\n\
                     3: OFDLCK ADVISORY  READ -1 00:06:3 0 EOF\n";
        assert_eq!(holder_in(locks, 753923), Some(77));
        assert_eq!(holder_in(locks, 3), None);
        assert_eq!(holder_in(locks, 1), None);
    }
}
