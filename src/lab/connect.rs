//! `lab connect`: the libpq connection strings a trainee uses, from the host over the published
//! ports and from inside the lab network, with libpq's multi-host routing as the course shows;
//! on a `--tls` lab, verifying the server, and `lab ca`, the lab's CA certificate for clients.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::certs::CA_CERT;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model;
use crate::services::{self, Ctx};
use crate::shell;
use crate::spec::{HAPROXY_PRIMARY, HAPROXY_REPLICAS, HAPROXY_STATS};
use crate::table;

/// A PostgreSQL node as a client reaches it: name, host address and published port.
pub struct Endpoint {
    pub name: String,
    /// Where this host reaches the lab's engine's published ports (`Lab::host`).
    pub host: String,
    pub port: u16,
}

/// The HAProxy node as a client reaches it: its host address and published ports.
pub struct Proxy {
    pub host: String,
    pub primary: u16,
    pub replicas: u16,
    pub stats: u16,
}

/// Where a `--tls` lab's clients find its CA certificate: on this host, and inside a node.
pub struct Tls {
    pub host_ca: String,
}

/// A lab's connection strings (libpq conninfo), as `lab connect` prints them and its `--json`
/// gives them.
#[derive(Debug, Serialize)]
pub struct Connection {
    /// On a `--tls` lab, where clients find the lab's CA: on this host, and inside a node.
    pub tls: Option<CaPaths>,
    /// Through HAProxy, when the lab has it: the entry its clients are meant to use.
    pub haproxy: Option<ThroughProxy>,
    /// From this host, over the published ports (multi-host strings need libpq 16 or newer
    /// for load_balance_hosts).
    pub from_host: Routed,
    /// Each PostgreSQL node from this host.
    pub nodes: Vec<OneNode>,
    /// From inside the lab network (`lab shell NODE`).
    pub inside: Inside,
    /// Prometheus's page, in a lab made with `--monitoring`.
    pub prometheus: Option<String>,
}

/// Where a `--tls` lab's CA certificate is, on this host and inside the lab.
#[derive(Debug, Serialize)]
pub struct CaPaths {
    pub host: String,
    pub inside: String,
}

/// The connection strings through HAProxy, from this host and from inside the lab network.
#[derive(Debug, Serialize)]
pub struct ThroughProxy {
    /// From this host: the primary, for writes.
    pub primary: String,
    /// From this host: a replica, for reads (round-robin).
    pub replicas: String,
    /// HAProxy's stats page.
    pub stats: String,
    /// From inside the lab network: the primary.
    pub inside_primary: String,
    /// From inside the lab network: a replica.
    pub inside_replicas: String,
}

/// libpq's multi-host routing from this host.
#[derive(Debug, Serialize)]
pub struct Routed {
    pub primary: String,
    pub replica: String,
    pub any: String,
}

/// One node's own PostgreSQL, as published on this host.
#[derive(Debug, Serialize)]
pub struct OneNode {
    pub node: String,
    pub host: String,
    pub port: u16,
    /// Without the password (psql asks, or reads PGPASSWORD or ~/.pgpass).
    pub conninfo: String,
}

/// Multi-host connection strings from inside the lab network.
#[derive(Debug, Serialize)]
pub struct Inside {
    pub primary: String,
    pub replica: String,
}

/// The connection strings for a lab: through HAProxy first when it has one, the entry its
/// clients are meant to use, then to the PostgreSQL nodes themselves. On a `--tls` lab every
/// string verifies the server as libpq's strictest mode does (verify-full: the lab's CA, and
/// the name connected to).
pub fn connection(
    endpoints: &[Endpoint],
    proxy: Option<&Proxy>,
    password: &str,
    tls: Option<&Tls>,
) -> Connection {
    let quote = |v: &str| {
        if v.is_empty() || v.contains([' ', '\'', '\\']) {
            format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
        } else {
            v.to_string()
        }
    };
    let verify = |ca: &str| format!(" sslmode=verify-full sslrootcert={}", quote(ca));
    let (host_tls, inside_tls) = match tls {
        Some(t) => (verify(&t.host_ca), verify(CA_CERT)),
        None => (String::new(), String::new()),
    };
    let auth = format!("user=postgres password={} dbname=postgres", quote(password));
    let host_auth = format!("{auth}{host_tls}");
    let inside_auth = format!("{auth}{inside_tls}");
    let host_of = |e: &Endpoint| e.host.clone();
    let hosts: Vec<String> = endpoints.iter().map(host_of).collect();
    let ports: Vec<String> = endpoints.iter().map(|e| e.port.to_string()).collect();
    let names: Vec<&str> = endpoints.iter().map(|e| e.name.as_str()).collect();
    let from_host = format!(
        "host={} port={} {host_auth}",
        hosts.join(","),
        ports.join(",")
    );
    let inside = format!("host={} port=5432 {inside_auth}", names.join(","));
    let (write, read) = (
        "target_session_attrs=read-write",
        "target_session_attrs=read-only load_balance_hosts=random",
    );
    Connection {
        tls: tls.map(|t| CaPaths {
            host: t.host_ca.clone(),
            inside: CA_CERT.to_string(),
        }),
        haproxy: proxy.map(|p| {
            let host = &p.host;
            ThroughProxy {
                primary: format!("host={host} port={} {host_auth}", p.primary),
                replicas: format!("host={host} port={} {host_auth}", p.replicas),
                stats: format!("http://{host}:{}/", p.stats),
                inside_primary: format!("host=haproxy1 port={HAPROXY_PRIMARY} {inside_auth}"),
                inside_replicas: format!("host=haproxy1 port={HAPROXY_REPLICAS} {inside_auth}"),
            }
        }),
        from_host: Routed {
            primary: format!("{from_host} {write}"),
            replica: format!("{from_host} {read}"),
            any: format!("{from_host} target_session_attrs=any load_balance_hosts=random"),
        },
        nodes: endpoints
            .iter()
            .map(|e| OneNode {
                node: e.name.clone(),
                host: host_of(e),
                port: e.port,
                conninfo: format!(
                    "host={} port={} user=postgres dbname=postgres{host_tls}",
                    host_of(e),
                    e.port
                ),
            })
            .collect(),
        inside: Inside {
            primary: format!("{inside} {write}"),
            replica: format!("{inside} {read}"),
        },
        prometheus: None,
    }
}

impl Connection {
    /// The text `lab connect` prints.
    pub fn text(&self) -> String {
        let mut out = String::new();
        if let Some(t) = &self.tls {
            let _ = writeln!(
                out,
                "TLS: plain connections are refused; these strings verify the server against \
                 the lab's CA,\n  on this host {} (`lab ca` writes it elsewhere), inside the lab \
                 {}.\n",
                t.host, t.inside
            );
        }
        if let Some(p) = &self.haproxy {
            let _ = writeln!(
                out,
                "Through HAProxy (haproxy1), the entry for clients; it follows Patroni's leader:"
            );
            let _ = writeln!(out, "  from this host:");
            let _ = writeln!(
                out,
                "    the primary, for writes:\n      psql {}",
                shell::quote(&p.primary)
            );
            let _ = writeln!(
                out,
                "    a replica, for reads (round-robin):\n      psql {}",
                shell::quote(&p.replicas)
            );
            let _ = writeln!(out, "    its stats page: {}", p.stats);
            let _ = writeln!(out, "  from inside the lab network (`lab shell NODE`):");
            for (what, conninfo) in [
                ("the primary, for writes", &p.inside_primary),
                ("a replica, for reads", &p.inside_replicas),
            ] {
                let _ = writeln!(out, "    {what}:\n      psql {}", shell::quote(conninfo));
            }
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "From this host (load_balance_hosts needs libpq 16 or newer):"
        );
        for (what, conninfo) in [
            ("the primary, for writes", &self.from_host.primary),
            ("a replica, for reads", &self.from_host.replica),
            ("any node", &self.from_host.any),
        ] {
            let _ = writeln!(out, "  {what}:\n    psql {}", shell::quote(conninfo));
        }
        let _ = writeln!(out, "  one node:");
        let one_node = self.nodes.iter().map(|n| {
            let psql = match self.tls {
                Some(_) => format!("psql {}", shell::quote(&n.conninfo)),
                None => format!("psql -h {} -p {} -U postgres", n.host, n.port),
            };
            [n.node.clone(), psql]
        });
        for line in table::render(&[], one_node).lines() {
            let _ = writeln!(out, "    {line}");
        }
        let _ = writeln!(out, "\nFrom inside the lab network (`lab shell NODE`):");
        for (what, conninfo) in [
            ("the primary, for writes", &self.inside.primary),
            ("a replica, for reads", &self.inside.replica),
        ] {
            let _ = writeln!(out, "  {what}:\n    psql {}", shell::quote(conninfo));
        }
        if let Some(url) = &self.prometheus {
            let _ = writeln!(
                out,
                "\nPrometheus (prometheus1), the lab's metrics and alerts: {url}\n  graphs at \
                 {url}classic/graph, alerts at {url}classic/alerts; one query from here: lab \
                 metrics QUERY"
            );
        }
        out.trim_end().to_string()
    }
}

/// `connection`'s text.
#[cfg(test)]
fn strings(
    endpoints: &[Endpoint],
    proxy: Option<&Proxy>,
    password: &str,
    tls: Option<&Tls>,
) -> String {
    connection(endpoints, proxy, password, tls).text()
}

/// `lab connect`: the lab's connection strings.
pub async fn connect(engine: &Engine, name: &str) -> Result<Connection> {
    let lab = model::get(engine, name).await?;
    let endpoints: Vec<Endpoint> = lab
        .postgres_nodes()
        .filter_map(|n| {
            Some(Endpoint {
                name: n.name.clone(),
                host: lab.host.clone(),
                port: n.port()?,
            })
        })
        .collect();
    let proxy = lab.haproxy_node().and_then(|n| {
        Some(Proxy {
            host: lab.host.clone(),
            primary: n.host_port(HAPROXY_PRIMARY)?,
            replicas: n.host_port(HAPROXY_REPLICAS)?,
            stats: n.host_port(HAPROXY_STATS)?,
        })
    });
    let ctx = Ctx::new(engine, &lab);
    let settings = answered(name, services::settings(&ctx)).await?;
    let tls = if lab.tls {
        let ca = answered(name, ca_of(&ctx)).await?;
        Some(Tls {
            host_ca: keep_ca(name, &ca)?,
        })
    } else {
        None
    };
    Ok(Connection {
        prometheus: lab.prometheus_url(),
        ..connection(&endpoints, proxy.as_ref(), &settings.password, tls.as_ref())
    })
}

/// `work`'s answer, or an error when the lab gives none within 30 s.
async fn answered<T>(name: &str, work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(Duration::from_secs(30), work)
        .await
        .map_err(|_| Error::Failed(format!("lab {name} did not answer within 30 s")))?
}

/// `lab ca`: a `--tls` lab's CA certificate (PEM), read from a running node.
pub async fn ca(engine: &Engine, name: &str) -> Result<String> {
    let lab = model::get(engine, name).await?;
    if !lab.tls {
        return Err(Error::Invalid(format!(
            "lab {name} was made without --tls: its connections are plain, and it has no \
             certificate authority. `lab create --replace --tls --name {name}` makes it anew \
             with TLS on every channel."
        )));
    }
    answered(name, ca_of(&Ctx::new(engine, &lab))).await
}

/// The CA certificate on the lab's first running node.
pub(super) async fn ca_of(ctx: &Ctx<'_>) -> Result<String> {
    let name = &ctx.lab.name;
    let Some(node) = ctx.lab.nodes.iter().find(|n| n.running()) else {
        return Err(Error::Invalid(format!(
            "lab {name} is stopped, and its CA certificate is kept inside it; `lab start \
             --name {name}` first."
        )));
    };
    let argv = ["cat", CA_CERT];
    let out = ctx
        .exec(&node.name, "root", &argv, Duration::from_secs(10))
        .await?;
    if !out.ok() || !out.stdout.starts_with("-----BEGIN CERTIFICATE-----") {
        return Err(Error::Invalid(format!(
            "{} holds no CA certificate in {CA_CERT} yet: the lab's bootstrap has not reached \
             its access stage. `lab bootstrap --name {name} --stage access` makes the \
             certificates.",
            node.name
        )));
    }
    Ok(out.stdout)
}

/// Writes a CA certificate to `path` (a public certificate: readable by all).
pub fn write_ca(path: &Path, pem: &str) -> Result<()> {
    std::fs::write(path, pem).map_err(|e| {
        Error::Invalid(format!(
            "cannot write the CA certificate to {}: {e}. Name a file in a directory you can \
             write with --out, or leave --out out to print it.",
            path.display()
        ))
    })
}

/// Keeps lab `name`'s CA certificate where `lab connect`'s strings name it on this host (the
/// user's data directory, `$XDG_DATA_HOME` or ~/.local/share, under pgha-lab); its path.
fn keep_ca(name: &str, pem: &str) -> Result<String> {
    let dir = std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .ok_or_else(|| {
            Error::Invalid(format!(
                "neither XDG_DATA_HOME nor HOME is set, so there is nowhere to keep lab \
                 {name}'s CA certificate for the strings; `lab ca --name {name} --out FILE` \
                 writes it where you choose."
            ))
        })?
        .join("pgha-lab");
    let path = dir.join(format!("{name}-ca.crt"));
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::Io {
            action: format!("create {}", dir.display()),
            source: e,
        })
        .and_then(|()| write_ca(&path, pem))?;
    Ok(path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(host: &str) -> Vec<Endpoint> {
        (1..=3)
            .map(|i| Endpoint {
                name: format!("pgha{i}"),
                host: host.parse().unwrap(),
                port: 6431 + i as u16,
            })
            .collect()
    }

    #[test]
    fn multi_host_strings_follow_the_published_ports() {
        let text = strings(&endpoints("127.0.0.1"), None, "postgres", None);
        assert!(text.starts_with("From this host"), "{text}");
        assert!(text.contains(
            "psql 'host=127.0.0.1,127.0.0.1,127.0.0.1 port=6432,6433,6434 user=postgres \
             password=postgres dbname=postgres target_session_attrs=read-write'"
        ));
        assert!(text.contains("target_session_attrs=read-only load_balance_hosts=random'"));
        assert!(text.contains("target_session_attrs=any load_balance_hosts=random'"));
        assert!(text.contains("\n    pgha2  psql -h 127.0.0.1 -p 6433 -U postgres\n"));
        assert!(text.contains(
            "psql 'host=pgha1,pgha2,pgha3 port=5432 user=postgres password=postgres \
             dbname=postgres target_session_attrs=read-write'"
        ));
    }

    #[test]
    fn odd_passwords_are_quoted() {
        let text = strings(&endpoints("127.0.0.1"), None, "it's a pw", None);
        assert!(text.contains(r"password='\''it\'\''s a pw'\''"), "{text}");
    }

    #[test]
    fn haproxy_comes_first_when_the_lab_has_it() {
        let proxy = Proxy {
            host: "127.0.0.1".into(),
            primary: 5000,
            replicas: 5002,
            stats: 7000,
        };
        let text = strings(&endpoints("0.0.0.0"), Some(&proxy), "postgres", None);
        assert!(text.starts_with("Through HAProxy (haproxy1)"), "{text}");
        let host = "psql 'host=127.0.0.1 port=5000 user=postgres password=postgres \
                    dbname=postgres'";
        assert!(text.find(host).unwrap() < text.find("From this host").unwrap());
        assert!(text.contains("port=5002 "), "{text}");
        assert!(text.contains("http://127.0.0.1:7000/"), "{text}");
        assert!(text.contains("psql 'host=haproxy1 port=5001 "), "{text}");
    }

    #[test]
    fn on_a_tls_lab_every_string_verifies_the_server() {
        let proxy = Proxy {
            host: "127.0.0.1".parse().unwrap(),
            primary: 5000,
            replicas: 5001,
            stats: 7000,
        };
        let tls = Tls {
            host_ca: "/home/t/.local/share/pgha-lab/pgha-ca.crt".into(),
        };
        let text = strings(
            &endpoints("127.0.0.1"),
            Some(&proxy),
            "postgres",
            Some(&tls),
        );
        assert!(
            text.starts_with("TLS: plain connections are refused"),
            "{text}"
        );
        let host = " sslmode=verify-full sslrootcert=/home/t/.local/share/pgha-lab/pgha-ca.crt";
        let inside = " sslmode=verify-full sslrootcert=/pgha/certs/ca.crt";
        for line in text.lines().filter(|l| l.contains("psql ")) {
            assert!(line.contains(host) || line.contains(inside), "{line}");
        }
        assert!(text.contains(&format!(
            "psql 'host=127.0.0.1 port=5000 user=postgres password=postgres dbname=postgres{host}'"
        )));
        assert!(text.contains(&format!(
            "host=haproxy1 port=5000 user=postgres password=postgres dbname=postgres{inside}'"
        )));
        assert!(text.contains(&format!(
            "pgha2  psql 'host=127.0.0.1 port=6433 user=postgres dbname=postgres{host}'"
        )));
    }

    #[test]
    fn long_node_names_keep_the_one_node_commands_in_line() {
        let lab = "wtt-a-very-long-lab-name-for-a-trainee-x";
        let mut endpoints = endpoints("127.0.0.1");
        endpoints[1].name = format!("{lab}2");
        let text = strings(&endpoints, None, "postgres", None);
        let rows: Vec<&str> = text
            .lines()
            .skip_while(|l| *l != "  one node:")
            .skip(1)
            .take(3)
            .collect();
        let pad = " ".repeat(lab.len() + 1 - "pgha1".len());
        assert_eq!(
            rows,
            [
                format!("    pgha1{pad}  psql -h 127.0.0.1 -p 6432 -U postgres"),
                format!("    {lab}2  psql -h 127.0.0.1 -p 6433 -U postgres"),
                format!("    pgha3{pad}  psql -h 127.0.0.1 -p 6434 -U postgres"),
            ],
            "{text}"
        );
    }
}
