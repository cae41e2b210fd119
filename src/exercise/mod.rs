//! The exercises (`lab exercise`): a fault a trainee must find with the course's own tools and
//! repair, judged by what the lab shows afterwards, never by which command was typed. Pure
//! data (what each one is, says and hints) and, in `judge`, the verdict from what was seen.
//! `lab::exercise` makes the faults, gathers what is seen and keeps the running exercise.

pub mod judge;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Exercise {
    EtcdUnreachable,
    QuorumLost,
    LaggingReplica,
    BrokenReplica,
    SplitBrain,
    ArchiveFailing,
    HbaLockedOut,
    TuneRto,
}

/// What a started exercise broke, as its symptom and hints name it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Broken {
    /// The node the fault is on (the replica, the repository host), if one.
    pub node: Option<String>,
    /// The nodes whose service it stopped (quorum-lost's etcd members).
    pub nodes: Vec<String>,
    /// The primary when it started.
    pub primary: String,
    /// Patroni's cluster name (scope), which patronictl takes.
    pub scope: String,
    /// The lab was made with --tls.
    pub tls: bool,
}

impl Exercise {
    pub const ALL: [Exercise; 8] = [
        Exercise::EtcdUnreachable,
        Exercise::QuorumLost,
        Exercise::LaggingReplica,
        Exercise::BrokenReplica,
        Exercise::SplitBrain,
        Exercise::ArchiveFailing,
        Exercise::HbaLockedOut,
        Exercise::TuneRto,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Exercise::EtcdUnreachable => "etcd-unreachable",
            Exercise::QuorumLost => "quorum-lost",
            Exercise::LaggingReplica => "lagging-replica",
            Exercise::BrokenReplica => "broken-replica",
            Exercise::SplitBrain => "split-brain",
            Exercise::ArchiveFailing => "archive-failing",
            Exercise::HbaLockedOut => "hba-locked-out",
            Exercise::TuneRto => "tune-rto",
        }
    }

    pub fn from_name(name: &str) -> Option<Exercise> {
        Exercise::ALL.into_iter().find(|e| e.name() == name)
    }

    pub fn difficulty(self) -> &'static str {
        match self {
            Exercise::QuorumLost => "easy",
            Exercise::EtcdUnreachable
            | Exercise::LaggingReplica
            | Exercise::BrokenReplica
            | Exercise::HbaLockedOut => "medium",
            Exercise::SplitBrain | Exercise::ArchiveFailing | Exercise::TuneRto => "hard",
        }
    }

    /// The section of the training material it practises.
    pub fn section(self) -> &'static str {
        match self {
            Exercise::EtcdUnreachable => "002 Issue 2: Patroni cannot connect to etcd",
            Exercise::QuorumLost => "002 Issue 3: leader election failing",
            Exercise::LaggingReplica => "002 Issue 1: replication lag",
            Exercise::BrokenReplica => "004 patronictl; 002 recovery: reinitialize",
            Exercise::SplitBrain => "002 Issue 4: split-brain scenario",
            Exercise::ArchiveFailing => "004 pgBackRest; 002 backup strategy",
            Exercise::HbaLockedOut => "004 pg_hba with patronictl edit-config",
            Exercise::TuneRto => "002 performance tuning: Patroni tuning",
        }
    }

    /// The symptom in one line, with no node named (`lab exercise list`).
    pub fn summary(self) -> &'static str {
        match self {
            Exercise::EtcdUnreachable => "a member is gone from patronictl list",
            Exercise::QuorumLost => "writes fail and patronictl list cannot reach etcd",
            Exercise::LaggingReplica => "a replica is far behind",
            Exercise::BrokenReplica => "a replica will not start",
            Exercise::SplitBrain => "two nodes take writes",
            Exercise::ArchiveFailing => "WAL piles up and the last backup is old",
            Exercise::HbaLockedOut => "the replicas stopped streaming",
            Exercise::TuneRto => "a failover keeps writes down too long",
        }
    }

    /// What it teaches, for the README and `lab exercise list --json`.
    pub fn teaches(self) -> &'static str {
        match self {
            Exercise::EtcdUnreachable => {
                "reading Patroni's log, testing etcd as Patroni does, its etcd3 hosts and \
                 certificate permissions"
            }
            Exercise::QuorumLost => {
                "etcd's quorum and what Patroni does without it; etcdctl endpoint health"
            }
            Exercise::LaggingReplica => {
                "pg_stat_replication's lag columns, received versus replayed, a delayed apply"
            }
            Exercise::BrokenReplica => "patronictl reinit: rebuilding a replica from the leader",
            Exercise::SplitBrain => {
                "finding the true leader, what the other primary wrote, rejoining it"
            }
            Exercise::ArchiveFailing => {
                "pg_stat_archiver, archive-push's errors, pgbackrest check and backup"
            }
            Exercise::HbaLockedOut => {
                "pg_hba in the DCS, replication errors in the log, patronictl edit-config"
            }
            Exercise::TuneRto => {
                "ttl, loop_wait, retry_timeout and HAProxy's checks against measured downtime"
            }
        }
    }

    /// The symptom as a user would report it, naming what they would see.
    pub fn symptom(self, b: &Broken) -> String {
        let node = b.node.as_deref().unwrap_or("?");
        match self {
            Exercise::EtcdUnreachable => format!(
                "`patronictl list` shows {node} stopped (or not at all), and restarting Patroni \
                 there did not bring it back"
            ),
            Exercise::QuorumLost => "writes fail with \"cannot execute INSERT in a read-only \
                                     transaction\", and `patronictl list` fails: \"Etcd is not \
                                     responding properly\""
                .to_string(),
            Exercise::LaggingReplica => {
                format!("the replica on {node} is far behind: reports read from it are stale")
            }
            Exercise::BrokenReplica => {
                format!("the replica on {node} will not start since this morning's disk trouble")
            }
            Exercise::SplitBrain => format!(
                "two nodes take writes: {} and {node} both answer pg_is_in_recovery() = false, \
                 and orders written on {node} are missing from {}",
                b.primary, b.primary
            ),
            Exercise::ArchiveFailing => "WAL segments pile up on the primary, and the newest \
                                         backup is older than this session"
                .to_string(),
            Exercise::HbaLockedOut => "after this morning's security review the replicas \
                                       stopped streaming, and their lag only grows"
                .to_string(),
            Exercise::TuneRto => "when the primary dies, writes fail for half a minute: make \
                                  `lab drill kill-primary` show under 25 s of write downtime \
                                  with no acknowledged write lost"
                .to_string(),
        }
    }

    /// Three hints, from the material's diagnosis steps to the repair.
    pub fn hints(self, b: &Broken) -> [String; 3] {
        let node = b.node.as_deref().unwrap_or("?");
        let primary = &b.primary;
        let scope = &b.scope;
        let list = "patronictl -c /pgha/config/patroni.yaml list";
        match self {
            Exercise::EtcdUnreachable => [
                format!(
                    "`{list}` on any node shows who is missing; Patroni's own log on {node} \
                     (/var/log/patroni/patroni.log) says what it is waiting for"
                ),
                format!(
                    "test etcd from {node} as Patroni does: `etcdctl --endpoints=HOSTS endpoint \
                     health` with the hosts of the etcd3 section of /pgha/config/patroni.yaml{}",
                    if b.tls {
                        ", and the certificate and key it names (`ls -l /pgha/certs`)"
                    } else {
                        ", and compare them with the etcd members' client URLs (etcdctl member list)"
                    }
                ),
                format!(
                    "{} on {node}, then restart Patroni there: /stopPatroni; /startPatroni",
                    if b.tls {
                        format!("make the key readable again: chmod 600 /pgha/certs/{node}.key")
                    } else {
                        "put the etcd client port (2379) back in the etcd3 hosts of \
                         /pgha/config/patroni.yaml"
                            .to_string()
                    }
                ),
            ],
            Exercise::QuorumLost => [
                format!(
                    "`{list}` cannot read the cluster from etcd; Patroni's log on {primary} \
                     says it could not renew its leader key and demoted itself rather than risk \
                     two leaders"
                ),
                "`etcdctl --write-out=table --endpoints=$ENDPOINTS endpoint status` (and \
                 `endpoint health`): how many members answer? etcd needs a majority (2 of 3)"
                    .to_string(),
                format!(
                    "start etcd on the members that are down ({}), as the course does: nohup \
                     etcd --config-file /pgha/config/etcd.yaml >> \
                     /var/log/etcd/etcd-standalone.log 2>&1 &",
                    b.nodes.join(", ")
                ),
            ],
            Exercise::LaggingReplica => [
                format!(
                    "on the primary ({primary}): SELECT application_name, state, \
                     pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) AS lag_bytes FROM \
                     pg_stat_replication; `{list}` shows no lag there: its Lag counts WAL \
                     received, not replayed"
                ),
                format!(
                    "on {node}: SELECT pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn(), \
                     pg_last_xact_replay_timestamp(); it receives the WAL and applies it late: \
                     SHOW recovery_min_apply_delay; and where is it set? Patroni writes \
                     postgresql.conf from /pgha/config/patroni.yaml"
                ),
                format!(
                    "on {node}: take recovery_min_apply_delay out of postgresql.parameters in \
                     /pgha/config/patroni.yaml, then patronictl -c /pgha/config/patroni.yaml \
                     reload {scope} {node}"
                ),
            ],
            Exercise::BrokenReplica => [
                format!(
                    "`{list}` shows {node}'s state; Patroni's log and PostgreSQL's own \
                     (/pgdata/17/data/log/) on {node} say why it does not start"
                ),
                "a file of the data directory is gone: mending it by hand is not the way, a \
                 replica can be rebuilt from the leader"
                    .to_string(),
                format!("patronictl -c /pgha/config/patroni.yaml reinit {scope} {node}"),
            ],
            Exercise::SplitBrain => [
                format!(
                    "psql -c 'SELECT pg_is_in_recovery()' on each node: who answers as a \
                     primary? `curl http://{primary}:8008/leader` or `{list}` says which one \
                     Patroni elected: that is the true leader"
                ),
                format!(
                    "before mending anything, compare SELECT * FROM exercise_orders on {primary} \
                     and on {node}: what {node} wrote alone is lost when it rejoins; name those \
                     ids with `lab exercise answer ID...`"
                ),
                format!(
                    "stop the rogue PostgreSQL on {node} (pg_ctl -D /pgdata/17/data stop -m \
                     fast), start Patroni there (/startPatroni), and if it does not rejoin as a \
                     replica: patronictl -c /pgha/config/patroni.yaml reinit {scope} {node}"
                ),
            ],
            Exercise::ArchiveFailing => [
                format!(
                    "on the primary ({primary}): SELECT * FROM pg_stat_archiver; (failed_count, \
                     last_failed_wal) and ls /pgdata/17/data/pg_wal/archive_status"
                ),
                format!(
                    "PostgreSQL's log on {primary} (/pgdata/17/data/log/) holds archive-push's \
                     own error; `pgbackrest --stanza=pgha check` on {node} says the same"
                ),
                format!(
                    "on {node}: chmod -R u+w /pgha/data/pgbackrest/archive, then take a new \
                     backup there: pgbackrest --stanza=pgha backup"
                ),
            ],
            Exercise::HbaLockedOut => [
                format!(
                    "`{list}` shows the replicas not streaming; a replica's PostgreSQL log \
                     (/pgdata/17/data/log/) says why its connection to {primary} is refused"
                ),
                "patronictl -c /pgha/config/patroni.yaml show-config: which pg_hba line lets \
                 the replicator in from the lab's own network?"
                    .to_string(),
                "patronictl -c /pgha/config/patroni.yaml edit-config: put the replication line \
                 back as `host replication replicator 0.0.0.0/0 md5` (keep every other line); \
                 Patroni reloads pg_hba on every node"
                    .to_string(),
            ],
            Exercise::TuneRto => [
                "`lab drill kill-primary` prints the write downtime and what the lab's settings \
                 predict: the leader key lapses up to ttl after its last renewal, the replica \
                 that promotes first waits 2 s for the dead member, then HAProxy's checks must \
                 see the new primary"
                    .to_string(),
                "patronictl -c /pgha/config/patroni.yaml show-config: ttl, loop_wait, \
                 retry_timeout (Patroni raises a ttl under 20 to 20, and says \"adjusting\" in \
                 its log); HAProxy's checks are the default-server line of \
                 /pgha/config/haproxy.cfg on the HAProxy node (/etc/haproxy/haproxy.cfg links to \
                 it); and `etcdctl endpoint status -w table`: etcd's leader dying with the \
                 primary adds its own election"
                    .to_string(),
                "patronictl -c /pgha/config/patroni.yaml edit-config --force -s ttl=20 -s \
                 loop_wait=10 -s retry_timeout=5; on the HAProxy node as root, default-server \
                 inter 3s fastinter 1s downinter 1s fall 3 rise 2 on-marked-down shutdown-sessions \
                 in /pgha/config/haproxy.cfg, then startHaproxy; keep etcd's leader off the \
                 primary's node (etcdctl move-leader ID); `lab sync on` makes sure no \
                 acknowledged write can be lost"
                    .to_string(),
            ],
        }
    }

    /// Whether the exercise takes an answer (`lab exercise answer`).
    pub fn takes_answer(self) -> bool {
        self == Exercise::SplitBrain
    }
}

/// One exercise as `lab exercise list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub name: &'static str,
    pub symptom: &'static str,
    pub difficulty: &'static str,
    pub section: &'static str,
    pub teaches: &'static str,
}

/// Every exercise, in the order they are listed.
pub fn listed() -> Vec<Listed> {
    Exercise::ALL
        .into_iter()
        .map(|e| Listed {
            name: e.name(),
            symptom: e.summary(),
            difficulty: e.difficulty(),
            section: e.section(),
            teaches: e.teaches(),
        })
        .collect()
}

/// `lab exercise list`'s table: one exercise a line, its name first.
pub fn list_text(listed: &[Listed]) -> String {
    crate::table::render(
        &["EXERCISE", "SYMPTOM", "DIFFICULTY", "PRACTISES"],
        listed
            .iter()
            .map(|l| vec![l.name, l.symptom, l.difficulty, l.section]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_command_line_and_serialised_ones() {
        use clap::ValueEnum;
        for e in Exercise::ALL {
            assert_eq!(Exercise::from_name(e.name()), Some(e));
            assert_eq!(
                e.to_possible_value().unwrap().get_name(),
                e.name(),
                "clap's name"
            );
            assert_eq!(
                serde_json::to_string(&e).unwrap(),
                format!("\"{}\"", e.name())
            );
        }
        assert_eq!(Exercise::from_name("nope"), None);
    }

    #[test]
    fn every_exercise_has_its_line_and_three_hints_naming_what_broke() {
        let broken = Broken {
            node: Some("pgha3".into()),
            nodes: vec!["pgha3".into(), "pgha4".into(), "pgha5".into()],
            primary: "pgha1".into(),
            scope: "pgha_patroni_cluster".into(),
            tls: false,
        };
        let text = list_text(&listed());
        assert_eq!(text.lines().count(), 1 + Exercise::ALL.len());
        for e in Exercise::ALL {
            let line = text.lines().find(|l| l.starts_with(e.name())).unwrap();
            assert!(
                line.contains(e.difficulty()) && line.contains(e.section()),
                "{line}"
            );
            let hints = e.hints(&broken);
            assert!(hints.iter().all(|h| !h.is_empty()));
        }
        assert!(
            Exercise::BrokenReplica.hints(&broken)[2]
                .ends_with("reinit pgha_patroni_cluster pgha3")
        );
        assert!(Exercise::QuorumLost.hints(&broken)[2].contains("pgha3, pgha4, pgha5"));
        assert!(Exercise::LaggingReplica.symptom(&broken).contains("pgha3"));
        let tls = Broken {
            tls: true,
            ..broken
        };
        assert!(
            Exercise::EtcdUnreachable.hints(&tls)[2].contains("chmod 600 /pgha/certs/pgha3.key")
        );
    }
}
