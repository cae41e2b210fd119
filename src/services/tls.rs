//! A `--tls` lab's certificates on its nodes, part of the access stage: the lab's CA
//! certificate and each node's own certificate and key in /pgha/certs, issued by `certs` at
//! the first bootstrap and kept from then on (`lab reset` restores them with the rest of
//! /pgha). Only when a node lacks its set, or holds another CA's, is the whole set issued anew;
//! services already running then restart around it, since each loaded the old CA when it
//! started.

use std::time::Duration;

use serde::Deserialize;

use super::{Ctx, Facts, lifecycle};
use crate::certs::{self, CA_CERT, Subject};
use crate::error::Result;
use crate::lock;
use crate::progress::Progress;
use crate::spec::Stage;

/// Makes sure every node holds the lab's certificates; returns what was done, and whether
/// anything changed. Under the engine's planning lock, so that two bootstraps at once agree on one CA.
pub async fn place(ctx: &Ctx<'_>, facts: &[Facts], progress: &Progress) -> Result<(String, bool)> {
    let _lock = lock::acquire(ctx.engine, progress, "this lab's certificate check").await?;
    let n = ctx.lab.nodes.len();
    // Read again under the lock: another command may have just placed them.
    if one_whole_set(ctx).await? {
        return Ok((
            format!("TLS: the lab's certificates are in place on {n} node(s)"),
            false,
        ));
    }
    let running = facts
        .iter()
        .any(|f| f.etcd_running || f.patroni_running || f.haproxy_running);
    let issued = certs::issue(&ctx.lab.name, &subjects(ctx))?;
    if running {
        lifecycle::stop(ctx).await?;
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
            let (cert_path, key_path) = (certs::cert_path(&cert.node), certs::key_path(&cert.node));
            ctx.upload(
                &cert.node,
                &[
                    (CA_CERT, ca, 0o644),
                    (&cert_path, &cert.cert, 0o644),
                    (&key_path, &cert.key, 0o600),
                ],
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
        let health = lifecycle::start(ctx).await?;
        said.push_str(&format!(
            "; the services were restarted to trust it: {health}"
        ));
    }
    Ok((said, true))
}

/// The node-side probe of a node's certificate set, run as root: `certsHeld CA CERT KEY`.
const CERTS_HELD: &str = "/usr/local/lib/pgha-lab/certsHeld";

/// What `certsHeld` prints: the CA certificate's SHA-256 when the node holds its whole set.
#[derive(Deserialize)]
struct Held {
    ca: Option<String>,
}

/// Whether every node holds its certificate, its key and the same CA certificate.
async fn one_whole_set(ctx: &Ctx<'_>) -> Result<bool> {
    let cas = futures_util::future::try_join_all(ctx.lab.nodes.iter().map(|n| async {
        let (cert, key) = (certs::cert_path(&n.name), certs::key_path(&n.name));
        let argv = [CERTS_HELD, CA_CERT, &cert, &key];
        let held: Held = ctx
            .probe(&n.name, "root", &argv, Duration::from_secs(10))
            .await?;
        Ok::<_, crate::error::Error>(held.ca)
    }))
    .await?;
    Ok(cas.iter().all(Option::is_some) && cas.windows(2).all(|w| w[0] == w[1]))
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
                &lab.host,
            ),
        })
        .collect()
}
