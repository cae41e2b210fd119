//! `lab metrics`: one PromQL query on a monitored lab's Prometheus, its answer as a table (a row
//! per series, a column per label, the value last) or, with --json, Prometheus's own result.

use serde_json::Value;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model;
use crate::services::Ctx;
use crate::services::monitoring::{self, Answer};
use crate::table;

/// Runs `query` on lab `name`'s Prometheus.
pub async fn metrics(engine: &Engine, name: &str, query: &str) -> Result<Answer> {
    let lab = model::get(engine, name).await?;
    let Some(monitor) = lab.monitor_node() else {
        return Err(Error::Invalid(format!(
            "lab {name} has no monitoring: it was made without --monitoring. `lab create \
             --monitoring --replace --name {name}` makes it again with a monitor node \
             (prometheus1); its data is lost."
        )));
    };
    if !monitor.running() {
        return Err(Error::Invalid(format!(
            "lab {name}'s monitor node {} is not running; `lab start --name {name}` starts it.",
            monitor.name
        )));
    }
    let ctx = Ctx::new(engine, &lab);
    monitoring::query(&ctx, &monitor.name, query).await
}

impl Answer {
    /// A row per series, sorted: its metric name and labels, then its value (several
    /// `value@time` for a range). A scalar or a string is one value.
    pub fn table(&self) -> String {
        let series = self.result.as_array().cloned().unwrap_or_default();
        if !matches!(self.result_type.as_str(), "vector" | "matrix") {
            return table::render(&["value"], [vec![sample(&self.result, false)]]);
        }
        if series.is_empty() {
            return "no series matched (an empty result)".into();
        }
        let mut labels: Vec<String> = Vec::new();
        for s in &series {
            if let Some(metric) = s["metric"].as_object() {
                for key in metric.keys() {
                    if key != "__name__" && !labels.contains(key) {
                        labels.push(key.clone());
                    }
                }
            }
        }
        labels.sort();
        let named = series.iter().any(|s| s["metric"].get("__name__").is_some());
        let mut header: Vec<&str> = Vec::new();
        if named {
            header.push("metric");
        }
        header.extend(labels.iter().map(String::as_str));
        header.push("value");
        let mut rows: Vec<Vec<String>> = series
            .iter()
            .map(|s| {
                let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
                let mut row: Vec<String> = Vec::new();
                if named {
                    row.push(text(&s["metric"]["__name__"]));
                }
                row.extend(labels.iter().map(|l| text(&s["metric"][l])));
                row.push(match s.get("values").and_then(Value::as_array) {
                    Some(values) => values
                        .iter()
                        .map(|v| sample(v, true))
                        .collect::<Vec<_>>()
                        .join(" "),
                    None => sample(&s["value"], false),
                });
                row
            })
            .collect();
        // Prometheus answers in no particular order; sorted, the same query reads the same.
        rows.sort();
        table::render(&header, rows)
    }
}

/// A `[time, "value"]` pair as its value, with its time (seconds since the epoch) in a range.
fn sample(pair: &Value, in_range: bool) -> String {
    match (
        pair.get(0).and_then(Value::as_f64),
        pair.get(1).and_then(Value::as_str),
    ) {
        (Some(at), Some(v)) if in_range => format!("{v}@{at}"),
        (Some(_), Some(v)) => v.to_string(),
        _ => pair.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(result_type: &str, result: &str) -> Answer {
        Answer {
            result_type: result_type.into(),
            result: serde_json::from_str(result).unwrap(),
        }
    }

    #[test]
    fn a_vector_is_a_row_per_series_with_a_column_per_label() {
        let a = answer(
            "vector",
            r#"[{"metric":{"__name__":"up","job":"etcd","node":"pgha1"},"value":[1765000000.5,"1"]},
                {"metric":{"__name__":"up","job":"patroni","node":"pgha2","instance":"pgha2:8008"},"value":[1765000000.5,"0"]}]"#,
        );
        let text = a.table();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        let header: Vec<&str> = lines[0].split_whitespace().collect();
        assert_eq!(header, ["metric", "instance", "job", "node", "value"]);
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            ["up", "etcd", "pgha1", "1"]
        );
        assert_eq!(
            table::starts(lines[2], &["up", "pgha2:8008", "patroni", "pgha2", "0"]),
            table::starts(lines[0], &["metric", "instance", "job", "node", "value"])
        );
    }

    #[test]
    fn an_aggregate_has_no_metric_column_and_a_scalar_is_one_value() {
        let a = answer("vector", r#"[{"metric":{},"value":[1765000000,"3"]}]"#);
        assert_eq!(a.table(), "value\n3");
        assert_eq!(
            answer("scalar", r#"[1765000000,"42"]"#).table(),
            "value\n42"
        );
        assert_eq!(
            answer("vector", "[]").table(),
            "no series matched (an empty result)"
        );
    }

    #[test]
    fn a_range_lists_each_value_with_its_time() {
        let a = answer(
            "matrix",
            r#"[{"metric":{"node":"pgha1"},"values":[[1765000000,"1"],[1765000010,"0"]]}]"#,
        );
        assert_eq!(a.table(), "node   value\npgha1  1@1765000000 0@1765000010");
    }
}
