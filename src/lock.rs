//! The host-wide planning lock: held from reading what the engine holds until the lab's
//! containers exist (and so hold their addresses and ports), so two `lab create` runs at the same
//! time can never pick the same subnet, addresses or ports.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// Released when dropped.
pub struct PlanningLock {
    _file: File,
}

fn path() -> PathBuf {
    std::env::temp_dir().join("pgha-lab.lock")
}

/// Waits for the lock (another `lab create` may be planning).
pub async fn acquire() -> Result<PlanningLock> {
    let path = path();
    let shown = path.display().to_string();
    tokio::task::spawn_blocking(move || {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(Error::io(format!(
                "open the planning lock {}",
                path.display()
            )))?;
        // Every user of this engine on this host shares the lock.
        let _ = file.set_permissions(std::fs::Permissions::from_mode(0o666));
        file.lock().map_err(Error::io(format!(
            "take the planning lock {}",
            path.display()
        )))?;
        Ok(PlanningLock { _file: file })
    })
    .await
    .map_err(|e| Error::Io {
        action: format!("wait for the planning lock {shown}"),
        source: std::io::Error::other(e.to_string()),
    })?
}
