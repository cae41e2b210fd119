//! Helpers for the integration tests: run the `lab` binary, and look at what it made through
//! the Docker Engine directly (bollard), independently of the tool's own reports. Every test
//! owns its lab names and sweeps them by label before and after; nothing else is touched.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HostConfig, Ipam, IpamConfig,
    NetworkCreateRequest, NetworkingConfig, PortBinding,
};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, InspectNetworkOptions, ListContainersOptions,
    ListNetworksOptions, ListVolumesOptions, RemoveContainerOptions, RemoveVolumeOptions,
    StopContainerOptions,
};
use futures_util::StreamExt;

/// The lab image the binary under test uses, from the library it is built on.
pub fn image() -> &'static str {
    pgha_lab::image::definition::IMAGE
}
/// Marks objects a test made itself (foreign to every lab).
pub const TEST_LABEL: &str = "io.pgha-lab.test";
const LAB_LABEL: &str = pgha_lab::labels::LAB;

/// What a `lab` run left.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.code == 0
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs the `lab` binary under test.
pub fn lab(args: &[&str]) -> Run {
    lab_env(args, &[])
}

/// Runs the `lab` binary under test with extra environment variables.
pub fn lab_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_lab"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("the lab binary runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `lab` and insists it succeeds.
pub fn lab_ok(args: &[&str]) -> Run {
    let run = lab(args);
    assert!(run.ok(), "lab {} failed:\n{run}", args.join(" "));
    run
}

pub async fn docker() -> Docker {
    Docker::connect_with_defaults()
        .expect("docker socket")
        .negotiate_version()
        .await
        .expect("docker answers")
}

/// Fails the test early, and clearly, when the image was not built first.
pub async fn require_image(d: &Docker) {
    assert!(
        d.inspect_image(image()).await.is_ok(),
        "the lab image {} is missing: run the tests with scripts/test.sh, which builds it",
        image()
    );
}

/// The ids of the containers, and the names of the volumes and networks, carrying `label`
/// ("key=value").
async fn carrying(d: &Docker, label: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let filters = Some(HashMap::from([(
        "label".to_string(),
        vec![label.to_string()],
    )]));
    let containers = d
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: filters.clone(),
            ..Default::default()
        }))
        .await
        .unwrap();
    let volumes = d
        .list_volumes(Some(ListVolumesOptions {
            filters: filters.clone(),
        }))
        .await
        .unwrap();
    let networks = d
        .list_networks(Some(ListNetworksOptions { filters }))
        .await
        .unwrap();
    (
        containers.into_iter().filter_map(|c| c.id).collect(),
        volumes
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect(),
        networks.into_iter().filter_map(|n| n.name).collect(),
    )
}

/// Removes every container, volume and network carrying `label`, and nothing else.
async fn remove_carrying(d: &Docker, label: &str) {
    let (containers, volumes, networks) = carrying(d, label).await;
    for id in containers {
        let options = RemoveContainerOptions {
            force: true,
            ..Default::default()
        };
        let _ = d.remove_container(&id, Some(options)).await;
    }
    for name in volumes {
        let _ = d.remove_volume(&name, None::<RemoveVolumeOptions>).await;
    }
    for name in networks {
        let _ = d.remove_network(&name).await;
    }
}

/// Removes what the labs called `labs` left, by their label, their lock containers included.
pub async fn sweep(d: &Docker, labs: &[&str]) {
    for lab in labs {
        remove_carrying(d, &format!("{LAB_LABEL}={lab}")).await;
        remove_carrying(d, &format!("{}={lab}", pgha_lab::labels::LOCK_LAB)).await;
    }
}

/// Removes the objects a test made itself (by TEST_LABEL=value).
async fn sweep_test_objects(d: &Docker, value: &str) {
    remove_carrying(d, &format!("{TEST_LABEL}={value}")).await;
}

/// How many containers, volumes and networks carry the lab's label.
pub async fn labelled(d: &Docker, lab: &str) -> (usize, usize, usize) {
    let (c, v, n) = carrying(d, &format!("{LAB_LABEL}={lab}")).await;
    (c.len(), v.len(), n.len())
}

/// Sweeps a test's labs and own objects when dropped, so a failing test leaves nothing behind
/// for the tests after it.
pub struct Sweep {
    labs: Vec<String>,
    tag: Option<String>,
    /// The engine to sweep: this machine's default one when None.
    engine: Option<Docker>,
}

impl Sweep {
    /// Sweeps `labs` off the engine `d` when dropped (a second engine's labs).
    pub fn on(d: Docker, labs: &[&str]) -> Sweep {
        Sweep {
            labs: labs.iter().map(|l| l.to_string()).collect(),
            tag: None,
            engine: Some(d),
        }
    }
}

impl Drop for Sweep {
    fn drop(&mut self) {
        let (labs, tag, engine) = (self.labs.clone(), self.tag.clone(), self.engine.clone());
        // The test's own runtime may be gone or panicking: a fresh one on its own thread.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the sweep");
            runtime.block_on(async {
                let d = match engine {
                    Some(d) => d,
                    None => docker().await,
                };
                let labs: Vec<&str> = labs.iter().map(String::as_str).collect();
                sweep(&d, &labs).await;
                if let Some(tag) = tag {
                    sweep_test_objects(&d, &tag).await;
                }
            });
        })
        .join();
    }
}

/// The Engine, for a test that owns the labs `labs` and the objects tagged `tag`: the image is
/// checked, whatever an earlier run left is swept now, and what this run leaves is swept when
/// the returned guard drops.
pub async fn setup(labs: &[&str], tag: Option<&str>) -> (Docker, Sweep) {
    let d = docker().await;
    require_image(&d).await;
    sweep(&d, labs).await;
    if let Some(tag) = tag {
        sweep_test_objects(&d, tag).await;
    }
    let guard = Sweep {
        labs: labs.iter().map(|l| l.to_string()).collect(),
        tag: tag.map(str::to_string),
        engine: None,
    };
    (d, guard)
}

/// The container of lab `lab`'s node `node`: inside, every lab's nodes answer to the course's
/// names (pgha2 is container LAB2); any other name is taken for a container's already.
pub fn at(lab: &str, node: &str) -> String {
    match node.strip_prefix("pgha") {
        Some(n) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => format!("{lab}{n}"),
        _ => node.to_string(),
    }
}

/// A command's exit code and stdout inside a container.
pub async fn exec(d: &Docker, container: &str, user: &str, script: &str) -> (i64, String) {
    let created = d
        .create_exec(
            container,
            CreateExecOptions {
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                user: Some(user),
                cmd: Some(vec!["bash", "-lc", script]),
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("exec in {container}: {e}"));
    let mut out = Vec::new();
    if let StartExecResults::Attached { mut output, .. } =
        d.start_exec(&created.id, None).await.unwrap()
    {
        while let Some(Ok(frame)) = output.next().await {
            match frame {
                LogOutput::StdOut { message } | LogOutput::StdErr { message } => {
                    out.extend_from_slice(&message)
                }
                _ => {}
            }
        }
    }
    let code = loop {
        let info = d.inspect_exec(&created.id).await.unwrap();
        if info.running != Some(true) {
            break info.exit_code.unwrap_or(-1);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    (code, String::from_utf8_lossy(&out).into_owned())
}

/// Like `exec`, insisting on exit 0; returns stdout trimmed.
pub async fn exec_ok(d: &Docker, container: &str, user: &str, script: &str) -> String {
    let (code, out) = exec(d, container, user, script).await;
    assert_eq!(code, 0, "`{script}` in {container} exited {code}: {out}");
    out.trim().to_string()
}

/// Polls `check` until it returns Some, failing the test after `secs`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(secs),
            "{what}: not true after {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A container's address on a network (the static one, kept while stopped).
pub async fn address(d: &Docker, container: &str, network: &str) -> Option<String> {
    let c = d
        .inspect_container(container, None::<InspectContainerOptions>)
        .await
        .ok()?;
    let e = c.network_settings?.networks?.get(network)?.clone();
    e.ipam_config
        .and_then(|i| i.ipv4_address)
        .filter(|a| !a.is_empty())
        .or(e.ip_address.filter(|a| !a.is_empty()))
}

/// The host port a container publishes for 5432.
pub async fn host_port(d: &Docker, container: &str) -> Option<u16> {
    published(d, container, 5432).await
}

/// The host port a container publishes for `port`.
pub async fn published(d: &Docker, container: &str, port: u16) -> Option<u16> {
    let c = d
        .inspect_container(container, None::<InspectContainerOptions>)
        .await
        .ok()?;
    let bindings = c.host_config?.port_bindings?;
    bindings
        .get(&format!("{port}/tcp"))?
        .as_ref()?
        .first()?
        .host_port
        .as_ref()?
        .parse()
        .ok()
}

pub async fn running(d: &Docker, container: &str) -> bool {
    d.inspect_container(container, None::<InspectContainerOptions>)
        .await
        .ok()
        .and_then(|c| c.state)
        .and_then(|s| s.running)
        .unwrap_or(false)
}

pub async fn network_subnet(d: &Docker, network: &str) -> Option<String> {
    d.inspect_network(network, None::<InspectNetworkOptions>)
        .await
        .ok()?
        .ipam?
        .config?
        .first()?
        .subnet
        .clone()
}

/// A foreign network, labelled as the test's own.
pub async fn foreign_network(d: &Docker, name: &str, subnet: &str, tag: &str) {
    d.create_network(NetworkCreateRequest {
        name: name.into(),
        driver: Some("bridge".into()),
        ipam: Some(Ipam {
            config: Some(vec![IpamConfig {
                subnet: Some(subnet.into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        labels: Some(HashMap::from([(TEST_LABEL.to_string(), tag.to_string())])),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("create network {name}: {e}"));
}

/// A foreign container (the lab image, sleeping), labelled as the test's own, optionally with
/// a static address on `network` and a published port; started, then stopped, so that what it
/// holds is only in its configuration.
pub async fn foreign_stopped_container(
    d: &Docker,
    name: &str,
    network: &str,
    ip: Option<&str>,
    port: Option<u16>,
    tag: &str,
) {
    let body = ContainerCreateBody {
        image: Some(image().into()),
        labels: Some(HashMap::from([(TEST_LABEL.to_string(), tag.to_string())])),
        exposed_ports: port.map(|_| vec!["5432/tcp".to_string()]),
        host_config: Some(HostConfig {
            network_mode: Some(network.into()),
            port_bindings: port.map(|p| {
                HashMap::from([(
                    "5432/tcp".to_string(),
                    Some(vec![PortBinding {
                        host_ip: Some("127.0.0.1".into()),
                        host_port: Some(p.to_string()),
                    }]),
                )])
            }),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                network.to_string(),
                EndpointSettings {
                    ipam_config: ip.map(|ip| EndpointIpamConfig {
                        ipv4_address: Some(ip.into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )])),
        }),
        ..Default::default()
    };
    d.create_container(
        Some(CreateContainerOptions {
            name: Some(name.into()),
            ..Default::default()
        }),
        body,
    )
    .await
    .unwrap_or_else(|e| panic!("create {name}: {e}"));
    d.start_container(name, None).await.unwrap();
    d.stop_container(
        name,
        Some(StopContainerOptions {
            t: Some(1),
            ..Default::default()
        }),
    )
    .await
    .unwrap();
}

/// A child process (lab watch, lab serve, chromedriver) with its stdout's lines gathered as
/// they come, killed when dropped.
pub struct Proc {
    pub child: Child,
    out: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    pub fn start(program: &str, args: &[&str]) -> Proc {
        let mut child = Command::new(program)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{program} starts ({e}); scripts/test.sh installs it"));
        let stdout = child.stdout.take().expect("its stdout");
        let out = Arc::new(Mutex::new(Vec::new()));
        let gathered = Arc::clone(&out);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                gathered.lock().unwrap().push(line);
            }
        });
        Proc { child, out }
    }

    /// The first line of its stdout containing `text`, waited for up to `secs`.
    pub async fn line(&self, secs: u64, text: &str) -> String {
        eventually(secs, &format!("a line with {text:?}"), || async {
            self.out
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(text))
                .cloned()
        })
        .await
    }

    /// Every line so far.
    pub fn all(&self) -> String {
        self.out.lock().unwrap().join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
