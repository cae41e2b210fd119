//! The fault drills (`lab drill SCENARIO`, all but pitr, which is a restore and has a flow of
//! its own): which fault, by name. Pure data: the drill acts them out and puts the lab back,
//! `predict` works out what each should cost a client.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    KillPrimary,
    PartitionPrimary,
    Switchover,
    Failover,
    KillReplica,
    EtcdMajority,
    KillHaproxy,
}

impl Fault {
    /// Every fault drill, in the order `lab drill --help` lists them.
    pub const ALL: [Fault; 7] = [
        Fault::KillPrimary,
        Fault::PartitionPrimary,
        Fault::Switchover,
        Fault::Failover,
        Fault::KillReplica,
        Fault::EtcdMajority,
        Fault::KillHaproxy,
    ];

    /// What the drill does, as `lab drill --help` says it.
    pub fn help(self) -> &'static str {
        match self {
            Fault::KillPrimary => {
                "SIGKILL the primary's node, then start it again (it rejoins, pg_rewind if needed)"
            }
            Fault::PartitionPrimary => "Cut the primary off the lab network, then heal it",
            Fault::Switchover => "A planned switchover through patronictl",
            Fault::Failover => "A manual failover through patronictl",
            Fault::KillReplica => {
                "SIGKILL a replica (the synchronous standby in sync mode), then start it again"
            }
            Fault::EtcdMajority => {
                "Stop etcd on a majority of its members for a ttl, then start them again"
            }
            Fault::KillHaproxy => "SIGKILL the HAProxy node, then start it again",
        }
    }

    /// The name `lab drill` takes and reports print.
    pub fn name(self) -> &'static str {
        match self {
            Fault::KillPrimary => "kill-primary",
            Fault::PartitionPrimary => "partition-primary",
            Fault::Switchover => "switchover",
            Fault::Failover => "failover",
            Fault::KillReplica => "kill-replica",
            Fault::EtcdMajority => "etcd-majority",
            Fault::KillHaproxy => "kill-haproxy",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_serialised_ones() {
        for fault in Fault::ALL {
            assert_eq!(
                serde_json::to_string(&fault).unwrap(),
                format!("\"{}\"", fault.name())
            );
        }
    }
}
