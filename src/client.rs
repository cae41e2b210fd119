//! A real PostgreSQL client (tokio-postgres, with rustls on a `--tls` lab), for what a client of
//! the lab sees: which server answers behind an entry point such as HAProxy's published 5000,
//! and whether it is a primary.

use std::net::IpAddr;
use std::time::Duration;

/// Who answered a connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The server's address on the lab network (`inet_server_addr()`).
    pub server: String,
    pub in_recovery: bool,
}

/// An entry point of the lab as a client on this host reaches it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub host: IpAddr,
    pub port: u16,
    pub password: String,
    /// A `--tls` lab's CA certificate (PEM): the connection then uses TLS and verifies the
    /// server against it and the host connected to, as libpq's sslmode=verify-full does.
    pub ca: Option<String>,
}

/// Connects as postgres to `entry` and asks who answers; the error is the client's own
/// words (refused, reset, timed out, ...).
pub async fn who(entry: &Entry, timeout: Duration) -> Result<Answer, String> {
    let ask = async {
        let mut config = tokio_postgres::Config::new();
        config
            .host(reachable(entry.host))
            .port(entry.port)
            .user("postgres")
            .password(&entry.password)
            .dbname("postgres")
            .connect_timeout(timeout);
        let row = match &entry.ca {
            Some(ca) => {
                config.ssl_mode(tokio_postgres::config::SslMode::Require);
                let (client, connection) =
                    config.connect(verifying(ca)?).await.map_err(|e| said(&e))?;
                ask_who(client, tokio::spawn(connection)).await
            }
            None => {
                let (client, connection) = config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(|e| said(&e))?;
                ask_who(client, tokio::spawn(connection)).await
            }
        }?;
        Ok(Answer {
            server: row.get::<_, Option<String>>(0).unwrap_or_default(),
            in_recovery: row.get(1),
        })
    };
    tokio::time::timeout(timeout, ask)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} s", timeout.as_secs())))
}

/// The server's address and role, asked on `client`; `driver` ends with it.
async fn ask_who<T>(
    client: tokio_postgres::Client,
    driver: tokio::task::JoinHandle<T>,
) -> Result<tokio_postgres::Row, String> {
    let row = client
        .query_one("SELECT host(inet_server_addr()), pg_is_in_recovery()", &[])
        .await
        .map_err(|e| said(&e));
    drop(client);
    let _ = driver.await;
    row
}

/// TLS that trusts the lab's CA alone and checks the server's name (rustls always does).
fn verifying(ca: &str) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca.as_bytes()) {
        let cert = cert.map_err(|e| format!("the lab's CA certificate does not read: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("the lab's CA certificate is not usable: {e}"))?;
    }
    if roots.is_empty() {
        return Err("the lab's CA certificate holds no certificate".into());
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS cannot be set up: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// The client's error with its causes ("error connecting to server: Connection refused ..."):
/// tokio-postgres keeps the cause out of its own message.
fn said(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// 0.0.0.0 (or ::) publishes on every interface; from this host, loopback reaches it.
pub fn reachable(host: IpAddr) -> String {
    if host.is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        host.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_interface_is_reached_through_loopback() {
        assert_eq!(reachable("0.0.0.0".parse().unwrap()), "127.0.0.1");
        assert_eq!(reachable("10.1.2.3".parse().unwrap()), "10.1.2.3");
    }

    #[tokio::test]
    async fn a_closed_port_is_an_error_in_the_client_s_words() {
        // Port 1 on loopback: nothing listens there.
        let mut entry = Entry {
            host: "127.0.0.1".parse().unwrap(),
            port: 1,
            password: "x".into(),
            ca: None,
        };
        let e = who(&entry, Duration::from_secs(2)).await.unwrap_err();
        assert!(e.starts_with("error connecting to server: "), "{e}");
        entry.ca = Some("not a certificate".into());
        let e = who(&entry, Duration::from_secs(2)).await.unwrap_err();
        assert!(e.contains("CA certificate"), "{e}");
    }
}
