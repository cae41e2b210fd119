//! What a lab keeps beside its labels: small records (a trainee's access credentials, when it
//! was last reset, its last drill) as files in its first node, under /var/lib/pgha-lab/store,
//! owned by root and readable by root only. They live in the container's own layer, off the
//! volumes a reset restores, so they last as long as the lab and go with it; never in labels,
//! which `docker inspect` shows to anyone. Read and written through the Engine API's archive
//! calls, which work on a stopped node as on a running one.

use crate::engine::{Engine, UploadFile};
use crate::error::{Error, Result};
use crate::model::Lab;

/// Where the records live in the first node.
const DIR: &str = "/var/lib/pgha-lab/store";

fn path(key: &str) -> Result<String> {
    let ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !key.starts_with('.');
    if ok {
        Ok(format!("{DIR}/{key}"))
    } else {
        Err(Error::Invalid(format!(
            "{key:?} is not a record name: letters, digits, '-', '_' and '.'"
        )))
    }
}

fn keeper(lab: &Lab) -> Result<&str> {
    lab.nodes
        .first()
        .map(|n| n.container.name.as_str())
        .ok_or_else(|| Error::Failed(format!("lab {} has no nodes to keep its records", lab.name)))
}

/// Record `key` of the lab, or None when it was never written.
pub async fn read(engine: &Engine, lab: &Lab, key: &str) -> Result<Option<Vec<u8>>> {
    engine.download(keeper(lab)?, &path(key)?).await
}

/// Record `key` read as JSON; a record that no longer parses (written by another version)
/// counts as absent.
pub async fn read_json<T: serde::de::DeserializeOwned>(
    engine: &Engine,
    lab: &Lab,
    key: &str,
) -> Result<Option<T>> {
    Ok(read(engine, lab, key)
        .await?
        .and_then(|bytes| serde_json::from_slice(&bytes).ok()))
}

/// Writes record `key` (root's, mode 0600), replacing what it held.
pub async fn write(engine: &Engine, lab: &Lab, key: &str, content: &[u8]) -> Result<()> {
    let file = UploadFile {
        path: path(key)?,
        content: content.to_vec(),
        mode: 0o600,
        uid: 0,
        gid: 0,
    };
    engine.upload(keeper(lab)?, &[file]).await
}

/// Writes record `key` as JSON.
pub async fn write_json<T: serde::Serialize>(
    engine: &Engine,
    lab: &Lab,
    key: &str,
    value: &T,
) -> Result<()> {
    let content = serde_json::to_vec_pretty(value)
        .map_err(|e| Error::Failed(format!("record {key} of lab {}: {e}", lab.name)))?;
    write(engine, lab, key, &content).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_names_stay_inside_the_store() {
        assert_eq!(
            path("access.json").unwrap(),
            "/var/lib/pgha-lab/store/access.json"
        );
        for bad in ["", "../etc/shadow", "a/b", ".hidden", "a b"] {
            assert!(path(bad).is_err(), "{bad:?} accepted");
        }
    }
}
