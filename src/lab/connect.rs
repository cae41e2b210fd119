//! `lab connect`: the libpq connection strings a trainee uses, from the host over the published
//! ports and from inside the lab network, with libpq's multi-host routing as the course shows.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use crate::bootstrap::{self, Ctx};
use crate::client::reachable;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::spec::{HAPROXY_PRIMARY, HAPROXY_REPLICAS, HAPROXY_STATS};

/// A PostgreSQL node as a client reaches it: name, host address and published port.
pub struct Endpoint {
    pub name: String,
    pub host: IpAddr,
    pub port: u16,
}

/// The HAProxy node as a client reaches it: its host address and published ports.
pub struct Proxy {
    pub host: IpAddr,
    pub primary: u16,
    pub replicas: u16,
    pub stats: u16,
}

/// The connection strings for a lab: through HAProxy first when it has one, the entry its
/// clients are meant to use, then to the PostgreSQL nodes themselves.
pub fn strings(endpoints: &[Endpoint], proxy: Option<&Proxy>, password: &str) -> String {
    let quote = |v: &str| {
        if v.is_empty() || v.contains([' ', '\'', '\\']) {
            format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
        } else {
            v.to_string()
        }
    };
    let auth = format!("user=postgres password={} dbname=postgres", quote(password));
    let host_of = |e: &Endpoint| reachable(e.host);
    let hosts: Vec<String> = endpoints.iter().map(host_of).collect();
    let ports: Vec<String> = endpoints.iter().map(|e| e.port.to_string()).collect();
    let names: Vec<&str> = endpoints.iter().map(|e| e.name.as_str()).collect();
    let from_host = format!("host={} port={} {auth}", hosts.join(","), ports.join(","));
    let inside = format!("host={} port=5432 {auth}", names.join(","));
    let mut out = String::new();
    if let Some(p) = proxy {
        let host = reachable(p.host);
        let _ = writeln!(
            out,
            "Through HAProxy (haproxy1), the entry for clients; it follows Patroni's leader:"
        );
        let _ = writeln!(out, "  from this host:");
        let _ = writeln!(
            out,
            "    the primary, for writes:\n      psql {}",
            shell_quote(&format!("host={host} port={} {auth}", p.primary))
        );
        let _ = writeln!(
            out,
            "    a replica, for reads (round-robin):\n      psql {}",
            shell_quote(&format!("host={host} port={} {auth}", p.replicas))
        );
        let _ = writeln!(out, "    its stats page: http://{host}:{}/", p.stats);
        let _ = writeln!(out, "  from inside the lab network (`lab shell NODE`):");
        for (what, port) in [
            ("the primary, for writes", HAPROXY_PRIMARY),
            ("a replica, for reads", HAPROXY_REPLICAS),
        ] {
            let _ = writeln!(
                out,
                "    {what}:\n      psql {}",
                shell_quote(&format!("host=haproxy1 port={port} {auth}"))
            );
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "From this host (load_balance_hosts needs libpq 16 or newer):"
    );
    for (what, attrs) in [
        ("the primary, for writes", "target_session_attrs=read-write"),
        (
            "a replica, for reads",
            "target_session_attrs=read-only load_balance_hosts=random",
        ),
        (
            "any node",
            "target_session_attrs=any load_balance_hosts=random",
        ),
    ] {
        let _ = writeln!(
            out,
            "  {what}:\n    psql {}",
            shell_quote(&format!("{from_host} {attrs}"))
        );
    }
    let _ = writeln!(out, "  one node:");
    for e in endpoints {
        let _ = writeln!(
            out,
            "    {:<8} psql -h {} -p {} -U postgres",
            e.name,
            host_of(e),
            e.port
        );
    }
    let _ = writeln!(out, "\nFrom inside the lab network (`lab shell NODE`):");
    for (what, attrs) in [
        ("the primary, for writes", "target_session_attrs=read-write"),
        (
            "a replica, for reads",
            "target_session_attrs=read-only load_balance_hosts=random",
        ),
    ] {
        let _ = writeln!(
            out,
            "  {what}:\n    psql {}",
            shell_quote(&format!("{inside} {attrs}"))
        );
    }
    out.trim_end().to_string()
}

/// Single-quoted for a POSIX shell.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

pub async fn connect(engine: &Engine, name: &str) -> Result<String> {
    let lab = super::get(engine, name).await?;
    let endpoints: Vec<Endpoint> = lab
        .postgres_nodes()
        .filter_map(|n| {
            Some(Endpoint {
                name: n.name.clone(),
                host: n.publish_ip(),
                port: n.port()?,
            })
        })
        .collect();
    let proxy = lab.haproxy_node().and_then(|n| {
        Some(Proxy {
            host: n.publish_ip(),
            primary: n.host_port(HAPROXY_PRIMARY)?,
            replicas: n.host_port(HAPROXY_REPLICAS)?,
            stats: n.host_port(HAPROXY_STATS)?,
        })
    });
    let ctx = Ctx::new(engine, &lab);
    let credentials = tokio::time::timeout(Duration::from_secs(30), bootstrap::credentials(&ctx))
        .await
        .map_err(|_| Error::Failed(format!("lab {name} did not answer within 30 s")))??;
    Ok(strings(&endpoints, proxy.as_ref(), &credentials.password))
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
        let text = strings(&endpoints("127.0.0.1"), None, "postgres");
        assert!(text.starts_with("From this host"), "{text}");
        assert!(text.contains(
            "psql 'host=127.0.0.1,127.0.0.1,127.0.0.1 port=6432,6433,6434 user=postgres \
             password=postgres dbname=postgres target_session_attrs=read-write'"
        ));
        assert!(text.contains("target_session_attrs=read-only load_balance_hosts=random'"));
        assert!(text.contains("target_session_attrs=any load_balance_hosts=random'"));
        assert!(text.contains("pgha2    psql -h 127.0.0.1 -p 6433 -U postgres"));
        assert!(text.contains(
            "psql 'host=pgha1,pgha2,pgha3 port=5432 user=postgres password=postgres \
             dbname=postgres target_session_attrs=read-write'"
        ));
    }

    #[test]
    fn every_interface_is_reached_through_loopback_and_odd_passwords_are_quoted() {
        let text = strings(&endpoints("0.0.0.0"), None, "it's a pw");
        assert!(text.contains("host=127.0.0.1,127.0.0.1,127.0.0.1 "));
        assert!(text.contains(r"password='\''it\'\''s a pw'\''"), "{text}");
    }

    #[test]
    fn haproxy_comes_first_when_the_lab_has_it() {
        let proxy = Proxy {
            host: "0.0.0.0".parse().unwrap(),
            primary: 5000,
            replicas: 5002,
            stats: 7000,
        };
        let text = strings(&endpoints("0.0.0.0"), Some(&proxy), "postgres");
        assert!(text.starts_with("Through HAProxy (haproxy1)"), "{text}");
        let host = "psql 'host=127.0.0.1 port=5000 user=postgres password=postgres \
                    dbname=postgres'";
        assert!(text.find(host).unwrap() < text.find("From this host").unwrap());
        assert!(text.contains("port=5002 "), "{text}");
        assert!(text.contains("http://127.0.0.1:7000/"), "{text}");
        assert!(text.contains("psql 'host=haproxy1 port=5001 "), "{text}");
    }
}
