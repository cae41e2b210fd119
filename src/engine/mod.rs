//! The thin layer over the Docker Engine API (bollard): the few operations `lab` needs, spoken in
//! our own types, with every failure turned into an `Error` that names the object and the action.
//! Nothing above this module touches bollard.

mod exec;
mod images;
mod info;
mod locks;
pub mod objects;
mod ssh;
pub mod target;

pub use exec::ExecOutput;
pub use info::EngineInfo;
pub use locks::{HeldLock, LockInfo, LockSpec, released};
pub use objects::{
    ContainerInfo, ContainerSpec, NODE_STOP_GRACE, NetworkInfo, NetworkSpec, UploadFile,
    VolumeInfo, archive,
};
pub use target::{Endpoint, Target};

use std::sync::Arc;
use std::time::Duration;

use bollard::{API_DEFAULT_VERSION, Docker};

use crate::error::{Error, Result};

/// A connection to one Docker Engine, version-negotiated, that knows which engine it is.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    target: Arc<Target>,
    /// Serves the connections to an ssh:// engine while any clone of this lives.
    _bridge: Option<Arc<ssh::Bridge>>,
}

/// The oldest Engine API lab works with (Docker 19.03): the stop timeouts, exec and archive
/// calls it makes are all there.
const OLDEST_API: (usize, usize) = (1, 40);

impl Engine {
    /// Connects as the `docker` CLI would (DOCKER_HOST, DOCKER_CONTEXT, the current context,
    /// else the local socket): see `target`.
    pub async fn connect() -> Result<Engine> {
        Engine::connect_to(Target::resolve(None, &target::process_env())?).await
    }

    /// Connects to `target` and proves the daemon answers, so that a missing socket, a dead
    /// daemon, a refused certificate or a failed ssh login is reported here, plainly, naming
    /// the engine, instead of as a vague error on the first real request.
    pub async fn connect_to(target: Target) -> Result<Engine> {
        // Long image builds and clean Patroni shutdowns outlast bollard's 120 s default.
        const TIMEOUT: u64 = 900;
        let (docker, bridge) = match &target.endpoint {
            Endpoint::Unix(path) => (
                Docker::connect_with_unix(&path.to_string_lossy(), TIMEOUT, API_DEFAULT_VERSION),
                None,
            ),
            Endpoint::Tcp {
                host,
                port,
                tls: None,
            } => (
                Docker::connect_with_http(
                    &format!("tcp://{host}:{port}"),
                    TIMEOUT,
                    API_DEFAULT_VERSION,
                ),
                None,
            ),
            Endpoint::Tcp {
                host,
                port,
                tls: Some(tls),
            } => {
                for file in [&tls.ca, &tls.cert, &tls.key] {
                    if !file.exists() {
                        return Err(Error::DockerUnavailable(format!(
                            "the engine {} needs TLS, but {} does not exist. Point \
                             DOCKER_CERT_PATH at the directory holding ca.pem, cert.pem and \
                             key.pem (or recreate the context with them), then try again.",
                            target.name,
                            file.display()
                        )));
                    }
                }
                (
                    Docker::connect_with_ssl(
                        &format!("tcp://{host}:{port}"),
                        &tls.key,
                        &tls.cert,
                        &tls.ca,
                        TIMEOUT,
                        API_DEFAULT_VERSION,
                    ),
                    None,
                )
            }
            Endpoint::Ssh { user, host, port } => {
                let bridge = ssh::Bridge::start(user.as_deref(), host, *port)?;
                let docker = Docker::connect_with_unix(
                    &bridge.socket().to_string_lossy(),
                    TIMEOUT,
                    API_DEFAULT_VERSION,
                );
                (docker, Some(Arc::new(bridge)))
            }
        };
        let docker = docker.map_err(|e| unavailable(&target, e, None))?;
        // A healthy engine answers its version at once; one that accepts but never answers
        // would otherwise hold every command for the whole timeout above.
        let negotiated = tokio::time::timeout(ANSWER, docker.negotiate_version()).await;
        let docker = negotiated.map_err(|_| {
            Error::DockerUnavailable(format!(
                "the Docker Engine {} did not answer within {} s. Check that the daemon \
                     is running and not stuck (`docker info`), then try again.",
                target.name,
                ANSWER.as_secs()
            ))
        })?;
        let docker = match docker {
            Ok(docker) => docker,
            Err(e) => {
                let said = match &bridge {
                    Some(bridge) => Some(bridge.said_within(Duration::from_secs(3)).await),
                    None => None,
                };
                return Err(unavailable(&target, e, said));
            }
        };
        let version = docker.client_version();
        if (version.major_version, version.minor_version) < OLDEST_API {
            return Err(Error::DockerUnavailable(format!(
                "the Docker Engine {} speaks API {}.{}, older than lab needs ({}.{}, Docker \
                 19.03). Upgrade Docker on that machine, or leave it out of the class.",
                target.name,
                version.major_version,
                version.minor_version,
                OLDEST_API.0,
                OLDEST_API.1
            )));
        }
        Ok(Engine {
            docker,
            target: Arc::new(target),
            _bridge: bridge,
        })
    }

    /// The engine as the user named it (a context's name, or its URL).
    pub fn name(&self) -> &str {
        &self.target.name
    }

    /// Where and how it is reached.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Whether the engine runs on this machine (reached through a local socket).
    pub fn is_local(&self) -> bool {
        self.target.remote_host().is_none()
    }
}

/// How long the engine may take to say its API version when `lab` connects.
const ANSWER: Duration = Duration::from_secs(20);

/// Explains why the daemon cannot be reached, walking the error chain down to the I/O cause;
/// `ssh_said` is what an ssh:// engine's client printed.
fn unavailable(target: &Target, err: bollard::errors::Error, ssh_said: Option<String>) -> Error {
    let name = &target.name;
    let url = target.url();
    let engine = if *name == url {
        format!("the Docker Engine at {url}")
    } else {
        format!("the Docker Engine {name} ({url})")
    };
    if let Some(said) = ssh_said.filter(|s| !s.is_empty()) {
        let said = said
            .lines()
            .last()
            .unwrap_or_default()
            .trim_end_matches('.');
        return Error::DockerUnavailable(format!(
            "{engine} cannot be reached over ssh: {said}. Check that `ssh {}` logs in without a \
             prompt (a key or an agent; lab runs ssh in batch mode) and that `docker` runs \
             there, then try again.",
            target.remote_host().unwrap_or_default()
        ));
    }
    if let bollard::errors::Error::SocketNotFoundError(path) = &err {
        return Error::DockerUnavailable(format!(
            "the Docker socket {path} of {engine} does not exist: Docker is not installed or \
             not running there. Start the daemon (e.g. `sudo systemctl start docker`), or point --engine or \
             DOCKER_HOST at a running one, then try again."
        ));
    }
    if let bollard::errors::Error::CertPathError { path } = &err {
        return Error::DockerUnavailable(format!(
            "{engine}: the TLS file {} does not read. Check DOCKER_CERT_PATH (or the context's \
             TLS files), then try again.",
            path.display()
        ));
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = source {
        if let Some(tls) = tls_cause(e) {
            return Error::DockerUnavailable(format!(
                "{engine} refused the TLS handshake or its certificate was refused ({tls}). \
                 Check that DOCKER_CERT_PATH (or the context) holds the CA that signed the \
                 daemon's certificate and a client certificate it trusts, and that the URL's \
                 host is one the certificate names."
            ));
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::PermissionDenied => {
                    return Error::DockerUnavailable(format!(
                        "permission denied on {engine}: this user may not use it. Add it to \
                         the docker group (`sudo usermod -aG docker $USER`, then log in again) \
                         or run `lab` with sudo."
                    ));
                }
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound => {
                    return Error::DockerUnavailable(format!(
                        "nothing answers at {url}: the Docker daemon {name} is not running or \
                         not listening there. Start it (e.g. `sudo systemctl start docker`) and \
                         try again."
                    ));
                }
                _ => {}
            }
        }
        source = e.source();
    }
    Error::DockerUnavailable(format!(
        "{engine} did not answer: {err}. Check that the daemon is running (`docker info`) and \
         try again."
    ))
}

/// The TLS failure under an error, looked for through io::Errors wrapping io::Errors (whose
/// `source` skips the error they wrap).
fn tls_cause<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut at = Some(e);
    while let Some(e) = at {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        at = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|inner| inner as &(dyn std::error::Error + 'static));
    }
    None
}

/// Maps an Engine failure during `action` to our error, keeping the daemon's own message (which
/// names the object).
pub(crate) fn api(action: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> Error {
    let action = action.into();
    move |err| match err {
        bollard::errors::Error::DockerResponseServerError { message, .. } => {
            Error::Docker { action, message }
        }
        bollard::errors::Error::DockerStreamError { error } => Error::Docker {
            action,
            message: error,
        },
        other => Error::Docker {
            action,
            message: other.to_string(),
        },
    }
}

/// True when the Engine answered "no such object".
pub(crate) fn is_not_found(err: &bollard::errors::Error) -> bool {
    matches!(
        err,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}
