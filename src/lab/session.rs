//! Getting into a lab: psql on the right node, a login shell, one command, a log. Each returns
//! the remote command's exit code.

use std::time::Duration;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model;
use crate::services::{Ctx, catalog, etcd, haproxy, newest, patroni};
use crate::terminal;

/// Where `lab psql` connects.
pub enum PsqlTarget {
    Node(String),
    Primary,
    Replica,
}

/// The logs `lab logs` knows.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Component {
    Etcd,
    Patroni,
    Postgres,
    Pgbackrest,
    /// HAProxy's start-up warnings and errors (the guide's configuration logs nothing else).
    Haproxy,
    /// Prometheus's, on the monitor node of a lab made with --monitoring.
    Prometheus,
}

impl Component {
    /// A glob of the log files; the newest match is shown.
    fn files(self) -> &'static str {
        match self {
            Component::Etcd => etcd::LOG,
            Component::Patroni => patroni::LOG,
            Component::Postgres => "/pgdata/17/data/log/postgresql-*.log",
            Component::Pgbackrest => "/var/log/pgbackrest/*.log",
            Component::Haproxy => haproxy::LOG,
            Component::Prometheus => catalog::PROMETHEUS_LOG,
        }
    }
}

/// The container of `node`, which must be running.
fn running_node<'a>(lab: &'a model::Lab, node: &str) -> Result<&'a str> {
    let n = lab.node(node)?;
    if n.running() {
        Ok(&n.container.name)
    } else {
        Err(Error::Invalid(format!(
            "{node} is not running ({}); `lab start --name {} {node}` starts it",
            n.container.state, lab.name
        )))
    }
}

/// `lab psql`: an interactive psql (a real terminal when there is one) as postgres.
pub async fn psql(engine: &Engine, name: &str, target: PsqlTarget, args: &[String]) -> Result<i64> {
    let lab = model::get(engine, name).await?;
    let node = match target {
        PsqlTarget::Node(node) => node,
        PsqlTarget::Primary | PsqlTarget::Replica => {
            let ctx = Ctx::new(engine, &lab);
            let want_primary = matches!(target, PsqlTarget::Primary);
            let mut found = None;
            for n in lab.postgres_nodes().filter(|n| n.running()) {
                if let Some(m) = patroni::member(&ctx, &n.name).await?
                    && ((want_primary && m.is_primary()) || (!want_primary && m.is_streaming()))
                {
                    found = Some(n.name.clone());
                    break;
                }
            }
            found.ok_or_else(|| {
                Error::Invalid(format!(
                    "lab {name} has no {} right now; `lab status --name {name}` shows its \
                     nodes",
                    if want_primary {
                        "running primary"
                    } else {
                        "streaming replica"
                    }
                ))
            })?
        }
    };
    let container = running_node(&lab, &node)?;
    let mut cmd = vec!["psql".to_string()];
    cmd.extend(args.iter().cloned());
    engine
        .exec_attached(container, "postgres", &cmd, terminal::interactive(), true)
        .await
}

/// `lab shell NODE`: a login shell, as postgres or root.
pub async fn shell(engine: &Engine, name: &str, node: &str, root: bool) -> Result<i64> {
    let lab = model::get(engine, name).await?;
    let container = running_node(&lab, node)?;
    let user = if root { "root" } else { "postgres" };
    let cmd = ["bash".to_string(), "-l".to_string()];
    engine
        .exec_attached(container, user, &cmd, terminal::interactive(), true)
        .await
}

/// `lab exec NODE -- CMD...`: one command; its output passes through, its exit code returns.
/// Piped input is passed on; a terminal's is not, as with `docker exec` without -i.
pub async fn exec(
    engine: &Engine,
    name: &str,
    node: &str,
    root: bool,
    cmd: &[String],
) -> Result<i64> {
    let lab = model::get(engine, name).await?;
    let container = running_node(&lab, node)?;
    let user = if root { "root" } else { "postgres" };
    let piped = !std::io::IsTerminal::is_terminal(&std::io::stdin());
    engine
        .exec_attached(container, user, cmd, false, piped)
        .await
}

/// `lab logs NODE [COMPONENT] [--follow]`: the end of a service's log (Patroni's on PostgreSQL
/// nodes, etcd's on etcd members, HAProxy's on its node, unless told), followed until Ctrl-C
/// when asked.
pub async fn logs(
    engine: &Engine,
    name: &str,
    node: &str,
    component: Option<Component>,
    follow: bool,
    tail: u32,
) -> Result<i64> {
    let lab = model::get(engine, name).await?;
    let container = running_node(&lab, node)?;
    let roles = lab.node(node)?.roles;
    let component = component.unwrap_or(if roles.postgres {
        Component::Patroni
    } else if roles.etcd {
        Component::Etcd
    } else if roles.haproxy {
        Component::Haproxy
    } else if roles.monitor {
        Component::Prometheus
    } else {
        Component::Pgbackrest
    });
    // A followed tail's pid is kept so that Ctrl-C here stops it there too.
    let pidfile = format!("/tmp/pgha-lab-logs.{}", std::process::id());
    let tail = if follow {
        format!("echo $$ > {pidfile}; exec tail -n {tail} -F")
    } else {
        format!("exec tail -n {tail}")
    };
    let files = component.files();
    let script = format!(
        "{}; if [ -z \"$f\" ]; then echo 'no {component:?} log on {node} yet ({files})' >&2; \
         exit 1; fi; echo \"==> $f <==\" >&2; {tail} \"$f\"",
        newest(files),
    );
    let cmd = ["bash".to_string(), "-c".to_string(), script];
    let session = engine.exec_attached(container, "root", &cmd, false, false);
    tokio::select! {
        code = session => code,
        _ = tokio::signal::ctrl_c() => {
            let stop = format!("kill $(cat {pidfile}) 2>/dev/null; rm -f {pidfile}");
            let _ = engine
                .exec(container, "root", &["bash", "-c", &stop], Duration::from_secs(10))
                .await;
            Ok(130)
        }
    }
}
