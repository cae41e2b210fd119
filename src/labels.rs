//! The Docker labels that are `lab`'s only state: every container, volume and network a lab
//! creates carries them, and list, status, start, stop and destroy work from them alone.

use crate::spec::Stage;

/// The lab an object belongs to.
pub const LAB: &str = "io.pgha-lab.lab";
/// The node a container or volume belongs to, by its container's name (alice1, ...).
pub const NODE: &str = "io.pgha-lab.node";
/// What the node is called inside its lab, as the course names it (pgha1, ...): its hostname
/// and Patroni and etcd member name. Labs made before it have none, and were named alike.
pub const HOST: &str = "io.pgha-lab.host";
/// The node's position in the lab, from 1.
pub const INDEX: &str = "io.pgha-lab.index";
/// The node's address on the lab network, kept here because a partitioned node's network
/// settings no longer show it.
pub const ADDRESS: &str = "io.pgha-lab.address";
/// What the node runs: a comma-separated list of `postgres`, `etcd`, `repo`, `haproxy`.
pub const ROLES: &str = "io.pgha-lab.roles";
/// "true" on the containers of a lab made with `--tls` (TLS and authentication on every
/// channel).
pub const TLS: &str = "io.pgha-lab.tls";
/// Where the lab's published ports are reached from here, when given (`--publish-host`);
/// without it, where its engine is.
pub const REACH: &str = "io.pgha-lab.reach";
/// The lab's network, on its containers.
pub const NETWORK: &str = "io.pgha-lab.network";
/// "true" when the lab created its network (and so may remove it), "false" when it joined one.
pub const NETWORK_CREATED: &str = "io.pgha-lab.network-created";
/// Marks the throwaway containers `lab image build` runs to read versions.
pub const PROBE: &str = "io.pgha-lab.probe";

/// On a lock container (never on a lab's objects, so no lab command takes it for part of a
/// lab): `planning` for the engine's planning lock, `lab` for a lab's own lock.
pub const LOCK: &str = "io.pgha-lab.lock";
/// The lab a lab lock is for.
pub const LOCK_LAB: &str = "io.pgha-lab.lock.lab";
/// Who holds a lock: the machine's host name, the process id, its command line, what it
/// holds the lock for, and since when (Unix seconds).
pub const LOCK_HOST: &str = "io.pgha-lab.lock.host";
pub const LOCK_PID: &str = "io.pgha-lab.lock.pid";
pub const LOCK_COMMAND: &str = "io.pgha-lab.lock.command";
pub const LOCK_PURPOSE: &str = "io.pgha-lab.lock.purpose";
pub const LOCK_SINCE: &str = "io.pgha-lab.lock.since";

/// The label filter selecting every object of one lab.
pub fn of_lab(lab: &str) -> String {
    format!("{LAB}={lab}")
}

/// On a lab's marker volumes (`NAME.MARK`, holding nothing): how far its create or bootstrap
/// got. STARTED first, then each finished stage's name, then READY once the lab is as created
/// (its reset snapshot taken). A create killed midway leaves the markers it reached.
pub const MARK: &str = "io.pgha-lab.mark";
pub const STARTED: &str = "started";
pub const READY: &str = "ready";

/// The marker volume of lab `lab` for `mark`. Lab names hold no '.', so no lab's other objects
/// can be named alike.
pub fn marker(lab: &str, mark: &str) -> String {
    format!("{lab}.{mark}")
}

/// How far an unfinished lab got: the last stage it finished ("none" before the first), or
/// None for a lab that is ready (or older than the markers, which has none).
pub fn unfinished<S: AsRef<str>>(marks: &[S]) -> Option<String> {
    let marks: Vec<&str> = marks.iter().map(AsRef::as_ref).collect();
    if marks.is_empty() || marks.contains(&READY) {
        return None;
    }
    let last = Stage::ALL
        .into_iter()
        .rev()
        .find(|s| marks.contains(&s.name()));
    Some(last.map(Stage::name).unwrap_or("none").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unfinished_lab_says_its_last_stage() {
        assert_eq!(
            unfinished(&["started", "containers", "access", "etcd"]).as_deref(),
            Some("etcd")
        );
        assert_eq!(unfinished(&["started"]).as_deref(), Some("none"));
        assert_eq!(unfinished(&["started", "containers", "ready"]), None);
        // A lab from before the markers is taken as ready.
        assert_eq!(unfinished::<&str>(&[]), None);
    }
}
