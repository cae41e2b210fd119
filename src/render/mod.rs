//! The files the bootstrap writes into the nodes, rendered from the lab's topology with no I/O:
//! etcd.yaml, patroni.yaml, createRoles.sh and pgbackrest.conf, laid out as the training
//! material shows them so trainees recognise what they read. The longer ones are templates
//! beside this file.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use crate::spec::{Auth, Credentials, Roles};

/// Patroni's namespace and scope, and pgBackRest's stanza: the course's names in every lab.
pub const NAMESPACE: &str = "pgha";
pub const SCOPE: &str = "pgha_patroni_cluster";
pub const STANZA: &str = "pgha";
pub const REPLICATOR_PASSWORD: &str = "replicator";
pub const PGDATA: &str = "/pgdata/17/data";
pub const PG_BIN: &str = "/usr/lib/postgresql/17/bin";
pub const ETCD_CONF: &str = "/pgha/config/etcd.yaml";
pub const PATRONI_CONF: &str = "/pgha/config/patroni.yaml";
pub const CREATE_ROLES: &str = "/pgha/config/createRoles.sh";
pub const PGBACKREST_CONF: &str = "/pgha/config/pgbackrest.conf";
/// What Patroni's dynamic configuration gets once the repository exists.
pub const ARCHIVE_COMMAND: &str = "pgbackrest --stanza=pgha archive-push %p";

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
    pub lab: String,
    pub members: Vec<Member>,
}

/// A YAML double-quoted scalar: JSON's string escaping is valid YAML.
fn quoted(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

impl Cluster {
    fn etcd_members(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| m.roles.etcd)
    }

    pub fn postgres_members(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| m.roles.postgres)
    }

    /// "pgha1:2379,pgha2:2379,...": etcd's client endpoints by name.
    pub fn etcd_hosts(&self) -> String {
        self.etcd_members()
            .map(|m| format!("{}:2379", m.name))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// "192.168.50.10:2379,...": the same by address, for etcdctl run by `lab` itself.
    pub fn etcd_endpoints(&self) -> String {
        self.etcd_members()
            .map(|m| format!("{}:2379", m.ip))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// /pgha/config/etcd.yaml of `member`, in the --config-file form the course uses.
    pub fn etcd_yaml(&self, member: &Member) -> String {
        let initial: Vec<String> = self
            .etcd_members()
            .map(|m| format!("{}=http://{}:2380", m.name, m.ip))
            .collect();
        let ip = member.ip;
        format!(
            "name: {name}\n\
             initial-cluster: \"{initial}\"\n\
             initial-cluster-token: {lab}-token\n\
             data-dir: /pgha/data/etcd\n\
             initial-cluster-state: new\n\
             initial-advertise-peer-urls: \"http://{ip}:2380\"\n\
             listen-peer-urls: \"http://{ip}:2380\"\n\
             listen-client-urls: \"http://{ip}:2379,http://localhost:2379\"\n\
             advertise-client-urls: \"http://{ip}:2379\"\n",
            name = member.name,
            initial = initial.join(","),
            lab = self.lab,
        )
    }

    /// /pgha/config/patroni.yaml of `member`: the course's file, with its pg_hba placed where
    /// Patroni 4 reads it (bootstrap.dcs.postgresql) and passwords from the lab's credentials.
    pub fn patroni_yaml(&self, member: &Member, credentials: &Credentials) -> String {
        fill(
            include_str!("patroni.yaml"),
            &[
                ("namespace", NAMESPACE.into()),
                ("scope", SCOPE.into()),
                ("name", member.name.clone()),
                ("etcd_hosts", self.etcd_hosts()),
                ("password_encryption", encryption(credentials.auth).into()),
                ("create_roles", CREATE_ROLES.into()),
                ("pgdata", PGDATA.into()),
                ("pg_bin", PG_BIN.into()),
                ("replicator_password", quoted(REPLICATOR_PASSWORD)),
                ("superuser_password", quoted(&credentials.password)),
            ],
        )
    }

    /// /pgha/config/pgbackrest.conf of `member`: the repository host's lists every PostgreSQL
    /// node; a PostgreSQL node's points at the repository host as pgbackrest1.
    pub fn pgbackrest_conf(&self, member: &Member) -> String {
        let mut c = String::new();
        if member.roles.repo {
            let standbys = self.postgres_members().count() > 1;
            c.push_str(
                "[global]\n\
                 repo1-path=/pgha/data/pgbackrest\n\
                 repo1-retention-archive-type=full\n\
                 repo1-retention-full=2\n\
                 \n\
                 process-max=2\n\
                 log-level-console=info\n\
                 log-level-file=info\n\
                 log-path=/var/log/pgbackrest\n\
                 start-fast=y\n\
                 delta=y\n",
            );
            if standbys {
                c.push_str("backup-standby=y\n");
            }
            let _ = write!(c, "\n[{STANZA}]\n");
            for (i, m) in self.postgres_members().enumerate() {
                let n = i + 1;
                if m.name != member.name {
                    let _ = writeln!(c, "pg{n}-host={}", m.name);
                }
                let _ = write!(
                    c,
                    "pg{n}-port=5432\n\
                     pg{n}-path={PGDATA}\n\
                     pg{n}-socket-path=/var/run/postgresql\n\
                     \n"
                );
            }
        } else {
            let _ = write!(
                c,
                "[global]\n\
                 repo1-host=pgbackrest1\n\
                 repo1-host-user=postgres\n\
                 \n\
                 process-max=4\n\
                 log-level-console=info\n\
                 log-level-file=debug\n\
                 log-path=/var/log/pgbackrest\n\
                 \n\
                 [{STANZA}]\n\
                 pg1-path={PGDATA}\n\
                 pg1-socket-path=/var/run/postgresql\n"
            );
        }
        c
    }
}

/// /pgha/config/createRoles.sh: Patroni runs it once on the first primary, passing a connection
/// string, to create the replication role and set the passwords (--password, --md5).
pub fn create_roles(credentials: &Credentials) -> String {
    let literal = |s: &str| format!("'{}'", s.replace('\'', "''"));
    fill(
        include_str!("createRoles.sh"),
        &[
            ("password_encryption", encryption(credentials.auth).into()),
            ("replicator_password", literal(REPLICATOR_PASSWORD)),
            ("superuser_password", literal(&credentials.password)),
        ],
    )
}

fn encryption(auth: Auth) -> &'static str {
    match auth {
        Auth::Scram => "scram-sha-256",
        Auth::Md5 => "md5",
    }
}

/// Replaces each `{{key}}` of a template.
fn fill(template: &str, values: &[(&str, String)]) -> String {
    values
        .iter()
        .fold(template.to_string(), |text, (key, value)| {
            text.replace(&format!("{{{{{key}}}}}"), value)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> Cluster {
        let roles = |i: usize| Roles {
            postgres: i <= 3,
            etcd: true,
            repo: i == 5,
        };
        Cluster {
            lab: "pgha".into(),
            members: (1..=5)
                .map(|i| Member {
                    name: format!("pgha{i}"),
                    ip: Ipv4Addr::new(192, 168, 50, 9 + i as u8),
                    roles: roles(i),
                })
                .collect(),
        }
    }

    fn credentials(password: &str, auth: Auth) -> Credentials {
        Credentials {
            password: password.into(),
            auth,
        }
    }

    #[test]
    fn etcd_yaml_matches_the_course() {
        let c = cluster();
        let text = c.etcd_yaml(&c.members[4]);
        let expected = "name: pgha5\n\
            initial-cluster: \"pgha1=http://192.168.50.10:2380,pgha2=http://192.168.50.11:2380,\
            pgha3=http://192.168.50.12:2380,pgha4=http://192.168.50.13:2380,\
            pgha5=http://192.168.50.14:2380\"\n\
            initial-cluster-token: pgha-token\n\
            data-dir: /pgha/data/etcd\n\
            initial-cluster-state: new\n\
            initial-advertise-peer-urls: \"http://192.168.50.14:2380\"\n\
            listen-peer-urls: \"http://192.168.50.14:2380\"\n\
            listen-client-urls: \"http://192.168.50.14:2379,http://localhost:2379\"\n\
            advertise-client-urls: \"http://192.168.50.14:2379\"\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn patroni_yaml_names_the_node_and_its_peers() {
        let c = cluster();
        let text = c.patroni_yaml(&c.members[1], &credentials("postgres", Auth::Scram));
        assert!(text.starts_with("namespace: pgha\nscope: pgha_patroni_cluster\nname: pgha2\n"));
        assert!(text.contains("    connect_address: pgha2:8008\n"));
        assert!(text.contains("    connect_address: pgha2:5432\n"));
        assert!(
            text.contains("    hosts: pgha1:2379,pgha2:2379,pgha3:2379,pgha4:2379,pgha5:2379\n")
        );
        assert!(text.contains("                password_encryption: scram-sha-256\n"));
        assert!(text.contains("            pg_hba:\n                - local all all trust\n"));
        assert!(text.contains("    post_bootstrap: /pgha/config/createRoles.sh\n"));
        assert!(text.contains("    bin_dir: /usr/lib/postgresql/17/bin\n"));
        assert!(text.contains("            password: \"postgres\"\n"));
        // Every line indents by four.
        for line in text.lines() {
            let indent = line.len() - line.trim_start().len();
            assert_eq!(indent % 4, 0, "{line:?}");
        }
    }

    #[test]
    fn passwords_are_quoted_safely_and_md5_is_honoured() {
        let c = cluster();
        let text = c.patroni_yaml(&c.members[0], &credentials("it's \"x\"\\", Auth::Md5));
        assert!(
            text.contains(r#"            password: "it's \"x\"\\""#),
            "{text}"
        );
        assert!(text.contains("password_encryption: md5\n"));
        let script = create_roles(&credentials("it's", Auth::Md5));
        assert!(script.contains("SET password_encryption = 'md5';"));
        assert!(script.contains("ALTER ROLE postgres WITH PASSWORD 'it''s';"));
        assert!(
            script.contains("CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD 'replicator';")
        );
        assert!(script.starts_with("#!/bin/bash\n"));
        assert!(!script.contains("{{"), "{script}");
        assert!(!text.contains("{{"), "{text}");
    }

    #[test]
    fn the_repository_host_lists_every_postgres_node() {
        let c = cluster();
        let text = c.pgbackrest_conf(&c.members[4]);
        assert!(text.contains("repo1-path=/pgha/data/pgbackrest\n"));
        assert!(text.contains("backup-standby=y\n"));
        assert!(text.contains("[pgha]\npg1-host=pgha1\npg1-port=5432\npg1-path=/pgdata/17/data\n"));
        assert!(text.contains("pg3-host=pgha3\n"));
        assert!(!text.contains("pg4-"));
    }

    #[test]
    fn a_postgres_node_points_at_pgbackrest1() {
        let c = cluster();
        let text = c.pgbackrest_conf(&c.members[0]);
        assert!(text.contains("repo1-host=pgbackrest1\nrepo1-host-user=postgres\n"));
        assert!(text.contains("[pgha]\npg1-path=/pgdata/17/data\n"));
        assert!(!text.contains("repo1-path"));
    }

    #[test]
    fn a_repository_on_a_postgres_node_is_local_to_itself() {
        let mut c = cluster();
        c.members.truncate(3);
        c.members[2].roles.repo = true;
        let text = c.pgbackrest_conf(&c.members[2]);
        assert!(text.contains("pg1-host=pgha1\n"));
        assert!(text.contains("pg2-host=pgha2\n"));
        assert!(!text.contains("pg3-host"));
        assert!(text.contains("pg3-path=/pgdata/17/data\n"));
        // A single PostgreSQL node has no standby to back up from.
        c.members.truncate(1);
        c.members[0].roles.repo = true;
        assert!(!c.pgbackrest_conf(&c.members[0]).contains("backup-standby"));
    }

    #[test]
    fn endpoints_by_name_and_address() {
        let c = cluster();
        assert!(
            c.etcd_endpoints()
                .starts_with("192.168.50.10:2379,192.168.50.11:2379")
        );
        assert!(c.etcd_hosts().ends_with("pgha5:2379"));
    }
}
