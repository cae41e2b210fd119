//! Containers, networks and volumes: what the Engine holds (read into plain data the planner can
//! reason about, stopped containers included) and the few changes `lab` makes to them.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, EndpointIpamConfig, EndpointSettings,
    HostConfig, Ipam, IpamConfig, NetworkConnectRequest, NetworkCreateRequest,
    NetworkDisconnectRequest, NetworkingConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum,
    VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptions, DownloadFromContainerOptions, InspectContainerOptions,
    InspectNetworkOptions, KillContainerOptions, ListContainersOptions, ListNetworksOptions,
    ListVolumesOptions, RemoveContainerOptions, RemoveVolumeOptions, StartContainerOptions,
    StopContainerOptions, UploadToContainerOptions,
};
use futures_util::{StreamExt, TryStreamExt};
use ipnet::Ipv4Net;

use super::{Engine, api, is_not_found};
use crate::error::{Error, Result};

/// How long a node's main process has to shut its services down cleanly before Docker kills
/// it: more than stopPatroni's 120 s and stopEtcd's 25 s together.
pub const NODE_STOP_GRACE: Duration = Duration::from_secs(150);

/// A container's attachment to one network.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub network: String,
    /// The address reserved in the endpoint's IPAM config: kept while the container is stopped.
    pub static_ip: Option<Ipv4Addr>,
    /// The address in use right now (running containers only).
    pub ip: Option<Ipv4Addr>,
}

/// A host port a container publishes (or will publish when started).
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedPort {
    /// The container's port (5432 for PostgreSQL, 5000, 5001 and 7000 for HAProxy).
    pub port: u16,
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
}

#[derive(Debug, Clone)]
pub struct ContainerInfo {
    pub name: String,
    pub labels: HashMap<String, String>,
    pub running: bool,
    /// The Engine's word for the state: running, exited, created, ...
    pub state: String,
    pub endpoints: Vec<Endpoint>,
    pub published: Vec<PublishedPort>,
}

#[derive(Debug, Clone)]
pub struct NetworkInfo {
    pub name: String,
    pub driver: String,
    /// IPv4 subnets with their gateways.
    pub subnets: Vec<(Ipv4Net, Option<Ipv4Addr>)>,
    pub labels: HashMap<String, String>,
    /// Names of the containers attached right now (filled by `network`, not by `networks`).
    pub attached: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct VolumeInfo {
    pub name: String,
    pub labels: HashMap<String, String>,
}

/// A container to create.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSpec {
    pub name: String,
    pub hostname: String,
    pub image: String,
    pub env: Vec<String>,
    pub labels: HashMap<String, String>,
    pub network: String,
    pub ip: Ipv4Addr,
    /// `name:address` entries for /etc/hosts; the Engine rewrites them on every start.
    pub extra_hosts: Vec<String>,
    /// The host address the ports are published on.
    pub publish_ip: IpAddr,
    /// (container port, host port) pairs.
    pub publish: Vec<(u16, u16)>,
    /// (volume name, mount point)
    pub volumes: Vec<(String, String)>,
}

/// A bridge network to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkSpec {
    pub name: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    /// Where the Engine may hand out addresses to containers without a static one.
    pub ip_range: Option<Ipv4Net>,
    pub labels: HashMap<String, String>,
}

/// A file to place into a container.
#[derive(Debug, Clone)]
pub struct UploadFile {
    pub path: String,
    pub content: Vec<u8>,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
}

fn label_filter(label: Option<&str>) -> Option<HashMap<String, Vec<String>>> {
    label.map(|l| HashMap::from([("label".to_string(), vec![l.to_string()])]))
}

fn container_info(c: ContainerInspectResponse) -> ContainerInfo {
    let config = c.config.unwrap_or_default();
    let state = c.state.unwrap_or_default();
    let endpoints = c
        .network_settings
        .and_then(|n| n.networks)
        .unwrap_or_default()
        .into_iter()
        .map(|(network, e)| Endpoint {
            network,
            static_ip: e
                .ipam_config
                .and_then(|i| i.ipv4_address)
                .and_then(|a| a.parse().ok()),
            ip: e.ip_address.and_then(|a| a.parse().ok()),
        })
        .collect();
    let published = c
        .host_config
        .and_then(|h| h.port_bindings)
        .unwrap_or_default()
        .into_iter()
        .flat_map(|(key, bindings)| {
            // "5432/tcp"
            let port = key
                .split('/')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            bindings.into_iter().flatten().map(move |b| (port, b))
        })
        .flat_map(|(port, b)| {
            let host_ip = b.host_ip.as_deref().and_then(|a| a.parse().ok());
            port_range(b.host_port.as_deref().unwrap_or(""))
                .into_iter()
                .flatten()
                .map(move |host_port| PublishedPort {
                    port,
                    host_ip,
                    host_port,
                })
        })
        .collect();
    ContainerInfo {
        name: c
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        labels: config.labels.unwrap_or_default(),
        running: state.running == Some(true),
        state: state
            .status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "unknown".into()),
        endpoints,
        published,
    }
}

/// Host ports of a binding: "6432", "6432-6440", or "" (an ephemeral port, nothing reserved).
fn port_range(text: &str) -> Option<std::ops::RangeInclusive<u16>> {
    let mut parts = text.splitn(2, '-');
    let start = parts.next()?.trim().parse::<u16>().ok()?;
    let end = match parts.next() {
        Some(end) => end.trim().parse::<u16>().ok()?,
        None => start,
    };
    Some(start..=end)
}

impl Engine {
    /// Every container on the engine, running or not, optionally only those with `label`
    /// ("key" or "key=value").
    pub async fn containers(&self, label: Option<&str>) -> Result<Vec<ContainerInfo>> {
        let listed = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: label_filter(label),
                ..Default::default()
            }))
            .await
            .map_err(api("list containers"))?;
        // Published ports of stopped containers are only in the full inspect.
        futures_util::stream::iter(listed.into_iter().filter_map(|c| c.id))
            .map(|id| async move { self.container(&id).await })
            .buffered(8)
            .try_filter_map(|c| async move { Ok(c) })
            .try_collect()
            .await
    }

    /// One container by name or id, or None.
    pub async fn container(&self, name: &str) -> Result<Option<ContainerInfo>> {
        match self
            .docker
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
        {
            Ok(c) => Ok(Some(container_info(c))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(api(format!("inspect container {name}"))(e)),
        }
    }

    pub async fn create_container(&self, spec: &ContainerSpec) -> Result<()> {
        let ports: Vec<String> = spec
            .publish
            .iter()
            .map(|(p, _)| format!("{p}/tcp"))
            .collect();
        let body = ContainerCreateBody {
            hostname: Some(spec.hostname.clone()),
            image: Some(spec.image.clone()),
            env: Some(spec.env.clone()),
            labels: Some(spec.labels.clone()),
            exposed_ports: Some(ports.clone()),
            // Time for the node's own clean shutdown when stopped from outside `lab` (docker
            // stop, a daemon restart): pgha-init runs stopPatroni (up to 120 s while PostgreSQL
            // finishes a checkpoint) and then stopEtcd (up to 25 s), so Docker must not kill
            // it sooner.
            stop_timeout: Some(NODE_STOP_GRACE.as_secs() as i64),
            host_config: Some(HostConfig {
                extra_hosts: Some(spec.extra_hosts.clone()),
                port_bindings: Some(
                    ports
                        .into_iter()
                        .zip(&spec.publish)
                        .map(|(port, (_, host_port))| {
                            let binding = PortBinding {
                                host_ip: Some(spec.publish_ip.to_string()),
                                host_port: Some(host_port.to_string()),
                            };
                            (port, Some(vec![binding]))
                        })
                        .collect(),
                ),
                binds: Some(
                    spec.volumes
                        .iter()
                        .map(|(volume, path)| format!("{volume}:{path}"))
                        .collect(),
                ),
                network_mode: Some(spec.network.clone()),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::NO),
                    maximum_retry_count: None,
                }),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    spec.network.clone(),
                    EndpointSettings {
                        ipam_config: Some(EndpointIpamConfig {
                            ipv4_address: Some(spec.ip.to_string()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                )])),
            }),
            ..Default::default()
        };
        self.docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(spec.name.clone()),
                    ..Default::default()
                }),
                body,
            )
            .await
            .map_err(api(format!("create container {}", spec.name)))?;
        Ok(())
    }

    pub async fn start_container(&self, name: &str) -> Result<()> {
        self.docker
            .start_container(name, None::<StartContainerOptions>)
            .await
            .map_err(api(format!("start container {name}")))
    }

    /// Stops a container, giving its main process `grace` to exit before it is killed.
    pub async fn stop_container(&self, name: &str, grace: Duration) -> Result<()> {
        self.docker
            .stop_container(
                name,
                Some(StopContainerOptions {
                    t: Some(grace.as_secs() as i32),
                    ..Default::default()
                }),
            )
            .await
            .map_err(api(format!("stop container {name}")))
    }

    /// SIGKILL, the way a machine dies.
    pub async fn kill_container(&self, name: &str) -> Result<()> {
        self.docker
            .kill_container(
                name,
                Some(KillContainerOptions {
                    signal: "KILL".into(),
                }),
            )
            .await
            .map_err(api(format!("kill container {name}")))
    }

    /// Removes a container, running or not; absent is fine.
    pub async fn remove_container(&self, name: &str) -> Result<()> {
        match self
            .docker
            .remove_container(
                name,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await
        {
            Err(e) if !is_not_found(&e) => Err(api(format!("remove container {name}"))(e)),
            _ => Ok(()),
        }
    }

    /// Places files into a container; their directories must exist.
    pub async fn upload(&self, container: &str, files: &[UploadFile]) -> Result<()> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let body = archive(files, now).map_err(Error::io(format!("pack files for {container}")))?;
        self.docker
            .upload_to_container(
                container,
                Some(UploadToContainerOptions {
                    path: "/".into(),
                    copy_uidgid: Some("1".into()),
                    ..Default::default()
                }),
                bollard::body_full(bytes::Bytes::from(body)),
            )
            .await
            .map_err(api(format!("copy files into {container}")))
    }

    /// The contents of one regular file in a container, running or stopped; None when it does
    /// not exist.
    pub async fn download(&self, container: &str, path: &str) -> Result<Option<Vec<u8>>> {
        let options = DownloadFromContainerOptions {
            path: path.to_string(),
        };
        let chunks: std::result::Result<Vec<bytes::Bytes>, _> = self
            .docker
            .download_from_container(container, Some(options))
            .try_collect()
            .await;
        let body = match chunks {
            Ok(chunks) => chunks.concat(),
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(api(format!("copy {path} out of {container}"))(e)),
        };
        let read = || -> std::io::Result<Option<Vec<u8>>> {
            let mut archive = tar::Archive::new(body.as_slice());
            for entry in archive.entries()? {
                let mut entry = entry?;
                if entry.header().entry_type().is_file() {
                    let mut content = Vec::new();
                    std::io::Read::read_to_end(&mut entry, &mut content)?;
                    return Ok(Some(content));
                }
            }
            Ok(None)
        };
        read().map_err(Error::io(format!("unpack {path} from {container}")))
    }

    /// Every network, from the list (subnets and labels; `attached` stays empty).
    pub async fn networks(&self) -> Result<Vec<NetworkInfo>> {
        let listed = self
            .docker
            .list_networks(None::<ListNetworksOptions>)
            .await
            .map_err(api("list networks"))?;
        Ok(listed
            .into_iter()
            .map(|n| network_info(n.name, n.driver, n.ipam, n.labels, Vec::new()))
            .collect())
    }

    /// One network by name, with the containers attached to it now; None when absent.
    pub async fn network(&self, name: &str) -> Result<Option<NetworkInfo>> {
        match self
            .docker
            .inspect_network(name, None::<InspectNetworkOptions>)
            .await
        {
            Ok(n) => {
                let attached = n
                    .containers
                    .unwrap_or_default()
                    .into_values()
                    .filter_map(|c| c.name)
                    .collect();
                Ok(Some(network_info(
                    n.name, n.driver, n.ipam, n.labels, attached,
                )))
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(api(format!("inspect network {name}"))(e)),
        }
    }

    pub async fn create_network(&self, spec: &NetworkSpec) -> Result<()> {
        let request = NetworkCreateRequest {
            name: spec.name.clone(),
            driver: Some("bridge".into()),
            ipam: Some(Ipam {
                driver: Some("default".into()),
                config: Some(vec![IpamConfig {
                    subnet: Some(spec.subnet.to_string()),
                    gateway: Some(spec.gateway.to_string()),
                    ip_range: spec.ip_range.map(|r| r.to_string()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            labels: Some(spec.labels.clone()),
            ..Default::default()
        };
        self.docker
            .create_network(request)
            .await
            .map_err(api(format!(
                "create network {} ({})",
                spec.name, spec.subnet
            )))?;
        Ok(())
    }

    /// Removes a network; absent is fine.
    pub async fn remove_network(&self, name: &str) -> Result<()> {
        match self.docker.remove_network(name).await {
            Err(e) if !is_not_found(&e) => Err(api(format!("remove network {name}"))(e)),
            _ => Ok(()),
        }
    }

    /// Attaches a container to a network with a given address (the one it had before).
    pub async fn connect_network(
        &self,
        network: &str,
        container: &str,
        ip: Ipv4Addr,
    ) -> Result<()> {
        self.docker
            .connect_network(
                network,
                NetworkConnectRequest {
                    container: container.to_string(),
                    endpoint_config: Some(EndpointSettings {
                        ipam_config: Some(EndpointIpamConfig {
                            ipv4_address: Some(ip.to_string()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                },
            )
            .await
            .map_err(api(format!("connect {container} to network {network}")))
    }

    pub async fn disconnect_network(&self, network: &str, container: &str) -> Result<()> {
        self.docker
            .disconnect_network(
                network,
                NetworkDisconnectRequest {
                    container: container.to_string(),
                    force: Some(true),
                },
            )
            .await
            .map_err(api(format!(
                "disconnect {container} from network {network}"
            )))
    }

    /// Volumes, optionally only those with `label`.
    pub async fn volumes(&self, label: Option<&str>) -> Result<Vec<VolumeInfo>> {
        let listed = self
            .docker
            .list_volumes(Some(ListVolumesOptions {
                filters: label_filter(label),
            }))
            .await
            .map_err(api("list volumes"))?;
        Ok(listed
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| VolumeInfo {
                name: v.name,
                labels: v.labels,
            })
            .collect())
    }

    pub async fn create_volume(&self, name: &str, labels: &HashMap<String, String>) -> Result<()> {
        self.docker
            .create_volume(VolumeCreateRequest {
                name: Some(name.to_string()),
                labels: Some(labels.clone()),
                ..Default::default()
            })
            .await
            .map_err(api(format!("create volume {name}")))?;
        Ok(())
    }

    /// Removes a volume; absent is fine.
    pub async fn remove_volume(&self, name: &str) -> Result<()> {
        match self
            .docker
            .remove_volume(name, None::<RemoveVolumeOptions>)
            .await
        {
            Err(e) if !is_not_found(&e) => Err(api(format!("remove volume {name}"))(e)),
            _ => Ok(()),
        }
    }
}

/// A tar archive of `files` (paths relative to its root), every entry with modification time
/// `mtime`.
pub fn archive(files: &[UploadFile], mtime: u64) -> std::io::Result<Vec<u8>> {
    let mut archive = tar::Builder::new(Vec::new());
    for f in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(f.content.len() as u64);
        header.set_mode(f.mode);
        header.set_uid(f.uid);
        header.set_gid(f.gid);
        header.set_mtime(mtime);
        archive.append_data(
            &mut header,
            f.path.trim_start_matches('/'),
            f.content.as_slice(),
        )?;
    }
    archive.into_inner()
}

fn network_info(
    name: Option<String>,
    driver: Option<String>,
    ipam: Option<Ipam>,
    labels: Option<HashMap<String, String>>,
    attached: Vec<String>,
) -> NetworkInfo {
    let subnets = ipam
        .and_then(|i| i.config)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|c| {
            let subnet: Ipv4Net = c.subnet?.parse().ok()?;
            let gateway = c.gateway.and_then(|g| g.parse().ok());
            Some((subnet, gateway))
        })
        .collect();
    NetworkInfo {
        name: name.unwrap_or_default(),
        driver: driver.unwrap_or_default(),
        subnets,
        labels: labels.unwrap_or_default(),
        attached,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges_expand() {
        assert_eq!(port_range("6432"), Some(6432..=6432));
        assert_eq!(port_range("6432-6434"), Some(6432..=6434));
        assert_eq!(port_range(""), None);
        assert_eq!(port_range("junk"), None);
    }
}
