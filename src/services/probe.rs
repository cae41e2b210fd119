//! The node-side probes: scripts in the image (`docker/rootfs`) that read something inside a
//! node, take what differs between labs as arguments and print one JSON object, read here into
//! one serde type each. What a node prints is never trusted: an image older than this tool, a
//! script cut short or garbage becomes an error naming the node, not a panic.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::engine::ExecOutput;
use crate::error::{Error, Result};

/// What `argv[0]` printed on `node` of lab `lab`, read into `T`.
pub fn read<T: DeserializeOwned>(
    lab: &str,
    node: &str,
    argv: &[&str],
    out: &ExecOutput,
) -> Result<T> {
    let script = name(argv);
    // 127: not found (126: found but not runnable), as `timeout` reports it for its command.
    if out.code == 127 || out.code == 126 {
        return Err(Error::Invalid(format!(
            "lab {lab} was made from an image older than this lab tool: {node} has no \
             {script}, which lab reads the node with. Recreate the lab on the current image with \
             `lab create --replace --name {lab}`."
        )));
    }
    if !out.ok() {
        return Err(Error::Failed(format!(
            "{script} failed on {node} (exit code {}): {}. Running `{}` in `lab shell --name \
             {lab} --root {node}` shows what it meets.",
            out.code,
            out.said(),
            argv.join(" ")
        )));
    }
    serde_json::from_str(out.stdout.trim()).map_err(|e| {
        Error::Failed(format!(
            "{script} on {node} printed what lab cannot read ({e}): {}. The image and this lab \
             tool may not match: `lab image build`, then `lab create --replace --name {lab}`.",
            out.said()
        ))
    })
}

/// The script's own name, for messages.
fn name<'a>(argv: &[&'a str]) -> &'a str {
    let path = argv.first().copied().unwrap_or_default();
    path.rsplit('/').next().unwrap_or(path)
}

/// For a field a service fills and `lab` only reads: what does not fit `T` is read as None
/// rather than failing the whole answer (a REST API starting up may answer anything).
pub fn or_none<'de, D, T>(d: D) -> std::result::Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let value = Option::<serde_json::Value>::deserialize(d)?;
    Ok(value.and_then(|v| serde_json::from_value(v).ok()))
}

/// For a list a service fills: the elements that fit `T`, the others left out.
pub fn those_that_fit<'de, D, T>(d: D) -> std::result::Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let values = Vec::<serde_json::Value>::deserialize(d)?;
    Ok(values
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(code: i64, stdout: &str) -> ExecOutput {
        ExecOutput {
            code,
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Answer {
        n: u32,
        #[serde(default, deserialize_with = "or_none")]
        maybe: Option<u32>,
        #[serde(default, deserialize_with = "those_that_fit")]
        list: Vec<u32>,
    }

    #[test]
    fn an_answer_reads_into_its_type() {
        let argv = ["/usr/local/lib/pgha-lab/x", "a"];
        let a: Answer = read("lab", "n1", &argv, &out(0, "{\"n\": 1}\n")).unwrap();
        assert_eq!(
            a,
            Answer {
                n: 1,
                maybe: None,
                list: vec![]
            }
        );
        let a: Answer = read(
            "lab",
            "n1",
            &argv,
            &out(0, r#"{"n": 2, "maybe": "x", "list": [1, "y", null, 3]}"#),
        )
        .unwrap();
        assert_eq!((a.maybe, a.list), (None, vec![1, 3]));
        let a: Answer = read("lab", "n1", &argv, &out(0, r#"{"n": 2, "maybe": 3}"#)).unwrap();
        assert_eq!(a.maybe, Some(3));
    }

    #[test]
    fn a_missing_script_a_failure_or_garbage_is_an_error_naming_the_node() {
        let argv = ["/usr/local/lib/pgha-lab/x"];
        let e = read::<Answer>("wtp", "n2", &argv, &out(127, "")).unwrap_err();
        assert!(matches!(e, Error::Invalid(_)));
        assert!(e.to_string().contains("n2 has no x"), "{e}");
        let e = read::<Answer>("wtp", "n2", &argv, &out(1, "Traceback")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("x failed on n2 (exit code 1): Traceback"),
            "{e}"
        );
        let e = read::<Answer>("wtp", "n2", &argv, &out(0, "garbage")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("x on n2 printed what lab cannot read"),
            "{e}"
        );
    }
}
