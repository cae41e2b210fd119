//! What is configured and running on a node, read in one exec: the ground the bootstrap, `lab
//! start` and `lab stop` decide from, so that nothing done by hand or by an earlier run is
//! redone or overwritten.

/// The probe: one word per fact that holds.
pub const PROBE: &str = "\
[ -x /etcdSetup.sh ] && [ -x /patroniSetup.sh ] && echo helpers
[ -s /var/lib/postgresql/.ssh/authorized_keys ] && echo ssh_keys
[ -s /etc/ssh/ssh_host_ed25519_key ] && echo host_keys
pgrep -x sshd >/dev/null && echo sshd_running
n=$(hostname); [ -s /pgha/certs/ca.crt ] && [ -s /pgha/certs/$n.crt ] && [ -s /pgha/certs/$n.key ] && echo certs
[ -s /pgha/config/etcd.yaml ] && echo etcd_config
[ -d /pgha/data/etcd/member ] && echo etcd_data
pgrep -x etcd >/dev/null && echo etcd_running
[ -s /pgha/config/patroniVars ] && echo patroni_vars
[ -s /pgha/config/patroni.yaml ] && echo patroni_config
[ -s /pgha/config/createRoles.sh ] && echo create_roles
[ -f /pgdata/17/data/PG_VERSION ] && echo pg_data
state=$(pg_controldata /pgdata/17/data 2>/dev/null | sed -n 's/^Database cluster state: *//p')
[ \"$state\" = 'shut down' ] && echo pg_clean_primary
[ \"$state\" = 'shut down in recovery' ] && echo pg_clean_replica
pgrep -x patroni >/dev/null && echo patroni_running
[ -s /pgha/config/pgbackrest.conf ] && echo pgbackrest_config
grep -qs '^repo1-path=' /pgha/config/pgbackrest.conf && echo repo_config
grep -qs '^repo1-host=' /pgha/config/pgbackrest.conf && echo repo_client
[ -s /etc/haproxy/haproxy.cfg ] && echo haproxy_config
pgrep -x haproxy >/dev/null && echo haproxy_running
true";

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
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
}

impl Facts {
    pub fn parse(node: &str, output: &str) -> Facts {
        let mut f = Facts {
            node: node.to_string(),
            ..Facts::default()
        };
        for word in output.split_whitespace() {
            let flag = match word {
                "helpers" => &mut f.helpers,
                "ssh_keys" => &mut f.ssh_keys,
                "host_keys" => &mut f.host_keys,
                "sshd_running" => &mut f.sshd_running,
                "certs" => &mut f.certs,
                "etcd_config" => &mut f.etcd_config,
                "etcd_data" => &mut f.etcd_data,
                "etcd_running" => &mut f.etcd_running,
                "patroni_vars" => &mut f.patroni_vars,
                "patroni_config" => &mut f.patroni_config,
                "create_roles" => &mut f.create_roles,
                "pg_data" => &mut f.pg_data,
                "pg_clean_primary" => &mut f.pg_clean_primary,
                "pg_clean_replica" => &mut f.pg_clean_replica,
                "patroni_running" => &mut f.patroni_running,
                "pgbackrest_config" => &mut f.pgbackrest_config,
                "repo_config" => &mut f.repo_config,
                "repo_client" => &mut f.repo_client,
                "haproxy_config" => &mut f.haproxy_config,
                "haproxy_running" => &mut f.haproxy_running,
                _ => continue,
            };
            *flag = true;
        }
        f
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

    #[test]
    fn words_become_flags() {
        let f = Facts::parse("pgha1", "etcd_config\netcd_running\npg_data\nnoise\n");
        assert!(f.etcd_config && f.etcd_running && f.pg_data);
        assert!(!f.patroni_running && !f.ssh_keys);
        assert_eq!(f.node, "pgha1");
    }

    #[test]
    fn the_probe_names_every_flag() {
        for word in [
            "helpers",
            "ssh_keys",
            "host_keys",
            "sshd_running",
            "certs",
            "etcd_config",
            "etcd_data",
            "etcd_running",
            "patroni_vars",
            "patroni_config",
            "create_roles",
            "pg_data",
            "pg_clean_primary",
            "pg_clean_replica",
            "patroni_running",
            "pgbackrest_config",
            "repo_config",
            "repo_client",
            "haproxy_config",
            "haproxy_running",
        ] {
            assert!(PROBE.contains(&format!("echo {word}\n")), "{word}");
            assert_ne!(Facts::parse("n", word), Facts::parse("n", ""), "{word}");
        }
    }
}
