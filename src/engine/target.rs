//! Which Docker Engine a command speaks to, found the way the docker CLI finds it: `--engine`
//! (a context's name or a host URL), else DOCKER_HOST (with DOCKER_TLS_VERIFY and
//! DOCKER_CERT_PATH), else DOCKER_CONTEXT, else the current context of the docker CLI's
//! config.json, else the local socket. Pure: the environment and the config directory are
//! passed in, so the rules are tested without touching this machine's.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// The local engine's socket, as the docker CLI has it.
pub const LOCAL_SOCKET: &str = "/var/run/docker.sock";

/// How an engine is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A socket on this machine.
    Unix(PathBuf),
    /// A daemon listening on TCP, with TLS (and the client's certificate) or without.
    Tcp {
        host: String,
        port: u16,
        tls: Option<TlsFiles>,
    },
    /// A daemon behind sshd, reached as the docker CLI does (`docker system dial-stdio` run
    /// over the ssh client, so the user's own ssh config, keys and agent apply).
    Ssh {
        user: Option<String>,
        host: String,
        port: Option<u16>,
    },
}

/// The client's TLS material: the CA that signed the daemon's certificate, and the client's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// An engine as the user named it, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// What tables and errors call it: the context's name, or the URL as given.
    pub name: String,
    pub endpoint: Endpoint,
}

/// The process environment the rules read, as a map (tests pass their own).
pub type Env = BTreeMap<String, String>;

/// This process's environment, the variables the rules read.
pub fn process_env() -> Env {
    [
        "DOCKER_HOST",
        "DOCKER_CONTEXT",
        "DOCKER_TLS_VERIFY",
        "DOCKER_CERT_PATH",
        "DOCKER_CONFIG",
        "HOME",
    ]
    .into_iter()
    .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
    .collect()
}

/// The docker CLI's configuration directory (DOCKER_CONFIG, else ~/.docker).
pub fn config_dir(env: &Env) -> PathBuf {
    match env.get("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env.get("HOME").map_or("/root", String::as_str)).join(".docker"),
    }
}

impl Target {
    /// Resolves `--engine` (None: the docker CLI's own choice).
    pub fn resolve(engine: Option<&str>, env: &Env) -> Result<Target> {
        let config = config_dir(env);
        if let Some(given) = engine {
            return if given.contains("://") {
                Target::from_url(given, given, env, true)
            } else {
                Target::context(given, env, &config)
            };
        }
        if let Some(host) = env.get("DOCKER_HOST").filter(|h| !h.is_empty()) {
            return Target::from_url(host, host, env, true);
        }
        if let Some(context) = env.get("DOCKER_CONTEXT").filter(|c| !c.is_empty()) {
            return Target::context(context, env, &config);
        }
        match current_context(&config)? {
            Some(context) => Target::context(&context, env, &config),
            None => Target::default_context(env),
        }
    }

    /// The context "default": DOCKER_HOST, else the local socket.
    fn default_context(env: &Env) -> Result<Target> {
        match env.get("DOCKER_HOST").filter(|h| !h.is_empty()) {
            Some(host) => Target::from_url(host, "default", env, true),
            None => Ok(Target {
                name: "default".into(),
                endpoint: Endpoint::Unix(LOCAL_SOCKET.into()),
            }),
        }
    }

    /// A context by name, from the docker CLI's context store.
    fn context(name: &str, env: &Env, config: &Path) -> Result<Target> {
        if name == "default" {
            return Target::default_context(env);
        }
        let id = context_id(name);
        let meta = config.join("contexts/meta").join(&id).join("meta.json");
        let text = match std::fs::read_to_string(&meta) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let known = contexts(config);
                return Err(Error::Invalid(format!(
                    "there is no Docker context {name:?} (known: {}). List them with `docker \
                     context ls`, make one with `docker context create {name} --docker \
                     host=ssh://USER@HOST`, or give --engine a URL (unix://, tcp://, ssh://).",
                    if known.is_empty() {
                        "only default".to_string()
                    } else {
                        format!("default, {}", known.join(", "))
                    }
                )));
            }
            Err(e) => {
                return Err(Error::io(format!(
                    "read Docker context {name:?} ({})",
                    meta.display()
                ))(e));
            }
        };
        let meta: Meta = serde_json::from_str(&text).map_err(|e| {
            Error::Invalid(format!(
                "Docker context {name:?} ({}) does not read: {e}. Recreate it with `docker \
                 context create`.",
                meta.display()
            ))
        })?;
        let docker = meta.endpoints.docker.ok_or_else(|| {
            Error::Invalid(format!(
                "Docker context {name:?} has no Docker endpoint. Recreate it with `docker \
                 context create {name} --docker host=URL`."
            ))
        })?;
        let mut target = Target::from_url(&docker.host, name, env, false)?;
        if let Endpoint::Tcp { tls, .. } = &mut target.endpoint {
            let dir = config.join("contexts/tls").join(&id).join("docker");
            if dir.join("ca.pem").exists() {
                if docker.skip_tls_verify {
                    return Err(skip_verify(name));
                }
                *tls = Some(TlsFiles::in_dir(&dir));
            }
        }
        Ok(target)
    }

    /// A host URL; `tls_env` when DOCKER_TLS_VERIFY and DOCKER_CERT_PATH apply to it (a URL
    /// given as DOCKER_HOST or --engine, as to the docker CLI's -H; a context has its own).
    fn from_url(url: &str, name: &str, env: &Env, tls_env: bool) -> Result<Target> {
        let malformed = |why: &str| {
            Error::Invalid(format!(
                "the engine {url:?} is not a Docker host URL: {why}. Give one as DOCKER_HOST \
                 takes it: unix:///var/run/docker.sock, tcp://HOST:2376 (with TLS), or \
                 ssh://USER@HOST; or the name of a Docker context."
            ))
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| malformed("no scheme"))?;
        let endpoint = match scheme {
            "unix" => {
                if !rest.starts_with('/') {
                    return Err(malformed("a unix socket needs an absolute path"));
                }
                Endpoint::Unix(rest.into())
            }
            "tcp" => {
                let hostport = rest.trim_end_matches('/');
                if hostport.contains('/') {
                    return Err(malformed("a tcp URL has no path"));
                }
                let (host, port) = split_port(hostport).map_err(|why| malformed(&why))?;
                if host.is_empty() {
                    return Err(malformed("no host"));
                }
                let tls = if tls_env { tls_from_env(env)? } else { None };
                let port = port.unwrap_or(if tls.is_some() { 2376 } else { 2375 });
                Endpoint::Tcp { host, port, tls }
            }
            "ssh" => {
                let hostport = rest.trim_end_matches('/');
                if hostport.contains('/') {
                    return Err(malformed("an ssh URL has no path"));
                }
                let (user, hostport) = match hostport.rsplit_once('@') {
                    Some((user, h)) if !user.is_empty() => (Some(user.to_string()), h),
                    Some(_) => return Err(malformed("an empty user before @")),
                    None => (None, hostport),
                };
                let (host, port) = split_port(hostport).map_err(|why| malformed(&why))?;
                if host.is_empty() {
                    return Err(malformed("no host"));
                }
                Endpoint::Ssh { user, host, port }
            }
            other => {
                return Err(malformed(&format!(
                    "lab speaks unix, tcp and ssh, not {other}"
                )));
            }
        };
        Ok(Target {
            name: name.to_string(),
            endpoint,
        })
    }

    /// The URL the engine is reached at, as DOCKER_HOST would take it.
    pub fn url(&self) -> String {
        match &self.endpoint {
            Endpoint::Unix(path) => format!("unix://{}", path.display()),
            Endpoint::Tcp { host, port, .. } => format!("tcp://{}:{port}", bracket(host)),
            Endpoint::Ssh { user, host, port } => format!(
                "ssh://{}{}{}",
                user.as_ref().map(|u| format!("{u}@")).unwrap_or_default(),
                bracket(host),
                port.map(|p| format!(":{p}")).unwrap_or_default()
            ),
        }
    }

    /// The machine the engine runs on, as seen from here: None for a socket on this machine.
    pub fn remote_host(&self) -> Option<&str> {
        match &self.endpoint {
            Endpoint::Unix(_) => None,
            Endpoint::Tcp { host, .. } | Endpoint::Ssh { host, .. } => Some(host),
        }
    }

    /// Where a port this engine publishes on host address `bound` is reached from here: on
    /// this machine, that address (loopback for "every interface"); on another, the address
    /// itself when it names one of that machine's interfaces, else the machine's own name (its
    /// loopback is not this one's).
    pub fn reach(&self, bound: IpAddr) -> String {
        match self.remote_host() {
            None if bound.is_unspecified() => "127.0.0.1".into(),
            None => bound.to_string(),
            Some(host) if bound.is_unspecified() => host.to_string(),
            Some(host) if bound.is_loopback() && !is_loopback(host) => host.to_string(),
            Some(_) => bound.to_string(),
        }
    }

    /// The host address a lab's ports are published on when `--publish` is not given: this
    /// machine's loopback for a local engine (nothing exposed); for another machine, its own
    /// address when the URL names a loopback one (a second engine on this machine), else every
    /// interface, as ports on its loopback could not be reached from here.
    pub fn default_publish(&self) -> IpAddr {
        match self.remote_host() {
            None => IpAddr::from([127, 0, 0, 1]),
            Some(host) => match host.parse::<IpAddr>() {
                Ok(ip) if ip.is_loopback() => ip,
                _ => IpAddr::from([0, 0, 0, 0]),
            },
        }
    }

    /// Whether ports published on `bound` can be reached from here at all: not those on the
    /// loopback of another machine.
    pub fn reachable(&self, bound: IpAddr) -> bool {
        !(bound.is_loopback() && self.remote_host().is_some_and(|h| !is_loopback(h)))
    }
}

/// "localhost" or a loopback address.
fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// "[::1]" for an IPv6 literal in a URL, the host itself otherwise.
fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// "host:port", "[v6]:port" or "host" into its parts.
fn split_port(hostport: &str) -> std::result::Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| "an unclosed [ in the host".to_string())?;
        (host, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    let port = port
        .map(|p| {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("{p:?} is not a port"))
        })
        .transpose()?;
    Ok((host.to_string(), port))
}

/// DOCKER_TLS_VERIFY and DOCKER_CERT_PATH, as the docker CLI reads them for DOCKER_HOST.
fn tls_from_env(env: &Env) -> Result<Option<TlsFiles>> {
    let verify = env
        .get("DOCKER_TLS_VERIFY")
        .is_some_and(|v| !v.is_empty() && v != "0");
    let path = env.get("DOCKER_CERT_PATH").filter(|p| !p.is_empty());
    if !verify {
        return match path {
            // The docker CLI's DOCKER_TLS without verification: lab never talks to an engine
            // it cannot authenticate.
            Some(_) if env.contains_key("DOCKER_TLS") => Err(skip_verify("DOCKER_HOST")),
            _ => Ok(None),
        };
    }
    let dir = match path {
        Some(p) => PathBuf::from(p),
        None => config_dir(env),
    };
    Ok(Some(TlsFiles::in_dir(&dir)))
}

fn skip_verify(name: &str) -> Error {
    Error::Invalid(format!(
        "the engine {name} is set to use TLS without verifying the daemon's certificate; lab \
         only speaks to an engine it can verify. Give it the CA (DOCKER_TLS_VERIFY=1 with \
         DOCKER_CERT_PATH holding ca.pem, cert.pem and key.pem, or a context made with \
         `--docker host=tcp://HOST:2376,ca=…,cert=…,key=…`)."
    ))
}

impl TlsFiles {
    fn in_dir(dir: &Path) -> TlsFiles {
        TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }
}

/// A context's directory name in the store: the SHA-256 of its name, in hex.
fn context_id(name: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, name.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// config.json's currentContext, if any.
fn current_context(config: &Path) -> Result<Option<String>> {
    #[derive(Deserialize)]
    struct Config {
        #[serde(rename = "currentContext", default)]
        current: Option<String>,
    }
    let path = config.join("config.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let config: Config = serde_json::from_str(&text).map_err(|e| {
        Error::Invalid(format!(
            "the docker CLI's config {} does not read: {e}. Fix or remove it.",
            path.display()
        ))
    })?;
    Ok(config.current.filter(|c| !c.is_empty() && c != "default"))
}

/// The names of every context in the store (without "default").
pub fn contexts(config: &Path) -> Vec<String> {
    let Ok(dirs) = std::fs::read_dir(config.join("contexts/meta")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = dirs
        .filter_map(|d| {
            let text = std::fs::read_to_string(d.ok()?.path().join("meta.json")).ok()?;
            Some(serde_json::from_str::<Meta>(&text).ok()?.name)
        })
        .collect();
    names.sort();
    names
}

/// A context's meta.json, the parts lab reads.
#[derive(Deserialize)]
struct Meta {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Endpoints", default)]
    endpoints: Endpoints,
}

#[derive(Deserialize, Default)]
struct Endpoints {
    docker: Option<DockerEndpoint>,
}

#[derive(Deserialize)]
struct DockerEndpoint {
    #[serde(rename = "Host")]
    host: String,
    #[serde(rename = "SkipTLSVerify", default)]
    skip_tls_verify: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A docker config dir with contexts `teach1` (ssh) and `tls` (tcp with TLS material).
    fn store() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let add = |name: &str, host: &str, tls: bool| {
            let meta = dir.path().join("contexts/meta").join(context_id(name));
            std::fs::create_dir_all(&meta).unwrap();
            std::fs::write(
                meta.join("meta.json"),
                format!(
                    r#"{{"Name":"{name}","Metadata":{{}},"Endpoints":{{"docker":{{"Host":"{host}","SkipTLSVerify":false}}}}}}"#
                ),
            )
            .unwrap();
            if tls {
                let t = dir
                    .path()
                    .join("contexts/tls")
                    .join(context_id(name))
                    .join("docker");
                std::fs::create_dir_all(&t).unwrap();
                std::fs::write(t.join("ca.pem"), "x").unwrap();
            }
        };
        add("teach1", "ssh://ops@teach1.example:2222", false);
        add("tls", "tcp://10.0.0.5:2376", true);
        dir
    }

    #[test]
    fn the_context_store_is_keyed_by_the_sha256_of_the_name() {
        // As the docker CLI names it (digest.FromString("default") without the algorithm).
        assert_eq!(
            context_id("default"),
            "37a8eec1ce19687d132fe29051dca629d164e2c4958ba141d5f4133a33f0688f"
        );
    }

    #[test]
    fn without_anything_set_it_is_the_local_socket() {
        let t = Target::resolve(None, &env(&[("HOME", "/nonexistent")])).unwrap();
        assert_eq!(t.name, "default");
        assert_eq!(t.endpoint, Endpoint::Unix(LOCAL_SOCKET.into()));
        assert_eq!(t.remote_host(), None);
    }

    #[test]
    fn docker_host_wins_over_contexts_and_brings_its_tls() {
        let dir = store();
        let d = dir.path().to_str().unwrap();
        let e = env(&[
            ("DOCKER_CONFIG", d),
            ("DOCKER_CONTEXT", "teach1"),
            ("DOCKER_HOST", "tcp://127.0.0.2:23760"),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", "/certs"),
        ]);
        let t = Target::resolve(None, &e).unwrap();
        let Endpoint::Tcp { host, port, tls } = &t.endpoint else {
            panic!("{t:?}")
        };
        assert_eq!((host.as_str(), *port), ("127.0.0.2", 23760));
        assert_eq!(tls.as_ref().unwrap().key, PathBuf::from("/certs/key.pem"));
        assert_eq!(t.remote_host(), Some("127.0.0.2"));
    }

    #[test]
    fn a_context_is_found_by_name_with_its_tls_material() {
        let dir = store();
        let e = env(&[("DOCKER_CONFIG", dir.path().to_str().unwrap())]);
        let t = Target::resolve(Some("teach1"), &e).unwrap();
        assert_eq!(
            t.endpoint,
            Endpoint::Ssh {
                user: Some("ops".into()),
                host: "teach1.example".into(),
                port: Some(2222)
            }
        );
        assert_eq!(t.url(), "ssh://ops@teach1.example:2222");
        let t = Target::resolve(Some("tls"), &e).unwrap();
        let Endpoint::Tcp { tls: Some(tls), .. } = &t.endpoint else {
            panic!("{t:?}")
        };
        assert!(tls.ca.ends_with("docker/ca.pem"));
        // DOCKER_CONTEXT, then config.json's current context.
        let e2 = env(&[
            ("DOCKER_CONFIG", dir.path().to_str().unwrap()),
            ("DOCKER_CONTEXT", "tls"),
        ]);
        assert_eq!(Target::resolve(None, &e2).unwrap().name, "tls");
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"auths":{},"currentContext":"teach1"}"#,
        )
        .unwrap();
        assert_eq!(Target::resolve(None, &e).unwrap().name, "teach1");
    }

    #[test]
    fn an_unknown_context_lists_the_known_ones() {
        let dir = store();
        let e = env(&[("DOCKER_CONFIG", dir.path().to_str().unwrap())]);
        let err = Target::resolve(Some("teach9"), &e).unwrap_err().to_string();
        assert!(err.contains("no Docker context \"teach9\""), "{err}");
        assert!(err.contains("known: default, teach1, tls"), "{err}");
    }

    #[test]
    fn published_ports_are_reached_where_the_engine_is() {
        let e = env(&[]);
        let local = Target::resolve(Some("unix:///run/x.sock"), &e).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(local.reach(ip("0.0.0.0")), "127.0.0.1");
        assert_eq!(local.reach(ip("127.0.0.2")), "127.0.0.2");
        assert_eq!(local.default_publish(), ip("127.0.0.1"));
        let far = Target::resolve(Some("ssh://ops@teach1.example"), &e).unwrap();
        assert_eq!(far.reach(ip("0.0.0.0")), "teach1.example");
        assert_eq!(far.reach(ip("10.0.0.5")), "10.0.0.5");
        assert_eq!(far.reach(ip("127.0.0.1")), "teach1.example");
        assert!(!far.reachable(ip("127.0.0.1")));
        assert_eq!(far.default_publish(), ip("0.0.0.0"));
        // A second engine on this machine, reached over tcp on another loopback address.
        let near = Target::resolve(Some("tcp://127.0.0.2:23760"), &e).unwrap();
        assert_eq!(near.default_publish(), ip("127.0.0.2"));
        assert_eq!(near.reach(ip("127.0.0.2")), "127.0.0.2");
        assert!(near.reachable(ip("127.0.0.2")));
    }

    #[test]
    fn malformed_urls_say_what_is_wrong() {
        let e = env(&[]);
        for (url, why) in [
            ("http://x:2375", "not http"),
            ("tcp://:2375", "no host"),
            ("tcp://h:99999", "\"99999\" is not a port"),
            ("unix://relative.sock", "absolute path"),
            ("ssh://@h", "empty user"),
        ] {
            let err = Target::resolve(Some(url), &e).unwrap_err().to_string();
            assert!(err.contains(why), "{url}: {err}");
        }
        let t = Target::resolve(Some("tcp://[::1]:2375"), &e).unwrap();
        assert_eq!(t.url(), "tcp://[::1]:2375");
    }
}
