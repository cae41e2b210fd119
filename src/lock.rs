//! The host-wide planning lock: held from reading what the engine holds until the lab's
//! containers exist (and so hold their addresses and ports), so two `lab create` runs at the same
//! time can never pick the same subnet, addresses or ports.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::error::{Error, Result};

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

/// Waits for the lock (another `lab create` may be planning).
pub async fn acquire() -> Result<PlanningLock> {
    tokio::task::spawn_blocking(|| {
        let file =
            open(Path::new(PATH)).map_err(Error::io(format!("open the planning lock {PATH}")))?;
        file.lock()
            .map_err(Error::io(format!("take the planning lock {PATH}")))?;
        Ok(PlanningLock { _file: file })
    })
    .await
    .map_err(|e| Error::Io {
        action: format!("wait for the planning lock {PATH}"),
        source: std::io::Error::other(e.to_string()),
    })?
}
