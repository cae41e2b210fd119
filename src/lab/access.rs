//! A trainee's way into a lab (`lab create --access ssh`): the first node's SSH entry opened
//! with a root password of the lab's own or the trainee's key; the credentials kept in the
//! lab's store (root's, mode 0600, never in labels or the environment); `lab class sheet`,
//! which lists them for the instructor; and `lab class rotate`, which issues new ones.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::engine::{Engine, UploadFile};
use crate::error::{Error, Result};
use crate::lock::LabLock;
use crate::model::{self, Lab};
use crate::progress::Progress;
use crate::render::access::{self as render, PublicKey, SSH_ENTRY, SheetRow};
use crate::services::{self, Ctx, patroni};
use crate::spec::{Auth, Entry, HAPROXY_PRIMARY, HAPROXY_REPLICAS, LabSpec, POSTGRES_PORT};
use crate::store;

/// The store's record of a lab's access.
const RECORD: &str = "access.json";

/// What a lab's store keeps of its access: the trainee's credentials and the postgres role's
/// password as the sheet gives it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// root's password on the SSH entry; None when the trainee logs in with a key.
    pub root_password: Option<String>,
    /// The trainee's key, when one was given.
    pub key: Option<PublicKey>,
    /// The postgres role's password now.
    pub postgres_password: String,
    /// The lab generated it (a lab exposed beyond loopback), so `rotate` renews it too.
    pub postgres_generated: bool,
    /// The postgres role's password in the lab's reset snapshot (the one it was made with):
    /// after a reset brings that back, the current one is applied again.
    pub postgres_in_snapshot: String,
}

/// The trainee keys of `--trainee-key PATH` for the labs `names`: PATH itself for one lab, or
/// PATH/NAME.pub for each lab when PATH is a directory. Every key is read and checked before
/// anything is made; the first one missing or malformed is refused, naming its file.
pub fn trainee_keys(path: &Path, names: &[String]) -> Result<Vec<PublicKey>> {
    let files: Vec<std::path::PathBuf> = if path.is_dir() {
        names
            .iter()
            .map(|n| path.join(format!("{n}.pub")))
            .collect()
    } else if let [_] = names {
        vec![path.to_path_buf()]
    } else {
        return Err(Error::Invalid(format!(
            "--trainee-key {} is one file, for one lab; {} labs are being made. Give a \
             directory holding NAME.pub for each lab ({}), or make the labs one at a time.",
            path.display(),
            names.len(),
            names
                .iter()
                .map(|n| format!("{n}.pub"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    files
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(file).map_err(|e| {
                Error::Invalid(format!(
                    "cannot read the trainee key {}: {e}. Nothing was made. Put the trainee's \
                     public key there (their ~/.ssh/id_ed25519.pub), or leave --trainee-key out \
                     to give the lab a generated password.",
                    file.display()
                ))
            })?;
            render::parse_public_key(&text).map_err(|why| {
                Error::Invalid(format!(
                    "the trainee key {} is refused: {why}. Nothing was made. Give the public key \
                     file ssh-keygen wrote (NAME.pub, one line \"ssh-ed25519 AAAA... comment\").",
                    file.display()
                ))
            })
        })
        .collect()
}

/// A fresh password, or why the system could not give one.
pub fn password() -> Result<String> {
    render::generate_password().map_err(|why| {
        Error::Failed(format!(
            "cannot generate a password: {why}. Nothing was made; try again."
        ))
    })
}

/// Opens the SSH entry of a lab whose containers were just made (and run): port 2222 for
/// sshd on the first node, root's password or the trainee's key, and the record of both in
/// the lab's store, with the postgres role's password (`lab create` generated it for a lab
/// published beyond loopback).
pub async fn open(engine: &Engine, lab: &Lab, entry: &Entry, spec: &LabSpec) -> Result<()> {
    let settings = &spec.settings;
    let generated = !spec.publish.is_loopback();
    let first = first_node(lab)?;
    let mut files = vec![UploadFile {
        path: render::ENTRY_CONF.into(),
        content: render::entry_conf().into_bytes(),
        mode: 0o644,
        uid: 0,
        gid: 0,
    }];
    let (root_password, key) = match entry {
        Entry::Password => (Some(password()?), None),
        Entry::Key(key) => {
            files.push(UploadFile {
                path: "/root/.ssh/authorized_keys".into(),
                content: format!("{}\n", key.line).into_bytes(),
                mode: 0o600,
                uid: 0,
                gid: 0,
            });
            (None, Some(key.clone()))
        }
    };
    engine.upload(first, &files).await?;
    if let Some(password) = &root_password {
        set_root_password(engine, first, password).await?;
    }
    // sshd now, not at the access stage: a lab made to `--stage containers`, for the course by
    // hand, must let its trainee in too. The access stage finds it running.
    let out = engine
        .exec(first, "root", &["startSshd"], Duration::from_secs(30))
        .await?;
    if !out.ok() {
        return Err(Error::Failed(format!(
            "sshd did not start on {first}, the trainee's way in: {}",
            out.said()
        )));
    }
    let record = Record {
        root_password,
        key,
        postgres_password: settings.password.clone(),
        postgres_generated: generated,
        postgres_in_snapshot: settings.password.clone(),
    };
    store::write_json(engine, lab, RECORD, &record).await
}

/// The container of the node that holds the entry and the record.
fn first_node(lab: &Lab) -> Result<&str> {
    lab.nodes
        .first()
        .map(|n| n.container.name.as_str())
        .ok_or_else(|| Error::Failed(format!("lab {} has no nodes", lab.name)))
}

/// Runs `script` as root in container `node` with `secret` in the file it names as $1 (root's alone, and
/// removed as soon as the script ends): a password never appears in a command line, which the
/// engine keeps in the exec's record.
async fn with_secret(engine: &Engine, node: &str, secret: &str, script: &str) -> Result<()> {
    let file = "/root/.pgha-lab-secret";
    engine
        .upload(
            node,
            &[UploadFile {
                path: file.into(),
                content: secret.as_bytes().to_vec(),
                mode: 0o600,
                uid: 0,
                gid: 0,
            }],
        )
        .await?;
    let wrapped = format!("trap 'rm -f {file}' EXIT\nset -e\n{script}");
    let argv = ["bash", "-c", &wrapped, "bash", file];
    let out = engine
        .exec(node, "root", &argv, Duration::from_secs(60))
        .await?;
    if out.ok() {
        Ok(())
    } else {
        Err(Error::Failed(format!(
            "on {node}, setting a new credential failed: {}",
            out.said()
        )))
    }
}

async fn set_root_password(engine: &Engine, node: &str, password: &str) -> Result<()> {
    let line = format!("root:{password}\n");
    with_secret(engine, node, &line, "chpasswd < \"$1\"").await
}

/// The record of lab `lab`'s access; None for a lab made without it.
pub async fn record(engine: &Engine, lab: &Lab) -> Result<Option<Record>> {
    store::read_json(engine, lab, RECORD).await
}

/// The names of the labs among `labs` that have access, for `lab class rotate`; the others
/// are named in a line and left alone, their locks untouched (with --all, labs that are no
/// trainee's, another instructor's among them). None having access is refused.
pub async fn with_access(
    engine: &Engine,
    progress: &Progress,
    labs: &[Lab],
) -> Result<Vec<String>> {
    let mut with = Vec::new();
    let mut without = Vec::new();
    for lab in labs {
        match record(engine, lab).await? {
            Some(_) => with.push(lab.name.clone()),
            None => without.push(lab.name.as_str()),
        }
    }
    if with.is_empty() {
        let [one] = without.as_slice() else {
            return Err(Error::Invalid(format!(
                "none of the labs {} was made with --access, so there are no credentials to \
                 rotate. Nothing was changed. Name a class made with `lab create --access ssh`.",
                without.join(", ")
            )));
        };
        return Err(no_access(one));
    }
    if !without.is_empty() {
        progress.line(format!(
            "left alone, made without --access: {}",
            without.join(", ")
        ));
    }
    Ok(with)
}

/// The refusal of a lab made without --access.
fn no_access(name: &str) -> Error {
    Error::Invalid(format!(
        "lab {name} was made without --access, so it has no credentials to rotate. Nothing \
         was changed. `lab create --replace --name {name} --access ssh` makes it anew with an \
         SSH entry."
    ))
}

/// The sheet's rows, one per lab of the class. `host` names the machine trainees connect to
/// where the labs publish on every interface (0.0.0.0); by default, this machine's primary
/// address.
pub async fn sheet(engine: &Engine, labs: &[Lab], host: Option<&str>) -> Result<Vec<SheetRow>> {
    let mut rows = Vec::new();
    for lab in labs {
        rows.push(sheet_row(engine, lab, host).await?);
    }
    Ok(rows)
}

async fn sheet_row(engine: &Engine, lab: &Lab, host: Option<&str>) -> Result<SheetRow> {
    let first = lab.nodes.first();
    let publish = first.map_or(IpAddr::from([127, 0, 0, 1]), |n| n.publish_ip());
    let host = match host {
        Some(host) => host.to_string(),
        // Trainees are elsewhere: a lab on every interface of this machine is reached at its
        // address on the network; on another machine, where that engine is reached.
        None if publish.is_unspecified() && engine.is_local() && !lab.host_given => {
            primary_address()
                .map(|a| a.to_string())
                .unwrap_or_else(|| publish.to_string())
        }
        None => lab.host.clone(),
    };
    let haproxy = lab.haproxy_node();
    let record = record(engine, lab).await?;
    let postgres_password = match &record {
        Some(r) => Some(r.postgres_password.clone()),
        // A lab made without access keeps its password in its settings, readable while a node runs.
        None => {
            let ctx = Ctx::new(engine, lab);
            services::settings(&ctx).await.ok().map(|s| s.password)
        }
    };
    let entry = first.and_then(|n| n.host_port(SSH_ENTRY));
    let note = match (&record, entry) {
        (None, _) => Some("no access (made without --access)".to_string()),
        (Some(_), None) => Some("no SSH entry published".to_string()),
        _ => None,
    };
    Ok(SheetRow {
        lab: lab.name.clone(),
        host,
        ssh_port: record.as_ref().and(entry),
        user: record.as_ref().map(|_| "root".to_string()),
        password: record.as_ref().and_then(|r| r.root_password.clone()),
        key_fingerprint: record
            .as_ref()
            .and_then(|r| r.key.as_ref())
            .map(|k| k.fingerprint.clone()),
        haproxy_primary: haproxy.and_then(|n| n.host_port(HAPROXY_PRIMARY)),
        haproxy_replicas: haproxy.and_then(|n| n.host_port(HAPROXY_REPLICAS)),
        postgres_ports: lab
            .postgres_nodes()
            .filter_map(|n| n.host_port(POSTGRES_PORT))
            .collect(),
        postgres_password,
        note,
    })
}

/// This machine's address on its default route, as the kernel would choose it (a UDP socket
/// "connected" to an outside address sends nothing): what trainees elsewhere connect to.
fn primary_address() -> Option<IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    socket.local_addr().ok().map(|a| a.ip())
}

/// Issues new credentials for the lab held by `lock`: a new root password (a trainee's key is
/// kept), and for a lab exposed beyond loopback a new postgres password, applied to the role
/// and everything that uses it. Every node must run: the new password goes into each.
pub async fn rotate(engine: &Engine, progress: &Progress, lock: &LabLock) -> Result<()> {
    let name = lock.lab();
    let lab = model::get(engine, name).await?;
    let Some(mut record) = record(engine, &lab).await? else {
        return Err(no_access(name));
    };
    let stopped = lab.stopped_names();
    if !stopped.is_empty() {
        return Err(Error::Invalid(format!(
            "lab {name} has stopped nodes ({}), and new credentials go into every node. Nothing \
             was changed. `lab start --name {name}` first, then rotate again.",
            stopped.join(", ")
        )));
    }
    let ctx = Ctx::new(engine, &lab);
    // Asked before anything changes: without a primary the postgres password cannot be.
    let primary = match record.postgres_generated {
        true => Some(primary(&ctx).await?),
        false => None,
    };
    let step = progress.step(format!("new credentials for lab {name}"));
    if record.root_password.is_some() {
        let new = password()?;
        set_root_password(engine, first_node(&lab)?, &new).await?;
        record.root_password = Some(new);
        // Written at once: the old root password no longer works.
        store::write_json(engine, &lab, RECORD, &record).await?;
    }
    if let Some(primary) = primary {
        let new = password()?;
        let root = match record.root_password {
            Some(_) => "root's new password is in place (the sheet shows it), ",
            None => "",
        };
        apply_postgres_password(&ctx, &primary, &new)
            .await
            .map_err(|e| {
                Error::Failed(format!(
                    "{e}. In lab {name}, {root}the sheet keeps the postgres password it had; \
                     `lab class rotate --name {name}` again issues another."
                ))
            })?;
        record.postgres_password = new;
        store::write_json(engine, &lab, RECORD, &record).await?;
    }
    let said = match (record.root_password.is_some(), record.postgres_generated) {
        (true, true) => "a new root password and a new postgres password",
        (true, false) => {
            "a new root password (postgres keeps its password: the lab is on loopback)"
        }
        (false, true) => "a new postgres password (root keeps the trainee's key)",
        (false, false) => {
            "nothing to renew: root logs in with the trainee's key, and the lab is on loopback"
        }
    };
    step.done(format!("{said}; `lab class sheet` shows them"));
    Ok(())
}

/// After `lab reset` brought back the snapshot's postgres password, the lab's current one
/// again, so the sheet (and `lab connect`) stay right.
pub async fn after_reset(engine: &Engine, progress: &Progress, lab: &Lab) -> Result<()> {
    let Some(record) = record(engine, lab).await? else {
        return Ok(());
    };
    if record.postgres_password == record.postgres_in_snapshot {
        return Ok(());
    }
    let step = progress.step("postgres password");
    let ctx = Ctx::new(engine, lab);
    let primary = primary(&ctx).await?;
    apply_postgres_password(&ctx, &primary, &record.postgres_password).await?;
    step.done("the lab's current one applied again over the snapshot's");
    Ok(())
}

/// The node-side part of a new postgres password, run as root on every node with the
/// password in $1's file: the lab's settings and postgres's ~/.pgpass, and, where Patroni is
/// configured, patroni.yaml's superuser (and REST API) password, which Patroni rereads on
/// SIGHUP.
const NODE_PASSWORD: &str = r#"python3 - "$1" <<'PY'
import json, os, sys, pwd
new = open(sys.argv[1]).read().strip()
pw = pwd.getpwnam("postgres")
def put(path, text, owner=pw):
    with open(path + ".new", "w") as f:
        f.write(text)
    os.chmod(path + ".new", 0o600)
    os.chown(path + ".new", owner.pw_uid if owner else 0, owner.pw_gid if owner else 0)
    os.replace(path + ".new", path)
settings = json.load(open("/etc/pgha-lab.json"))
settings["password"] = new
put("/etc/pgha-lab.json", json.dumps(settings, indent=2) + "\n", owner=None)
escape = lambda s: s.replace("\\", "\\\\").replace(":", "\\:")
put(os.path.join(pw.pw_dir, ".pgpass"), f"*:*:*:postgres:{escape(new)}\n*:*:*:replicator:replicator\n")
conf = "/pgha/config/patroni.yaml"
if os.path.exists(conf):
    import yaml
    text = open(conf).read()
    old = yaml.safe_load(text)["postgresql"]["authentication"]["superuser"]["password"]
    if old != new:
        put(conf, text.replace(f"password: {old}\n", f"password: {new}\n"))
        print("patroni.yaml")
PY
"#;

/// The lab's running primary, where the postgres role's password is changed.
async fn primary(ctx: &Ctx<'_>) -> Result<String> {
    let lab = &ctx.lab.name;
    patroni::current_primary(ctx, &ctx.lab.postgres_names())
        .await?
        .ok_or_else(|| {
            Error::Failed(format!(
                "lab {lab} has no running primary to change the postgres password on, so its \
                 credentials were left as they were. `lab status --name {lab}` says why; run \
                 this again once the cluster is healthy."
            ))
        })
}

/// Gives the postgres role `password` on `primary` (ALTER ROLE), then every node's copies.
async fn apply_postgres_password(ctx: &Ctx<'_>, primary: &str, password: &str) -> Result<()> {
    let lab = &ctx.lab.name;
    let encryption = match services::settings(ctx).await?.auth {
        Auth::Md5 => "md5",
        Auth::Scram => "scram-sha-256",
    };
    // Generated passwords hold letters, digits and '-': nothing to escape in a literal.
    let sql = format!(
        "SET password_encryption = '{encryption}';\nALTER ROLE postgres WITH PASSWORD '{password}';\n"
    );
    // Read by root's shell, handed to psql on stdin: postgres cannot open root's file.
    let alter = "runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 < \"$1\"";
    with_secret(ctx.engine, ctx.lab.container(primary), &sql, alter).await?;
    futures_util::future::try_join_all(ctx.lab.nodes.iter().map(|n| async move {
        let script = format!("{NODE_PASSWORD}\npkill -HUP -x patroni || true");
        with_secret(ctx.engine, &n.container.name, password, &script).await
    }))
    .await?;
    // Proven over TCP as a trainee's client connects, with postgres's new ~/.pgpass.
    let out = ctx
        .exec(
            primary,
            "postgres",
            &["psql", "-X", "-h", primary, "-tAc", "select 1"],
            Duration::from_secs(20),
        )
        .await?;
    if !out.ok() {
        return Err(Error::Failed(format!(
            "the new postgres password of lab {lab} was set, but a connection with it to \
             {primary} failed: {}. `lab class rotate --name {lab}` again issues another.",
            out.said()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILA6TNnAGuG5jlwVg4Sn9Cd25xMir6SxilMpIufs2RIP t\n";

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_key_file_serves_one_lab_and_a_directory_one_key_per_lab() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("alice.pub");
        std::fs::write(&file, KEY).unwrap();
        assert_eq!(trainee_keys(&file, &names(&["alice"])).unwrap().len(), 1);
        let two = trainee_keys(&file, &names(&["alice", "bob"])).unwrap_err();
        assert!(two.to_string().contains("bob.pub"), "{two}");
        std::fs::write(dir.path().join("bob.pub"), KEY).unwrap();
        assert_eq!(
            trainee_keys(dir.path(), &names(&["alice", "bob"]))
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn a_missing_or_malformed_key_is_refused_naming_its_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("alice.pub"), KEY).unwrap();
        std::fs::write(dir.path().join("bob.pub"), "ssh-ed25519 nonsense\n").unwrap();
        let missing = trainee_keys(dir.path(), &names(&["alice", "carol"])).unwrap_err();
        assert!(missing.to_string().contains("carol.pub"), "{missing}");
        let malformed = trainee_keys(dir.path(), &names(&["bob"])).unwrap_err();
        assert!(malformed.to_string().contains("bob.pub"), "{malformed}");
        assert_eq!(missing.exit_code(), 2);
    }
}
