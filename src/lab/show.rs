//! `lab list` and `lab status`: what labs exist and what their nodes are doing.

use std::fmt::Write as _;

use super::Lab;
use crate::engine::Engine;
use crate::error::Result;

/// One line per lab: name, nodes, running/stopped, network, subnet, ports.
pub async fn list(engine: &Engine) -> Result<String> {
    let labs = super::all(engine).await?;
    if labs.is_empty() {
        return Ok("no labs on this Docker Engine; `lab create` makes one".into());
    }
    let networks = engine.networks().await?;
    let mut out = format!(
        "{:<14} {:<6} {:<12} {:<16} {:<18} {}\n",
        "lab", "nodes", "state", "network", "subnet", "ports"
    );
    for lab in &labs {
        let subnet = networks
            .iter()
            .find(|n| n.name == lab.network)
            .and_then(|n| n.subnets.first())
            .map(|(s, _)| s.to_string())
            .unwrap_or_else(|| "-".into());
        let ports: Vec<u16> = lab.nodes.iter().filter_map(|n| n.port()).collect();
        let ports = match (ports.iter().min(), ports.iter().max()) {
            (Some(lo), Some(hi)) if lo != hi => format!("{lo}-{hi}"),
            (Some(lo), _) => lo.to_string(),
            _ => "-".into(),
        };
        let _ = writeln!(
            out,
            "{:<14} {:<6} {:<12} {:<16} {:<18} {ports}",
            lab.name,
            lab.nodes.len(),
            state(lab),
            lab.network,
            subnet
        );
    }
    Ok(out.trim_end().to_string())
}

fn state(lab: &Lab) -> String {
    let running = lab.nodes.iter().filter(|n| n.running()).count();
    match running {
        0 => "stopped".into(),
        r if r == lab.nodes.len() => "running".into(),
        r => format!("{r}/{} running", lab.nodes.len()),
    }
}

/// Per node: name, state, address, host port, roles.
pub async fn status(engine: &Engine, name: &str) -> Result<String> {
    let lab = super::get(engine, name).await?;
    Ok(nodes_table(&lab))
}

pub fn print_nodes(lab: &Lab) {
    println!("{}", nodes_table(lab));
}

fn nodes_table(lab: &Lab) -> String {
    let mut out = format!(
        "{:<12} {:<10} {:<16} {:<7} {}\n",
        "node", "state", "address", "port", "roles"
    );
    for n in &lab.nodes {
        let _ = writeln!(
            out,
            "{:<12} {:<10} {:<16} {:<7} {}",
            n.name,
            n.container.state,
            n.ip(&lab.network)
                .map(|a| a.to_string())
                .unwrap_or_else(|| "-".into()),
            n.port()
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into()),
            n.roles.label()
        );
    }
    out.trim_end().to_string()
}
