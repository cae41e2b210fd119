//! Monitoring, in a lab made with `--monitoring`: its bootstrap stage (the exporters' role, the
//! exporters on every PostgreSQL node and the repository host, Prometheus on the monitor node,
//! done when Prometheus scrapes every target), and Prometheus's client: its targets, and one
//! PromQL query. Prometheus is asked inside the monitor node, where it listens, so that nothing
//! here assumes where the engine's published ports are reached from.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::facts::of;
use super::{Ctx, Facts, Outcome, catalog, patroni, wait_for};
use crate::certs::{CA_CERT, cert_path, key_path};
use crate::error::{Error, Result};
use crate::render::Cluster;
use crate::render::monitoring::{EXPORTERS_ENV, EXPORTERS_WEB, MONITOR_ROLE, PROMETHEUS_CONF};
use crate::spec::{PROMETHEUS_PORT, Stage};

/// How long the stage waits for every target to answer: the exporters and Prometheus answer
/// within a second or two of starting.
const TARGETS_WAIT: Duration = Duration::from_secs(30);

pub async fn run(ctx: &Ctx<'_>, facts: &[Facts]) -> Result<Outcome> {
    let Some(monitor) = ctx.lab.monitor_node() else {
        return Ok(Outcome {
            summary: "no monitor node in this lab".into(),
            changed: false,
        });
    };
    let pg = ctx.lab.postgres_names();
    let Some(primary) = patroni::current_primary(ctx, &pg).await? else {
        return Err(ctx
            .failure(
                Stage::Monitoring,
                &pg.join(", "),
                "no PostgreSQL node is the primary, so the exporters' role cannot be made; \
                 `lab check` says what is missing"
                    .into(),
                None,
            )
            .await);
    };
    create_role(ctx, &primary).await?;
    let mut changed = false;
    let exporters: Vec<&str> = ctx
        .lab
        .nodes
        .iter()
        .filter(|n| n.roles.exporters)
        .map(|n| n.name.as_str())
        .collect();
    for node in &exporters {
        // A file already there (an earlier run's, or edited by hand) is kept.
        if !of(facts, node).exporters_config {
            let member = ctx.member(node);
            let env = ctx.cluster.exporters_env(member);
            let web = Cluster::exporters_web(member);
            let mut files = vec![(EXPORTERS_ENV, env.as_str(), 0o644)];
            if ctx.lab.tls {
                files.push((EXPORTERS_WEB, web.as_str(), 0o644));
            }
            ctx.upload(node, &files).await?;
            changed = true;
        }
    }
    let stopped: Vec<&str> = exporters
        .iter()
        .copied()
        .filter(|n| !of(facts, n).exporters_running)
        .collect();
    ctx.start(&catalog::EXPORTERS, &stopped).await?;
    let f = of(facts, &monitor.name);
    if !f.prometheus_config {
        let yml = ctx.cluster.prometheus_yml(&ctx.lab.name);
        ctx.upload(&monitor.name, &[(PROMETHEUS_CONF, &yml, 0o644)])
            .await?;
    }
    if !f.prometheus_running {
        ctx.start(&catalog::PROMETHEUS, &[&monitor.name]).await?;
    }
    changed |= !stopped.is_empty() || !f.prometheus_config || !f.prometheus_running;
    // Prometheus's own first scrape of a target comes up to a scrape interval after it
    // starts; each target answering its scrape from the monitor node, with the same names and
    // certificates, is the same proof without that wait. `lab check` reads Prometheus's view.
    let urls = ctx.cluster.scrape_urls();
    let waited = wait_for(TARGETS_WAIT, Duration::from_millis(500), || async {
        let silent = silent(ctx, &monitor.name, &urls).await?;
        Ok(if silent.is_empty() {
            Ok(urls.len())
        } else {
            Err(silent.join(", "))
        })
    })
    .await?;
    let say = |seen: String| format!("not every target answers Prometheus's scrape: {seen}");
    let up = ctx
        .waited(
            waited,
            Stage::Monitoring,
            &monitor.name,
            say,
            Some(catalog::PROMETHEUS_LOG),
        )
        .await?;
    Ok(Outcome {
        summary: format!(
            "prometheus1 ({}): {up} targets answer its scrapes, its page on port \
             {PROMETHEUS_PORT}",
            monitor.name
        ),
        changed,
    })
}

/// The node-side probe of the scrape targets (run as postgres, who holds the monitor node's
/// key): `answering CA CERT KEY URL...`.
const ANSWERING: &str = "/usr/local/lib/pgha-lab/answering";

/// "URL (why)" for each of `urls` that does not answer from the monitor node.
async fn silent(ctx: &Ctx<'_>, monitor: &str, urls: &[String]) -> Result<Vec<String>> {
    let (ca, cert, key) = if ctx.lab.tls {
        (CA_CERT.to_string(), cert_path(monitor), key_path(monitor))
    } else {
        ("-".to_string(), "-".to_string(), "-".to_string())
    };
    let mut argv: Vec<&str> = vec![ANSWERING, &ca, &cert, &key];
    argv.extend(urls.iter().map(String::as_str));
    let answers: BTreeMap<String, String> = ctx
        .probe(monitor, "postgres", &argv, Duration::from_secs(20))
        .await?;
    Ok(answers
        .into_iter()
        .filter(|(_, why)| !why.is_empty())
        .map(|(url, why)| format!("{url} ({why})"))
        .collect())
}

/// Makes the exporters' role on the primary, if it is not there: it logs in through the local
/// socket (the lab's pg_hba trusts it) and reads what pg_monitor may read.
async fn create_role(ctx: &Ctx<'_>, primary: &str) -> Result<()> {
    let sql = format!(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{MONITOR_ROLE}') THEN \
         CREATE ROLE {MONITOR_ROLE} LOGIN; END IF; END $$; GRANT pg_monitor TO {MONITOR_ROLE};"
    );
    let argv = ["psql", "-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-c", &sql];
    let out = ctx
        .exec(primary, "postgres", &argv, Duration::from_secs(30))
        .await?;
    if out.ok() {
        return Ok(());
    }
    Err(ctx
        .failure(
            Stage::Monitoring,
            primary,
            format!("could not make the role {MONITOR_ROLE}: {}", out.said()),
            None,
        )
        .await)
}

/// One of Prometheus's scrape targets, as its API reports it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    pub labels: TargetLabels,
    /// up, down or unknown (not scraped yet).
    pub health: String,
    pub last_error: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct TargetLabels {
    pub job: String,
    #[serde(default)]
    pub node: String,
}

#[derive(Deserialize)]
struct TargetsAnswer {
    data: TargetsData,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TargetsData {
    active_targets: Vec<Target>,
}

/// Prometheus's active targets, or None when it does not answer.
pub async fn targets(ctx: &Ctx<'_>, monitor: &str) -> Result<Option<Vec<Target>>> {
    let url = format!("http://localhost:{PROMETHEUS_PORT}/api/v1/targets?state=active");
    let argv = ["curl", "-fsS", "--max-time", "5", &url];
    let out = ctx
        .exec(monitor, "root", &argv, Duration::from_secs(10))
        .await?;
    if !out.ok() {
        return Ok(None);
    }
    let answer: TargetsAnswer = serde_json::from_str(&out.stdout).map_err(|e| {
        Error::Failed(format!(
            "Prometheus on {monitor} answered its targets with what lab cannot read ({e})"
        ))
    })?;
    Ok(Some(answer.data.active_targets))
}

/// "etcd on pgha2 down (connection refused), ..." for the targets that failed their scrape.
pub fn describe_down(targets: &[Target]) -> String {
    let down: Vec<String> = targets
        .iter()
        .filter(|t| t.health == "down")
        .map(|t| {
            let why = if t.last_error.is_empty() {
                String::new()
            } else {
                format!(" ({})", t.last_error)
            };
            format!("{} on {} {}{why}", t.labels.job, t.labels.node, t.health)
        })
        .collect();
    if down.is_empty() {
        "no targets".into()
    } else {
        down.join(", ")
    }
}

/// What Prometheus answered one query with: its own result type and result array.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    pub result_type: String,
    pub result: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryAnswer {
    status: String,
    data: Option<Answer>,
    error: Option<String>,
}

/// Runs one PromQL query (an instant query, now) on the monitor node's Prometheus. A query
/// Prometheus rejects is bad input (its own words say why).
pub async fn query(ctx: &Ctx<'_>, monitor: &str, promql: &str) -> Result<Answer> {
    let url = format!("http://localhost:{PROMETHEUS_PORT}/api/v1/query");
    let data = format!("query={promql}");
    // Prometheus answers a rejected query with a 400 and its reason as JSON: no -f.
    let argv = [
        "curl",
        "-sS",
        "--max-time",
        "20",
        "--data-urlencode",
        &data,
        &url,
    ];
    let out = ctx
        .exec(monitor, "root", &argv, Duration::from_secs(30))
        .await?;
    if !out.ok() {
        return Err(Error::Failed(format!(
            "Prometheus on {monitor} did not answer ({}). `lab bootstrap --name {lab}` sets it \
             up if the lab was made to an earlier --stage, `lab start --name {lab}` starts it if \
             it is stopped, and `lab logs --name {lab} {monitor}` shows its log.",
            out.said(),
            lab = ctx.lab.name
        )));
    }
    let answer: QueryAnswer = serde_json::from_str(&out.stdout).map_err(|e| {
        Error::Failed(format!(
            "Prometheus on {monitor} answered with what lab cannot read ({e})"
        ))
    })?;
    match (answer.status.as_str(), answer.data) {
        ("success", Some(data)) => Ok(data),
        _ => Err(Error::Invalid(format!(
            "Prometheus rejected the query {promql:?}: {}",
            answer.error.unwrap_or_else(|| "no reason given".into())
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_read_from_prometheus_s_answer_and_the_down_ones_are_named() {
        let json = r#"{"status":"success","data":{"activeTargets":[
          {"labels":{"instance":"pgha1:8008","job":"patroni","node":"pgha1"},"health":"up",
           "lastError":"","scrapeUrl":"http://pgha1:8008/metrics"},
          {"labels":{"instance":"pgha2:2379","job":"etcd","node":"pgha2"},"health":"down",
           "lastError":"connection refused"}],"droppedTargets":[]}}"#;
        let answer: TargetsAnswer = serde_json::from_str(json).unwrap();
        let t = answer.data.active_targets;
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].labels.job, "patroni");
        assert_eq!(describe_down(&t), "etcd on pgha2 down (connection refused)");
    }

    #[test]
    fn a_rejected_query_carries_prometheus_s_reason() {
        let json = r#"{"status":"error","errorType":"bad_data","error":"parse error: unexpected end of input"}"#;
        let answer: QueryAnswer = serde_json::from_str(json).unwrap();
        assert_eq!(answer.status, "error");
        assert!(answer.data.is_none());
        assert_eq!(
            answer.error.as_deref(),
            Some("parse error: unexpected end of input")
        );
    }
}
