//! The no-registry path: a Debian trixie root filesystem made with debootstrap from the package
//! mirror (scripts/build-rootfs.sh, compiled in), ready to import as the image's base.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::error::{Error, Result};
use crate::progress::{Progress, Step};

const SCRIPT: &str = include_str!("../../scripts/build-rootfs.sh");
const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

/// Makes sure this machine can debootstrap: Linux, root, and debootstrap, which is installed
/// from the host's own package lists when the host is Debian or Ubuntu with apt (so that the
/// README's one command works on a fresh machine). Otherwise says exactly why it cannot, and
/// what to do instead.
pub async fn preflight(progress: &Progress) -> Result<()> {
    let no_registry = "No container registry answered, so the image's base must be built \
                       from the Debian mirror with debootstrap";
    if !cfg!(target_os = "linux") {
        return Err(Error::Failed(format!(
            "{no_registry}, which needs Linux. On this machine, make a registry reachable (or \
             load debian:trixie-slim with `docker load`) and run `lab image build` again."
        )));
    }
    if !rustix::process::geteuid().is_root() {
        return Err(Error::Failed(format!(
            "{no_registry}, which must run as root. Run the image build once as root (`sudo \
             lab image build`, or `sudo $(command -v lab) image build` when sudo does not find \
             it); labs themselves need no root."
        )));
    }
    if find_program("debootstrap").is_some() {
        return Ok(());
    }
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    if find_program("apt-get").is_none() || !debian_family(&os_release) {
        return Err(Error::Failed(format!(
            "{no_registry}, but debootstrap is not installed, and this is not a Debian or \
             Ubuntu host whose apt could install it. Install debootstrap with this system's \
             package manager and run `lab image build` again."
        )));
    }
    let step = progress.step("debootstrap is not installed: apt-get install debootstrap");
    let install = "export DEBIAN_FRONTEND=noninteractive; \
                   apt-get install -y -qq debootstrap || { apt-get update -qq || true; \
                   apt-get install -y -qq debootstrap; }";
    let out = tokio::process::Command::new("bash")
        .args(["-c", install])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(Error::io("run apt-get to install debootstrap"))?;
    if !out.status.success() || find_program("debootstrap").is_none() {
        let said = String::from_utf8_lossy(&out.stderr);
        return Err(Error::Failed(format!(
            "{no_registry}, and installing debootstrap with apt-get failed ({}): {}. Install \
             it yourself (`apt-get install debootstrap`) and run `lab image build` again.",
            out.status,
            said.trim()
        )));
    }
    step.done("installed from the host's Debian packages");
    Ok(())
}

/// Whether /etc/os-release describes Debian or a derivative (Ubuntu included).
fn debian_family(os_release: &str) -> bool {
    os_release.lines().any(|l| {
        let Some((key, value)) = l.split_once('=') else {
            return false;
        };
        let value = value.trim_matches('"');
        (key == "ID" || key == "ID_LIKE")
            && value
                .split_whitespace()
                .any(|v| v == "debian" || v == "ubuntu")
    })
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
}

/// The Debian mirror this host's apt already uses, else deb.debian.org.
pub fn host_mirror() -> String {
    let mut texts: Vec<String> = std::fs::read_to_string("/etc/apt/sources.list")
        .into_iter()
        .collect();
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        texts.extend(paths.iter().filter_map(|p| std::fs::read_to_string(p).ok()));
    }
    mirror_in(&texts).unwrap_or_else(|| DEFAULT_MIRROR.to_string())
}

/// The first Debian archive URI (not the security archive, not a third-party repository) in
/// apt source files, one-line or deb822 format.
fn mirror_in(texts: &[String]) -> Option<String> {
    texts
        .iter()
        .flat_map(|t| t.lines())
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .flat_map(|l| {
            let words = l.strip_prefix("URIs:").unwrap_or(l);
            words.split_whitespace()
        })
        .filter(|w| w.starts_with("http://") || w.starts_with("https://"))
        .map(|w| w.trim_end_matches('/'))
        .find(|w| w.ends_with("/debian"))
        .map(str::to_string)
}

/// Runs debootstrap and returns the root filesystem tarball (the caller removes it).
pub async fn build(mirror: &str, step: &Step) -> Result<PathBuf> {
    let out = std::env::temp_dir().join(format!("pgha-lab-rootfs-{}.tar", std::process::id()));
    let mut child = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(SCRIPT)
        .arg("build-rootfs.sh")
        .arg(mirror)
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(Error::io("start bash for debootstrap"))?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    for pipe in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = tx.send(line);
            }
        });
    }
    drop(tx);
    let mut tail: Vec<String> = Vec::new();
    while let Some(line) = rx.recv().await {
        step.detail(&line);
        tail.push(line);
        if tail.len() > 20 {
            tail.remove(0);
        }
    }
    let status = child
        .wait()
        .await
        .map_err(Error::io("wait for debootstrap"))?;
    if !status.success() {
        let _ = std::fs::remove_file(&out);
        return Err(Error::ImageBuild {
            step: format!("debootstrapping Debian trixie from {mirror}"),
            message: format!(
                "debootstrap failed ({status}). Check that the mirror is reachable, or give \
                 another with --mirror URL. Its last lines:\n{}",
                tail.join("\n")
            ),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mirror_is_read_from_deb822_sources() {
        let sources = "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n\n\
                       Types: deb\nURIs: http://deb.debian.org/debian-security\n";
        assert_eq!(
            mirror_in(&[sources.to_string()]).as_deref(),
            Some("http://deb.debian.org/debian")
        );
    }

    #[test]
    fn the_mirror_is_read_from_one_line_sources_skipping_others() {
        let sources = [
            "# deb http://old.example/debian bookworm main\n\
             deb https://packages.cloud.google.com/apt cloud-sdk main\n"
                .to_string(),
            "deb [arch=amd64] http://mirror.local/debian/ bookworm main\n".to_string(),
        ];
        assert_eq!(
            mirror_in(&sources).as_deref(),
            Some("http://mirror.local/debian")
        );
    }

    #[test]
    fn debian_and_its_derivatives_are_recognised() {
        assert!(debian_family(
            "PRETTY_NAME=\"Debian GNU/Linux 12\"\nID=debian\n"
        ));
        assert!(debian_family("ID=ubuntu\nID_LIKE=debian\n"));
        assert!(debian_family("ID=linuxmint\nID_LIKE=\"ubuntu debian\"\n"));
        assert!(!debian_family("ID=fedora\n"));
        assert!(!debian_family(""));
    }

    #[test]
    fn no_debian_source_gives_none() {
        assert_eq!(
            mirror_in(&["deb http://archive.ubuntu.com/ubuntu jammy main".into()]),
            None
        );
    }
}
