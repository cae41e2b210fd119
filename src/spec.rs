//! What the user asked a lab to be, validated: names, counts, the quorum rule and the topology
//! (which node runs what). Pure; every refusal says what to change.

use std::net::IpAddr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How far `lab create` and `lab bootstrap` go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Stage {
    /// The nodes run; nothing is bootstrapped.
    Containers,
    /// Plus SSH between the nodes as postgres.
    Access,
    /// Plus the etcd quorum.
    Etcd,
    /// Plus the Patroni cluster: a primary and streaming replicas.
    Patroni,
    /// Plus the pgBackRest repository with a first full backup.
    Backup,
}

impl Stage {
    /// Every stage, in the course's order.
    pub const ALL: [Stage; 5] = [
        Stage::Containers,
        Stage::Access,
        Stage::Etcd,
        Stage::Patroni,
        Stage::Backup,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Containers => "containers",
            Stage::Access => "access",
            Stage::Etcd => "etcd",
            Stage::Patroni => "patroni",
            Stage::Backup => "backup",
        }
    }
}

/// Password hashing for the lab's roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Auth {
    Scram,
    Md5,
}

/// The lab's secrets. They live in a root-only file inside the nodes, not in labels that anyone
/// with access to the engine can read, so `lab bootstrap` can finish a lab later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Credentials {
    pub password: String,
    pub auth: Auth,
}

impl Credentials {
    pub const PATH: &str = "/etc/pgha-lab.json";
}

/// What a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Roles {
    pub postgres: bool,
    pub etcd: bool,
    pub repo: bool,
}

impl Roles {
    /// "postgres,etcd" — the label form.
    pub fn label(self) -> String {
        let mut names = Vec::new();
        if self.postgres {
            names.push("postgres");
        }
        if self.etcd {
            names.push("etcd");
        }
        if self.repo {
            names.push("repo");
        }
        names.join(",")
    }

    /// The /etc/hosts aliases of node `index` with these roles: etcdN for an etcd member,
    /// pgbackrest1 for the repository host.
    pub fn aliases(self, index: usize) -> Vec<String> {
        let mut aliases = Vec::new();
        if self.etcd {
            aliases.push(format!("etcd{index}"));
        }
        if self.repo {
            aliases.push("pgbackrest1".into());
        }
        aliases
    }

    pub fn from_label(text: &str) -> Roles {
        let has = |r: &str| text.split(',').any(|x| x.trim() == r);
        Roles {
            postgres: has("postgres"),
            etcd: has("etcd"),
            repo: has("repo"),
        }
    }
}

/// A validated request for one lab.
#[derive(Debug, Clone)]
pub struct LabSpec {
    pub name: String,
    pub nodes: usize,
    pub postgres: usize,
    pub network: String,
    /// None: the default, moved to the next free /24 when taken.
    pub subnet: Option<Ipv4Net>,
    pub image: String,
    pub publish: IpAddr,
    pub credentials: Credentials,
}

/// The postgres role's password unless told otherwise: the course's.
pub const DEFAULT_PASSWORD: &str = "postgres";

/// The most nodes a lab may have: enough for any course, few enough for a laptop.
pub const MAX_NODES: usize = 9;

impl LabSpec {
    /// Node `index` (from 1) of this lab.
    pub fn node_name(&self, index: usize) -> String {
        node_name(&self.name, index)
    }

    pub fn roles(&self, index: usize) -> Roles {
        Roles {
            postgres: index <= self.postgres,
            etcd: true,
            repo: index == self.nodes,
        }
    }
}

pub fn node_name(lab: &str, index: usize) -> String {
    format!("{lab}{index}")
}

/// Lab names become container names, hostnames and part of the network name: lowercase letters,
/// digits and hyphens, starting with a letter and ending with a letter, so that node names
/// (the lab name plus a number) can never be mistaken for another lab's.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = (2..=40).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.ends_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid lab name {name:?}: use 2 to 40 lowercase letters, digits and hyphens, \
             starting and ending with a letter (for example pgha, alice, team-b). The nodes \
             are then named {}1, {}2, ...",
            sanitize_hint(name),
            sanitize_hint(name)
        )))
    }
}

fn sanitize_hint(name: &str) -> String {
    let cleaned: String = name
        .to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || *c == '-')
        .collect();
    let cleaned = cleaned.trim_matches('-');
    if cleaned.len() >= 2 {
        cleaned.to_string()
    } else {
        "pgha".into()
    }
}

/// Docker's rule for network names, and none of Docker's own networks: the default bridge
/// gives no fixed addresses (a lab's nodes keep theirs across restarts) and no names between
/// containers, and host and none give no lab network at all.
pub fn validate_network(name: &str) -> Result<()> {
    if ["bridge", "host", "none"].contains(&name) {
        return Err(Error::Invalid(format!(
            "--network {name} is one of Docker's own networks, which a lab cannot use: the \
             nodes need fixed addresses and names that resolve between them, which only a \
             user-defined network gives. Leave --network out (the lab makes NAMEnet), or name \
             a network of your own."
        )));
    }
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid network name {name:?}: Docker accepts letters, digits, '_', '.' and '-', \
             starting with a letter or digit. Pick another with --network."
        )))
    }
}

/// The raw request, as parsed from the command line.
pub struct Request<'a> {
    pub name: &'a str,
    pub nodes: usize,
    pub postgres: Option<usize>,
    pub network: Option<&'a str>,
    pub subnet: Option<&'a str>,
    pub image: &'a str,
    pub publish: &'a str,
    pub password: &'a str,
    pub md5: bool,
    /// Accept an even number of etcd members.
    pub force: bool,
}

impl<'a> Request<'a> {
    pub fn validate(&self) -> Result<LabSpec> {
        validate_name(self.name)?;
        if !(1..=MAX_NODES).contains(&self.nodes) {
            return Err(Error::Invalid(format!(
                "--nodes {} is out of range: a lab has 1 to {MAX_NODES} nodes (the course uses \
                 5: three PostgreSQL nodes and two more etcd members).",
                self.nodes
            )));
        }
        let postgres = self.postgres.unwrap_or(self.nodes.min(3));
        if postgres < 1 || postgres > self.nodes {
            return Err(Error::Invalid(format!(
                "--postgres {postgres} does not fit --nodes {}: between 1 and {} of the nodes \
                 can run PostgreSQL.",
                self.nodes, self.nodes
            )));
        }
        if self.nodes.is_multiple_of(2) && !self.force {
            return Err(Error::Invalid(quorum_refusal(self.nodes)));
        }
        let network = match self.network {
            Some(n) => n.to_string(),
            None => format!("{}net", self.name),
        };
        validate_network(&network)?;
        let subnet = self.subnet.map(parse_subnet).transpose()?;
        let publish: IpAddr = self.publish.parse().map_err(|_| {
            Error::Invalid(format!(
                "--publish {:?} is not an IP address: give the host address the PostgreSQL \
                 ports should listen on, such as 127.0.0.1 (this machine only) or 0.0.0.0 \
                 (every interface).",
                self.publish
            ))
        })?;
        if !publish.is_loopback() && self.password == DEFAULT_PASSWORD {
            return Err(Error::Invalid(format!(
                "--publish {publish} puts PostgreSQL on this host's network interfaces, and the \
                 postgres superuser would have the course's password, \"{DEFAULT_PASSWORD}\", \
                 for anyone who can reach them. Set a password of your own (LAB_PASSWORD=... \
                 or --password-file FILE, which keep it out of `ps` and your shell history), or \
                 publish on 127.0.0.1 (the default) for this machine only."
            )));
        }
        if self.password.is_empty() || self.password.chars().any(char::is_control) {
            return Err(Error::Invalid(
                "--password must be non-empty and free of control characters (newlines, \
                 tabs)."
                    .into(),
            ));
        }
        Ok(LabSpec {
            name: self.name.to_string(),
            nodes: self.nodes,
            postgres,
            network,
            subnet,
            image: self.image.to_string(),
            publish,
            credentials: Credentials {
                password: self.password.to_string(),
                auth: if self.md5 { Auth::Md5 } else { Auth::Scram },
            },
        })
    }
}

/// etcd needs a majority: N = 2F + 1 members survive F failures, and an even N tolerates no more
/// than N - 1 would.
pub fn quorum_refusal(nodes: usize) -> String {
    let (quorum, tolerated) = quorum(nodes);
    format!(
        "--nodes {nodes} would make an etcd cluster of {nodes} members: quorum {quorum}, \
         {tolerated} failure(s) tolerated, no more than {} members give. etcd needs a majority, \
         so N = 2F + 1 members survive F failures: use {} or {} nodes, or pass --force to \
         build the even cluster anyway (to show why it is a bad idea).",
        nodes - 1,
        nodes - 1,
        nodes + 1
    )
}

/// (quorum, failures tolerated) for `members` etcd members.
pub fn quorum(members: usize) -> (usize, usize) {
    let quorum = members / 2 + 1;
    (quorum, members - quorum)
}

fn parse_subnet(text: &str) -> Result<Ipv4Net> {
    let net: Ipv4Net = text.parse().map_err(|_| {
        Error::Invalid(format!(
            "--subnet {text:?} is not an IPv4 subnet in CIDR form: write it like \
             192.168.50.0/24."
        ))
    })?;
    if net.network() != net.addr() {
        return Err(Error::Invalid(format!(
            "--subnet {text} has host bits set: the subnet containing that address is {}.",
            net.trunc()
        )));
    }
    Ok(net)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Request<'static> {
        Request {
            name: "pgha",
            nodes: 5,
            postgres: None,
            network: None,
            subnet: None,
            image: "pgha-lab:17-g1",
            publish: "127.0.0.1",
            password: "postgres",
            md5: false,
            force: false,
        }
    }

    #[test]
    fn defaults_give_the_course_topology() {
        let spec = request().validate().unwrap();
        assert_eq!(spec.network, "pghanet");
        assert_eq!(spec.postgres, 3);
        assert_eq!(spec.node_name(1), "pgha1");
        assert_eq!(spec.roles(1).label(), "postgres,etcd");
        assert_eq!(spec.roles(4).label(), "etcd");
        assert_eq!(spec.roles(5).label(), "etcd,repo");
        assert_eq!(spec.credentials.auth, Auth::Scram);
    }

    #[test]
    fn roles_survive_their_label() {
        for roles in [
            Roles {
                postgres: true,
                etcd: true,
                repo: false,
            },
            Roles {
                postgres: false,
                etcd: true,
                repo: true,
            },
            Roles {
                postgres: true,
                etcd: true,
                repo: true,
            },
        ] {
            assert_eq!(Roles::from_label(&roles.label()), roles);
        }
    }

    #[test]
    fn bad_names_are_refused_with_a_suggestion() {
        for bad in ["", "a", "Pgha", "pgha1", "1pgha", "pg_ha", "-pg", "pgha-"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        let text = validate_name("PGHA_9").unwrap_err().to_string();
        assert!(text.contains("pgha1, pgha2"), "{text}");
        for good in ["pgha", "alice", "team-b", "lab2x"] {
            validate_name(good).unwrap();
        }
    }

    #[test]
    fn node_counts_are_bounded() {
        for nodes in [0, 10] {
            let r = Request { nodes, ..request() };
            assert!(r.validate().is_err());
        }
        let single = Request {
            nodes: 1,
            ..request()
        }
        .validate()
        .unwrap();
        assert_eq!(single.postgres, 1);
        assert_eq!(single.roles(1).label(), "postgres,etcd,repo");
    }

    #[test]
    fn postgres_count_must_fit() {
        let r = Request {
            postgres: Some(6),
            ..request()
        };
        assert!(r.validate().is_err());
        let r = Request {
            postgres: Some(0),
            ..request()
        };
        assert!(r.validate().is_err());
    }

    #[test]
    fn even_etcd_clusters_need_force_and_are_explained() {
        let text = Request {
            nodes: 4,
            ..request()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(text.contains("N = 2F + 1"), "{text}");
        assert!(text.contains("quorum 3, 1 failure(s) tolerated"), "{text}");
        Request {
            nodes: 4,
            force: true,
            ..request()
        }
        .validate()
        .unwrap();
    }

    #[test]
    fn quorum_arithmetic() {
        assert_eq!(quorum(1), (1, 0));
        assert_eq!(quorum(3), (2, 1));
        assert_eq!(quorum(4), (3, 1));
        assert_eq!(quorum(5), (3, 2));
    }

    #[test]
    fn subnets_must_be_ipv4_cidr_without_host_bits() {
        let r = Request {
            subnet: Some("10.1.2.0/24"),
            ..request()
        };
        assert_eq!(
            r.validate().unwrap().subnet.unwrap().to_string(),
            "10.1.2.0/24"
        );
        for bad in ["10.1.2.0", "fd00::/64", "10.1.2.5/24", "nonsense"] {
            let r = Request {
                subnet: Some(bad),
                ..request()
            };
            assert!(r.validate().is_err(), "{bad}");
        }
    }

    #[test]
    fn docker_s_own_networks_are_refused() {
        for name in ["bridge", "host", "none"] {
            let e = validate_network(name).unwrap_err().to_string();
            assert!(e.contains("one of Docker's own networks"), "{e}");
        }
        assert!(validate_network("pghanet").is_ok());
        assert!(validate_network("bridge2").is_ok());
    }

    #[test]
    fn publish_must_be_an_address_and_password_sane() {
        assert!(
            Request {
                publish: "localhost",
                ..request()
            }
            .validate()
            .is_err()
        );
        assert!(
            Request {
                password: "",
                ..request()
            }
            .validate()
            .is_err()
        );
        assert!(
            Request {
                password: "a\nb",
                ..request()
            }
            .validate()
            .is_err()
        );
        Request {
            password: "it's \"fine\"",
            ..request()
        }
        .validate()
        .unwrap();
    }

    #[test]
    fn the_course_s_password_is_not_published_beyond_this_machine() {
        let everywhere = Request {
            publish: "0.0.0.0",
            ..request()
        };
        let e = everywhere.validate().unwrap_err().to_string();
        assert!(
            e.contains("LAB_PASSWORD") && e.contains("--password-file"),
            "{e}"
        );
        Request {
            password: "s3cret",
            ..everywhere
        }
        .validate()
        .unwrap();
        Request {
            publish: "::1",
            ..request()
        }
        .validate()
        .unwrap();
    }

    #[test]
    fn network_names_follow_docker() {
        assert!(
            Request {
                network: Some("bad name"),
                ..request()
            }
            .validate()
            .is_err()
        );
        assert_eq!(
            Request {
                network: Some("shared.net"),
                ..request()
            }
            .validate()
            .unwrap()
            .network,
            "shared.net"
        );
    }
}
