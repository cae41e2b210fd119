//! A `--tls` lab's certificates on its nodes, part of the access stage: the lab's CA
//! certificate and each node's own certificate and key in /pgha/certs, issued by `certs` at
//! the first bootstrap and kept from then on (`lab reset` restores them with the rest of
//! /pgha). Only when a node lacks its set, or holds another CA's, is the whole set issued anew;
//! services already running then restart around it, since each loaded the old CA when it
//! started.

use std::time::Duration;

use super::{Ctx, Facts, services};
use crate::certs::{self, CA_CERT, Subject};
use crate::error::Result;
use crate::spec::Stage;

/// Makes sure every node holds the lab's certificates; returns what was done, and whether
/// anything changed.
pub async fn place(ctx: &Ctx<'_>, facts: &[Facts]) -> Result<(String, bool)> {
    let lab = ctx.lab;
    let n = lab.nodes.len();
    if facts.iter().all(|f| f.certs) && one_ca(ctx).await? {
        return Ok((
            format!("TLS: the lab's certificates are in place on {n} node(s)"),
            false,
        ));
    }
    let running = facts
        .iter()
        .any(|f| f.etcd_running || f.patroni_running || f.haproxy_running);
    let issued = certs::issue(&lab.name, &subjects(ctx))?;
    if running {
        services::stop(ctx).await?;
    }
    futures_util::future::try_join_all(issued.nodes.iter().map(|cert| {
        let ca = &issued.ca;
        async move {
            // The directory lets HAProxy (its own user) read the CA; the keys stay postgres's.
            ctx.must(
                Stage::Access,
                &cert.node,
                "root",
                &format!("install -d -m 711 -o postgres -g postgres {}", certs::DIR),
                Duration::from_secs(30),
                None,
            )
            .await?;
            ctx.upload(&cert.node, CA_CERT, ca.clone(), 0o644).await?;
            ctx.upload(
                &cert.node,
                &certs::cert_path(&cert.node),
                cert.cert.clone(),
                0o644,
            )
            .await?;
            ctx.upload(
                &cert.node,
                &certs::key_path(&cert.node),
                cert.key.clone(),
                0o600,
            )
            .await
        }
    }))
    .await?;
    let mut said = format!(
        "TLS: certificates from a new CA of the lab's own on {n} node(s), in {}",
        certs::DIR
    );
    if running {
        let health = services::start(ctx).await?;
        said.push_str(&format!(
            "; the services were restarted to trust it: {health}"
        ));
    }
    Ok((said, true))
}

/// Whether every node holds the same CA certificate.
async fn one_ca(ctx: &Ctx<'_>) -> Result<bool> {
    let cas = futures_util::future::try_join_all(ctx.lab.nodes.iter().map(|n| async move {
        let out = ctx
            .sh(
                &n.name,
                "root",
                &format!("cat {CA_CERT}"),
                Duration::from_secs(10),
            )
            .await?;
        Ok::<_, crate::error::Error>(out.stdout)
    }))
    .await?;
    Ok(cas.windows(2).all(|w| w[0] == w[1]))
}

/// Every node, with the names it is reached as.
fn subjects(ctx: &Ctx<'_>) -> Vec<Subject> {
    let lab = ctx.lab;
    // Clients of HAProxy reach the PostgreSQL nodes as HAProxy.
    let haproxy: Vec<String> = lab
        .haproxy_node()
        .map(|h| {
            let mut names = lab.aliases(h);
            names.extend(h.ip().map(|ip| ip.to_string()));
            names
        })
        .unwrap_or_default();
    lab.nodes
        .iter()
        .map(|n| Subject {
            node: n.name.clone(),
            names: certs::names(
                &n.name,
                &lab.aliases(n),
                n.ip().map(Into::into),
                if n.roles.postgres { &haproxy } else { &[] },
                n.publish_ip(),
            ),
        })
        .collect()
}
