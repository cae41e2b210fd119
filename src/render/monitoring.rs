//! The monitoring files of a lab made with `--monitoring`, rendered with no I/O: Prometheus's
//! configuration on the monitor node (the jobs guide 002 names, patroni, postgresql and etcd,
//! plus haproxy and pgbackrest), and each exporter node's exporters.env and, on a `--tls` lab,
//! the exporters' TLS settings. On a `--tls` lab every scrape is https, verified against the
//! lab's CA, and etcd, which asks its clients for a certificate, gets the monitor node's.

use std::fmt::Write as _;

use super::{Cluster, Member, PATRONI_API_PORT};
use crate::certs::{CA_CERT, cert_path, key_path};
use crate::spec::{HAPROXY_METRICS, PGBACKREST_EXPORTER, POSTGRES_EXPORTER};

pub const PROMETHEUS_CONF: &str = "/pgha/config/prometheus.yml";
/// The alert and recording rules, from the image.
pub const RULES: &str = "/usr/local/share/pgha-lab/prometheus-rules.yml";
pub const EXPORTERS_ENV: &str = "/pgha/config/exporters.env";
/// The exporters' web settings (TLS) on a `--tls` lab.
pub const EXPORTERS_WEB: &str = "/pgha/config/exporters-web.yml";
/// The PostgreSQL role the exporter logs in as: a member of pg_monitor, nothing more.
pub const MONITOR_ROLE: &str = "pgha_monitor";
/// How often Prometheus scrapes and evaluates its rules: often enough to see a failover
/// happen (`lab watch` is the second-by-second view), seldom enough that an idle lab pays
/// little for it (every 5 s cost 4.4 % of a core more than a plain lab on 2 cores).
pub const SCRAPE_INTERVAL_SECS: u64 = 15;
/// How long pgBackRest's exporter keeps `pgbackrest info`'s answer (its own default is 10 min).
const PGBACKREST_COLLECT_SECS: u64 = 60;
/// HAProxy's own copy of its node's certificate and key, for its Prometheus endpoint on a
/// `--tls` lab (HAProxy reads both from one file, as its own user).
pub const HAPROXY_PEM: &str = "/pgha/certs/haproxy.pem";

/// Which members a job scrapes.
type Runs = fn(&Member) -> bool;

/// One scrape job: its name, the port it scrapes, the nodes it scrapes.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub name: &'static str,
    pub port: u16,
    pub nodes: Vec<String>,
}

impl Cluster {
    /// Whether the lab has a monitor node.
    pub fn monitored(&self) -> bool {
        self.members.iter().any(|m| m.roles.monitor)
    }

    /// What Prometheus scrapes: guide 002's jobs (patroni, postgresql, etcd), then HAProxy's
    /// and pgBackRest's, each with the nodes that run it.
    pub fn scrape_jobs(&self) -> Vec<Job> {
        let jobs: [(&'static str, u16, Runs); 5] = [
            ("patroni", PATRONI_API_PORT, |m| m.roles.postgres),
            ("postgresql", POSTGRES_EXPORTER, |m| m.roles.postgres),
            ("etcd", 2379, |m| m.roles.etcd),
            ("haproxy", HAPROXY_METRICS, |m| m.roles.haproxy),
            ("pgbackrest", PGBACKREST_EXPORTER, |m| m.roles.repo),
        ];
        jobs.into_iter()
            .map(|(name, port, runs)| Job {
                name,
                port,
                nodes: self
                    .members
                    .iter()
                    .filter(|m| runs(m))
                    .map(|m| m.name.clone())
                    .collect(),
            })
            .filter(|j| !j.nodes.is_empty())
            .collect()
    }

    /// Every target's metrics URL, as Prometheus scrapes it.
    pub fn scrape_urls(&self) -> Vec<String> {
        let scheme = if self.tls { "https" } else { "http" };
        self.scrape_jobs()
            .iter()
            .flat_map(|j| {
                j.nodes
                    .iter()
                    .map(move |n| format!("{scheme}://{n}:{}/metrics", j.port))
            })
            .collect()
    }

    /// /pgha/config/prometheus.yml on the monitor node of lab `lab`.
    pub fn prometheus_yml(&self, lab: &str) -> String {
        let monitor = self.members.iter().find(|m| m.roles.monitor);
        let scheme = if self.tls { "https" } else { "http" };
        let mut out = format!(
            "# Prometheus in lab {lab}, written by `lab bootstrap --stage monitoring`. The jobs are\n\
             # guide 002's (patroni, postgresql, etcd) and the lab's HAProxy and pgBackRest.\n\
             global:\n  scrape_interval: {SCRAPE_INTERVAL_SECS}s\n  evaluation_interval: \
             {SCRAPE_INTERVAL_SECS}s\n  external_labels:\n    lab: {lab}\n\n\
             rule_files:\n  - {RULES}\n\nscrape_configs:\n"
        );
        for job in self.scrape_jobs() {
            let targets: Vec<String> = job
                .nodes
                .iter()
                .map(|n| format!("'{n}:{}'", job.port))
                .collect();
            let _ = write!(out, "  - job_name: {}\n    scheme: {scheme}\n", job.name);
            if self.tls {
                let _ = writeln!(out, "    tls_config:\n      ca_file: {CA_CERT}");
                // etcd alone asks its clients for a certificate.
                if let (true, Some(m)) = (job.name == "etcd", monitor) {
                    let _ = writeln!(
                        out,
                        "      cert_file: {}\n      key_file: {}",
                        cert_path(&m.name),
                        key_path(&m.name)
                    );
                }
            }
            // `node` names the lab's node, as `lab` and patronictl do, without the port.
            let _ = write!(
                out,
                "    static_configs:\n      - targets: [{}]\n    relabel_configs:\n      \
                 - source_labels: [__address__]\n        regex: '([^:]+):[0-9]+'\n        \
                 target_label: node\n",
                targets.join(", ")
            );
        }
        out
    }

    /// /pgha/config/exporters.env of `member`, which startExporters sources: the exporters
    /// this node runs and their flags.
    pub fn exporters_env(&self, member: &Member) -> String {
        let web = if self.tls {
            format!(" --web.config.file={EXPORTERS_WEB}")
        } else {
            String::new()
        };
        let mut out = String::from(
            "# This node's Prometheus exporters, written by `lab bootstrap --stage monitoring`;\n\
             # startExporters starts them. An empty list: not on this node.\n",
        );
        if member.roles.postgres {
            let _ = writeln!(
                out,
                "postgres_exporter=(--web.listen-address=:{POSTGRES_EXPORTER}{web})\n\
                 DATA_SOURCE_NAME='host=/var/run/postgresql user={MONITOR_ROLE} dbname=postgres \
                 sslmode=disable'"
            );
        }
        if member.roles.repo {
            let _ = writeln!(
                out,
                "pgbackrest_exporter=(--web.listen-address=:{PGBACKREST_EXPORTER}{web} \
                 --collect.interval={PGBACKREST_COLLECT_SECS} \
                 --backrest.config=/pgha/config/pgbackrest.conf)"
            );
        }
        out
    }

    /// /pgha/config/exporters-web.yml of `member` on a `--tls` lab: the exporters serve https
    /// with the node's certificate.
    pub fn exporters_web(member: &Member) -> String {
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
            cert_path(&member.name),
            key_path(&member.name)
        )
    }

    /// The lines HAProxy's configuration gains in a monitored lab: its built-in Prometheus
    /// endpoint, over https with its node's certificate on a `--tls` lab.
    pub(super) fn haproxy_metrics(&self) -> String {
        if !self.monitored() {
            return String::new();
        }
        let tls = if self.tls {
            format!(" ssl crt {HAPROXY_PEM}")
        } else {
            String::new()
        };
        format!(
            "\nfrontend prometheus\n    mode http\n    bind *:{HAPROXY_METRICS}{tls}\n    \
             http-request use-service prometheus-exporter\n    no log\n"
        )
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::spec::Topology;

    fn cluster(topology: Topology, tls: bool) -> Cluster {
        let layout = crate::spec::Layout {
            monitor: true,
            ..topology.preset()
        };
        Cluster {
            members: (1..=layout.nodes())
                .map(|i| Member {
                    name: format!("pgha{i}"),
                    ip: Ipv4Addr::new(10, 0, 0, i as u8 + 10),
                    roles: layout.roles(i),
                })
                .collect(),
            tls,
        }
    }

    #[test]
    fn prometheus_scrapes_every_service_where_it_runs() {
        let yml = cluster(Topology::Colocated, false).prometheus_yml("demo");
        assert!(yml.contains("    lab: demo\n"), "{yml}");
        for targets in [
            "- job_name: patroni\n    scheme: http\n    static_configs:\n      - targets: \
             ['pgha1:8008', 'pgha2:8008', 'pgha3:8008']",
            "['pgha1:9187', 'pgha2:9187', 'pgha3:9187']",
            "- job_name: etcd\n    scheme: http\n    static_configs:\n      - targets: \
             ['pgha1:2379', 'pgha2:2379', 'pgha3:2379']",
            "- job_name: haproxy\n    scheme: http\n    static_configs:\n      - targets: \
             ['pgha4:8405']",
            "- job_name: pgbackrest\n    scheme: http\n    static_configs:\n      - targets: \
             ['pgha3:9854']",
        ] {
            assert!(yml.contains(targets), "{targets} in {yml}");
        }
        assert!(!yml.contains("tls_config"));
        // The course's topology has no HAProxy, so no such job.
        let course = cluster(Topology::Course, false).prometheus_yml("demo");
        assert!(!course.contains("haproxy"), "{course}");
        assert!(course.contains("['pgha5:9854']"), "{course}");
    }

    #[test]
    fn a_tls_lab_scrapes_over_verified_https_with_a_client_certificate_for_etcd() {
        let yml = cluster(Topology::Colocated, true).prometheus_yml("demo");
        assert_eq!(yml.matches("scheme: https").count(), 5, "{yml}");
        assert_eq!(
            yml.matches("ca_file: /pgha/certs/ca.crt").count(),
            5,
            "{yml}"
        );
        // Only etcd asks for a client certificate: the monitor node's own (pgha5).
        assert_eq!(yml.matches("cert_file:").count(), 1, "{yml}");
        assert!(yml.contains(
            "- job_name: etcd\n    scheme: https\n    tls_config:\n      ca_file: \
             /pgha/certs/ca.crt\n      cert_file: /pgha/certs/pgha5.crt\n      key_file: \
             /pgha/certs/pgha5.key\n"
        ));
    }

    #[test]
    fn the_stage_probes_the_urls_prometheus_scrapes() {
        let urls = cluster(Topology::Colocated, true).scrape_urls();
        assert_eq!(urls.len(), 11, "{urls:?}");
        assert_eq!(urls[0], "https://pgha1:8008/metrics");
        assert_eq!(urls[10], "https://pgha3:9854/metrics");
        let plain = cluster(Topology::Course, false).scrape_urls();
        assert!(plain.iter().all(|u| u.starts_with("http://")), "{plain:?}");
        assert!(plain.contains(&"http://pgha5:9854/metrics".to_string()));
    }

    #[test]
    fn each_node_runs_the_exporters_of_what_it_holds() {
        let c = cluster(Topology::Colocated, false);
        let env = |i: usize| c.exporters_env(&c.members[i - 1]);
        assert!(env(1).contains("postgres_exporter=(--web.listen-address=:9187)"));
        assert!(env(1).contains("user=pgha_monitor"));
        assert!(!env(1).contains("pgbackrest_exporter"));
        // The repository host of the colocated layout is also a PostgreSQL node.
        assert!(env(3).contains("postgres_exporter=") && env(3).contains("pgbackrest_exporter="));
        let tls = cluster(Topology::Colocated, true);
        assert!(
            tls.exporters_env(&tls.members[0])
                .contains("--web.config.file=/pgha/config/exporters-web.yml")
        );
        assert_eq!(
            Cluster::exporters_web(&tls.members[0]),
            "tls_server_config:\n  cert_file: /pgha/certs/pgha1.crt\n  key_file: \
             /pgha/certs/pgha1.key\n"
        );
    }

    #[test]
    fn haproxy_serves_metrics_only_in_a_monitored_lab() {
        let plain = cluster(Topology::Colocated, false);
        assert!(plain.haproxy_cfg().contains(
            "frontend prometheus\n    mode http\n    bind *:8405\n    http-request use-service \
             prometheus-exporter"
        ));
        let tls = cluster(Topology::Colocated, true);
        assert!(
            tls.haproxy_cfg()
                .contains("bind *:8405 ssl crt /pgha/certs/haproxy.pem")
        );
        let unmonitored = Cluster {
            members: plain
                .members
                .iter()
                .filter(|m| !m.roles.monitor)
                .cloned()
                .collect(),
            tls: false,
        };
        assert!(!unmonitored.haproxy_cfg().contains("prometheus"));
    }
}
