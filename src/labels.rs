//! The Docker labels that are `lab`'s only state: every container, volume and network a lab
//! creates carries them, and list, status, start, stop and destroy work from them alone.

/// The lab an object belongs to.
pub const LAB: &str = "io.pgha-lab.lab";
/// The node a container or volume belongs to (pgha1, ...).
pub const NODE: &str = "io.pgha-lab.node";
/// The node's position in the lab, from 1.
pub const INDEX: &str = "io.pgha-lab.index";
/// The node's address on the lab network, kept here because a partitioned node's network
/// settings no longer show it.
pub const ADDRESS: &str = "io.pgha-lab.address";
/// What the node runs: a comma-separated list of `postgres`, `etcd`, `repo`.
pub const ROLES: &str = "io.pgha-lab.roles";
/// The lab's network, on its containers.
pub const NETWORK: &str = "io.pgha-lab.network";
/// "true" when the lab created its network (and so may remove it), "false" when it joined one.
pub const NETWORK_CREATED: &str = "io.pgha-lab.network-created";
/// Marks the throwaway containers `lab image build` runs to read versions.
pub const PROBE: &str = "io.pgha-lab.probe";

/// The label filter selecting every object of one lab.
pub fn of_lab(lab: &str) -> String {
    format!("{LAB}={lab}")
}
