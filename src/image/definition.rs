//! The lab image's definition, compiled into the binary from `docker/` so that `lab` builds the
//! same image wherever it is installed, and the names and labels that identify the result.

use std::collections::HashMap;

use crate::engine::{UploadFile, archive};
use crate::services::catalog;

/// The image `lab create` uses unless told otherwise. The part after "17-g" is the generation:
/// raise it whenever `docker/` changes, so labs never silently run on an older definition.
pub const IMAGE: &str = "pgha-lab:17-g17";
/// Where a registry is reachable, the image builds on this.
pub const REGISTRY_BASE: (&str, &str) = ("debian", "trixie-slim");
/// Where none is, on this: Debian trixie debootstrapped from the package mirror and imported.
pub const DEBOOTSTRAP_BASE: (&str, &str) = ("pgha-lab-base", "trixie");

/// Image labels: the component versions inside, and how the image was made.
pub mod label {
    pub const POSTGRESQL: &str = "io.pgha-lab.postgresql";
    pub const PATRONI: &str = "io.pgha-lab.patroni";
    pub const ETCD: &str = "io.pgha-lab.etcd";
    pub const PGBACKREST: &str = "io.pgha-lab.pgbackrest";
    pub const HAPROXY: &str = "io.pgha-lab.haproxy";
    pub const BASE: &str = "io.pgha-lab.base";
    pub const DEFINITION: &str = "io.pgha-lab.definition";
}

/// (path in the build context, content, mode)
const FILES: &[(&str, &str, u32)] = &[
    ("Dockerfile", include_str!("../../docker/Dockerfile"), 0o644),
    (
        "rootfs/createRoles.sh",
        include_str!("../../docker/rootfs/createRoles.sh"),
        0o755,
    ),
    (
        "rootfs/etcdSetup.sh",
        include_str!("../../docker/rootfs/etcdSetup.sh"),
        0o755,
    ),
    (
        "rootfs/patroniSetup.sh",
        include_str!("../../docker/rootfs/patroniSetup.sh"),
        0o755,
    ),
    (
        "rootfs/etc/profile.d/pgha-lab.sh",
        include_str!("../../docker/rootfs/etc/profile.d/pgha-lab.sh"),
        0o644,
    ),
    (
        "rootfs/etc/ssh/ssh_config.d/pgha-lab.conf",
        include_str!("../../docker/rootfs/etc/ssh/ssh_config.d/pgha-lab.conf"),
        0o644,
    ),
    (
        "rootfs/etc/ssh/sshd_config.d/pgha-lab.conf",
        include_str!("../../docker/rootfs/etc/ssh/sshd_config.d/pgha-lab.conf"),
        0o644,
    ),
    (
        "rootfs/etc/sudoers.d/pgha-lab",
        include_str!("../../docker/rootfs/etc/sudoers.d/pgha-lab"),
        0o644,
    ),
    (
        "rootfs/usr/local/bin/peekRows",
        include_str!("../../docker/rootfs/usr/local/bin/peekRows"),
        0o755,
    ),
    (
        "rootfs/usr/local/bin/restoreTo",
        include_str!("../../docker/rootfs/usr/local/bin/restoreTo"),
        0o755,
    ),
    (
        "rootfs/usr/local/bin/patroniApi",
        include_str!("../../docker/rootfs/usr/local/bin/patroniApi"),
        0o755,
    ),
    (
        "rootfs/usr/local/bin/startEtcd",
        include_str!("../../docker/rootfs/usr/local/bin/startEtcd"),
        0o755,
    ),
    (
        "rootfs/usr/local/bin/startPatroni",
        include_str!("../../docker/rootfs/usr/local/bin/startPatroni"),
        0o755,
    ),
    (
        "rootfs/usr/local/bin/startHaproxy",
        include_str!("../../docker/rootfs/usr/local/bin/startHaproxy"),
        0o755,
    ),
    (
        "rootfs/usr/local/bin/stopEtcd",
        include_str!("../../docker/rootfs/usr/local/bin/stopEtcd"),
        0o755,
    ),
    (
        "rootfs/usr/local/bin/stopHaproxy",
        include_str!("../../docker/rootfs/usr/local/bin/stopHaproxy"),
        0o755,
    ),
    (
        "rootfs/usr/local/bin/startPrometheus",
        include_str!("../../docker/rootfs/usr/local/bin/startPrometheus"),
        0o755,
    ),
    (
        "rootfs/usr/local/bin/stopPrometheus",
        include_str!("../../docker/rootfs/usr/local/bin/stopPrometheus"),
        0o755,
    ),
    (
        "rootfs/usr/local/bin/startExporters",
        include_str!("../../docker/rootfs/usr/local/bin/startExporters"),
        0o755,
    ),
    (
        "rootfs/usr/local/bin/stopExporters",
        include_str!("../../docker/rootfs/usr/local/bin/stopExporters"),
        0o755,
    ),
    (
        "rootfs/usr/local/share/pgha-lab/prometheus-rules.yml",
        include_str!("../../docker/rootfs/usr/local/share/pgha-lab/prometheus-rules.yml"),
        0o644,
    ),
    (
        "rootfs/usr/local/bin/stopPatroni",
        include_str!("../../docker/rootfs/usr/local/bin/stopPatroni"),
        0o755,
    ),
    (
        "rootfs/usr/local/lib/pgha-lab/awaitStarted",
        include_str!("../../docker/rootfs/usr/local/lib/pgha-lab/awaitStarted"),
        0o755,
    ),
    (
        "rootfs/usr/local/lib/pgha-lab/certsHeld",
        include_str!("../../docker/rootfs/usr/local/lib/pgha-lab/certsHeld"),
        0o755,
    ),
    (
        "rootfs/usr/local/lib/pgha-lab/etcdState",
        include_str!("../../docker/rootfs/usr/local/lib/pgha-lab/etcdState"),
        0o755,
    ),
    (
        "rootfs/usr/local/lib/pgha-lab/loggedSince",
        include_str!("../../docker/rootfs/usr/local/lib/pgha-lab/loggedSince"),
        0o755,
    ),
    (
        "rootfs/usr/local/lib/pgha-lab/answering",
        include_str!("../../docker/rootfs/usr/local/lib/pgha-lab/answering"),
        0o755,
    ),
    (
        "rootfs/usr/local/lib/pgha-lab/reach",
        include_str!("../../docker/rootfs/usr/local/lib/pgha-lab/reach"),
        0o755,
    ),
    (
        "rootfs/usr/local/lib/pgha-lab/memberState",
        include_str!("../../docker/rootfs/usr/local/lib/pgha-lab/memberState"),
        0o755,
    ),
    (
        "rootfs/usr/local/lib/pgha-lab/sshKeyPair",
        include_str!("../../docker/rootfs/usr/local/lib/pgha-lab/sshKeyPair"),
        0o755,
    ),
    (
        "rootfs/usr/local/sbin/labFacts",
        include_str!("../../docker/rootfs/usr/local/sbin/labFacts"),
        0o755,
    ),
    (
        "rootfs/usr/local/sbin/labExercise",
        include_str!("../../docker/rootfs/usr/local/sbin/labExercise"),
        0o755,
    ),
    (
        "rootfs/usr/local/sbin/labSnapshot",
        include_str!("../../docker/rootfs/usr/local/sbin/labSnapshot"),
        0o755,
    ),
    (
        "rootfs/usr/local/sbin/pgha-init",
        include_str!("../../docker/rootfs/usr/local/sbin/pgha-init"),
        0o755,
    ),
    (
        "rootfs/usr/local/sbin/startSshd",
        include_str!("../../docker/rootfs/usr/local/sbin/startSshd"),
        0o755,
    ),
];

/// The build context: `docker/` as a tar archive.
/// Where a node's shutdown trap (`pgha-init`) reads the helpers it stops its services with.
const STOP_ORDER: &str = "rootfs/usr/local/lib/pgha-lab/stop-order";

/// Every file of the build context: `docker/`, and what is made from the services' declarations
/// (the stop order), so that a node stops its services in the order `lab stop` does.
fn all_files() -> Vec<(&'static str, String, u32)> {
    FILES
        .iter()
        .map(|(path, content, mode)| (*path, content.to_string(), *mode))
        .chain([(STOP_ORDER, catalog::stop_helpers(), 0o644)])
        .collect()
}

pub fn context() -> std::io::Result<Vec<u8>> {
    let files: Vec<UploadFile> = all_files()
        .iter()
        .map(|(path, content, mode)| file(path, content, *mode))
        .collect();
    archive(&files, 0)
}

/// One file of a build context, owned by root.
pub fn file(path: &str, content: &str, mode: u32) -> UploadFile {
    UploadFile {
        path: path.to_string(),
        content: content.as_bytes().to_vec(),
        mode,
        uid: 0,
        gid: 0,
    }
}

/// A short fingerprint of the definition, recorded on the image, so that an image built from
/// another definition is recognised as stale (FNV-1a: stable across Rust releases).
pub fn fingerprint() -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (path, content, mode) in all_files() {
        for byte in path
            .bytes()
            .chain(content.bytes())
            .chain(mode.to_le_bytes())
        {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// The command that prints the versions `versions` reads.
pub const VERSION_PROBE: &str = "postgres --version; patroni --version; \
     etcd --version | head -n 1; pgbackrest version; haproxy -v | head -n 1";

/// Component versions from the probe's output, as image labels; None when one is missing.
pub fn versions(probe: &str) -> Option<HashMap<String, String>> {
    let mut found = HashMap::new();
    for line in probe.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (key, version) = match words.as_slice() {
            ["postgres", "(PostgreSQL)", v, ..] => (label::POSTGRESQL, *v),
            ["patroni", v] => (label::PATRONI, *v),
            ["etcd", "Version:", v] => (label::ETCD, *v),
            ["pgBackRest", v] => (label::PGBACKREST, *v),
            ["HAProxy", "version", v, ..] => (label::HAPROXY, *v),
            _ => continue,
        };
        found.insert(key.to_string(), version.to_string());
    }
    (found.len() == 5).then_some(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    fn walk(dir: &Path, root: &Path, out: &mut Vec<(String, u32)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                let mode = std::fs::metadata(&path).unwrap().permissions().mode();
                out.push((rel, if mode & 0o111 != 0 { 0o755 } else { 0o644 }));
            }
        }
    }

    #[test]
    fn every_file_of_docker_dir_is_compiled_in_with_its_mode() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("docker");
        let mut on_disk = Vec::new();
        walk(&root, &root, &mut on_disk);
        on_disk.sort();
        let mut embedded: Vec<(String, u32)> =
            FILES.iter().map(|(p, _, m)| (p.to_string(), *m)).collect();
        embedded.sort();
        assert_eq!(embedded, on_disk);
    }

    #[test]
    fn the_context_is_a_tar_of_the_definition() {
        let bytes = context().unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), FILES.len() + 1);
        assert!(names.contains(&"Dockerfile".to_string()));
        // The stop order a node's shutdown trap reads, made from the services' declarations.
        assert!(names.contains(&STOP_ORDER.to_string()));
    }

    #[test]
    fn versions_are_read_from_the_probe() {
        let probe = "postgres (PostgreSQL) 17.11 (Debian 17.11-0+deb13u1)\npatroni 4.0.7\n\
                     etcd Version: 3.5.16\npgBackRest 2.55.1\n\
                     HAProxy version 3.0.11-1 2025/06/03 - https://haproxy.org/\n";
        let v = versions(probe).unwrap();
        assert_eq!(v[label::HAPROXY], "3.0.11-1");
        assert_eq!(v[label::POSTGRESQL], "17.11");
        assert_eq!(v[label::PATRONI], "4.0.7");
        assert_eq!(v[label::ETCD], "3.5.16");
        assert_eq!(v[label::PGBACKREST], "2.55.1");
    }

    #[test]
    fn a_missing_component_is_noticed() {
        assert!(versions("patroni 4.0.7\netcd Version: 3.5.16\npgBackRest 2.55.1\n").is_none());
    }

    #[test]
    fn the_fingerprint_is_stable_and_hex() {
        assert_eq!(fingerprint(), fingerprint());
        assert_eq!(fingerprint().len(), 16);
    }
}
