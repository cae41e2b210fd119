//! Address and port allocation, with no I/O: which subnet a new lab network gets, which node
//! addresses are free on a network, which host ports are free. Everything the engine or the
//! host already holds is passed in, stopped containers' reservations included.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::error::{Error, Result};

/// Nodes take addresses from this offset in their subnet (.10, .11, ... as in the course).
pub const NODE_OFFSET: u32 = 10;
/// The default subnet of the first lab.
pub const DEFAULT_SUBNET: &str = "192.168.50.0/24";
/// Node i publishes its PostgreSQL port at the first free port from here.
pub const FIRST_HOST_PORT: u16 = 6432;

/// A subnet someone already holds, and who.
#[derive(Debug, Clone)]
pub struct TakenSubnet {
    pub net: Ipv4Net,
    pub holder: String,
}

/// The subnet for a new network, and a note when the default had to move.
#[derive(Debug, Clone, PartialEq)]
pub struct SubnetChoice {
    pub subnet: Ipv4Net,
    pub note: Option<String>,
}

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// How many node addresses a subnet offers from the node offset, before the broadcast address.
pub fn capacity(subnet: &Ipv4Net) -> u32 {
    let size = 1u64 << (32 - subnet.prefix_len());
    size.saturating_sub(u64::from(NODE_OFFSET) + 1) as u32
}

/// Picks the subnet of a new network. A requested subnet must be free and big enough; without
/// one, the default is used, or the next free /24 after it.
pub fn choose_subnet(
    requested: Option<Ipv4Net>,
    taken: &[TakenSubnet],
    nodes: usize,
) -> Result<SubnetChoice> {
    let holder_of = |net: &Ipv4Net| taken.iter().find(|t| overlaps(&t.net, net));
    if let Some(subnet) = requested {
        if (capacity(&subnet) as usize) < nodes {
            return Err(Error::Invalid(format!(
                "subnet {subnet} is too small: from offset {NODE_OFFSET} it holds {} node \
                 address(es) and the lab needs {nodes}. Use a larger subnet, for example a /24.",
                capacity(&subnet)
            )));
        }
        if let Some(t) = holder_of(&subnet) {
            return Err(Error::Invalid(format!(
                "subnet {subnet} overlaps {} ({}). Pick a free one with --subnet, or leave \
                 --subnet out and `lab` picks the next free /24.",
                t.net, t.holder
            )));
        }
        return Ok(SubnetChoice { subnet, note: None });
    }
    let default: Ipv4Net = DEFAULT_SUBNET.parse().expect("the default subnet parses");
    let first_holder = holder_of(&default).map(|t| {
        if t.net == default {
            t.holder.clone()
        } else {
            format!("{} ({})", t.net, t.holder)
        }
    });
    let candidates = (50u8..=255)
        .map(|third| Ipv4Net::new(Ipv4Addr::new(192, 168, third, 0), 24).expect("a /24 is valid"));
    for subnet in candidates {
        if holder_of(&subnet).is_none() {
            let note = first_holder.as_ref().map(|holder| {
                format!("{default} is taken by {holder}; using {subnet}, the next free /24")
            });
            return Ok(SubnetChoice { subnet, note });
        }
    }
    Err(Error::Invalid(
        "every /24 from 192.168.50.0 to 192.168.255.0 is taken by Docker networks or host \
         routes. Give a free subnet with --subnet (for example 10.210.0.0/24)."
            .into(),
    ))
}

/// The gateway Docker uses when none is given: the first host address.
pub fn default_gateway(subnet: &Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()) + 1)
}

/// `count` free node addresses from the node offset upward, skipping the network and broadcast
/// addresses, the gateway, and everything in `reserved`.
pub fn node_addresses(
    subnet: &Ipv4Net,
    gateway: Ipv4Addr,
    reserved: &BTreeSet<Ipv4Addr>,
    count: usize,
    network_name: &str,
) -> Result<Vec<Ipv4Addr>> {
    let base = u32::from(subnet.network());
    let broadcast = u32::from(subnet.broadcast());
    let free: Vec<Ipv4Addr> = (base.saturating_add(NODE_OFFSET)..broadcast)
        .map(Ipv4Addr::from)
        .filter(|a| *a != gateway && !reserved.contains(a))
        .take(count)
        .collect();
    if free.len() < count {
        return Err(Error::Invalid(format!(
            "network {network_name} ({subnet}) has only {} free address(es) from offset \
             {NODE_OFFSET} (the gateway, and addresses held by other containers, running or \
             stopped, are skipped); the lab needs {count}. Use fewer nodes (--nodes), or \
             another network (--network) or subnet (--subnet).",
            free.len()
        )));
    }
    Ok(free)
}

/// Where the Engine may place containers that join the lab network without a static address:
/// the upper half of the subnet, when every node address lies below it, so a foreign container
/// started later can never take a stopped node's address.
pub fn dynamic_range(subnet: &Ipv4Net, last_node: Ipv4Addr) -> Option<Ipv4Net> {
    let upper = subnet.subnets(subnet.prefix_len() + 1).ok()?.nth(1)?;
    (u32::from(last_node) < u32::from(upper.network())).then_some(upper)
}

/// `count` host ports from the first host port upward, skipping ports any container publishes
/// (running or stopped) and ports `bound` says are in use on the host.
pub fn host_ports(
    count: usize,
    published: &BTreeSet<u16>,
    bound: &dyn Fn(u16) -> bool,
) -> Result<Vec<u16>> {
    let ports: Vec<u16> = (FIRST_HOST_PORT..=u16::MAX)
        .filter(|p| !published.contains(p) && !bound(*p))
        .take(count)
        .collect();
    if ports.len() < count {
        return Err(Error::Invalid(format!(
            "no free host ports left: every port from {FIRST_HOST_PORT} to 65535 is published \
             by a container or in use on this host. Remove labs you no longer need (`lab \
             destroy`), or publish on another address with --publish."
        )));
    }
    Ok(ports)
}

/// A host port for each of `wanted` (HAProxy's 5000, 5001, 7000; Prometheus's 9090; the SSH
/// entry's 2222): the port itself when it is
/// free, else the next free one above it, by the same rules as `host_ports` and never one in
/// `chosen` or picked for an earlier entry.
pub fn preferred_ports(
    wanted: &[u16],
    published: &BTreeSet<u16>,
    chosen: &[u16],
    bound: &dyn Fn(u16) -> bool,
) -> Result<Vec<u16>> {
    let mut picked: Vec<u16> = Vec::new();
    for &want in wanted {
        let port = (want..=u16::MAX)
            .find(|p| {
                !published.contains(p) && !chosen.contains(p) && !picked.contains(p) && !bound(*p)
            })
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "no free host port left from {want} to 65535 for HAProxy, Prometheus or a trainee's SSH entry: each is published \
                     by a container or in use on this host. Remove labs you no longer need \
                     (`lab destroy`), or publish on another address with --publish."
                ))
            })?;
        picked.push(port);
    }
    Ok(picked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haproxy_gets_its_usual_ports_when_free_and_the_next_free_ones_else() {
        let none = BTreeSet::new();
        let ports = preferred_ports(&[5000, 5001, 7000], &none, &[], &|_| false).unwrap();
        assert_eq!(ports, [5000, 5001, 7000]);
        // 5000 taken by a stopped container, 5002 bound on the host: 5001 moves up too.
        let published: BTreeSet<u16> = [5000].into();
        let ports =
            preferred_ports(&[5000, 5001, 7000], &published, &[7000], &|p| p == 5002).unwrap();
        assert_eq!(ports, [5001, 5003, 7001]);
    }

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn taken(s: &str, holder: &str) -> TakenSubnet {
        TakenSubnet {
            net: net(s),
            holder: holder.into(),
        }
    }

    #[test]
    fn default_subnet_when_free() {
        let choice = choose_subnet(None, &[taken("172.17.0.0/16", "bridge")], 5).unwrap();
        assert_eq!(choice.subnet, net("192.168.50.0/24"));
        assert_eq!(choice.note, None);
    }

    #[test]
    fn default_moves_to_the_next_free_24_and_says_so() {
        let t = [
            taken("192.168.50.0/24", "network pghanet"),
            taken("192.168.51.0/25", "network other"),
        ];
        let choice = choose_subnet(None, &t, 5).unwrap();
        assert_eq!(choice.subnet, net("192.168.52.0/24"));
        let note = choice.note.unwrap();
        assert!(note.contains("network pghanet"), "{note}");
        assert!(note.contains("192.168.52.0/24"), "{note}");
    }

    #[test]
    fn a_wide_network_covering_the_default_pushes_past_it() {
        let t = [taken("192.168.48.0/22", "host route via eth1")];
        let choice = choose_subnet(None, &t, 5).unwrap();
        assert_eq!(choice.subnet, net("192.168.52.0/24"));
    }

    #[test]
    fn requested_subnet_overlapping_is_refused_naming_the_holder() {
        let t = [taken("10.0.0.0/8", "network corp")];
        let text = choose_subnet(Some(net("10.1.2.0/24")), &t, 5)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("overlaps 10.0.0.0/8 (network corp)"),
            "{text}"
        );
        // and the other direction: the request contains a taken one
        let t = [taken("10.1.2.128/25", "network small")];
        assert!(choose_subnet(Some(net("10.1.0.0/16")), &t, 5).is_err());
    }

    #[test]
    fn requested_subnet_must_hold_the_nodes() {
        assert!(choose_subnet(Some(net("10.9.0.0/29")), &[], 1).is_err());
        assert_eq!(capacity(&net("10.9.0.0/28")), 5);
        choose_subnet(Some(net("10.9.0.0/28")), &[], 5).unwrap();
        assert!(choose_subnet(Some(net("10.9.0.0/28")), &[], 6).is_err());
    }

    #[test]
    fn every_default_candidate_taken_is_an_error() {
        let t = [taken("192.168.0.0/16", "host route via wg0")];
        assert!(choose_subnet(None, &t, 5).is_err());
    }

    #[test]
    fn addresses_start_at_offset_ten() {
        let a = node_addresses(
            &net("192.168.50.0/24"),
            ip("192.168.50.1"),
            &BTreeSet::new(),
            5,
            "pghanet",
        )
        .unwrap();
        assert_eq!(a.first(), Some(&ip("192.168.50.10")));
        assert_eq!(a.last(), Some(&ip("192.168.50.14")));
    }

    #[test]
    fn stopped_and_running_reservations_and_the_gateway_are_skipped() {
        let reserved: BTreeSet<_> = [ip("192.168.50.10"), ip("192.168.50.12")].into();
        let a = node_addresses(
            &net("192.168.50.0/24"),
            ip("192.168.50.11"),
            &reserved,
            3,
            "pghanet",
        )
        .unwrap();
        assert_eq!(
            a,
            vec![
                ip("192.168.50.13"),
                ip("192.168.50.14"),
                ip("192.168.50.15")
            ]
        );
    }

    #[test]
    fn non_24_subnets_use_their_real_bounds_and_never_the_broadcast() {
        let a = node_addresses(
            &net("10.20.0.0/28"),
            ip("10.20.0.1"),
            &BTreeSet::new(),
            5,
            "n",
        )
        .unwrap();
        assert_eq!(a.last(), Some(&ip("10.20.0.14")));
        // A /16 crosses octet boundaries.
        let reserved: BTreeSet<_> = (10..=255).map(|d| Ipv4Addr::new(10, 30, 0, d)).collect();
        let a = node_addresses(&net("10.30.0.0/16"), ip("10.30.0.1"), &reserved, 2, "n").unwrap();
        assert_eq!(a, vec![ip("10.30.1.0"), ip("10.30.1.1")]);
    }

    #[test]
    fn exhaustion_is_reported_before_anything_is_made() {
        let reserved: BTreeSet<_> = [ip("10.20.0.12")].into();
        let text = node_addresses(&net("10.20.0.0/28"), ip("10.20.0.1"), &reserved, 5, "small")
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("network small (10.20.0.0/28) has only 4 free"),
            "{text}"
        );
    }

    #[test]
    fn dynamic_range_is_the_upper_half_when_nodes_fit_below() {
        assert_eq!(
            dynamic_range(&net("192.168.50.0/24"), ip("192.168.50.14")),
            Some(net("192.168.50.128/25"))
        );
        assert_eq!(dynamic_range(&net("10.20.0.0/28"), ip("10.20.0.14")), None);
    }

    #[test]
    fn ports_skip_published_and_bound_ones() {
        let published: BTreeSet<u16> = [6432, 6434].into();
        let ports = host_ports(3, &published, &|p| p == 6433).unwrap();
        assert_eq!(ports, vec![6435, 6436, 6437]);
    }

    #[test]
    fn port_exhaustion_is_an_error() {
        assert!(host_ports(2, &BTreeSet::new(), &|p| p < u16::MAX).is_err());
        assert_eq!(
            host_ports(1, &BTreeSet::new(), &|p| p < u16::MAX).unwrap(),
            vec![65535]
        );
    }
}
