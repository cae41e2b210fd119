//! A real PostgreSQL client (tokio-postgres, with rustls on a `--tls` lab), for what a client of
//! the lab sees: connections through an entry point (HAProxy's published 5000, or libpq's
//! multi-host routing over the nodes' published ports), which server answers there, and
//! whether it is a primary.

use std::time::Duration;

pub use tokio_postgres::Client;
pub use tokio_postgres::config::TargetSessionAttrs;

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
    /// Tried in order, as libpq tries a multi-host string's hosts: where the lab's engine
    /// publishes them, as this host reaches it (`Lab::host`), and the port.
    pub addrs: Vec<(String, u16)>,
    /// Which server of `addrs` will do (libpq's target_session_attrs).
    pub session: TargetSessionAttrs,
    pub password: String,
    /// A `--tls` lab's CA certificate (PEM): the connection then uses TLS and verifies the
    /// server against it and the host connected to, as libpq's sslmode=verify-full does.
    pub ca: Option<String>,
}

/// Connects as postgres to `entry`; the connection is driven in the background until the
/// client is dropped. The error is the client's own words (refused, reset, timed out, ...).
pub async fn connect(entry: &Entry, timeout: Duration) -> Result<Client, String> {
    let mut config = tokio_postgres::Config::new();
    for (host, port) in &entry.addrs {
        config.host(host).port(*port);
    }
    config
        .user("postgres")
        .password(&entry.password)
        .dbname("postgres")
        .application_name("lab")
        .target_session_attrs(entry.session)
        .connect_timeout(timeout);
    let open = async {
        match &entry.ca {
            Some(ca) => {
                config.ssl_mode(tokio_postgres::config::SslMode::Require);
                let (client, connection) =
                    config.connect(verifying(ca)?).await.map_err(|e| said(&e))?;
                tokio::spawn(connection);
                Ok(client)
            }
            None => {
                let (client, connection) = config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(|e| said(&e))?;
                tokio::spawn(connection);
                Ok(client)
            }
        }
    };
    tokio::time::timeout(timeout, open)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} s", timeout.as_secs_f32())))
}

/// Connects as postgres to `entry` and asks who answers.
pub async fn who(entry: &Entry, timeout: Duration) -> Result<Answer, String> {
    let ask = async {
        let client = connect(entry, timeout).await?;
        ask_who(&client).await
    };
    tokio::time::timeout(timeout, ask)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} s", timeout.as_secs())))
}

/// The server's address and role, asked on `client`.
pub async fn ask_who(client: &Client) -> Result<Answer, String> {
    let row = client
        .query_one("SELECT host(inet_server_addr()), pg_is_in_recovery()", &[])
        .await
        .map_err(|e| said(&e))?;
    Ok(Answer {
        server: row.get::<_, Option<String>>(0).unwrap_or_default(),
        in_recovery: row.get(1),
    })
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
pub fn said(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_closed_port_is_an_error_in_the_client_s_words() {
        // Port 1 on loopback: nothing listens there.
        let mut entry = Entry {
            addrs: vec![("127.0.0.1".into(), 1)],
            session: TargetSessionAttrs::Any,
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
