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
        for fault in [
            Fault::KillPrimary,
            Fault::PartitionPrimary,
            Fault::Switchover,
            Fault::Failover,
            Fault::KillReplica,
            Fault::EtcdMajority,
            Fault::KillHaproxy,
        ] {
            assert_eq!(
                serde_json::to_string(&fault).unwrap(),
                format!("\"{}\"", fault.name())
            );
        }
    }
}
