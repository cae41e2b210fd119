//! An engine behind sshd, reached as the docker CLI reaches one: every connection to the engine
//! is `ssh HOST docker system dial-stdio`, so the user's own ssh config, keys, agent and
//! known_hosts apply and the far side needs nothing but sshd and the docker CLI. Here the
//! connections come from bollard through a private unix socket this module serves; one ssh
//! master connection (ControlMaster) is shared by them, so a request costs no new handshake.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::process::Command;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};

/// A running bridge: the socket bollard connects to, served while this lives.
pub struct Bridge {
    socket: PathBuf,
    serve: JoinHandle<()>,
    /// What ssh last said on stderr, for the error when the engine does not answer.
    said: Arc<Mutex<String>>,
    // Removed (socket, control socket) when the bridge goes.
    _dir: tempfile::TempDir,
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.serve.abort();
    }
}

/// How many connections are carried at once over the one ssh connection: sshd refuses a
/// connection's sessions beyond its MaxSessions (10 by default), which a destroy's removals
/// all at once would pass; the master's own counts too.
const SESSIONS: usize = 8;

/// How long a connection whose client has gone is left to end by itself.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// The environment variable naming an ssh config file to use instead of ~/.ssh/config (for a
/// test's own sshd; users' own config is read as ssh always reads it).
pub const SSH_CONFIG: &str = "PGHA_LAB_SSH_CONFIG";

impl Bridge {
    /// Starts serving `user@host:port` on a private socket.
    pub fn start(user: Option<&str>, host: &str, port: Option<u16>) -> Result<Bridge> {
        let dir = tempfile::Builder::new()
            .prefix("pgha-lab-ssh-")
            .tempdir()
            .map_err(Error::io("make a private directory for the ssh connection"))?;
        let socket = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&socket)
            .map_err(Error::io(format!("listen on {}", socket.display())))?;
        let args = ssh_args(user, host, port, &dir.path().join("master"));
        let said = Arc::new(Mutex::new(String::new()));
        let sessions = Arc::new(tokio::sync::Semaphore::new(SESSIONS));
        let serve = tokio::spawn({
            let said = said.clone();
            async move {
                while let Ok((conn, _)) = listener.accept().await {
                    let (args, said, sessions) = (args.clone(), said.clone(), sessions.clone());
                    tokio::spawn(async move {
                        // Held while the connection lasts; a request beyond waits its turn.
                        let Ok(_session) = sessions.acquire_owned().await else {
                            return;
                        };
                        relay(conn, args, said).await;
                    });
                }
            }
        });
        Ok(Bridge {
            socket,
            serve,
            said,
            _dir: dir,
        })
    }

    /// The socket to connect to.
    pub fn socket(&self) -> &std::path::Path {
        &self.socket
    }

    /// ssh's last words on stderr, trimmed, waiting up to `patience` for them: a connection
    /// that failed is seen closed before the ssh that failed it has exited ("" when it said
    /// nothing).
    pub async fn said_within(&self, patience: std::time::Duration) -> String {
        let since = std::time::Instant::now();
        loop {
            let said = self
                .said
                .lock()
                .map(|s| s.trim().to_string())
                .unwrap_or_default();
            if !said.is_empty() || since.elapsed() >= patience {
                return said;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// The ssh command line for one connection.
fn ssh_args(
    user: Option<&str>,
    host: &str,
    port: Option<u16>,
    master: &std::path::Path,
) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    if let Ok(config) = std::env::var(SSH_CONFIG) {
        args.extend(["-F".into(), config]);
    }
    args.extend(
        [
            // No prompt can reach the user from here: keys or an agent, or a clear failure.
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=15",
            "-o",
            "ServerAliveInterval=15",
            "-o",
            "ControlMaster=auto",
            "-o",
            "ControlPersist=20",
            "-T",
        ]
        .map(String::from),
    );
    args.extend(["-o".into(), format!("ControlPath={}", master.display())]);
    if let Some(port) = port {
        args.extend(["-p".into(), port.to_string()]);
    }
    if let Some(user) = user {
        args.extend(["-l".into(), user.to_string()]);
    }
    args.extend(["--", host, "docker", "system", "dial-stdio"].map(String::from));
    args
}

/// Carries one connection through its own `ssh … dial-stdio`.
async fn relay(conn: tokio::net::UnixStream, args: Vec<String>, said: Arc<Mutex<String>>) {
    let child = Command::new("ssh")
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            if let Ok(mut s) = said.lock() {
                *s = format!("the ssh client does not start: {e}");
            }
            return;
        }
    };
    let (Some(mut stdin), Some(mut stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return;
    };
    let errors = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let (mut from_client, mut to_client) = conn.into_split();
    let to_ssh = async move {
        let _ = tokio::io::copy(&mut from_client, &mut stdin).await;
        // Closing the pipe is ssh's end of input (a pipe's shutdown closes nothing): it passes
        // the half-close on, and the engine then ends its side.
        drop(stdin);
    };
    let from_ssh = async move {
        let _ = tokio::io::copy(&mut stdout, &mut to_client).await;
        let _ = to_client.shutdown().await;
    };
    tokio::pin!(from_ssh);
    tokio::select! {
        () = &mut from_ssh => {}
        () = to_ssh => {
            // The client has gone: what the engine still sends is no one's; a moment for it,
            // then the connection ends whatever it does.
            let _ = tokio::time::timeout(LINGER, from_ssh).await;
        }
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
    if let Ok(text) = errors.await
        && !text.trim().is_empty()
        && let Ok(mut s) = said.lock()
    {
        *s = text;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_is_dial_stdio_over_a_shared_master() {
        let args = ssh_args(Some("ops"), "teach1", Some(2222), "/t/master".as_ref());
        let line = args.join(" ");
        assert!(line.contains("-o BatchMode=yes"), "{line}");
        assert!(line.contains("-o ControlPath=/t/master"), "{line}");
        assert!(
            line.ends_with("-p 2222 -l ops -- teach1 docker system dial-stdio"),
            "{line}"
        );
    }
}
