//! The command line: clap definitions only.

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::fault::Fault;
use crate::image::definition::IMAGE;
use crate::lab::{BackupType, Component};
use crate::spec::{RepoPlace, Stage, Topology};

/// Turns a Docker Engine into a PostgreSQL high-availability training lab: PostgreSQL 17 with
/// Patroni 4, an etcd quorum and a pgBackRest repository, bootstrapped and proven healthy.
#[derive(Parser)]
#[command(name = "lab", version, after_help = TOP_AFTER_HELP)]
pub struct Cli {
    /// The Docker Engine: a Docker context's name, or a host URL as DOCKER_HOST takes it
    /// (unix:///var/run/docker.sock, tcp://HOST:2376 with TLS from DOCKER_CERT_PATH,
    /// ssh://USER@HOST). Repeat it to spread a class over several engines, or to find labs on
    /// them. Default: DOCKER_HOST, DOCKER_CONTEXT, the docker CLI's current context, else the
    /// local socket.
    #[arg(long = "engine", value_name = "ENGINE", global = true)]
    pub engines: Vec<String>,
    /// Every engine lab can name: the default one and every Docker context's (for list,
    /// status, check, reset --all, destroy --all and engines).
    #[arg(long, global = true)]
    pub all_engines: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create a lab (or one per trainee): network, nodes, and the bootstrapped HA stack.
    #[command(
        after_help = "Exit codes: 0 every lab made; 1 a lab failed (with several, the others are still made and\n  each failure is named); 2 refused before anything was made; 130 Ctrl-C.\n\nExamples:\n  lab create\n  lab create -n alice -n bob --nodes 3\n  lab create --count 12   # a class: labs pgha-a .. pgha-l\n  lab create --count 12 --access ssh --publish 0.0.0.0   # each with an SSH way in (lab class sheet)"
    )]
    // Boxed: its many flags would make every other command as large.
    Create(Box<Create>),
    /// Continue bootstrapping an existing lab from where it stands, up to a stage.
    #[command(
        after_help = "Examples:\n  lab create --stage access   # then do etcd by hand, as the course does\n  lab bootstrap --stage patroni"
    )]
    Bootstrap(Bootstrap),
    /// Start a stopped lab, or some of its nodes (a killed one rejoins as a replica).
    #[command(after_help = "Examples:\n  lab start\n  lab start pgha2")]
    Start(Start),
    /// Stop a lab, or some of its nodes: the services cleanly, then the containers.
    #[command(after_help = "Examples:\n  lab stop\n  lab stop pgha2 pgha3")]
    Stop(Stop),
    /// Remove a lab: its containers, volumes and (when it made it) its network.
    #[command(
        after_help = "Exit codes: 0 done (a lab that is not there is no error); 1 failed; 2 refused: not confirmed,\n  or a lab another command is changing (with --all it is left and the others destroyed).\n\nExamples:\n  lab destroy -n alice\n  lab destroy --all --yes   # every lab on this Docker Engine"
    )]
    Destroy(Destroy),
    /// Put a lab back to the state it was created in: same names, addresses and ports.
    #[command(
        after_help = "Exit codes: 0 done; 1 a lab failed (with --all, the others are still reset); 2 refused (not\n  confirmed, or another command is changing the lab); 130 Ctrl-C.\n\nExamples:\n  lab reset\n  lab reset --all --yes   # every lab on this Docker Engine"
    )]
    Reset(Reset),
    /// List every lab on the Docker Engine (or on every engine given).
    #[command(
        after_help = "Exit codes: 0 listed; 1 an engine did not answer (the others' labs are still listed).\n\nExamples:\n  lab list\n  lab list --json\n  lab list --engine teach1 --engine teach2\n  lab list --all-engines"
    )]
    List(List),
    /// The Docker Engines lab can reach: memory, CPUs, version and how many labs each holds.
    #[command(
        after_help = "Exit codes: 0 every engine answered; 1 one did not.\n\nExamples:\n  lab engines                # the default engine and every Docker context's\n  lab engines --engine ssh://ops@teach1 --json"
    )]
    Engines(List),
    /// Show a lab's nodes, Patroni members, etcd quorum and last backup.
    #[command(after_help = "Examples:\n  lab status\n  lab status -n alice --json")]
    Status(Status),
    /// Watch a lab live: nodes, etcd, HAProxy, and every change as it happens.
    ///
    /// Watch a lab live: each node's Patroni role, state, timeline and lag, etcd's members,
    /// leader and quorum, HAProxy's routing, and a log of what changes (leader, members down or
    /// back, timeline, replicas rejoining, etcd's quorum, HAProxy), refreshed every second. On a
    /// terminal it is a full-screen view (q or Ctrl-C leaves it); piped, it prints one
    /// timestamped line (UTC) per event, the first stating the whole lab, until it is killed.
    #[command(
        after_help = "Exit codes: 0 left with q; 2 no such lab; 130 Ctrl-C.\n\nExamples:\n  lab watch                  # then, in another terminal: lab kill pgha1\n  lab watch -n alice\n  lab watch | tee watch.log  # one line per event"
    )]
    Watch(Watch),
    /// Where a lab stands in the course, step by step, and the course's next command.
    #[command(
        after_help = "Exit codes: 0 every step is done; 1 a step is left (or the check \
                            failed); 2 refused.\n\nExample:\n  lab check -n alice"
    )]
    Check(Status),
    /// Serve the class on one web page: every lab's health and course step, live.
    ///
    /// Serve the class on one web page, live (server-sent events): every lab's health (leader,
    /// replicas streaming, etcd quorum, HAProxy), its course step as `lab check` judges it, its
    /// last reset and last drill; a page per lab (nodes, etcd, HAProxy, events, the last drill's
    /// timeline); the instructor's actions (reset a lab or the class, run check), each under the
    /// lab's lock; and each trainee's own read-only page, reached with the link printed at
    /// start. On 127.0.0.1 (the default) no token is asked for; on any other address every
    /// request needs a token: one generated and printed at start, or read from --token-file.
    /// A lab is polled (every node at most once per 2 s) only while a page shows it. The same
    /// data is JSON under /api. Ctrl-C stops it (exit 130).
    #[command(
        after_help = "Exit codes: 1 the address cannot be listened on (in use); 2 refused (bad \
                      token file); 130 stopped with Ctrl-C.\n\nExamples:\n  lab serve                          \
                      # http://127.0.0.1:8080/\n  lab serve -n alice -n bob\n  lab serve --listen \
                      0.0.0.0:8080 --token-file ~/.lab-token"
    )]
    Serve(Serve),
    /// Print the connection strings for the lab, from this host and from inside it.
    #[command(
        after_help = "Examples:\n  lab connect\n  psql \"$(lab connect --json | jq -r .from_host.primary)\""
    )]
    Connect(Connect),
    /// Write a `--tls` lab's CA certificate, for clients on this host to verify the lab with.
    #[command(after_help = "Example:\n  lab ca --out lab-ca.pem")]
    Ca(Ca),
    /// Run psql on a node (the primary unless told otherwise).
    #[command(
        after_help = "Exit code: psql's own.\n\nExamples:\n  lab psql\n  lab psql --replica -- -c 'select pg_is_in_recovery()'"
    )]
    Psql(Psql),
    /// Open a login shell on a node, as postgres (or root).
    #[command(after_help = "Exit code: the shell's own.\n\nExample:\n  lab shell pgha1 --root")]
    Shell(Shell),
    /// Run one command on a node; its output and exit code pass through.
    #[command(
        after_help = "Exit code: the command's own.\n\nExamples:\n  lab exec pgha1 patronictl -c /pgha/config/patroni.yaml list\n  lab exec pgha1 -- ls -l /pgdata   # `--` is optional"
    )]
    Exec(Exec),
    /// Run one PromQL query on a monitored lab's Prometheus and print the result as a table.
    ///
    /// Run one PromQL query (evaluated now) on a monitored lab's Prometheus and print a row per
    /// series, its labels then its value; with --json, Prometheus's own result array.
    #[command(
        after_help = "Exit codes: 0 answered; 1 Prometheus could not be asked; 2 a query Prometheus rejects, or a\n  lab without monitoring (make one with `lab create --monitoring`).\n\nExamples:\n  lab metrics pgha:replication_lag_bytes\n  lab metrics 'patroni_primary == 1'\n  lab metrics ALERTS --json"
    )]
    Metrics(Metrics),
    /// Show (or follow) a service's log on a node.
    #[command(
        after_help = "Examples:\n  lab logs pgha1\n  lab logs pgha2 postgres --tail 20\n  lab logs pgha1 etcd -f"
    )]
    Logs(Logs),
    /// Kill a node the hard way and watch the cluster answer.
    #[command(
        after_help = "Example:\n  lab kill pgha1   # then `lab start pgha1` brings it back as a replica"
    )]
    Kill(NodeArg),
    /// Cut a node off the lab network (it keeps its address).
    #[command(after_help = "Example:\n  lab partition pgha2   # then `lab heal pgha2`")]
    Partition(NodeArg),
    /// Put a partitioned node back and watch it rejoin.
    #[command(after_help = "Example:\n  lab heal pgha2")]
    Heal(NodeArg),
    /// A planned switchover through Patroni.
    #[command(after_help = "Examples:\n  lab switchover\n  lab switchover --to pgha3")]
    Switchover(Handover),
    /// A manual failover through Patroni.
    #[command(after_help = "Example:\n  lab failover --to pgha2")]
    Failover(Handover),
    /// Stop or start etcd on chosen members to show quorum loss and recovery.
    #[command(
        subcommand,
        after_help = "Examples:\n  lab etcd stop pgha3 pgha4 pgha5   # quorum lost\n  lab etcd start pgha3 pgha4 pgha5"
    )]
    Etcd(EtcdCommand),
    /// A fault with a client workload around it, measured as the application saw it.
    ///
    /// A fault with a client workload around it, measured as the application saw it (write
    /// downtime, acknowledged writes lost, errors), then the lab put back; or `pitr`, a dropped
    /// table brought back by a point-in-time restore.
    #[command(
        after_help = "Exit codes: 0 the drill ran and the lab was put back (the report says what the client saw,\n  lost writes included); 1 the drill failed (the error says whether the lab was put back);\n  2 refused (the lab was not healthy to start with, or is busy, or --plot's file cannot be\n  written: checked before anything runs); 130 Ctrl-C.\n\nExamples:\n  lab drill kill-primary\n  lab drill switchover --reader --json\n  lab drill kill-primary --plot kill.svg"
    )]
    Drill(Drill),
    /// Switch synchronous replication on or off through Patroni's dynamic configuration.
    #[command(after_help = "Examples:\n  lab sync on --strict\n  lab sync off")]
    Sync(Sync),
    /// Take a pgBackRest backup from the repository host (`lab backups` lists them).
    #[command(after_help = "Example:\n  lab backup --type diff")]
    Backup(BackupArgs),
    /// List the pgBackRest backups in the repository (`lab backup` takes one).
    #[command(after_help = "Examples:\n  lab backups\n  lab backups --json")]
    Backups(Status),
    /// Restore the cluster to a point in time; everything written after it is lost.
    ///
    /// Restore the cluster to a point in time with pgBackRest; everything written after it is
    /// lost. Asks first unless --yes.
    #[command(after_help = "Example:\n  lab restore --time '2026-12-03 12:34:56.789+00'")]
    Restore(Restore),
    /// Exercises: a fault to find and fix with the course's tools, judged by the lab's state.
    ///
    /// Exercises: `start` breaks the lab (or every lab of a class) quietly, the way real faults
    /// do, and prints only the symptom a user would report; the trainee diagnoses and repairs
    /// it with the course's own tools; `status` judges the repair by what the cluster shows
    /// (never by which command was typed), `hint` gives the next of three hints, `stop` puts
    /// the lab back whatever was done (a reset as the last resort, and says so).
    #[command(
        subcommand,
        after_help = "Examples:\n  lab exercise list\n  lab exercise start quorum-lost\n  lab exercise status   # exit 0 solved, 1 not yet, 2 none runs\n  lab exercise hint\n  lab exercise stop\n  lab exercise start lagging-replica --class class   # every trainee's lab\n  lab exercise status --class class                 # who solved what, in how long"
    )]
    Exercise(ExerciseCommand),
    /// A class's access: the trainees' sheet, and new credentials.
    #[command(
        subcommand,
        after_help = "Examples:\n  lab create --count 12 --name class --access ssh --publish 0.0.0.0\n  lab class sheet --name class\n  lab class rotate --name class"
    )]
    Class(ClassCommand),
    /// Build or inspect the lab image.
    #[command(
        subcommand,
        after_help = "Examples:\n  lab image build\n  lab image info --json"
    )]
    Image(ImageCommand),
    /// Print a shell completion script, generated from this command line.
    #[command(
        after_help = "Examples:\n  source <(lab completions bash)\n  lab completions zsh > ~/.zfunc/_lab\n  lab completions fish > ~/.config/fish/completions/lab.fish"
    )]
    Completions(Completions),
    /// Print lab's man page (roff), or write one page per command into a directory.
    #[command(
        after_help = "Examples:\n  lab man | man -l -\n  lab man --out-dir ~/.local/share/man/man1"
    )]
    Man(Man),
}

/// How `lab --help` groups the commands: a heading, then the commands under it.
pub const GROUPS: &[(&str, &[&str])] = &[
    (
        "Lifecycle",
        &[
            "create",
            "bootstrap",
            "start",
            "stop",
            "reset",
            "destroy",
            "list",
        ],
    ),
    (
        "Look inside",
        &[
            "status", "watch", "check", "serve", "connect", "ca", "psql", "shell", "exec", "logs",
            "metrics",
        ],
    ),
    (
        "Faults (break or change one thing and report the cluster's answer)",
        &[
            "kill",
            "partition",
            "heal",
            "switchover",
            "failover",
            "etcd",
            "sync",
        ],
    ),
    ("Measured drills (what a client saw)", &["drill"]),
    (
        "Exercises (a fault to find and fix, judged by the lab's state)",
        &["exercise"],
    ),
    ("Backup and restore", &["backup", "backups", "restore"]),
    (
        "A class (one lab per trainee, each with its own way in, on one engine or several)",
        &["class", "engines"],
    ),
    ("Image", &["image"]),
    ("Shell", &["completions", "man", "help"]),
];

/// What `lab --help` says after the options.
const TOP_AFTER_HELP: &str = "\
A fault command (kill, partition, heal, switchover, failover, etcd) breaks or changes one thing
and reports how the cluster answered; `lab drill` runs a fault with a client workload around it
and measures what the client saw (write downtime, lost writes, errors).

A class, one lab per trainee: `lab create --count 12` (or `-n alice -n bob ...`), then
`lab list`, `lab reset --all` and `lab destroy --all`; every command takes -n NAME or LAB_NAME.

Exit codes: 0 done; 1 failed (`lab check`: a step is left); 2 refused (bad input, a lab another
command is changing, a question not confirmed); 130 interrupted by Ctrl-C. psql, shell, exec and
logs exit with the remote command's code.

Example:
  lab create && lab status && lab psql && lab destroy";

/// The whole command line as `lab` parses it: the derived definitions, with the commands in
/// `lab --help` grouped by purpose. Completions, the man page and the tests use this too.
pub fn command() -> clap::Command {
    let cmd = Cli::command();
    // As wide as the terminal, as clap wraps the rest of the help (100 columns at most, and
    // where there is no terminal).
    let columns = crate::terminal::width().map_or(100, |c| usize::from(c).min(100));
    let width = GROUPS
        .iter()
        .flat_map(|(_, names)| names.iter())
        .map(|n| n.len())
        .max()
        .unwrap_or(0);
    let mut groups = String::new();
    for (heading, names) in GROUPS {
        groups.push_str(heading);
        groups.push_str(":\n");
        for name in *names {
            let about = cmd
                .find_subcommand(name)
                .and_then(|c| c.get_about())
                .map(|a| a.to_string())
                .unwrap_or_else(|| "Print this message or the help of the given command".into());
            let lines = wrap(&about, columns.saturating_sub(width + 4).max(30));
            let hang = " ".repeat(width + 4);
            groups.push_str(&format!(
                "  {name:width$}  {}\n",
                lines.join(&format!("\n{hang}"))
            ));
        }
        groups.push('\n');
    }
    let template = format!(
        "{{before-help}}{{about-with-newline}}\n{{usage-heading}} {{usage}}\n\n{groups}\
         Options:\n{{options}}{{after-help}}"
    );
    cmd.help_template(template)
}

/// `text` in lines of at most `width` characters, broken between words (a longer word stays
/// whole on a line of its own).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(line) if line.chars().count() + 1 + word.chars().count() <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

/// Which lab.
#[derive(Args)]
pub struct Target {
    /// The lab's name.
    #[arg(short = 'n', long, env = "LAB_NAME", default_value = "pgha")]
    pub name: String,
}

/// Which lab, for a command that changes it: such a command holds the lab's lock, and one
/// started while another changes the same lab is refused at once, naming it (exit 2).
#[derive(Args)]
pub struct Changing {
    /// The lab's name.
    #[arg(short = 'n', long, env = "LAB_NAME", default_value = "pgha")]
    pub name: String,
    /// When another command is changing this lab, wait for it to end instead of refusing.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Args)]
pub struct Create {
    /// The lab's name; nodes are NAME1, NAME2, ... Repeat it for one lab per trainee.
    #[arg(
        short = 'n',
        long = "name",
        env = "LAB_NAME",
        default_value = "pgha",
        value_name = "NAME"
    )]
    pub names: Vec<String>,
    /// Create this many labs (1 to 676), named NAME-a ... NAME-z, or NAME-aa, NAME-ab, ... when
    /// more than 26 (each with its own network, subnet and ports).
    #[arg(long, value_name = "N", conflicts_with_all = ["network", "subnet"])]
    pub count: Option<usize>,
    /// The layout of a guide in the training material; the flags below change it.
    #[arg(long, value_enum, default_value = "course", value_name = "NAME")]
    pub topology: Topology,
    /// Number of PostgreSQL and etcd nodes, every one an etcd member (the course's layout)
    /// [default: 5 in the course, 3 in colocated].
    #[arg(long, value_name = "N", conflicts_with_all = ["etcd", "dedicated_etcd"])]
    pub nodes: Option<usize>,
    /// Nodes 1..P run PostgreSQL and Patroni [default: 3, or all nodes when fewer].
    #[arg(long, value_name = "P")]
    pub postgres: Option<usize>,
    /// Number of etcd members [default: 5 in the course, 3 in the other topologies].
    #[arg(long, value_name = "E")]
    pub etcd: Option<usize>,
    /// Put the etcd members on nodes of their own, after the PostgreSQL nodes; it changes the
    /// chosen topology only there: with the course's, 3 PostgreSQL + 5 etcd nodes and no
    /// HAProxy, where `--topology dedicated-etcd` is the 002 guide's 3 + 3 and HAProxy.
    #[arg(long)]
    pub dedicated_etcd: bool,
    /// Where the pgBackRest repository (pgbackrest1) lives: last (the last PostgreSQL or etcd
    /// node), own (a node of its own) or a node number.
    #[arg(long, value_name = "WHERE")]
    pub repo: Option<RepoPlace>,
    /// Add an HAProxy node (haproxy1): 5000 to the primary, 5001 to the replicas, 7000 its
    /// stats page [default: with the colocated and dedicated-etcd topologies].
    #[arg(long, conflicts_with = "no_haproxy")]
    pub haproxy: bool,
    /// Leave HAProxy out of a topology that has it.
    #[arg(long)]
    pub no_haproxy: bool,
    /// Add a monitor node (prometheus1) running Prometheus, which scrapes Patroni, PostgreSQL
    /// (postgres_exporter), etcd, HAProxy and pgBackRest, with alerts for the course's failures;
    /// its web page is published like the PostgreSQL ports (see `lab metrics`).
    #[arg(long)]
    pub monitoring: bool,
    /// The Docker network [default: NAMEnet, created]; an existing one is joined.
    #[arg(long, value_name = "NET")]
    pub network: Option<String>,
    /// Subnet of a new network [default: 192.168.50.0/24, or the next free /24].
    #[arg(long, value_name = "CIDR")]
    pub subnet: Option<String>,
    /// The lab image's tag.
    #[arg(long, default_value = IMAGE, value_name = "TAG")]
    pub image: String,
    /// Host address the lab's ports are published on, on the engine's machine [default:
    /// 127.0.0.1 for an engine on this machine; for another, the engine's address when it is
    /// a loopback one, else 0.0.0.0, as that machine's loopback cannot be reached from here].
    #[arg(long, value_name = "ADDR")]
    pub publish: Option<String>,
    /// Where the lab's published ports are reached from here, when not where its engine is (a
    /// NAT, a DNS name): `lab connect`, the drills, the sheet and TLS certificates use it. With
    /// several engines, ENGINE=HOST for each (a HOST alone is for the others).
    #[arg(long, value_name = "[ENGINE=]HOST")]
    pub publish_host: Vec<String>,
    /// Password of the postgres role [default: postgres]. Visible in `ps` and shell history:
    /// LAB_PASSWORD or --password-file keep it out of both.
    #[arg(long, env = "LAB_PASSWORD", hide_env_values = true, value_name = "PW")]
    pub password: Option<String>,
    /// Read the postgres role's password from this file (its first line); it wins over
    /// --password and LAB_PASSWORD.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<std::path::PathBuf>,
    /// Use md5 password hashing instead of scram-sha-256.
    #[arg(long)]
    pub md5: bool,
    /// A way in for each trainee: `ssh` publishes an SSH entry per lab on a free port of the
    /// --publish address, landing on the lab's first node as root (as the course starts), with
    /// a password of the lab's own or --trainee-key. Published beyond loopback, each lab gets
    /// its own postgres password too. `lab class sheet` lists them.
    #[arg(long, value_enum, value_name = "HOW")]
    pub access: Option<Access>,
    /// The trainee's public key instead of a password: a NAME.pub file for one lab, or a
    /// directory holding NAME.pub for each lab (every key is checked before anything is made).
    #[arg(long, value_name = "PATH", requires = "access")]
    pub trainee_key: Option<std::path::PathBuf>,
    /// Secure every channel: a CA of the lab's own and a certificate per node; etcd with
    /// client certificates, Patroni's REST API over https with authentication for changes,
    /// PostgreSQL refusing plain remote connections, HAProxy checking over https.
    #[arg(long)]
    pub tls: bool,
    /// The stage to stop after; stop early to do the rest by hand as the course teaches.
    #[arg(long, value_enum, default_value = "monitoring")]
    pub stage: Stage,
    /// Print the plan (names, addresses, ports, roles, aliases) and touch nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Replace a lab of the same name: it is destroyed once the new lab's plan (addresses,
    /// ports) holds, so a refused create leaves it as it was.
    #[arg(long)]
    pub replace: bool,
    /// On failure, leave what was made for inspection instead of removing it.
    #[arg(long)]
    pub keep_on_failure: bool,
    /// Accept an even number of etcd members (one more member than an odd cluster, and no
    /// more failures survived).
    #[arg(long, alias = "force")]
    pub even_etcd: bool,
    /// When another command is changing this lab, wait for it to end instead of refusing.
    #[arg(long)]
    pub wait: bool,
}

/// How trainees get into their labs.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Access {
    /// OpenSSH, as root on the lab's first node.
    Ssh,
}

#[derive(Subcommand)]
pub enum ClassCommand {
    /// Print a line per trainee: lab, host, SSH port, user, password or key, database ports.
    ///
    /// Print a line per trainee for the labs of a class: the lab, the host to connect to, its
    /// SSH port, user and password (or the trainee key's fingerprint), HAProxy's and each
    /// PostgreSQL node's host ports, and the postgres password. The sheet holds secrets: print
    /// it for the trainees, keep it from others.
    #[command(
        after_help = "Exit codes: 0 printed; 2 no lab of that name.\n\nExamples:\n  lab class sheet --name class\n  lab class sheet --all --host lab.example.org\n  lab class sheet --all --csv > trainees.csv   # for a mail merge"
    )]
    Sheet(Sheet),
    /// Issue new credentials: a new root password (a trainee's key is kept), and a new
    /// postgres password for labs published beyond loopback.
    #[command(
        after_help = "Exit codes: 0 every lab rotated; 1 a lab failed (the others are still rotated); 2 refused\n  (a lab made without --access, a stopped lab, or another command changing it).\n\nExamples:\n  lab class rotate --name class-b   # one trainee's lab\n  lab class rotate --all"
    )]
    Rotate(Rotate),
}

/// Which labs of a class.
#[derive(Args)]
pub struct Class {
    /// The lab's name; for a class, the prefix of its labs' names (PREFIX-a, PREFIX-b, ... or
    /// PREFIX-aa, PREFIX-ab, ... as `lab create --count` names them), which takes them all.
    #[arg(
        short = 'n',
        long = "name",
        env = "LAB_NAME",
        default_value = "pgha",
        value_name = "PREFIX"
    )]
    pub prefix: String,
    /// Every lab on the Docker Engine, or on every engine given (--name is then left aside).
    #[arg(long)]
    pub all: bool,
}

#[derive(Args)]
pub struct Sheet {
    #[command(flatten)]
    pub class: Class,
    /// The host name or address trainees connect to [default: where each lab's ports are
    /// reached: its --publish-host, its engine's machine, the address it publishes on, or this
    /// machine's primary address for 0.0.0.0].
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// JSON for scripts instead of text for people.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// CSV (a header line, then a line per trainee) for a mail merge.
    #[arg(long)]
    pub csv: bool,
}

#[derive(Args)]
pub struct Rotate {
    #[command(flatten)]
    pub class: Class,
    /// When another command is changing this lab, wait for it to end instead of refusing.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Args)]
pub struct Ca {
    #[command(flatten)]
    pub lab: Target,
    /// Write it to this file [default: print it].
    #[arg(long, value_name = "FILE")]
    pub out: Option<std::path::PathBuf>,
}

#[derive(Args)]
pub struct Bootstrap {
    #[command(flatten)]
    pub lab: Changing,
    /// The stage to stop after; what is already done is skipped.
    #[arg(long, value_enum, default_value = "monitoring")]
    pub stage: Stage,
}

#[derive(Args)]
pub struct Start {
    #[command(flatten)]
    pub lab: Changing,
    /// Only these nodes, such as pgha2 [default: every node of the lab].
    #[arg(value_name = "NODE")]
    pub nodes: Vec<String>,
    /// JSON for scripts instead of text for people.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct Stop {
    #[command(flatten)]
    pub lab: Changing,
    /// Only these nodes, such as pgha2: their services stopped cleanly, then their containers
    /// [default: every node of the lab].
    #[arg(value_name = "NODE")]
    pub nodes: Vec<String>,
    /// JSON for scripts instead of text for people.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct List {
    /// JSON for scripts instead of text for people.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct Connect {
    #[command(flatten)]
    pub lab: Target,
    /// JSON for scripts instead of text for people.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct Reset {
    #[command(flatten)]
    pub lab: Changing,
    /// Every lab on the Docker Engine, or on every engine given (--name is then left aside).
    /// It asks first, listing them, unless --yes.
    #[arg(long, conflicts_with = "class")]
    pub all: bool,
    /// Every lab of the class PREFIX (PREFIX and PREFIX-…, as `lab create --count N --name
    /// PREFIX` names them), on every engine given (asks first, unless --yes).
    #[arg(long, value_name = "PREFIX")]
    pub class: Option<String>,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Args)]
pub struct Status {
    #[command(flatten)]
    pub lab: Target,
    /// JSON for scripts instead of text for people.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct Serve {
    /// The address and port to listen on. Any address but a loopback one (127.0.0.0/8, ::1)
    /// needs a token for every request.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// The lab's name; the page shows only the labs named (repeat it for several) [default:
    /// every lab on the Docker Engine].
    #[arg(short = 'n', long = "name", value_name = "NAME")]
    pub names: Vec<String>,
    /// The instructor's token, read from this file (readable by its owner only) rather than
    /// generated at start; it also keys the trainees' links, which then stay the same from one
    /// start to the next.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<std::path::PathBuf>,
}

#[derive(Args)]
pub struct Watch {
    #[command(flatten)]
    pub lab: Target,
}

#[derive(Args)]
pub struct Psql {
    #[command(flatten)]
    pub lab: Target,
    /// The node to connect on, such as pgha2 [default: the primary].
    #[arg(value_name = "NODE", conflicts_with_all = ["primary", "replica"])]
    pub node: Option<String>,
    /// The current primary (the default).
    #[arg(long)]
    pub primary: bool,
    /// A streaming replica.
    #[arg(long, conflicts_with = "primary")]
    pub replica: bool,
    /// Arguments for psql, after `--`.
    #[arg(last = true)]
    pub args: Vec<String>,
}

#[derive(Args)]
pub struct Shell {
    #[command(flatten)]
    pub lab: Target,
    /// The node, such as pgha1.
    #[arg(value_name = "NODE")]
    pub node: String,
    /// As root instead of postgres.
    #[arg(long)]
    pub root: bool,
}

#[derive(Args)]
pub struct Exec {
    #[command(flatten)]
    pub lab: Target,
    /// The node, such as pgha1.
    #[arg(value_name = "NODE")]
    pub node: String,
    /// As root instead of postgres.
    #[arg(long)]
    pub root: bool,
    /// The command and its arguments (options after the command are its own; `--` before it
    /// is optional).
    #[arg(
        value_name = "COMMAND",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub cmd: Vec<String>,
}

#[derive(Args)]
pub struct Metrics {
    #[command(flatten)]
    pub lab: Target,
    /// The PromQL query, evaluated now, such as `up` or `pgha:replication_lag_bytes`.
    #[arg(value_name = "QUERY")]
    pub query: String,
    /// JSON for scripts instead of text for people.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct Logs {
    #[command(flatten)]
    pub lab: Target,
    /// The node, such as pgha1.
    #[arg(value_name = "NODE")]
    pub node: String,
    /// Which log [default: patroni on PostgreSQL nodes, etcd on etcd members, haproxy on the
    /// HAProxy node, prometheus on the monitor node, pgbackrest elsewhere].
    #[arg(value_enum)]
    pub component: Option<Component>,
    /// Keep printing new lines until Ctrl-C.
    #[arg(long, short)]
    pub follow: bool,
    /// How many of the last lines to show.
    #[arg(long, short = 't', value_name = "N", default_value_t = 100)]
    pub tail: u32,
}

#[derive(Args)]
pub struct NodeArg {
    #[command(flatten)]
    pub lab: Changing,
    /// The node, such as pgha1.
    #[arg(value_name = "NODE")]
    pub node: String,
    /// JSON for scripts instead of text for people.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct Handover {
    #[command(flatten)]
    pub lab: Changing,
    /// The replica to promote [default: Patroni's choice for a switchover, the first
    /// streaming replica for a failover].
    #[arg(long, value_name = "NODE")]
    pub to: Option<String>,
    /// JSON for scripts instead of text for people.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct Drill {
    #[command(flatten)]
    pub lab: Changing,
    /// What to drill.
    pub scenario: Scenario,
    /// Also read through the read-only entry (HAProxy's 5001, or the read-only multi-host
    /// string) and report what reads saw.
    #[arg(long)]
    pub reader: bool,
    /// Also draw the client's timeline to FILE, SVG or PNG by its extension: writes (and reads)
    /// per 100 ms, errors by kind, the fault, the new leader and the predicted window. Checked
    /// before the drill starts.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<std::path::PathBuf>,
    /// JSON for scripts instead of text for people.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum ExerciseCommand {
    /// Every exercise: its name, symptom, difficulty and the guide section it practises.
    #[command(after_help = "Example:\n  lab exercise list")]
    List(ExerciseList),
    /// Break the lab quietly and print the symptom a user would report.
    #[command(
        after_help = "Exit codes: 0 started; 1 it could not be made (what it had done is taken back); 2 refused\n  (the lab is not healthy, stopped, busy, or another exercise runs).\n\nExamples:\n  lab exercise start split-brain\n  lab exercise start quorum-lost --all   # every lab on the engine"
    )]
    Start(ExerciseStart),
    /// Solved or not, what is still wrong, and the time taken.
    #[command(
        after_help = "Exit codes: 0 solved; 1 not solved yet; 2 no exercise runs (with --all or --class: 0 every\n  running one solved, 1 one is not, 2 none runs).\n\nExamples:\n  lab exercise status\n  lab exercise status --class class"
    )]
    Status(ExerciseStatus),
    /// The next hint of three, from the course's diagnosis steps to the repair.
    #[command(after_help = "Example:\n  lab exercise hint")]
    Hint(Status),
    /// Name the writes a split-brain lost, by their order ids.
    #[command(after_help = "Example:\n  lab exercise answer 412 587 903")]
    Answer(ExerciseAnswer),
    /// Put the lab back to healthy, whatever was done (a reset as the last resort).
    #[command(
        after_help = "Exit codes: 0 the lab is healthy again; 1 it could not be put back; 2 no exercise runs, or\n  the lab is busy.\n\nExamples:\n  lab exercise stop\n  lab exercise stop --class class"
    )]
    Stop(ExerciseStop),
}

#[derive(Args)]
pub struct ExerciseList {
    /// JSON for scripts instead of text for people.
    #[arg(long)]
    pub json: bool,
}

/// Every lab of the engines given, or a class's.
#[derive(Args)]
pub struct Many {
    /// Every lab on the Docker Engine, or on every engine given (--name is then left aside).
    #[arg(long, conflicts_with = "class")]
    pub all: bool,
    /// Every lab of the class PREFIX (PREFIX and PREFIX-…, as `lab create --count N --name
    /// PREFIX` names them), on every engine given.
    #[arg(long, value_name = "PREFIX")]
    pub class: Option<String>,
}

impl Many {
    pub fn any(&self) -> bool {
        self.all || self.class.is_some()
    }
}

#[derive(Args)]
pub struct ExerciseStart {
    /// Which exercise (`lab exercise list`).
    pub exercise: crate::exercise::Exercise,
    #[command(flatten)]
    pub lab: Changing,
    #[command(flatten)]
    pub many: Many,
}

#[derive(Args)]
pub struct ExerciseStatus {
    #[command(flatten)]
    pub lab: Target,
    #[command(flatten)]
    pub many: Many,
    /// JSON for scripts instead of text for people.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ExerciseAnswer {
    #[command(flatten)]
    pub lab: Target,
    /// The order ids that were lost.
    #[arg(value_name = "ID", required = true)]
    pub ids: Vec<i64>,
}

#[derive(Args)]
pub struct ExerciseStop {
    #[command(flatten)]
    pub lab: Changing,
    #[command(flatten)]
    pub many: Many,
}

/// What `lab drill` runs: one of the fault drills, or the point-in-time restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Fault(Fault),
    /// A dropped table brought back by a point-in-time restore with pgBackRest.
    Pitr,
}

impl Scenario {
    /// The fault this scenario drills; None for pitr, which is a restore.
    pub fn fault(self) -> Option<Fault> {
        match self {
            Scenario::Fault(fault) => Some(fault),
            Scenario::Pitr => None,
        }
    }
}

/// Every scenario, as clap lists them: the faults, then pitr.
static SCENARIOS: std::sync::LazyLock<Vec<Scenario>> = std::sync::LazyLock::new(|| {
    Fault::ALL
        .into_iter()
        .map(Scenario::Fault)
        .chain([Scenario::Pitr])
        .collect()
});

impl clap::ValueEnum for Scenario {
    fn value_variants<'a>() -> &'a [Self] {
        &SCENARIOS
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(match self {
            Scenario::Fault(fault) => {
                clap::builder::PossibleValue::new(fault.name()).help(fault.help())
            }
            Scenario::Pitr => clap::builder::PossibleValue::new("pitr")
                .help("A dropped table brought back by a point-in-time restore with pgBackRest"),
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    /// Synchronous replication.
    On,
    /// Asynchronous replication.
    Off,
}

#[derive(Args)]
pub struct Sync {
    #[command(flatten)]
    pub lab: Changing,
    /// On: commits wait for a synchronous standby; off: asynchronous replication.
    pub mode: OnOff,
    /// synchronous_mode_strict: with no synchronous standby left, writes stop rather than go
    /// on unprotected.
    #[arg(long)]
    pub strict: bool,
    /// JSON for scripts instead of text for people.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub lab: Changing,
    /// The kind of backup.
    #[arg(long = "type", value_enum, default_value = "full", value_name = "TYPE")]
    pub kind: BackupType,
    /// JSON for scripts instead of text for people.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct Restore {
    #[command(flatten)]
    pub lab: Changing,
    /// The time to restore to, as PostgreSQL prints a timestamptz (the output of `select
    /// now()`, such as "2026-12-03 12:34:56.789+00"); pgBackRest's --target.
    #[arg(long, value_name = "T")]
    pub time: String,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Subcommand)]
pub enum EtcdCommand {
    /// Stop etcd on these members.
    #[command(after_help = "Example:\n  lab etcd stop pgha4 pgha5")]
    Stop(Members),
    /// Start etcd on these members again.
    #[command(after_help = "Example:\n  lab etcd start pgha4 pgha5")]
    Start(Members),
}

#[derive(Args)]
pub struct Members {
    #[command(flatten)]
    pub lab: Changing,
    /// The etcd members, such as pgha3 pgha4.
    #[arg(required = true, value_name = "NODE")]
    pub nodes: Vec<String>,
    /// JSON for scripts instead of text for people.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct Destroy {
    #[command(flatten)]
    pub lab: Changing,
    /// Every lab on the Docker Engine, or on every engine given (--name is then left aside).
    /// It asks first, listing them, unless --yes.
    #[arg(long, conflicts_with = "class")]
    pub all: bool,
    /// Every lab of the class PREFIX (PREFIX and PREFIX-…, as `lab create --count N --name
    /// PREFIX` names them), on every engine given (asks first, unless --yes).
    #[arg(long, value_name = "PREFIX")]
    pub class: Option<String>,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Subcommand)]
pub enum ImageCommand {
    /// Build the lab image from Debian packages (nothing happens when it already exists).
    #[command(
        after_help = "Examples:\n  lab image build\n  lab image build --force --mirror http://deb.example.lan/debian"
    )]
    Build(ImageBuild),
    /// Print the versions of PostgreSQL, Patroni, etcd and pgBackRest inside the image.
    #[command(after_help = "Examples:\n  lab image info\n  lab image info --json")]
    Info(ImageInfo),
}

#[derive(Args)]
pub struct ImageInfo {
    /// The lab image's tag.
    #[arg(long, default_value = IMAGE, value_name = "TAG")]
    pub image: String,
    /// JSON for scripts instead of text for people.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct Completions {
    /// The shell to complete for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

#[derive(Args)]
pub struct Man {
    /// Write lab.1 and a page per command (lab-create.1, ...) into this directory instead of
    /// printing lab.1.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<std::path::PathBuf>,
}

#[derive(Args)]
pub struct ImageBuild {
    /// Rebuild even when the image exists (as `cargo install --force` reinstalls).
    #[arg(long)]
    pub force: bool,
    /// A Debian mirror to install from (for example a classroom's local mirror); default: the
    /// one this host's apt uses, else deb.debian.org.
    #[arg(long, value_name = "URL")]
    pub mirror: Option<String>,
    /// The lab image's tag.
    #[arg(long, default_value = IMAGE, value_name = "TAG")]
    pub image: String,
}

/// Refuses `--all` with a lab's name given on the command line (LAB_NAME in the environment is
/// no refusal: it names the lab the other commands work on).
pub fn all_and_name(matches: &clap::ArgMatches) -> Option<String> {
    let (command, args) = match matches.subcommand()? {
        (c @ ("destroy" | "reset"), args) => (c.to_string(), args),
        ("exercise", args) => match args.subcommand()? {
            (sub @ ("start" | "status" | "stop"), args) => (format!("exercise {sub}"), args),
            _ => return None,
        },
        _ => return None,
    };
    let named = args.value_source("name") == Some(clap::parser::ValueSource::CommandLine);
    let all = args.try_get_one::<bool>("all").ok().flatten() == Some(&true);
    let class = args.try_get_one::<String>("class").ok().flatten().is_some();
    let flag = if all { "--all" } else { "--class" };
    ((all || class) && named).then(|| {
        format!(
            "lab {command} {flag} works on several labs; it takes no --name. Leave out --name \
             for them, or {flag} for the one named."
        )
    })
}

#[cfg(test)]
mod tests {
    use clap::FromArgMatches;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let matches = command().try_get_matches_from(args)?;
        Cli::from_arg_matches(&matches)
    }

    fn exec_of(args: &[&str]) -> (String, bool, Vec<String>) {
        match parse(args).unwrap().command {
            Command::Exec(e) => (e.node, e.root, e.cmd),
            _ => panic!("not exec"),
        }
    }

    #[test]
    fn help_lines_wrap_between_words() {
        assert_eq!(
            wrap("Put a lab back to the state it was created in", 20),
            ["Put a lab back to", "the state it was", "created in"]
        );
        assert_eq!(wrap("a-very-long-word b", 5), ["a-very-long-word", "b"]);
        assert!(wrap("", 10).is_empty());
    }

    #[test]
    fn the_definitions_hold_together() {
        command().debug_assert();
    }

    #[test]
    fn every_command_is_in_one_group() {
        let cmd = command();
        let mut grouped: Vec<&str> = GROUPS.iter().flat_map(|(_, n)| n.iter().copied()).collect();
        let total = grouped.len();
        grouped.sort_unstable();
        grouped.dedup();
        assert_eq!(grouped.len(), total, "a command in two groups");
        for sub in cmd.get_subcommands() {
            assert!(
                grouped.contains(&sub.get_name()),
                "{} is in no group of `lab --help`",
                sub.get_name()
            );
        }
    }

    #[test]
    fn exec_takes_the_command_with_or_without_dashes() {
        let want = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (node, root, cmd) = exec_of(&["lab", "exec", "pgha1", "ls", "-l", "/pgdata"]);
        assert_eq!((node.as_str(), root), ("pgha1", false));
        assert_eq!(cmd, want(&["ls", "-l", "/pgdata"]));
        let (_, _, cmd) = exec_of(&["lab", "exec", "--name", "x", "pgha2", "--", "false"]);
        assert_eq!(cmd, want(&["false"]));
        let (_, root, cmd) = exec_of(&["lab", "exec", "pgha1", "--root", "id", "--name", "y"]);
        assert!(root);
        assert_eq!(
            cmd,
            want(&["id", "--name", "y"]),
            "options after the command are its own"
        );
        let (_, _, cmd) = exec_of(&["lab", "exec", "pgha1", "--", "bash", "-lc", "echo -n"]);
        assert_eq!(cmd, want(&["bash", "-lc", "echo -n"]));
        assert!(
            parse(&["lab", "exec", "pgha1"]).is_err(),
            "a command is required"
        );
    }

    #[test]
    fn create_takes_several_names_short_or_long() {
        let Command::Create(c) = parse(&["lab", "create", "-n", "a", "--name", "b"])
            .unwrap()
            .command
        else {
            panic!("not create")
        };
        assert_eq!(c.names, ["a", "b"]);
    }

    #[test]
    fn the_old_spelling_of_even_etcd_still_works() {
        let Command::Create(c) = parse(&["lab", "create", "--etcd", "4", "--force"])
            .unwrap()
            .command
        else {
            panic!("not create")
        };
        assert!(c.even_etcd);
    }

    #[test]
    fn all_refuses_a_name_on_the_command_line_only() {
        let m = command()
            .try_get_matches_from(["lab", "destroy", "--all", "-n", "x"])
            .unwrap();
        assert!(all_and_name(&m).is_some());
        let m = command()
            .try_get_matches_from(["lab", "reset", "--all"])
            .unwrap();
        assert!(all_and_name(&m).is_none());
        let m = command()
            .try_get_matches_from(["lab", "stop", "-n", "x"])
            .unwrap();
        assert!(all_and_name(&m).is_none());
        let m = command()
            .try_get_matches_from(["lab", "exercise", "status", "--class", "c", "-n", "x"])
            .unwrap();
        let said = all_and_name(&m).unwrap();
        assert!(said.starts_with("lab exercise status --class works on several labs"));
        let m = command()
            .try_get_matches_from(["lab", "exercise", "hint", "-n", "x"])
            .unwrap();
        assert!(all_and_name(&m).is_none());
    }

    #[test]
    fn stop_and_logs_take_their_new_arguments() {
        let Command::Stop(s) = parse(&["lab", "stop", "pgha2", "pgha3"]).unwrap().command else {
            panic!("not stop")
        };
        assert_eq!(s.nodes, ["pgha2", "pgha3"]);
        let Command::Logs(l) = parse(&["lab", "logs", "pgha1", "etcd", "--tail", "5"])
            .unwrap()
            .command
        else {
            panic!("not logs")
        };
        assert_eq!(l.tail, 5);
        assert!(parse(&["lab", "logs", "pgha1", "--tail", "many"]).is_err());
    }
}
