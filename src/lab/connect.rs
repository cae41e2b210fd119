//! `lab connect`: the libpq connection strings a trainee uses, from the host over the published
//! ports and from inside the lab network, with libpq's multi-host routing as the course shows.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use crate::bootstrap::{self, Ctx};
use crate::engine::Engine;
use crate::error::{Error, Result};

/// A PostgreSQL node as a client reaches it: name, host address and published port.
pub struct Endpoint {
    pub name: String,
    pub host: IpAddr,
    pub port: u16,
}

/// The connection strings for a lab's PostgreSQL nodes.
pub fn strings(endpoints: &[Endpoint], password: &str) -> String {
    let quote = |v: &str| {
        if v.is_empty() || v.contains([' ', '\'', '\\']) {
            format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
        } else {
            v.to_string()
        }
    };
    let auth = format!("user=postgres password={} dbname=postgres", quote(password));
    // 0.0.0.0 publishes on every interface; from this host, loopback reaches it.
    let host_of = |e: &Endpoint| match e.host {
        h if h.is_unspecified() => "127.0.0.1".to_string(),
        h => h.to_string(),
    };
    let hosts: Vec<String> = endpoints.iter().map(host_of).collect();
    let ports: Vec<String> = endpoints.iter().map(|e| e.port.to_string()).collect();
    let names: Vec<&str> = endpoints.iter().map(|e| e.name.as_str()).collect();
    let from_host = format!("host={} port={} {auth}", hosts.join(","), ports.join(","));
    let inside = format!("host={} port=5432 {auth}", names.join(","));
    let mut out = String::new();
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
            let published = n.container.published.first()?;
            Some(Endpoint {
                name: n.name.clone(),
                host: published.host_ip.unwrap_or(IpAddr::from([127, 0, 0, 1])),
                port: published.host_port,
            })
        })
        .collect();
    let ctx = Ctx::new(engine, &lab);
    let credentials = tokio::time::timeout(Duration::from_secs(30), bootstrap::credentials(&ctx))
        .await
        .map_err(|_| Error::Failed(format!("lab {name} did not answer within 30 s")))??;
    Ok(strings(&endpoints, &credentials.password))
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
        let text = strings(&endpoints("127.0.0.1"), "postgres");
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
        let text = strings(&endpoints("0.0.0.0"), "it's a pw");
        assert!(text.contains("host=127.0.0.1,127.0.0.1,127.0.0.1 "));
        assert!(text.contains(r"password='\''it\'\''s a pw'\''"), "{text}");
    }
}
