//! What is configured and running on a node, read in one exec of the image's `labFacts`: the
//! ground the bootstrap, `lab start` and `lab stop` decide from, so that nothing done by hand or
//! by an earlier run is redone or overwritten.

use serde::Deserialize;

use crate::engine::ExecOutput;
use crate::error::Result;

/// The probe, run as root: one JSON object, a boolean for every field of `Facts` but `node`.
pub const PROBE: &str = "labFacts";

/// What `labFacts` says of a node. Every fact is required: an answer that lacks one is not read
/// as "false" but reported.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Facts {
    /// The node asked (the caller's, not the probe's).
    #[serde(skip)]
    pub node: String,
    /// The course's helpers are in the image (not in labs made before generation 2).
    pub helpers: bool,
    pub ssh_keys: bool,
    pub host_keys: bool,
    pub sshd_running: bool,
    /// The lab's CA certificate and the node's own certificate and key, in /pgha/certs.
    pub certs: bool,
    pub etcd_config: bool,
    pub etcd_data: bool,
    pub etcd_running: bool,
    pub patroni_vars: bool,
    pub patroni_config: bool,
    pub create_roles: bool,
    pub pg_data: bool,
    /// PostgreSQL was last shut down cleanly as a primary (not in recovery).
    pub pg_clean_primary: bool,
    /// PostgreSQL was last shut down cleanly as a replica.
    pub pg_clean_replica: bool,
    pub patroni_running: bool,
    pub pgbackrest_config: bool,
    /// pgbackrest.conf holds a repository (the repository host's file).
    pub repo_config: bool,
    /// pgbackrest.conf points at a repository host (a database server's file).
    pub repo_client: bool,
    pub haproxy_config: bool,
    pub haproxy_running: bool,
    /// /pgha/config/exporters.env: the node's exporters are configured (a monitored lab).
    pub exporters_config: bool,
    pub exporters_running: bool,
    /// /pgha/config/prometheus.yml (the monitor node).
    pub prometheus_config: bool,
    pub prometheus_running: bool,
}

impl Facts {
    /// The facts of `node` of lab `lab` from what the probe left behind there.
    pub fn read(lab: &str, node: &str, out: &ExecOutput) -> Result<Facts> {
        let facts: Facts = super::probe::read(lab, node, &[PROBE], out)?;
        Ok(Facts {
            node: node.to_string(),
            ..facts
        })
    }
}

/// The facts of `node` among all.
pub fn of<'a>(all: &'a [Facts], node: &str) -> &'a Facts {
    all.iter()
        .find(|f| f.node == node)
        .expect("facts are read for every node")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The probe's text, as the image holds it.
    const SCRIPT: &str = include_str!("../../docker/rootfs/usr/local/sbin/labFacts");

    /// Every fact the probe records (`...; fact NAME`).
    fn recorded() -> Vec<&'static str> {
        SCRIPT
            .lines()
            .filter_map(|l| l.rsplit_once("; fact ").map(|(_, name)| name.trim()))
            .collect()
    }

    /// An answer with `held` true and every other recorded fact false.
    fn answer(held: &[&str]) -> String {
        let fields: Vec<String> = recorded()
            .iter()
            .map(|f| format!("\"{f}\": {}", held.contains(f)))
            .collect();
        format!("{{{}}}\n", fields.join(", "))
    }

    fn read(stdout: &str) -> Result<Facts> {
        let out = ExecOutput {
            code: 0,
            stdout: stdout.into(),
            stderr: String::new(),
        };
        Facts::read("wtp", "pgha1", &out)
    }

    #[test]
    fn the_answer_becomes_flags() {
        let f = read(&answer(&["etcd_config", "etcd_running", "pg_data"])).unwrap();
        assert!(f.etcd_config && f.etcd_running && f.pg_data);
        assert!(!f.patroni_running && !f.ssh_keys);
        assert_eq!(f.node, "pgha1");
    }

    #[test]
    fn the_probe_records_every_fact_and_nothing_else() {
        // Every fact is required, and this literal names every field: the script records each.
        let all = Facts {
            node: "pgha1".into(),
            helpers: true,
            ssh_keys: true,
            host_keys: true,
            sshd_running: true,
            certs: true,
            etcd_config: true,
            etcd_data: true,
            etcd_running: true,
            patroni_vars: true,
            patroni_config: true,
            create_roles: true,
            pg_data: true,
            pg_clean_primary: true,
            pg_clean_replica: true,
            patroni_running: true,
            pgbackrest_config: true,
            repo_config: true,
            repo_client: true,
            haproxy_config: true,
            haproxy_running: true,
            exporters_config: true,
            exporters_running: true,
            prometheus_config: true,
            prometheus_running: true,
        };
        assert_eq!(read(&answer(&recorded())).unwrap(), all);
        // And each fact it records is one of Facts' fields.
        let none = read(&answer(&[])).unwrap();
        for fact in recorded() {
            assert_ne!(read(&answer(&[fact])).unwrap(), none, "{fact}");
        }
    }

    #[test]
    fn an_answer_lacking_a_fact_or_no_answer_is_an_error_naming_the_node() {
        let e = read(r#"{"helpers": true}"#).unwrap_err().to_string();
        assert!(
            e.starts_with("labFacts on pgha1 printed what lab cannot read"),
            "{e}"
        );
        assert!(read("").is_err());
    }
}
