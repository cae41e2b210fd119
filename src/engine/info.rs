//! What an engine says of itself: its name, versions, platform, memory and CPUs, as plain data
//! for `lab engines` and for placing a class's labs over several engines.

use super::{Engine, api};
use crate::error::Result;

/// An engine as its daemon describes itself (GET /info and /version).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EngineInfo {
    /// The daemon's host name, as `docker info` shows it ("Name").
    pub name: String,
    /// The Docker Engine's version, e.g. "20.10.24+dfsg1".
    pub server_version: String,
    /// The newest Engine API version the daemon speaks, e.g. "1.41".
    pub api_version: String,
    /// The host's operating system, e.g. "Debian GNU/Linux 12 (bookworm)".
    pub os: String,
    /// The platform its containers run on, e.g. "linux/x86_64".
    pub arch: String,
    /// The memory the daemon's host has, in bytes.
    pub memory_bytes: u64,
    /// The CPUs the daemon's host has.
    pub cpus: u64,
}

impl Engine {
    /// Asks the daemon about itself. Two requests, in parallel: /info lacks the API version.
    pub async fn info(&self) -> Result<EngineInfo> {
        let (info, version) = tokio::join!(self.docker.info(), self.docker.version());
        let info = info.map_err(api("read the engine's information"))?;
        let version = version.map_err(api("read the engine's version"))?;
        let text = |v: Option<String>| v.unwrap_or_else(|| "?".into());
        let count = |v: Option<i64>| v.and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
        Ok(EngineInfo {
            name: text(info.name),
            server_version: text(info.server_version.or(version.version)),
            api_version: text(version.api_version),
            os: text(info.operating_system),
            arch: format!(
                "{}/{}",
                text(info.os_type),
                text(info.architecture.or(version.arch))
            ),
            memory_bytes: count(info.mem_total),
            cpus: count(info.ncpu),
        })
    }
}
