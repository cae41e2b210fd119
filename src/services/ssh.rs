//! Stage 1, access: one SSH key pair per lab (made at create time on the first node, never
//! stored in the image), installed for postgres on every node, and sshd running, so that `ssh
//! pgha2` works between nodes as the course uses it and pgBackRest can reach every node; on a
//! `--tls` lab, the lab's certificates too (`tls`).

use std::time::Duration;

use serde::Deserialize;

use super::{Ctx, Facts, Outcome, wait_for};
use crate::error::Result;
use crate::progress::Progress;
use crate::spec::Stage;

const SSH_DIR: &str = "/var/lib/postgresql/.ssh";
/// The node-side script, run as postgres, that makes the lab's key pair in SSH_DIR unless it is
/// there, and prints it: `sshKeyPair LAB`.
const KEY_PAIR: &str = "/usr/local/lib/pgha-lab/sshKeyPair";

/// What `sshKeyPair` prints: the key pair's two files.
#[derive(Deserialize)]
struct KeyPair {
    public: String,
    private: String,
}

pub async fn run(ctx: &Ctx<'_>, facts: &[Facts], progress: &Progress) -> Result<Outcome> {
    let first = &ctx.lab.nodes[0].name;
    // The key stays the lab's own across reruns: node 1 keeps it.
    let argv = [KEY_PAIR, ctx.lab.name.as_str()];
    let pair: KeyPair = ctx
        .probe(first, "postgres", &argv, Duration::from_secs(30))
        .await?;
    let (public, private) = (pair.public.as_str(), pair.private.as_str());
    futures_util::future::try_join_all(ctx.lab.nodes.iter().map(|n| async move {
        ctx.must(
            Stage::Access,
            &n.name,
            "root",
            &format!("install -d -m 700 -o postgres -g postgres {SSH_DIR} && startSshd"),
            Duration::from_secs(30),
            None,
        )
        .await?;
        let (key, pubkey, authorized) = (
            format!("{SSH_DIR}/id_ed25519"),
            format!("{SSH_DIR}/id_ed25519.pub"),
            format!("{SSH_DIR}/authorized_keys"),
        );
        ctx.upload(
            &n.name,
            &[
                (&key, private, 0o600),
                (&pubkey, public, 0o644),
                (&authorized, public, 0o600),
            ],
        )
        .await
    }))
    .await?;
    verify(ctx).await?;
    let mut summary = format!(
        "the lab's key pair is installed for postgres on {} node(s); ssh works into and out of \
         every node",
        ctx.lab.nodes.len()
    );
    let mut changed = facts.iter().any(|f| !f.ssh_keys || !f.host_keys);
    if ctx.lab.tls {
        let (said, placed) = super::tls::place(ctx, facts, progress).await?;
        summary = format!("{summary}; {said}");
        changed |= placed;
    }
    Ok(Outcome { summary, changed })
}

/// The node-side script, run as postgres, that says which of the lab's names a node resolves
/// and which nodes it reaches with ssh: `reach NAME... -- NODE...`.
const REACH: &str = "/usr/local/lib/pgha-lab/reach";

/// What `reach` prints: the names a node does not resolve, and the nodes it cannot ssh into.
#[derive(Debug, Deserialize)]
pub struct Reach {
    pub unresolved: Vec<String>,
    pub unreachable: Vec<Unreached>,
}

/// A node that ssh did not get into, and what ssh said.
#[derive(Debug, Deserialize)]
pub struct Unreached {
    pub node: String,
    pub error: String,
}

/// What `node` reaches as postgres: which of `names` it resolves, and which of `nodes` it gets
/// into with ssh (all tried at once, 5 s each at the most).
pub async fn reach<S: AsRef<str>>(
    ctx: &Ctx<'_>,
    node: &str,
    names: &[S],
    nodes: &[&str],
) -> Result<Reach> {
    let argv: Vec<&str> = std::iter::once(REACH)
        .chain(names.iter().map(AsRef::as_ref))
        .chain(std::iter::once("--"))
        .chain(nodes.iter().copied())
        .collect();
    ctx.probe(node, "postgres", &argv, Duration::from_secs(60))
        .await
}

/// Every node logs in to the next one (the last to the first) as postgres, without a password:
/// each node's ssh client and each node's sshd proven once, as every pair uses the same key
/// pair and configuration.
async fn verify(ctx: &Ctx<'_>) -> Result<()> {
    let nodes = &ctx.lab.nodes;
    futures_util::future::try_join_all(nodes.iter().enumerate().map(|(i, node)| {
        let next = nodes[(i + 1) % nodes.len()].name.as_str();
        async move {
            // sshd on the other nodes may still be starting.
            let seen = wait_for(
                Duration::from_secs(20),
                Duration::from_millis(300),
                || async {
                    let reached = reach::<&str>(ctx, &node.name, &[], &[next]).await?;
                    Ok(match reached.unreachable.as_slice() {
                        [] => Ok(()),
                        failed => Err(failed
                            .iter()
                            .map(|u| format!("{} {}", u.node, u.error))
                            .collect::<Vec<_>>()
                            .join("\n")),
                    })
                },
            )
            .await?;
            let say = |seen| format!("ssh as postgres does not get into the next node:\n{seen}");
            ctx.waited(seen, Stage::Access, &node.name, say, None).await
        }
    }))
    .await?;
    Ok(())
}
