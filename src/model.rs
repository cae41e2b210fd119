//! The lab model: a lab and its nodes as they exist on the engine, read back from their labels
//! alone, and the marks that say how far a lab's create or bootstrap got. Everything above
//! (the services and the commands) works from these.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::engine::{ContainerInfo, Engine};
use crate::error::{Error, Result};
use crate::labels;
use crate::spec::{POSTGRES_PORT, Roles};

/// One node of an existing lab.
#[derive(Debug, Clone)]
pub struct Node {
    /// What it is called inside the lab (pgha1, ...): its hostname, its Patroni and etcd
    /// member name, the name commands take. `container.name` is its container's (alice1 in
    /// lab alice), which is how the engine knows it.
    pub name: String,
    pub index: usize,
    pub roles: Roles,
    pub container: ContainerInfo,
}

/// An existing lab, read back from its containers' labels.
#[derive(Debug, Clone)]
pub struct Lab {
    pub name: String,
    pub network: String,
    /// Made with `--tls`: TLS and authentication on every channel.
    pub tls: bool,
    /// In node order.
    pub nodes: Vec<Node>,
    /// How far its create or bootstrap got (see labels::MARK).
    pub marks: Vec<String>,
    /// The engine it lives on, as the user named it.
    pub engine: String,
    /// Where its published ports are reached from here: `--publish-host` when it was made with
    /// one (`host_given`), else as its engine says (see `Target::reach`).
    pub host: String,
    pub host_given: bool,
}

impl Node {
    pub fn running(&self) -> bool {
        self.container.running
    }

    /// The node's address on the lab network (kept while stopped or partitioned).
    pub fn ip(&self) -> Option<Ipv4Addr> {
        self.container
            .labels
            .get(labels::ADDRESS)
            .and_then(|a| a.parse().ok())
    }

    /// Whether the node is cut off from the lab network (`lab partition`), running or not.
    pub fn partitioned(&self, network: &str) -> bool {
        !self
            .container
            .endpoints
            .iter()
            .any(|e| e.network == network)
    }

    /// Stopped, or cut off from the lab network: nothing in the lab can reach it.
    pub fn out_of_reach(&self, network: &str) -> bool {
        !self.running() || self.partitioned(network)
    }

    /// The host port its PostgreSQL is published on.
    pub fn port(&self) -> Option<u16> {
        self.host_port(POSTGRES_PORT)
    }

    /// Its host ports as tables show them: "6432", or HAProxy's "5000/5001/7000".
    pub fn ports_label(&self) -> String {
        let mut published = self.container.published.clone();
        published.sort_by_key(|p| p.port);
        let ports: Vec<String> = published.iter().map(|p| p.host_port.to_string()).collect();
        if ports.is_empty() {
            "-".into()
        } else {
            ports.join("/")
        }
    }

    /// The host address its ports are published on (127.0.0.1 when it publishes none).
    pub fn publish_ip(&self) -> std::net::IpAddr {
        self.container
            .published
            .first()
            .and_then(|p| p.host_ip)
            .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]))
    }

    /// The host port published for `port` in the node.
    pub fn host_port(&self, port: u16) -> Option<u16> {
        self.container
            .published
            .iter()
            .find(|p| p.port == port)
            .map(|p| p.host_port)
    }
}

impl Lab {
    fn from_containers(
        engine: &Engine,
        name: &str,
        containers: Vec<ContainerInfo>,
        marks: Vec<String>,
    ) -> Option<Lab> {
        let label = |c: &ContainerInfo, key: &str| c.labels.get(key).cloned().unwrap_or_default();
        let first = containers.first()?;
        let network = label(first, labels::NETWORK);
        let tls = label(first, labels::TLS) == "true";
        let mut nodes: Vec<Node> = containers
            .into_iter()
            .map(|c| Node {
                // Labs made before the course's names were in every lab named the two alike.
                name: c
                    .labels
                    .get(labels::HOST)
                    .cloned()
                    .unwrap_or_else(|| label(&c, labels::NODE)),
                index: label(&c, labels::INDEX).parse().unwrap_or(0),
                roles: Roles::from_label(&label(&c, labels::ROLES)),
                container: c,
            })
            .collect();
        nodes.sort_by_key(|n| n.index);
        let bound = nodes
            .iter()
            .find(|n| !n.container.published.is_empty())
            .map_or(std::net::IpAddr::from([127, 0, 0, 1]), Node::publish_ip);
        let given = nodes
            .first()
            .and_then(|n| n.container.labels.get(labels::REACH).cloned());
        Some(Lab {
            name: name.to_string(),
            network,
            tls,
            nodes,
            marks,
            engine: engine.name().to_string(),
            host_given: given.is_some(),
            host: given.unwrap_or_else(|| engine.target().reach(bound)),
        })
    }

    /// The node called `name` inside the lab (pgha1) or by its container's name (alice1), or
    /// an error listing the lab's nodes.
    pub fn node(&self, name: &str) -> Result<&Node> {
        self.find(name).ok_or_else(|| {
            Error::Invalid(format!(
                "lab {} has no node {name}; its nodes are {}.",
                self.name,
                self.node_names().join(", ")
            ))
        })
    }

    /// `name` as the lab names the node (pgha1 for alice1); any other name as it is.
    pub fn find_name<'a>(&'a self, name: &'a str) -> &'a str {
        self.find(name).map_or(name, |n| n.name.as_str())
    }

    fn find(&self, name: &str) -> Option<&Node> {
        self.nodes
            .iter()
            .find(|n| n.name == name || n.container.name == name)
    }

    /// The container of the node called `name` (as `node` finds it), which is what the engine
    /// is asked for; a name the lab does not have is passed on as it is, for the engine to say
    /// it has no such container.
    pub fn container<'a>(&'a self, name: &'a str) -> &'a str {
        self.find(name).map_or(name, |n| n.container.name.as_str())
    }

    /// The names of its nodes that are not running.
    pub fn stopped_names(&self) -> Vec<&str> {
        self.nodes
            .iter()
            .filter(|n| !n.running())
            .map(|n| n.name.as_str())
            .collect()
    }

    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    pub fn postgres_nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.roles.postgres)
    }

    pub fn postgres_names(&self) -> Vec<String> {
        self.postgres_nodes().map(|n| n.name.clone()).collect()
    }

    pub fn etcd_nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.roles.etcd)
    }

    pub fn repo_node(&self) -> Option<&Node> {
        self.nodes.iter().find(|n| n.roles.repo)
    }

    pub fn haproxy_node(&self) -> Option<&Node> {
        self.nodes.iter().find(|n| n.roles.haproxy)
    }

    /// The monitor node (prometheus1) of a lab made with `--monitoring`.
    pub fn monitor_node(&self) -> Option<&Node> {
        self.nodes.iter().find(|n| n.roles.monitor)
    }

    /// Prometheus's page as this host reaches it, in a monitored lab.
    pub fn prometheus_url(&self) -> Option<String> {
        let n = self.monitor_node()?;
        let port = n.host_port(crate::spec::PROMETHEUS_PORT)?;
        Some(format!("http://{}:{port}/", self.host))
    }

    /// The /etc/hosts aliases `node` was given (etcdN, pgbackrest1, haproxy1), by the nodes'
    /// indexes (a node removed by hand leaves its place).
    pub fn aliases(&self, node: &Node) -> Vec<String> {
        let last = self.nodes.iter().map(|n| n.index).max().unwrap_or(0);
        let mut all = vec![Roles::default(); last];
        for n in self.nodes.iter().filter(|n| n.index > 0) {
            all[n.index - 1] = n.roles;
        }
        crate::spec::aliases(&all, node.index)
    }

    /// For a lab whose create or bootstrap did not finish, the last stage it finished.
    pub fn unfinished(&self) -> Option<String> {
        labels::unfinished(&self.marks)
    }
}

/// Records that lab `lab` got as far as `mark` (a stage's name, or labels::STARTED/READY).
pub async fn mark(engine: &Engine, lab: &str, mark: &str) -> Result<()> {
    let labels = std::collections::HashMap::from([
        (labels::LAB.to_string(), lab.to_string()),
        (labels::MARK.to_string(), mark.to_string()),
    ]);
    engine
        .create_volume(&labels::marker(lab, mark), &labels)
        .await
}

/// Every lab's marks, by lab.
async fn marks(engine: &Engine, filter: &str) -> Result<BTreeMap<String, Vec<String>>> {
    let mut by_lab: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for v in engine.volumes(Some(filter)).await? {
        if let (Some(lab), Some(mark)) = (v.labels.get(labels::LAB), v.labels.get(labels::MARK)) {
            by_lab.entry(lab.clone()).or_default().push(mark.clone());
        }
    }
    Ok(by_lab)
}

/// Puts a partitioned node back on the lab network at its own address (nothing happens to one
/// that is attached); returns the address.
pub async fn reattach(engine: &Engine, lab: &Lab, node: &Node) -> Result<Ipv4Addr> {
    let ip = node.ip().ok_or_else(|| {
        Error::Failed(format!(
            "{} carries no address label, so its address is unknown; recreate the lab",
            node.name
        ))
    })?;
    if node.partitioned(&lab.network) {
        engine
            .connect_network(&lab.network, &node.container.name, ip)
            .await?;
    }
    Ok(ip)
}

/// The lab called `name`, if any of its containers exist.
pub async fn find(engine: &Engine, name: &str) -> Result<Option<Lab>> {
    let filter = labels::of_lab(name);
    let (containers, mut marks) =
        tokio::try_join!(engine.containers(Some(&filter)), marks(engine, &filter))?;
    let marks = marks.remove(name).unwrap_or_default();
    Ok(Lab::from_containers(engine, name, containers, marks))
}

/// The lab called `name`, or an error saying it does not exist.
pub async fn get(engine: &Engine, name: &str) -> Result<Lab> {
    find(engine, name).await?.ok_or_else(|| {
        Error::Invalid(format!(
            "there is no lab called {name} on the Docker Engine {}. `lab list` shows the labs \
             there are; `lab create --name {name}` makes this one.",
            engine.name()
        ))
    })
}

/// Every lab with containers on the engine, by name.
pub async fn all(engine: &Engine) -> Result<Vec<Lab>> {
    let mut by_lab: BTreeMap<String, Vec<ContainerInfo>> = BTreeMap::new();
    let (containers, mut marks) = tokio::try_join!(
        engine.containers(Some(labels::LAB)),
        marks(engine, labels::MARK)
    )?;
    for c in containers {
        if let Some(lab) = c.labels.get(labels::LAB).cloned() {
            by_lab.entry(lab).or_default().push(c);
        }
    }
    Ok(by_lab
        .into_iter()
        .filter_map(|(name, containers)| {
            let marks = marks.remove(&name).unwrap_or_default();
            Lab::from_containers(engine, &name, containers, marks)
        })
        .collect())
}
