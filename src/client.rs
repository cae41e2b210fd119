//! A real PostgreSQL client (tokio-postgres), for what a client of the lab sees: which server
//! answers behind an entry point such as HAProxy's published 5000, and whether it is a primary.

use std::net::IpAddr;
use std::time::Duration;

/// Who answered a connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The server's address on the lab network (`inet_server_addr()`).
    pub server: String,
    pub in_recovery: bool,
}

/// Connects as postgres to `host:port` and asks who answers; the error is the client's own
/// words (refused, reset, timed out, ...).
pub async fn who(
    host: IpAddr,
    port: u16,
    password: &str,
    timeout: Duration,
) -> Result<Answer, String> {
    let ask = async {
        let mut config = tokio_postgres::Config::new();
        config
            .host(reachable(host))
            .port(port)
            .user("postgres")
            .password(password)
            .dbname("postgres")
            .connect_timeout(timeout);
        let (client, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| said(&e))?;
        let driver = tokio::spawn(connection);
        let row = client
            .query_one("SELECT host(inet_server_addr()), pg_is_in_recovery()", &[])
            .await
            .map_err(|e| said(&e));
        drop(client);
        let _ = driver.await;
        let row = row?;
        Ok(Answer {
            server: row.get::<_, Option<String>>(0).unwrap_or_default(),
            in_recovery: row.get(1),
        })
    };
    tokio::time::timeout(timeout, ask)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} s", timeout.as_secs())))
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
        let e = who("127.0.0.1".parse().unwrap(), 1, "x", Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(e.starts_with("error connecting to server: "), "{e}");
    }
}
