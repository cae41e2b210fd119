//! The files `lab` writes into the nodes itself, rendered from the lab's topology with no I/O,
//! and the course's fixed names and paths. etcd.yaml, patroni.yaml and createRoles.sh are not
//! here: the course's own helpers in the image (/etcdSetup.sh, /patroniSetup.sh, /createRoles.sh)
//! write them, for the bootstrap exactly as for a trainee. pgbackrest.conf has no helper in the
//! course (the trainee types it), so it is rendered here, to the letter of the course's text.

pub mod access;
pub mod monitoring;

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use crate::spec::{HAPROXY_PRIMARY, HAPROXY_REPLICAS, HAPROXY_STATS, POSTGRES_PORT, Roles};

/// pgBackRest's stanza: the course's name in every lab.
pub const STANZA: &str = "pgha";
/// PostgreSQL's data directory, as the course has it.
/// HAProxy's health checks (Percona's haproxy.cfg): one every HAPROXY_INTER seconds, a server
/// down after HAPROXY_FALL failures and up again after HAPROXY_RISE successes.
pub const HAPROXY_INTER: u64 = 3;
pub const HAPROXY_FALL: u64 = 3;
pub const HAPROXY_RISE: u64 = 2;
pub const PGDATA: &str = "/pgdata/17/data";
pub const PATRONI_CONF: &str = "/pgha/config/patroni.yaml";
pub const PGBACKREST_CONF: &str = "/pgha/config/pgbackrest.conf";
/// Where HAProxy's configuration really lives: /etc/haproxy/haproxy.cfg, where the guide has
/// it, links here, so that `lab reset` restores it with the rest of /pgha.
pub const HAPROXY_CONF: &str = "/pgha/config/haproxy.cfg";
/// Patroni's REST API, which HAProxy's health checks ask.
pub const PATRONI_API_PORT: u16 = 8008;
/// What the course puts in Patroni's dynamic configuration once the repository exists.
pub const ARCHIVE_COMMAND: &str =
    r#"pgbackrest --stanza=pgha archive-push "/pgdata/17/data/pg_wal/%f""#;

/// Whether an archive_command hands WAL to pgBackRest (the course's, or one a trainee wrote
/// with %p).
pub fn archives_to_pgbackrest(command: &str) -> bool {
    command.contains("pgbackrest") && command.contains("archive-push")
}

/// One node as the renderers need it.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
    pub ip: Ipv4Addr,
    pub roles: Roles,
}

/// The whole lab as the renderers need it.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub members: Vec<Member>,
    /// `--tls`: HAProxy checks Patroni over https.
    pub tls: bool,
}

impl Cluster {
    fn etcd_members(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| m.roles.etcd)
    }

    pub fn postgres_members(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| m.roles.postgres)
    }

    /// "192.168.50.10:2379,...": the same by address, for etcdctl run by `lab` itself.
    pub fn etcd_endpoints(&self) -> String {
        self.etcd_members()
            .map(|m| format!("{}:2379", m.ip))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// /pgha/config/pgbackrest.conf of `member`, as the course has the trainee type it: the
    /// repository host's lists every PostgreSQL node; a PostgreSQL node's points at the
    /// repository host as pgbackrest1.
    pub fn pgbackrest_conf(&self, member: &Member) -> String {
        let mut blocks: Vec<String> = Vec::new();
        if member.roles.repo {
            blocks.push("[global]".into());
            blocks.push(
                "repo1-path=/pgha/data/pgbackrest\n\
                 repo1-retention-archive-type=full\n\
                 repo1-retention-full=2"
                    .into(),
            );
            let mut tuning = "process-max=2\n\
                              log-level-console=info\n\
                              log-level-file=info\n\
                              start-fast=y\n\
                              delta=y"
                .to_string();
            // pgBackRest refuses backup-standby when there is no standby to back up from.
            if self.postgres_members().count() > 1 {
                tuning.push_str("\nbackup-standby=y");
            }
            blocks.push(tuning);
            blocks.push(format!("[{STANZA}]"));
            // The repository's own PostgreSQL, when it has one, is local (no host) and comes
            // first: archive-push runs only where pg1 is local, so a primary on this node
            // could not archive otherwise.
            let (local, remote): (Vec<&Member>, Vec<&Member>) =
                self.postgres_members().partition(|m| m.name == member.name);
            for (i, m) in local.into_iter().chain(remote).enumerate() {
                let n = i + 1;
                let mut pg = String::new();
                if m.name != member.name {
                    let _ = writeln!(pg, "pg{n}-host={}", m.name);
                }
                let _ = write!(pg, "pg{n}-port=5432\npg{n}-path={PGDATA}");
                blocks.push(pg);
            }
        } else {
            blocks.push("[global]".into());
            blocks.push("repo1-host=pgbackrest1\nrepo1-host-user=postgres".into());
            blocks.push("process-max=4\nlog-level-console=info\nlog-level-file=debug".into());
            blocks.push(format!("[{STANZA}]"));
            blocks.push(format!("pg1-path={PGDATA}"));
        }
        blocks.join("\n\n") + "\n"
    }
}

impl Cluster {
    /// /etc/haproxy/haproxy.cfg as Percona's guide (001) has the trainee type it, with the
    /// lab's PostgreSQL nodes as the servers: 5000 to the one Patroni's REST API calls the
    /// primary, 5001 round-robin over the replicas, 7000 the stats page. On a `--tls` lab the
    /// checks ask Patroni over https, verifying its certificate against the lab's CA and the
    /// node's name (a check sends no SNI, so the name is given).
    pub fn haproxy_cfg(&self) -> String {
        let servers: String = self
            .postgres_members()
            .map(|m| {
                let tls = if self.tls {
                    format!(
                        " check-ssl verify required ca-file {} verifyhost {}",
                        crate::certs::CA_CERT,
                        m.name
                    )
                } else {
                    String::new()
                };
                format!(
                    "    server {0} {0}:{POSTGRES_PORT} maxconn 100 check port {PATRONI_API_PORT}{tls}\n",
                    m.name
                )
            })
            .collect();
        let listen = |name: &str, port: u16, check: &str, balance: &str| {
            format!(
                "listen {name}\n{balance}    bind *:{port}\n    option httpchk {check}\n    \
                 http-check expect status 200\n    default-server inter {HAPROXY_INTER}s fall \
                 {HAPROXY_FALL} rise {HAPROXY_RISE} on-marked-down shutdown-sessions\n{servers}"
            )
        };
        format!(
            "global\n    maxconn 100\n\n\
             defaults\n    log global\n    mode tcp\n    retries 2\n    timeout client 30m\n    \
             timeout connect 4s\n    timeout server 30m\n    timeout check 5s\n\n\
             listen stats\n    mode http\n    bind *:{HAPROXY_STATS}\n    stats enable\n    \
             stats uri /\n\n{}\n{}{}",
            listen("primary", HAPROXY_PRIMARY, "/primary", ""),
            listen(
                "standbys",
                HAPROXY_REPLICAS,
                "/replica",
                "    balance roundrobin\n"
            ),
            self.haproxy_metrics(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> Cluster {
        let roles = |i: usize| Roles {
            postgres: i <= 3,
            etcd: true,
            repo: i == 5,
            ..Roles::default()
        };
        Cluster {
            members: (1..=5)
                .map(|i| Member {
                    name: format!("pgha{i}"),
                    ip: Ipv4Addr::new(192, 168, 50, 9 + i as u8),
                    roles: roles(i),
                })
                .collect(),
            tls: false,
        }
    }

    /// The repository host's file, as the course's "Create pgbackrest configuration file" shows
    /// it (the integration test types the same text).
    const COURSE_REPO: &str = include_str!("../../tests/course/pgbackrest-repo.conf");
    /// A database server's, as "Create pgbackrest.conf on database servers" shows it.
    const COURSE_DB: &str = include_str!("../../tests/course/pgbackrest-db.conf");

    #[test]
    fn the_repository_host_file_is_the_course_s() {
        let c = cluster();
        assert_eq!(c.pgbackrest_conf(&c.members[4]), COURSE_REPO);
    }

    #[test]
    fn a_database_server_file_is_the_course_s() {
        let c = cluster();
        assert_eq!(c.pgbackrest_conf(&c.members[0]), COURSE_DB);
        assert_eq!(c.pgbackrest_conf(&c.members[2]), COURSE_DB);
    }

    #[test]
    fn a_repository_on_a_postgres_node_is_local_to_itself() {
        let mut c = cluster();
        c.members.truncate(3);
        c.members[2].roles.repo = true;
        let text = c.pgbackrest_conf(&c.members[2]);
        // Its own first, local, so that archive-push works while it is the primary.
        assert!(
            text.contains("[pgha]\n\npg1-port=5432\npg1-path=/pgdata/17/data\n"),
            "{text}"
        );
        assert!(text.contains("pg2-host=pgha1\n"));
        assert!(text.contains("pg3-host=pgha2\n"));
        assert!(!text.contains("pg1-host"));
        // A single PostgreSQL node has no standby to back up from.
        c.members.truncate(1);
        c.members[0].roles.repo = true;
        assert!(!c.pgbackrest_conf(&c.members[0]).contains("backup-standby"));
    }

    #[test]
    fn haproxy_cfg_is_percona_s_with_the_lab_s_postgres_nodes() {
        // The guide's text, its node1..node3 named pgha1..pgha3.
        let guide = include_str!("../../tests/course/haproxy.cfg");
        assert_eq!(cluster().haproxy_cfg(), guide);
    }

    #[test]
    fn haproxy_checks_patroni_over_verified_https_on_a_tls_lab() {
        let c = Cluster {
            tls: true,
            ..cluster()
        };
        let cfg = c.haproxy_cfg();
        assert!(cfg.contains(
            "    server pgha2 pgha2:5432 maxconn 100 check port 8008 check-ssl verify required \
             ca-file /pgha/certs/ca.crt verifyhost pgha2\n"
        ));
        assert_eq!(cfg.matches("check-ssl").count(), 6, "{cfg}");
        // The rest is the guide's.
        assert_eq!(
            cfg.replace(" check-ssl verify required ca-file /pgha/certs/ca.crt", "")
                .lines()
                .map(|l| l.split(" verifyhost").next().unwrap())
                .collect::<Vec<_>>()
                .join("\n")
                + "\n",
            cluster().haproxy_cfg()
        );
    }

    #[test]
    fn endpoints_by_address() {
        let c = cluster();
        assert!(
            c.etcd_endpoints()
                .starts_with("192.168.50.10:2379,192.168.50.11:2379")
        );
    }

    #[test]
    fn the_course_s_archive_command_and_a_trainee_s_own_are_recognised() {
        assert!(archives_to_pgbackrest(ARCHIVE_COMMAND));
        assert!(archives_to_pgbackrest(
            "pgbackrest --stanza=pgha archive-push %p"
        ));
        assert!(!archives_to_pgbackrest("/bin/true"));
    }
}
