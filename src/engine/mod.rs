//! The thin layer over the Docker Engine API (bollard): the few operations `lab` needs, spoken in
//! our own types, with every failure turned into an `Error` that names the object and the action.
//! Nothing above this module touches bollard.

mod exec;
mod images;
mod info;
pub mod objects;

pub use exec::ExecOutput;
pub use info::EngineInfo;
pub use objects::{
    ContainerInfo, ContainerSpec, NODE_STOP_GRACE, NetworkInfo, NetworkSpec, UploadFile,
    VolumeInfo, archive,
};

use std::time::Duration;

use bollard::Docker;

use crate::error::{Error, Result};

/// A connection to the Docker Engine, version-negotiated.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
}

impl Engine {
    /// Connects as the `docker` CLI would (DOCKER_HOST, else the local socket) and proves the
    /// daemon answers, so that a missing socket, a dead daemon or a permission problem is
    /// reported here, plainly, instead of as a vague error on the first real request.
    pub async fn connect() -> Result<Engine> {
        let docker = Docker::connect_with_defaults().map_err(unavailable)?;
        // Long image builds and clean Patroni shutdowns outlast bollard's 120 s default.
        let docker = docker.with_timeout(Duration::from_secs(900));
        // A healthy engine answers its version at once; one that accepts but never answers
        // would otherwise hold every command for the whole timeout above.
        let negotiated = tokio::time::timeout(ANSWER, docker.negotiate_version()).await;
        let docker = negotiated
            .map_err(|_| {
                Error::DockerUnavailable(format!(
                    "the Docker Engine at {} did not answer within {} s. Check that the daemon \
                     is running and not stuck (`docker info`), then try again.",
                    socket_path(),
                    ANSWER.as_secs()
                ))
            })?
            .map_err(unavailable)?;
        Ok(Engine { docker })
    }
}

/// How long the engine may take to say its API version when `lab` connects.
const ANSWER: Duration = Duration::from_secs(20);

fn socket_path() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

/// Explains why the daemon cannot be reached, walking the error chain down to the I/O cause.
fn unavailable(err: bollard::errors::Error) -> Error {
    let host = socket_path();
    if let bollard::errors::Error::SocketNotFoundError(path) = &err {
        return Error::DockerUnavailable(format!(
            "the Docker socket {path} does not exist: Docker is not installed or not running \
             on this machine. Start the daemon (e.g. `sudo systemctl start docker`), or point \
             DOCKER_HOST at a running one, then try again."
        ));
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::PermissionDenied => {
                    return Error::DockerUnavailable(format!(
                        "permission denied on the Docker socket ({host}): this user may not use \
                         the Docker Engine. Add it to the docker group (`sudo usermod -aG docker \
                         $USER`, then log in again) or run `lab` with sudo."
                    ));
                }
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound => {
                    return Error::DockerUnavailable(format!(
                        "the Docker daemon is not running: nothing answers on {host}. Start it \
                         (e.g. `sudo systemctl start docker`) and try again."
                    ));
                }
                _ => {}
            }
        }
        source = e.source();
    }
    Error::DockerUnavailable(format!(
        "the Docker Engine at {host} did not answer: {err}. Check that the daemon is running \
         (`docker info`) and try again."
    ))
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
