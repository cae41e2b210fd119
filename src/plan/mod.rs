//! Planning, with no I/O: a validated spec plus what the engine and the host already hold become
//! the exact network, containers, volumes, addresses, ports, aliases and labels of a lab.

pub mod host;
pub mod ipam;
pub mod placement;
pub mod routes;

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;

use crate::engine::objects::{Endpoint, PublishedPort};
use crate::engine::{ContainerInfo, ContainerSpec, NetworkInfo, NetworkSpec, VolumeInfo};
use crate::error::{Error, Result};
use crate::labels;
use crate::render::access::SSH_ENTRY;
use crate::spec;
use crate::spec::{
    HAPROXY_PRIMARY, HAPROXY_REPLICAS, HAPROXY_STATS, LabSpec, POSTGRES_PORT, PROMETHEUS_PORT,
    Roles,
};
use crate::table;
use ipam::TakenSubnet;

/// What the engine and the host hold when planning starts.
pub struct World {
    pub containers: Vec<ContainerInfo>,
    pub networks: Vec<NetworkInfo>,
    pub volumes: Vec<VolumeInfo>,
    pub host_routes: Vec<TakenSubnet>,
}

impl World {
    /// Counts a planned lab as made, so the next plan keeps off its subnet, addresses and
    /// ports (several labs planned in one dry run).
    pub fn reserve(&mut self, plan: &Plan) {
        if plan.network.create {
            self.networks.push(NetworkInfo {
                name: plan.network.name.clone(),
                driver: "bridge".into(),
                subnets: vec![(plan.network.subnet, Some(plan.network.gateway))],
                labels: plan.network_spec().labels,
                attached: vec![],
            });
        }
        for node in &plan.nodes {
            self.containers.push(ContainerInfo {
                name: node.container.clone(),
                labels: plan.node_labels(node),
                running: false,
                state: "planned".into(),
                endpoints: vec![Endpoint {
                    network: plan.network.name.clone(),
                    static_ip: Some(node.ip),
                    ip: None,
                }],
                published: node
                    .ports
                    .iter()
                    .map(|(port, host_port)| PublishedPort {
                        port: *port,
                        host_ip: Some(plan.publish),
                        host_port: *host_port,
                    })
                    .collect(),
            });
        }
    }

    /// Leaves out everything of lab `name`, as `--replace` will remove it: its objects, and the
    /// host routes of the networks it made (Docker's bridge route goes with the network).
    pub fn forget(&mut self, name: &str) {
        let other =
            |l: &HashMap<String, String>| l.get(labels::LAB).map(String::as_str) != Some(name);
        let going: Vec<Ipv4Net> = self
            .networks
            .iter()
            .filter(|n| {
                !other(&n.labels)
                    && n.labels.get(labels::NETWORK_CREATED).map(String::as_str) == Some("true")
            })
            .flat_map(|n| n.subnets.iter().map(|(net, _)| *net))
            .collect();
        self.host_routes.retain(|r| !going.contains(&r.net));
        self.containers.retain(|c| other(&c.labels));
        self.volumes.retain(|v| other(&v.labels));
        self.networks.retain(|n| other(&n.labels));
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NetworkPlan {
    pub name: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    /// True when the lab creates the network (and may remove it again).
    pub create: bool,
    pub ip_range: Option<Ipv4Net>,
    /// Said to the user: why the subnet is not the one they might expect.
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NodePlan {
    /// What the node is called inside the lab, as the course names it (pgha1, ...).
    pub name: String,
    /// Its container's name, unique on the engine (alice1 in lab alice; pgha1 in lab pgha).
    pub container: String,
    pub index: usize,
    pub ip: Ipv4Addr,
    /// (port in the node, host port) for each published port: PostgreSQL's on every node but
    /// HAProxy's, which publishes its own three, and the monitor node's, which publishes
    /// Prometheus's.
    pub ports: Vec<(u16, u16)>,
    pub roles: Roles,
    /// Extra names in every node's /etc/hosts: etcdN, pgbackrest1 for the repository,
    /// haproxy1 for HAProxy, prometheus1 for the monitor node.
    pub aliases: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub lab: String,
    pub image: String,
    pub publish: IpAddr,
    /// `--publish-host`, kept on the nodes' labels for every later command.
    pub reach: Option<String>,
    pub tls: bool,
    pub network: NetworkPlan,
    pub nodes: Vec<NodePlan>,
}

/// HAProxy's ports in its node, in the order they are published.
const HAPROXY_PORTS: [u16; 3] = [HAPROXY_PRIMARY, HAPROXY_REPLICAS, HAPROXY_STATS];

/// The volumes of a node: (name, mount point). PostgreSQL's data and /pgha (configuration, etcd
/// data, the backup repository) live in volumes, off the container's copy-on-write layer.
pub fn volumes_of(node: &str) -> [(String, &'static str); 2] {
    [
        (format!("{node}-pgdata"), "/pgdata"),
        (format!("{node}-pgha"), "/pgha"),
    ]
}

/// Plans a new lab, or says why it cannot be made as asked.
pub fn plan(spec: &LabSpec, world: &World, port_bound: &dyn Fn(u16) -> bool) -> Result<Plan> {
    refuse_existing(spec, world)?;
    let network = plan_network(spec, world)?;
    let reserved = reserved_on(&network.name, world);
    let addresses = ipam::node_addresses(
        &network.subnet,
        network.gateway,
        &reserved,
        spec.nodes,
        &network.name,
    )?;
    let published: BTreeSet<u16> = world
        .containers
        .iter()
        .flat_map(|c| c.published.iter().map(|p| p.host_port))
        .collect();
    let roles: Vec<Roles> = (1..=spec.nodes).map(|i| spec.roles(i)).collect();
    let postgres_ports = ipam::host_ports(
        roles.iter().filter(|r| !r.haproxy && !r.monitor).count(),
        &published,
        port_bound,
    )?;
    let haproxy_ports = if spec.layout.haproxy {
        ipam::preferred_ports(&HAPROXY_PORTS, &published, &postgres_ports, port_bound)?
    } else {
        Vec::new()
    };
    let taken: Vec<u16> = postgres_ports
        .iter()
        .chain(&haproxy_ports)
        .copied()
        .collect();
    let monitor_ports = if spec.layout.monitor {
        ipam::preferred_ports(&[PROMETHEUS_PORT], &published, &taken, port_bound)?
    } else {
        Vec::new()
    };
    let taken: Vec<u16> = taken.into_iter().chain(monitor_ports.clone()).collect();
    // The trainee's SSH entry, on the first node: 2222 for the first lab, the next free port
    // for each lab after it.
    let entry_ports = if spec.access.is_some() {
        ipam::preferred_ports(&[SSH_ENTRY], &published, &taken, port_bound)?
    } else {
        Vec::new()
    };
    let mut postgres_ports = postgres_ports.into_iter();
    let network = NetworkPlan {
        ip_range: if network.create {
            addresses
                .last()
                .and_then(|last| ipam::dynamic_range(&network.subnet, *last))
        } else {
            None
        },
        ..network
    };
    let nodes = (1..=spec.nodes)
        .zip(addresses)
        .zip(roles)
        .map(|((index, ip), roles)| {
            let mut ports: Vec<(u16, u16)> = if roles.haproxy {
                HAPROXY_PORTS
                    .into_iter()
                    .zip(haproxy_ports.clone())
                    .collect()
            } else if roles.monitor {
                [PROMETHEUS_PORT]
                    .into_iter()
                    .zip(monitor_ports.clone())
                    .collect()
            } else {
                postgres_ports
                    .next()
                    .map(|p| vec![(POSTGRES_PORT, p)])
                    .unwrap_or_default()
            };
            if index == 1 {
                ports.extend([SSH_ENTRY].into_iter().zip(entry_ports.clone()));
            }
            NodePlan {
                name: spec::node_name(index),
                container: spec.container_name(index),
                index,
                ip,
                ports,
                roles,
                aliases: spec.layout.aliases(index),
            }
        })
        .collect();
    Ok(Plan {
        lab: spec.name.clone(),
        image: spec.image.clone(),
        publish: spec.publish,
        reach: spec.reach.clone(),
        tls: spec.settings.tls,
        network,
        nodes,
    })
}

/// A lab of that name, or a foreign object under a name the lab needs, stops planning.
fn refuse_existing(spec: &LabSpec, world: &World) -> Result<()> {
    let ours = |l: &HashMap<String, String>| l.get(labels::LAB) == Some(&spec.name);
    let containers = world.containers.iter().filter(|c| ours(&c.labels)).count();
    let volumes = world.volumes.iter().filter(|v| ours(&v.labels)).count();
    let networks = world.networks.iter().filter(|n| ours(&n.labels)).count();
    if containers + volumes + networks > 0 {
        let name = &spec.name;
        let marks: Vec<&str> = world
            .volumes
            .iter()
            .filter(|v| ours(&v.labels))
            .filter_map(|v| v.labels.get(labels::MARK).map(String::as_str))
            .collect();
        if containers == 0 {
            return Err(Error::Invalid(format!(
                "lab {name} was begun but has no containers ({volumes} volume(s), {networks} \
                 network(s) left by a create that was cut short). `lab destroy --name {name}` \
                 removes what is left; `lab create --replace --name {name}` makes it anew."
            )));
        }
        if let Some(last) = labels::unfinished(&marks) {
            return Err(Error::Invalid(format!(
                "lab {name} already exists, and its create did not finish (last stage \
                 finished: {last}). `lab bootstrap --name {name}` finishes it from where it \
                 stands; `lab create --replace --name {name}` makes it anew."
            )));
        }
        return Err(Error::Invalid(format!(
            "lab {name} already exists ({containers} container(s), {volumes} volume(s), \
             {networks} network(s)). Start it with `lab start --name {name}`, remove it with \
             `lab destroy --name {name}`, or pass --replace to make it anew."
        )));
    }
    for index in 1..=spec.nodes {
        let node = spec.container_name(index);
        if world.containers.iter().any(|c| c.name == node) {
            return Err(Error::Invalid(format!(
                "a container named {node} already exists and does not belong to lab {}; lab \
                 never touches containers it did not create. Remove or rename it yourself, or \
                 choose another lab name with --name.",
                spec.name
            )));
        }
        for (volume, _) in volumes_of(&node) {
            if world.volumes.iter().any(|v| v.name == volume) {
                return Err(Error::Invalid(format!(
                    "a volume named {volume} already exists and does not belong to lab {}; lab \
                     never touches volumes it did not create. Remove it yourself if it is no \
                     longer needed (`docker volume rm {volume}`), or choose another lab name \
                     with --name.",
                    spec.name
                )));
            }
        }
    }
    Ok(())
}

fn plan_network(spec: &LabSpec, world: &World) -> Result<NetworkPlan> {
    if let Some(existing) = world.networks.iter().find(|n| n.name == spec.network) {
        return join_network(spec, existing);
    }
    let mut taken: Vec<TakenSubnet> = world
        .networks
        .iter()
        .flat_map(|n| {
            n.subnets.iter().map(|(net, _)| TakenSubnet {
                net: *net,
                holder: format!("network {}", n.name),
            })
        })
        .collect();
    taken.extend(world.host_routes.iter().cloned());
    let choice = ipam::choose_subnet(spec.subnet, &taken, spec.nodes)?;
    Ok(NetworkPlan {
        name: spec.network.clone(),
        subnet: choice.subnet,
        gateway: ipam::default_gateway(&choice.subnet),
        create: true,
        ip_range: None,
        note: choice.note,
    })
}

fn join_network(spec: &LabSpec, existing: &NetworkInfo) -> Result<NetworkPlan> {
    let name = &existing.name;
    if existing.driver != "bridge" {
        return Err(Error::Invalid(format!(
            "network {name} uses the {} driver; lab nodes need a bridge network. Name another \
             with --network, or leave --network out to get a new one.",
            existing.driver
        )));
    }
    let Some((subnet, gateway)) = existing.subnets.first().copied() else {
        return Err(Error::Invalid(format!(
            "network {name} has no IPv4 subnet configured, so nodes cannot get fixed addresses \
             on it. Name another with --network, or leave --network out to get a new one."
        )));
    };
    if let Some(asked) = spec.subnet
        && asked != subnet
    {
        return Err(Error::Invalid(format!(
            "network {name} already exists with subnet {subnet}, not {asked}. Leave --subnet \
             out to join it, or name a new network with --network."
        )));
    }
    Ok(NetworkPlan {
        name: name.clone(),
        subnet,
        gateway: gateway.unwrap_or_else(|| ipam::default_gateway(&subnet)),
        create: false,
        ip_range: None,
        note: Some(format!(
            "joining the existing network {name} ({subnet}); lab will leave it in place"
        )),
    })
}

/// Addresses held on a network by any container, running or stopped.
fn reserved_on(network: &str, world: &World) -> BTreeSet<Ipv4Addr> {
    world
        .containers
        .iter()
        .flat_map(|c| c.endpoints.iter())
        .filter(|e| e.network == network)
        .flat_map(|e| [e.static_ip, e.ip])
        .flatten()
        .collect()
}

/// The columns of the node table `lab create --dry-run` prints.
const DRY_RUN_COLUMNS: [&str; 5] = ["node", "address", "host ports", "roles", "aliases"];

impl Plan {
    /// "pgha1:192.168.50.10 pgha2:192.168.50.11 ...", the material's NODELIST.
    pub fn nodelist(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("{}:{}", n.name, n.ip))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// /etc/hosts entries every node gets: each node by name and by its aliases.
    pub fn extra_hosts(&self) -> Vec<String> {
        self.nodes
            .iter()
            .flat_map(|n| {
                std::iter::once(&n.name)
                    .chain(n.aliases.iter())
                    .map(move |name| format!("{name}:{}", n.ip))
            })
            .collect()
    }

    pub fn network_spec(&self) -> NetworkSpec {
        NetworkSpec {
            name: self.network.name.clone(),
            subnet: self.network.subnet,
            gateway: self.network.gateway,
            ip_range: self.network.ip_range,
            labels: HashMap::from([
                (labels::LAB.to_string(), self.lab.clone()),
                (labels::NETWORK_CREATED.to_string(), "true".to_string()),
            ]),
        }
    }

    /// Labels of a node's container and volumes.
    pub fn node_labels(&self, node: &NodePlan) -> HashMap<String, String> {
        let mut labels = HashMap::from([
            (labels::LAB.to_string(), self.lab.clone()),
            (labels::NODE.to_string(), node.container.clone()),
            (labels::HOST.to_string(), node.name.clone()),
            (labels::INDEX.to_string(), node.index.to_string()),
            (labels::ADDRESS.to_string(), node.ip.to_string()),
            (labels::ROLES.to_string(), node.roles.label()),
            (labels::NETWORK.to_string(), self.network.name.clone()),
            (
                labels::NETWORK_CREATED.to_string(),
                self.network.create.to_string(),
            ),
            (labels::TLS.to_string(), self.tls.to_string()),
        ]);
        if let Some(reach) = &self.reach {
            labels.insert(labels::REACH.to_string(), reach.clone());
        }
        labels
    }

    pub fn container_spec(&self, node: &NodePlan) -> ContainerSpec {
        ContainerSpec {
            name: node.container.clone(),
            hostname: node.name.clone(),
            image: self.image.clone(),
            env: vec![format!("NODELIST={}", self.nodelist())],
            labels: self.node_labels(node),
            network: self.network.name.clone(),
            ip: node.ip,
            extra_hosts: self.extra_hosts(),
            publish_ip: self.publish,
            publish: node.ports.clone(),
            volumes: volumes_of(&node.container)
                .into_iter()
                .map(|(v, m)| (v, m.to_string()))
                .collect(),
        }
    }

    /// The plan as `--dry-run` prints it.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let how = if self.network.create {
            "new"
        } else {
            "existing"
        };
        let _ = writeln!(
            out,
            "lab {}: {} node(s) from {} on network {} ({how}, {}, gateway {})",
            self.lab,
            self.nodes.len(),
            self.image,
            self.network.name,
            self.network.subnet,
            self.network.gateway
        );
        if let Some(note) = &self.network.note {
            let _ = writeln!(out, "note: {note}");
        }
        if self.tls {
            let _ = writeln!(
                out,
                "TLS: a CA of the lab's own, a certificate per node in /pgha/certs; etcd, \
                 Patroni's REST API and PostgreSQL refuse plain connections"
            );
        }
        let rows = self.nodes.iter().map(|n| {
            let ports: Vec<String> = n.ports.iter().map(|(_, host)| host.to_string()).collect();
            [
                table::node(&n.name, &n.container),
                n.ip.to_string(),
                format!("{}:{}", self.publish, ports.join(",")),
                n.roles.label(),
                n.aliases.join(", "),
            ]
        });
        let _ = writeln!(out, "{}", table::render(&DRY_RUN_COLUMNS, rows));
        let _ = write!(out, "NODELIST=\"{}\"", self.nodelist());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Request;

    fn spec(name: &str) -> LabSpec {
        request(name).validate().unwrap()
    }

    fn request(name: &str) -> Request<'_> {
        Request {
            name,
            topology: crate::spec::Topology::Course,
            nodes: None,
            postgres: None,
            etcd: None,
            dedicated_etcd: false,
            repo: None,
            haproxy: None,
            monitoring: false,
            network: None,
            subnet: None,
            image: "pgha-lab:17-g1",
            publish: "127.0.0.1",
            password: "postgres",
            md5: false,
            tls: false,
            force: false,
        }
    }

    #[test]
    fn a_tls_lab_is_labelled_and_said_so_in_the_plan() {
        let tls = Request {
            tls: true,
            ..request("sec")
        }
        .validate()
        .unwrap();
        let plan = plan(&tls, &empty(), &|_| false).unwrap();
        assert_eq!(plan.node_labels(&plan.nodes[0])[labels::TLS], "true");
        assert!(plan.describe().contains("\nTLS: "), "{}", plan.describe());
        let plain = plan_of("pgha");
        assert_eq!(plain.node_labels(&plain.nodes[0])[labels::TLS], "false");
        assert!(!plain.describe().contains("TLS"));
    }

    fn plan_of(name: &str) -> Plan {
        plan(&spec(name), &empty(), &|_| false).unwrap()
    }

    fn empty() -> World {
        World {
            containers: vec![],
            networks: vec![NetworkInfo {
                name: "bridge".into(),
                driver: "bridge".into(),
                subnets: vec![("172.17.0.0/16".parse().unwrap(), None)],
                labels: HashMap::new(),
                attached: vec![],
            }],
            volumes: vec![],
            host_routes: vec![],
        }
    }

    fn foreign(
        name: &str,
        network: &str,
        static_ip: Option<&str>,
        port: Option<u16>,
    ) -> ContainerInfo {
        ContainerInfo {
            name: name.into(),
            labels: HashMap::new(),
            running: false,
            state: "exited".into(),
            endpoints: vec![Endpoint {
                network: network.into(),
                static_ip: static_ip.map(|s| s.parse().unwrap()),
                ip: None,
            }],
            published: port
                .map(|p| PublishedPort {
                    port: 5432,
                    host_ip: None,
                    host_port: p,
                })
                .into_iter()
                .collect(),
        }
    }

    fn shared_network(name: &str, subnet: &str) -> NetworkInfo {
        NetworkInfo {
            name: name.into(),
            driver: "bridge".into(),
            subnets: vec![(subnet.parse().unwrap(), None)],
            labels: HashMap::new(),
            attached: vec![],
        }
    }

    #[test]
    fn the_default_lab_is_the_course_topology() {
        let plan = plan(&spec("pgha"), &empty(), &|_| false).unwrap();
        assert_eq!(plan.network.name, "pghanet");
        assert!(plan.network.create);
        assert_eq!(plan.network.subnet.to_string(), "192.168.50.0/24");
        assert_eq!(plan.network.gateway.to_string(), "192.168.50.1");
        assert_eq!(
            plan.network.ip_range.unwrap().to_string(),
            "192.168.50.128/25"
        );
        let ips: Vec<String> = plan.nodes.iter().map(|n| n.ip.to_string()).collect();
        assert_eq!(
            ips,
            [
                "192.168.50.10",
                "192.168.50.11",
                "192.168.50.12",
                "192.168.50.13",
                "192.168.50.14"
            ]
        );
        let ports: Vec<u16> = plan.nodes.iter().map(|n| n.ports[0].1).collect();
        assert_eq!(ports, [6432, 6433, 6434, 6435, 6436]);
        assert_eq!(plan.nodes[4].aliases, ["etcd5", "pgbackrest1"]);
        assert_eq!(
            plan.nodelist(),
            "pgha1:192.168.50.10 pgha2:192.168.50.11 pgha3:192.168.50.12 \
             pgha4:192.168.50.13 pgha5:192.168.50.14"
        );
        let hosts = plan.extra_hosts();
        assert!(hosts.contains(&"pgbackrest1:192.168.50.14".to_string()));
        assert!(hosts.contains(&"etcd2:192.168.50.11".to_string()));
        assert!(hosts.contains(&"pgha3:192.168.50.12".to_string()));
    }

    #[test]
    fn an_haproxy_node_publishes_its_own_three_ports_and_no_postgres_port() {
        let spec = Request {
            name: "pgha",
            topology: crate::spec::Topology::DedicatedEtcd,
            ..request("pgha")
        }
        .validate()
        .unwrap();
        let mut world = empty();
        world
            .containers
            .push(foreign("web", "bridge", None, Some(5000)));
        let plan = plan(&spec, &world, &|_| false).unwrap();
        assert_eq!(plan.nodes.len(), 7);
        let haproxy = &plan.nodes[6];
        assert_eq!(haproxy.aliases, ["haproxy1"]);
        assert_eq!(haproxy.ports, [(5000, 5001), (5001, 5002), (7000, 7000)]);
        assert_eq!(plan.nodes[5].ports, [(5432, 6437)]);
        assert_eq!(plan.nodes[3].aliases, ["etcd1"]);
        let hosts = plan.extra_hosts();
        assert!(hosts.contains(&"haproxy1:192.168.50.16".to_string()));
        let c = plan.container_spec(haproxy);
        assert_eq!(c.labels[labels::ROLES], "haproxy");
        assert!(plan.describe().contains("127.0.0.1:5001,5002,7000 "));
    }

    #[test]
    fn a_stopped_foreign_container_keeps_its_address_on_a_shared_network() {
        let mut world = empty();
        world
            .networks
            .push(shared_network("shared", "10.40.0.0/24"));
        world
            .containers
            .push(foreign("old", "shared", Some("10.40.0.10"), None));
        let spec = LabSpec {
            network: "shared".into(),
            ..spec("pgha")
        };
        let plan = plan(&spec, &world, &|_| false).unwrap();
        assert!(!plan.network.create);
        assert_eq!(plan.network.ip_range, None);
        assert_eq!(plan.nodes[0].ip.to_string(), "10.40.0.11");
        assert_eq!(plan.nodes[4].ip.to_string(), "10.40.0.15");
        assert!(plan.node_labels(&plan.nodes[0])[labels::NETWORK_CREATED] == "false");
    }

    #[test]
    fn published_ports_of_stopped_containers_are_avoided() {
        let mut world = empty();
        world
            .containers
            .push(foreign("old", "bridge", None, Some(6432)));
        let plan = plan(&spec("pgha"), &world, &|p| p == 6434).unwrap();
        let ports: Vec<u16> = plan.nodes.iter().map(|n| n.ports[0].1).collect();
        assert_eq!(ports, [6433, 6435, 6436, 6437, 6438]);
    }

    #[test]
    fn an_existing_lab_is_refused_with_what_to_do() {
        let mut world = empty();
        let mut c = foreign("pgha1", "pghanet", Some("192.168.50.10"), None);
        c.labels.insert(labels::LAB.into(), "pgha".into());
        world.containers.push(c);
        let text = plan(&spec("pgha"), &world, &|_| false)
            .unwrap_err()
            .to_string();
        assert!(text.contains("lab pgha already exists"), "{text}");
        assert!(text.contains("--replace"), "{text}");
    }

    #[test]
    fn a_foreign_container_with_a_node_name_is_named_and_never_touched() {
        let mut world = empty();
        world
            .containers
            .push(foreign("pgha3", "bridge", None, None));
        let text = plan(&spec("pgha"), &world, &|_| false)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("a container named pgha3 already exists"),
            "{text}"
        );
    }

    #[test]
    fn a_foreign_volume_with_a_node_volume_name_is_refused() {
        let mut world = empty();
        world.volumes.push(VolumeInfo {
            name: "pgha2-pgdata".into(),
            labels: HashMap::new(),
        });
        let text = plan(&spec("pgha"), &world, &|_| false)
            .unwrap_err()
            .to_string();
        assert!(text.contains("pgha2-pgdata"), "{text}");
    }

    #[test]
    fn a_second_lab_gets_the_next_subnet_and_ports() {
        let mut world = empty();
        world
            .networks
            .push(shared_network("pghanet", "192.168.50.0/24"));
        world.containers.push(foreign(
            "pgha1",
            "pghanet",
            Some("192.168.50.10"),
            Some(6432),
        ));
        let plan = plan(&spec("alice"), &world, &|_| false).unwrap();
        assert_eq!(plan.network.name, "alicenet");
        assert_eq!(plan.network.subnet.to_string(), "192.168.51.0/24");
        assert!(
            plan.network
                .note
                .as_deref()
                .unwrap()
                .contains("network pghanet")
        );
        assert_eq!(plan.nodes[0].ports, [(5432, 6433)]);
    }

    #[test]
    fn labs_planned_together_keep_off_each_other() {
        let mut world = empty();
        let first = plan(&spec("alice"), &world, &|_| false).unwrap();
        world.reserve(&first);
        let second = plan(&spec("bob"), &world, &|_| false).unwrap();
        assert_eq!(second.network.subnet.to_string(), "192.168.51.0/24");
        assert_eq!(second.nodes[0].ports, [(5432, 6437)]);
        // The same name again is an existing lab; forgetting it (--replace) frees the name.
        assert!(plan(&spec("alice"), &world, &|_| false).is_err());
        world.forget("alice");
        assert_eq!(plan(&spec("alice"), &world, &|_| false).unwrap(), first);
    }

    #[test]
    fn a_lab_with_access_publishes_its_ssh_entry_on_the_first_node_only() {
        let mut world = empty();
        let with_access = |name| LabSpec {
            access: Some(crate::spec::Entry::Password),
            ..spec(name)
        };
        let first = plan(&with_access("alice"), &world, &|_| false).unwrap();
        assert_eq!(first.nodes[0].ports, [(5432, 6432), (SSH_ENTRY, 2222)]);
        assert!(first.nodes[1..].iter().all(|n| n.ports.len() == 1));
        world.reserve(&first);
        // The next lab's entry keeps off the first's, and off a port in use on the host.
        let second = plan(&with_access("bob"), &world, &|p| p == 2223).unwrap();
        assert_eq!(second.nodes[0].ports[1], (SSH_ENTRY, 2224));
        assert_eq!(
            plan(&spec("carol"), &world, &|_| false).unwrap().nodes[0]
                .ports
                .len(),
            1
        );
    }

    #[test]
    fn a_replaced_lab_s_network_route_is_forgotten_with_it() {
        let spec = spec("pgha");
        let mut world = empty();
        let plan = plan(&spec, &world, &|_| false).unwrap();
        world.reserve(&plan);
        let subnet = plan.network.subnet;
        for network in &mut world.networks {
            network
                .labels
                .insert(labels::LAB.to_string(), "pgha".to_string());
            network
                .labels
                .insert(labels::NETWORK_CREATED.to_string(), "true".to_string());
        }
        world.host_routes.push(TakenSubnet {
            net: subnet,
            holder: "host route via br-0123".into(),
        });
        world.forget("pgha");
        assert!(world.host_routes.is_empty());
        assert!(world.networks.is_empty());
    }

    #[test]
    fn host_routes_count_as_taken() {
        let mut world = empty();
        world.host_routes.push(TakenSubnet {
            net: "192.168.50.0/23".parse().unwrap(),
            holder: "host route via eth1".into(),
        });
        let plan = plan(&spec("pgha"), &world, &|_| false).unwrap();
        assert_eq!(plan.network.subnet.to_string(), "192.168.52.0/24");
    }

    #[test]
    fn joining_needs_a_bridge_with_a_subnet_that_matches_any_request() {
        let mut world = empty();
        let mut host = shared_network("hostish", "10.1.0.0/24");
        host.driver = "macvlan".into();
        world.networks.push(host);
        world.networks.push(NetworkInfo {
            subnets: vec![],
            ..shared_network("nosubnet", "10.2.0.0/24")
        });
        world.networks.push(shared_network("shared", "10.3.0.0/24"));
        for network in ["hostish", "nosubnet"] {
            let s = LabSpec {
                network: network.into(),
                ..spec("pgha")
            };
            assert!(plan(&s, &world, &|_| false).is_err(), "{network}");
        }
        let s = LabSpec {
            network: "shared".into(),
            subnet: Some("10.9.0.0/24".parse().unwrap()),
            ..spec("pgha")
        };
        let text = plan(&s, &world, &|_| false).unwrap_err().to_string();
        assert!(
            text.contains("already exists with subnet 10.3.0.0/24"),
            "{text}"
        );
    }

    #[test]
    fn container_specs_carry_everything_a_node_needs() {
        let plan = plan(&spec("pgha"), &empty(), &|_| false).unwrap();
        let c = plan.container_spec(&plan.nodes[4]);
        assert_eq!(c.name, "pgha5");
        assert_eq!(c.hostname, "pgha5");
        assert_eq!(c.ip.to_string(), "192.168.50.14");
        assert_eq!(c.publish_ip.to_string(), "127.0.0.1");
        assert_eq!(c.publish, [(5432, 6436)]);
        assert_eq!(c.labels[labels::ROLES], "etcd,repo");
        assert_eq!(c.labels[labels::LAB], "pgha");
        assert!(c.env[0].starts_with("NODELIST=pgha1:192.168.50.10 "));
        assert_eq!(
            c.volumes,
            [
                ("pgha5-pgdata".to_string(), "/pgdata".to_string()),
                ("pgha5-pgha".to_string(), "/pgha".to_string())
            ]
        );
    }

    #[test]
    fn a_class_lab_answers_to_the_course_s_names_inside_with_containers_of_its_own() {
        let plan = plan_of("alice");
        let c = plan.container_spec(&plan.nodes[1]);
        assert_eq!(c.name, "alice2");
        assert_eq!(c.hostname, "pgha2");
        assert_eq!(c.labels[labels::NODE], "alice2");
        assert_eq!(c.labels[labels::HOST], "pgha2");
        assert_eq!(c.volumes[0].0, "alice2-pgdata");
        assert!(c.env[0].starts_with("NODELIST=pgha1:"), "{}", c.env[0]);
        assert!(c.extra_hosts.iter().any(|h| h.starts_with("pgha5:")));
        assert!(c.extra_hosts.iter().any(|h| h.starts_with("pgbackrest1:")));
        assert!(!c.extra_hosts.iter().any(|h| h.starts_with("alice")));
        assert!(plan.describe().contains("pgha2 (alice2)"));
    }

    #[test]
    fn the_dry_run_names_addresses_ports_roles_and_aliases() {
        let text = plan(&spec("pgha"), &empty(), &|_| false)
            .unwrap()
            .describe();
        assert!(text.contains("pgha5"), "{text}");
        assert!(text.contains("127.0.0.1:6436 "), "{text}");
        assert!(text.contains("etcd5, pgbackrest1"), "{text}");
        assert!(text.contains("postgres,etcd"), "{text}");
    }

    #[test]
    fn the_dry_run_table_stays_in_line_for_a_long_lab_name() {
        let long = "wtt-a-very-long-lab-name-for-a-trainee-x";
        let plan = plan(&spec(long), &empty(), &|_| false).unwrap();
        let text = plan.describe();
        let lines: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("node "))
            .collect();
        let at = table::starts(lines[0], &DRY_RUN_COLUMNS);
        for (line, n) in lines[1..].iter().zip(&plan.nodes) {
            let ports: Vec<String> = n.ports.iter().map(|(_, h)| h.to_string()).collect();
            let cells = [
                n.name.clone(),
                n.ip.to_string(),
                format!("127.0.0.1:{}", ports.join(",")),
                n.roles.label(),
                n.aliases.join(", "),
            ];
            // A node without aliases has no last cell to find.
            let cells: Vec<&str> = cells
                .iter()
                .map(String::as_str)
                .filter(|c| !c.is_empty())
                .collect();
            assert_eq!(table::starts(line, &cells), at[..cells.len()], "{text}");
        }
        assert_eq!(lines.len(), plan.nodes.len() + 2, "{text}");
        assert!(
            lines[plan.nodes.len() + 1].starts_with("NODELIST=\""),
            "{text}"
        );
    }
}
