//! The certificates of a `--tls` lab, with no I/O: a certificate authority made for the lab, and
//! one certificate per node, signed by it, naming every way the node is reached (its name, its
//! aliases, its address, loopback through the published ports, and HAProxy's names for the
//! PostgreSQL nodes behind it). Every certificate serves and authenticates alike: etcd's peers
//! and clients, Patroni, PostgreSQL and their clients all present the node's own. The CA's
//! private key never leaves `issue`: once the nodes' certificates are signed it is dropped, so
//! no node (and no trainee's command) can ever read it.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::error::{Error, Result};

/// Where a node keeps them: the course's /pgha/certs.
pub const DIR: &str = "/pgha/certs";
/// The lab's CA certificate, the same on every node.
pub const CA_CERT: &str = "/pgha/certs/ca.crt";

/// A node's certificate, named after the node as guide 002 names its etcd1.crt.
pub fn cert_path(node: &str) -> String {
    format!("{DIR}/{node}.crt")
}

/// A node's private key, readable by postgres alone (etcd, Patroni and PostgreSQL run as it).
pub fn key_path(node: &str) -> String {
    format!("{DIR}/{node}.key")
}

/// A node to certify, and the names its certificate must cover.
#[derive(Debug, Clone, PartialEq)]
pub struct Subject {
    pub node: String,
    pub names: Vec<String>,
}

/// What a node is reached as: its name and aliases, its address, and loopback (the host reaches
/// it through published ports, a node's own tools through localhost). A PostgreSQL node behind
/// HAProxy is also reached as HAProxy (`haproxy`: its names and address), and a client on the
/// host as the publish address, unless that is every interface (then loopback is the way).
pub fn names(
    node: &str,
    aliases: &[String],
    ip: Option<IpAddr>,
    haproxy: &[String],
    host: &str,
) -> Vec<String> {
    let mut names = vec![node.to_string()];
    names.extend(aliases.iter().cloned());
    names.extend(ip.map(|ip| ip.to_string()));
    names.extend(haproxy.iter().cloned());
    names.extend(["localhost".to_string(), "127.0.0.1".to_string()]);
    names.push(host.to_string());
    let mut unique = Vec::new();
    for n in names {
        if !unique.contains(&n) {
            unique.push(n);
        }
    }
    unique
}

/// A node's certificate and private key, PEM.
#[derive(Debug, Clone)]
pub struct NodeCert {
    pub node: String,
    pub cert: String,
    pub key: String,
}

/// A lab's certificates: the CA's certificate and every node's own.
#[derive(Debug, Clone)]
pub struct Issued {
    pub ca: String,
    pub nodes: Vec<NodeCert>,
}

/// A new CA for lab `lab`, and a certificate for every subject signed by it; the CA's key is
/// gone when this returns.
pub fn issue(lab: &str, subjects: &[Subject]) -> Result<Issued> {
    let failed = |e: rcgen::Error| {
        Error::Failed(format!("could not make the certificates of lab {lab}: {e}"))
    };
    let now = time::OffsetDateTime::now_utc();
    // A day's slack either side of the clock, and ten years ahead as guide 002's -days 3650.
    let (from, until) = (
        now - time::Duration::days(1),
        now + time::Duration::days(3650),
    );

    let mut ca = CertificateParams::new(Vec::new()).map_err(failed)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name
        .push(DnType::CommonName, format!("pgha-lab {lab} CA"));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = from;
    ca.not_after = until;
    let ca_key = KeyPair::generate().map_err(failed)?;
    let ca_cert = ca.self_signed(&ca_key).map_err(failed)?;
    let issuer = Issuer::new(ca, ca_key);

    let nodes = subjects
        .iter()
        .map(|s| {
            let mut params = CertificateParams::new(s.names.clone()).map_err(failed)?;
            params.distinguished_name.push(DnType::CommonName, &s.node);
            params.use_authority_key_identifier_extension = true;
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
            // Servers to their clients, and clients to etcd (client-cert-auth) and peers.
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            params.not_before = from;
            params.not_after = until;
            let key = KeyPair::generate().map_err(failed)?;
            let cert = params.signed_by(&key, &issuer).map_err(failed)?;
            Ok(NodeCert {
                node: s.node.clone(),
                cert: cert.pem(),
                key: key.serialize_pem(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Issued {
        ca: ca_cert.pem(),
        nodes,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

    use super::*;

    fn subjects() -> Vec<Subject> {
        let publish = "127.0.0.1";
        vec![
            Subject {
                node: "pgha1".into(),
                names: names(
                    "pgha1",
                    &["etcd1".into()],
                    Some("192.168.50.10".parse().unwrap()),
                    &["haproxy1".into(), "192.168.50.13".into()],
                    publish,
                ),
            },
            Subject {
                node: "pgha5".into(),
                names: names(
                    "pgha5",
                    &["etcd5".into(), "pgbackrest1".into()],
                    Some("192.168.50.14".parse().unwrap()),
                    &[],
                    publish,
                ),
            },
        ]
    }

    #[test]
    fn a_node_is_named_every_way_it_is_reached() {
        let ip = Some("10.0.0.10".parse().unwrap());
        let loopback = "127.0.0.1";
        assert_eq!(
            names(
                "pgha1",
                &["etcd1".into()],
                ip,
                &["haproxy1".into()],
                loopback
            ),
            [
                "pgha1",
                "etcd1",
                "10.0.0.10",
                "haproxy1",
                "localhost",
                "127.0.0.1"
            ]
        );
        // Where the host reaches it is a name too: an address of its own, or another machine.
        assert!(names("pgha1", &[], ip, &[], "192.0.2.7").contains(&"192.0.2.7".to_string()));
        let far = names("pgha1", &[], ip, &[], "teach1.example");
        assert!(far.contains(&"teach1.example".to_string()));
    }

    /// Verifies `cert` for `name` against the CA as a TLS client does (chain, validity, name).
    fn verify(ca: &str, cert: &str, name: &str) -> std::result::Result<(), rustls::Error> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca.as_bytes()).unwrap())
            .unwrap();
        let verifier = WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let leaf = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        verifier
            .verify_server_cert(
                &leaf,
                &[],
                &ServerName::try_from(name.to_string()).unwrap(),
                &[],
                UnixTime::now(),
            )
            .map(drop)
    }

    #[test]
    fn every_node_certificate_verifies_under_the_lab_s_ca_for_each_of_its_names() {
        let issued = issue("pgha", &subjects()).unwrap();
        let pgha1 = &issued.nodes[0];
        for name in [
            "pgha1",
            "etcd1",
            "192.168.50.10",
            "haproxy1",
            "localhost",
            "127.0.0.1",
        ] {
            verify(&issued.ca, &pgha1.cert, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        // Not for another node's names.
        assert!(verify(&issued.ca, &pgha1.cert, "pgbackrest1").is_err());
        assert!(verify(&issued.ca, &issued.nodes[1].cert, "pgbackrest1").is_ok());
        // Nor under another lab's CA.
        let other = issue("other", &subjects()).unwrap();
        assert!(verify(&other.ca, &pgha1.cert, "pgha1").is_err());
    }

    #[test]
    fn only_node_keys_are_handed_out() {
        let issued = issue("pgha", &subjects()).unwrap();
        assert!(issued.ca.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(!issued.ca.contains("PRIVATE KEY"));
        for n in &issued.nodes {
            assert!(n.key.contains("BEGIN PRIVATE KEY"), "{}", n.node);
            assert!(!n.cert.contains("PRIVATE KEY"));
        }
        // Each node has a key of its own.
        assert_ne!(issued.nodes[0].key, issued.nodes[1].key);
    }
}
