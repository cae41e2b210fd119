//! `lab engines`: each engine a command can name, what it has (memory, CPUs, version) and how
//! many labs it holds, or why it does not answer.

use serde::Serialize;

use crate::engine::Engine;
use crate::fleet::Fleet;
use crate::table;

/// One engine as `lab engines` shows it.
#[derive(Debug, Serialize)]
pub struct EngineRow {
    /// As the user names it (a context, or a URL).
    pub engine: String,
    pub url: String,
    /// The daemon's own host name.
    pub host: Option<String>,
    pub version: Option<String>,
    pub api: Option<String>,
    pub cpus: Option<u64>,
    pub memory_bytes: Option<u64>,
    pub labs: Option<usize>,
    /// Why it could not be asked, when it could not.
    pub error: Option<String>,
}

impl EngineRow {
    /// An engine known by name and URL only, so far.
    fn unknown(engine: String, url: String) -> EngineRow {
        EngineRow {
            engine,
            url,
            host: None,
            version: None,
            api: None,
            cpus: None,
            memory_bytes: None,
            labs: None,
            error: None,
        }
    }
}

/// Every engine of `fleet`, asked at the same time.
pub async fn engines(fleet: &Fleet) -> Vec<EngineRow> {
    let (up, down) = fleet.reach().await;
    let asks = up.iter().map(row);
    let mut rows: Vec<EngineRow> = futures_util::future::join_all(asks).await;
    rows.extend(down.into_iter().map(|d| EngineRow {
        error: Some(d.error),
        ..EngineRow::unknown(
            d.engine.clone(),
            fleet.url_of(&d.engine).unwrap_or_default(),
        )
    }));
    let order = fleet.names();
    rows.sort_by_key(|r| order.iter().position(|n| *n == r.engine));
    rows
}

async fn row(engine: &Engine) -> EngineRow {
    let (info, labs) = tokio::join!(engine.info(), crate::model::all(engine));
    let mut row = EngineRow::unknown(engine.name().to_string(), engine.target().url());
    match (info, labs) {
        (Ok(info), Ok(labs)) => {
            row.host = Some(info.name);
            row.version = Some(info.server_version);
            row.api = Some(info.api_version);
            row.cpus = Some(info.cpus);
            row.memory_bytes = Some(info.memory_bytes);
            row.labs = Some(labs.len());
        }
        (Err(e), _) | (_, Err(e)) => row.error = Some(e.to_string()),
    }
    row
}

/// The engines as a table.
pub fn text(rows: &[EngineRow]) -> String {
    let or = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let lines = rows.iter().map(|r| {
        [
            r.engine.clone(),
            r.url.clone(),
            if r.error.is_some() {
                "unreachable".into()
            } else {
                "ok".into()
            },
            or(r.host.clone()),
            or(r.version.clone()),
            or(r.cpus.map(|c| c.to_string())),
            or(r.memory_bytes
                .map(|m| format!("{:.1} GiB", m as f64 / (1u64 << 30) as f64))),
            or(r.labs.map(|l| l.to_string())),
        ]
    });
    table::render(
        &[
            "engine", "url", "state", "host", "docker", "cpus", "memory", "labs",
        ],
        lines,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_engine_is_a_row_of_its_own() {
        let rows = [
            EngineRow {
                engine: "default".into(),
                url: "unix:///var/run/docker.sock".into(),
                host: Some("teach0".into()),
                version: Some("20.10.24".into()),
                api: Some("1.41".into()),
                cpus: Some(2),
                memory_bytes: Some(24 << 30),
                labs: Some(3),
                error: None,
            },
            EngineRow {
                error: Some("nothing answers".into()),
                ..EngineRow::unknown("teach2".into(), "ssh://ops@teach2".into())
            },
        ];
        let t = text(&rows);
        assert!(t.contains("24.0 GiB"), "{t}");
        let last = t.lines().last().unwrap();
        assert!(last.starts_with("teach2"), "{t}");
        assert!(last.contains("unreachable"), "{t}");
    }
}
