//! A trainee's way into a lab (`lab create --access ssh`), the pure parts: generated passwords,
//! the trainee's public key read and fingerprinted, the first node's sshd entry, and the
//! instructor's sheet (a table, JSON or CSV for a mail merge).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use serde::{Deserialize, Serialize};

use crate::table;

/// The port in the first node where sshd lets the trainee in as root (`Match LocalPort 2222`
/// in the image's sshd_config.d/pgha-lab.conf); published on a host port of its own.
pub const SSH_ENTRY: u16 = 2222;

/// Where the first node's sshd is told to listen on SSH_ENTRY too (besides port 22, which
/// the nodes use between them): sorted before pgha-lab.conf, outside its Match.
pub const ENTRY_CONF: &str = "/etc/ssh/sshd_config.d/pgha-lab-entry.conf";

/// ENTRY_CONF's content: every Port must be named once one is.
pub fn entry_conf() -> String {
    format!(
        "# Written by `lab create --access ssh`: this is the lab's first node, the trainee's way in.\n\
         Port 22\nPort {SSH_ENTRY}\n"
    )
}

/// What a generated password is made of: lowercase letters and digits, without those read
/// one for another (0 o 1 l i).
const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// A password of 4 groups of 4 from ALPHABET ("k7dm-q2xa-..."), typeable from a sheet: about
/// 79 bits. Drawn from the system's CSPRNG; bytes that would bias the choice are drawn again.
pub fn generate_password() -> std::result::Result<String, String> {
    let rng = ring::rand::SystemRandom::new();
    // The largest multiple of the alphabet's length a byte holds: bytes above it are skipped.
    let limit = (256 / ALPHABET.len() * ALPHABET.len()) as u8;
    let mut chars = Vec::with_capacity(16);
    while chars.len() < 16 {
        let bytes: [u8; 32] = ring::rand::generate(&rng)
            .map_err(|_| "the system's random number generator did not answer".to_string())?
            .expose();
        chars.extend(
            bytes
                .iter()
                .filter(|b| **b < limit)
                .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char),
        );
    }
    Ok(chars[..16]
        .chunks(4)
        .map(|g| g.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-"))
}

/// The key types OpenSSH's sshd takes by default.
const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// A trainee's public key: the authorized_keys line and its fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey {
    /// "ssh-ed25519 AAAA... comment", one line.
    pub line: String,
    /// "SHA256:...", as `ssh-keygen -l` shows it.
    pub fingerprint: String,
}

/// Reads a public key file's text (one key, as `ssh-keygen` writes NAME.pub); the error says
/// what is wrong with it.
pub fn parse_public_key(text: &str) -> std::result::Result<PublicKey, String> {
    if text.contains("PRIVATE KEY") {
        return Err("it is a private key; give its public half, the .pub file".into());
    }
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let line = match lines.as_slice() {
        [one] => *one,
        [] => return Err("it holds no public key".into()),
        _ => return Err("it holds more than one key; give one per lab".into()),
    };
    let mut words = line.split_whitespace();
    let (Some(kind), Some(blob)) = (words.next(), words.next()) else {
        return Err("it is not a public key (\"ssh-ed25519 AAAA... comment\")".into());
    };
    if !KEY_TYPES.contains(&kind) {
        return Err(format!(
            "it is not an OpenSSH public key of a type sshd takes ({})",
            KEY_TYPES.join(", ")
        ));
    }
    let bytes = STANDARD
        .decode(blob)
        .map_err(|_| "its key is not valid base64".to_string())?;
    // The blob starts with its own type, as a length-prefixed string.
    let named = bytes
        .get(..4)
        .map(|l| u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize)
        .and_then(|n| bytes.get(4..4 + n));
    if named != Some(kind.as_bytes()) {
        return Err(format!("its key data is not a {kind} key"));
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    Ok(PublicKey {
        line: line.to_string(),
        fingerprint: format!("SHA256:{}", STANDARD_NO_PAD.encode(digest.as_ref())),
    })
}

/// One trainee's line of the sheet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SheetRow {
    pub lab: String,
    /// Where the trainee connects: the publish address, or the host named for it.
    pub host: String,
    /// The lab's SSH entry; None for a lab made without --access.
    pub ssh_port: Option<u16>,
    pub user: Option<String>,
    /// The root password, or None with a key.
    pub password: Option<String>,
    /// The trainee key's fingerprint, or None with a password.
    pub key_fingerprint: Option<String>,
    /// HAProxy's host ports (primary, replicas), when the lab has it.
    pub haproxy_primary: Option<u16>,
    pub haproxy_replicas: Option<u16>,
    /// Each PostgreSQL node's host port.
    pub postgres_ports: Vec<u16>,
    /// The postgres role's password; None when it could not be read (a stopped lab without
    /// access).
    pub postgres_password: Option<String>,
    /// What the row lacks and why ("made without --access").
    pub note: Option<String>,
}

/// The columns of the sheet, as a table and as CSV.
const COLUMNS: [&str; 9] = [
    "lab",
    "host",
    "ssh port",
    "user",
    "password",
    "key",
    "haproxy",
    "postgres ports",
    "postgres password",
];

impl SheetRow {
    fn cells(&self, dash: &str) -> [String; 9] {
        let or = |v: &Option<String>| v.clone().unwrap_or_else(|| dash.to_string());
        let port = |p: Option<u16>| p.map_or_else(|| dash.to_string(), |p| p.to_string());
        let haproxy = match (self.haproxy_primary, self.haproxy_replicas) {
            (Some(p), Some(r)) => format!("{p}/{r}"),
            _ => dash.to_string(),
        };
        let ports: Vec<String> = self.postgres_ports.iter().map(u16::to_string).collect();
        [
            self.lab.clone(),
            self.host.clone(),
            port(self.ssh_port),
            or(&self.user),
            or(&self.password),
            or(&self.key_fingerprint),
            haproxy,
            ports.join("/"),
            or(&self.postgres_password),
        ]
    }
}

/// The sheet as a table, one trainee per line.
pub fn sheet_table(rows: &[SheetRow]) -> String {
    let rows = rows.iter().map(|r| {
        let mut cells = r.cells("-");
        // A lab without an entry has no password to give: what it lacks stands there instead.
        if let (Some(note), None) = (&r.note, r.ssh_port) {
            cells[4] = note.clone();
        }
        cells.to_vec()
    });
    table::render(&COLUMNS, rows)
}

/// The sheet as CSV (RFC 4180: a header line, fields quoted where they must be, CRLF), for a
/// mail merge.
pub fn sheet_csv(rows: &[SheetRow]) -> String {
    let line = |cells: &[String]| {
        cells
            .iter()
            .map(|c| csv_field(c))
            .collect::<Vec<_>>()
            .join(",")
    };
    let header: Vec<String> = COLUMNS
        .iter()
        .chain(&["note"])
        .map(|c| c.replace(' ', "_"))
        .collect();
    let row = |r: &SheetRow| {
        let mut cells = r.cells("").to_vec();
        cells.push(r.note.clone().unwrap_or_default());
        line(&cells)
    };
    std::iter::once(line(&header))
        .chain(rows.iter().map(row))
        .map(|l| l + "\r\n")
        .collect()
}

/// One CSV field: quoted, with its quotes doubled, when it holds a comma, a quote or a line
/// break (or starts or ends with a space, which some readers trim).
fn csv_field(text: &str) -> String {
    let plain = !text.contains([',', '"', '\n', '\r']) && text.trim() == text;
    if plain {
        text.to_string()
    } else {
        format!("\"{}\"", text.replace('"', "\"\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_four_groups_of_four_typeable_characters() {
        let a = generate_password().unwrap();
        let b = generate_password().unwrap();
        assert_ne!(a, b);
        let groups: Vec<&str> = a.split('-').collect();
        assert_eq!(groups.len(), 4);
        for g in groups {
            assert_eq!(g.len(), 4);
            assert!(g.bytes().all(|c| ALPHABET.contains(&c)), "{a}");
        }
        for ambiguous in ['0', 'o', '1', 'l', 'i'] {
            assert!(!ALPHABET.contains(&(ambiguous as u8)));
        }
    }

    // Made with `ssh-keygen -t ed25519 -C trainee@example`; `ssh-keygen -lf` says the
    // fingerprint below.
    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILA6TNnAGuG5jlwVg4Sn9Cd25xMir6SxilMpIufs2RIP trainee@example\n";
    const FINGERPRINT: &str = "SHA256:4uHRvq50e8iGTj51e8JAnZwaBwXtdI+Hzd6k++My70c";

    #[test]
    fn a_public_key_is_read_and_fingerprinted_as_ssh_keygen_does() {
        let key = parse_public_key(KEY).unwrap();
        assert_eq!(key.fingerprint, FINGERPRINT);
        assert_eq!(key.line, KEY.trim());
    }

    #[test]
    fn what_is_not_one_public_key_is_refused_saying_why() {
        let refused = |text: &str| parse_public_key(text).unwrap_err();
        assert!(refused("").contains("no public key"));
        assert!(refused(&format!("{KEY}{KEY}")).contains("more than one"));
        assert!(refused("-----BEGIN OPENSSH PRIVATE KEY-----\nxx\n").contains("private key"));
        assert!(refused("ssh-ed25519 !!!notbase64").contains("base64"));
        assert!(
            refused("ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAILA6TNnAGuG5jlwVg4Sn9Cd25xMir6SxilMpIufs2RIP")
                .contains("not a ssh-rsa key")
        );
        assert!(refused("hello").contains("not a public key"));
    }

    fn row(lab: &str, access: bool) -> SheetRow {
        SheetRow {
            lab: lab.into(),
            host: "192.0.2.2".into(),
            ssh_port: access.then_some(2222),
            user: access.then(|| "root".into()),
            password: access.then(|| "abcd-efgh-jkmn-pqrs".into()),
            key_fingerprint: None,
            haproxy_primary: None,
            haproxy_replicas: None,
            postgres_ports: vec![6432, 6433, 6434],
            postgres_password: Some("pw, \"quoted\"".into()),
            note: (!access).then(|| "no access (made without --access)".into()),
        }
    }

    #[test]
    fn the_sheet_has_a_line_per_trainee_and_says_which_lab_has_no_access() {
        let text = sheet_table(&[row("class-a", true), row("solo", false)]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].starts_with("class-a") && lines[1].contains("2222"));
        assert!(lines[2].starts_with("solo") && lines[2].contains("made without --access"));
    }

    #[test]
    fn the_csv_quotes_what_needs_it() {
        let csv = sheet_csv(&[row("class-a", true)]);
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert!(lines[0].starts_with("lab,host,ssh_port,user,password,key,"));
        assert_eq!(
            lines[1],
            "class-a,192.0.2.2,2222,root,abcd-efgh-jkmn-pqrs,,,6432/6433/6434,\"pw, \"\"quoted\"\"\","
        );
        assert_eq!(lines[2], "");
        let csv = sheet_csv(&[row("solo", false)]);
        assert!(
            csv.ends_with(",no access (made without --access)\r\n"),
            "{csv}"
        );
        assert_eq!(csv_field(" x"), "\" x\"");
    }
}
