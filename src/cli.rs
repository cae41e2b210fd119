//! The command line: clap definitions only.

use clap::{Args, Parser, Subcommand};

use crate::fault::Fault;
use crate::image::definition::IMAGE;
use crate::lab::{BackupType, Component};
use crate::spec::{RepoPlace, Stage, Topology};

/// Turns a Docker Engine into a PostgreSQL high-availability training lab: PostgreSQL 17 with
/// Patroni 4, an etcd quorum and a pgBackRest repository, bootstrapped and proven healthy.
#[derive(Parser)]
#[command(name = "lab", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create a lab (or one per trainee): network, nodes, and the bootstrapped HA stack.
    Create(Create),
    /// Continue bootstrapping an existing lab from where it stands, up to a stage.
    Bootstrap(Bootstrap),
    /// Start a stopped lab, or some of its nodes (a killed one rejoins as a replica).
    Start(Start),
    /// Stop a lab's services cleanly, then its nodes, keeping everything in them.
    Stop(Changing),
    /// Remove a lab: its containers, volumes and (when it made it) its network.
    Destroy(Destroy),
    /// Put a lab back to the state it was created in: same names, addresses and ports.
    Reset(Reset),
    /// List every lab on this Docker Engine.
    List,
    /// Show a lab's nodes, Patroni members, etcd quorum and last backup.
    Status(Status),
    /// Where a lab stands in the course, step by step, and the course's next command.
    Check(Status),
    /// Print the connection strings for the lab, from this host and from inside it.
    Connect(Target),
    /// Write a `--tls` lab's CA certificate, for clients on this host to verify the lab with.
    Ca(Ca),
    /// Run psql on a node (the primary unless told otherwise).
    Psql(Psql),
    /// Open a login shell on a node, as postgres (or root).
    Shell(Shell),
    /// Run one command on a node; its output and exit code pass through.
    Exec(Exec),
    /// Show (or follow) a service's log on a node.
    Logs(Logs),
    /// Drill: kill a node the hard way and watch the cluster answer.
    Kill(NodeArg),
    /// Drill: cut a node off the lab network (it keeps its address).
    Partition(NodeArg),
    /// Drill: put a partitioned node back and watch it rejoin.
    Heal(NodeArg),
    /// Drill: a planned switchover through Patroni.
    Switchover(Handover),
    /// Drill: a manual failover through Patroni.
    Failover(Handover),
    /// Drill: stop or start etcd on chosen members to show quorum loss and recovery.
    #[command(subcommand)]
    Etcd(EtcdCommand),
    /// A fault with a client workload around it, measured as the application saw it (write
    /// downtime, acknowledged writes lost, errors), then the lab put back; or `pitr`, a dropped
    /// table brought back by a point-in-time restore.
    Drill(Drill),
    /// Switch synchronous replication on or off through Patroni's dynamic configuration.
    Sync(Sync),
    /// Take a pgBackRest backup from the repository host.
    Backup(BackupArgs),
    /// List the pgBackRest backups in the repository.
    Backups(Status),
    /// Restore the cluster to a point in time with pgBackRest; everything written after it is
    /// lost.
    Restore(Restore),
    /// Build or inspect the lab image.
    #[command(subcommand)]
    Image(ImageCommand),
}

/// Which lab.
#[derive(Args)]
pub struct Target {
    /// The lab's name.
    #[arg(long, default_value = "pgha")]
    pub name: String,
}

/// Which lab, for a command that changes it: such a command holds the lab's lock, and one
/// started while another changes the same lab is refused at once, naming it (exit 2).
#[derive(Args)]
pub struct Changing {
    /// The lab's name.
    #[arg(long, default_value = "pgha")]
    pub name: String,
    /// When another command is changing this lab, wait for it to end instead of refusing.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Args)]
pub struct Create {
    /// The lab's name; nodes are NAME1, NAME2, ... Repeat it for one lab per trainee.
    #[arg(long = "name", default_value = "pgha", value_name = "NAME")]
    pub names: Vec<String>,
    /// Create this many labs, named NAME-a, NAME-b, ... (each with its own network, subnet and
    /// ports).
    #[arg(long, conflicts_with_all = ["network", "subnet"])]
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
    /// Put the etcd members on nodes of their own, after the PostgreSQL nodes.
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
    /// The Docker network [default: NAMEnet, created]; an existing one is joined.
    #[arg(long, value_name = "NET")]
    pub network: Option<String>,
    /// Subnet of a new network [default: 192.168.50.0/24, or the next free /24].
    #[arg(long, value_name = "CIDR")]
    pub subnet: Option<String>,
    /// The lab image.
    #[arg(long, default_value = IMAGE, value_name = "TAG")]
    pub image: String,
    /// Host address the PostgreSQL ports are published on.
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDR")]
    pub publish: String,
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
    /// Secure every channel: a CA of the lab's own and a certificate per node; etcd with
    /// client certificates, Patroni's REST API over https with authentication for changes,
    /// PostgreSQL refusing plain remote connections, HAProxy checking over https.
    #[arg(long)]
    pub tls: bool,
    /// Stop after this stage, to do the rest by hand as the course teaches.
    #[arg(long, value_enum, default_value = "backup")]
    pub stage: Stage,
    /// Print the plan (names, addresses, ports, roles, aliases) and touch nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Destroy an existing lab of the same name first.
    #[arg(long)]
    pub replace: bool,
    /// On failure, leave what was made for inspection instead of removing it.
    #[arg(long)]
    pub keep_on_failure: bool,
    /// Accept an even number of etcd members.
    #[arg(long)]
    pub force: bool,
    /// When another command is changing a lab of this name, wait for it to end instead of
    /// refusing.
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
    /// Go up to this stage; what is already done is skipped.
    #[arg(long, value_enum, default_value = "backup")]
    pub stage: Stage,
}

#[derive(Args)]
pub struct Start {
    #[command(flatten)]
    pub lab: Changing,
    /// Only these nodes (default: all).
    pub nodes: Vec<String>,
}

#[derive(Args)]
pub struct Reset {
    #[command(flatten)]
    pub lab: Changing,
    /// Reset every lab on this Docker Engine.
    #[arg(long, conflicts_with = "name")]
    pub all: bool,
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
pub struct Psql {
    #[command(flatten)]
    pub lab: Target,
    /// The node to connect on.
    #[arg(conflicts_with_all = ["primary", "replica"])]
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
    pub node: String,
    /// As root instead of postgres.
    #[arg(long)]
    pub root: bool,
}

#[derive(Args)]
pub struct Exec {
    #[command(flatten)]
    pub lab: Target,
    pub node: String,
    /// As root instead of postgres.
    #[arg(long)]
    pub root: bool,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true)]
    pub cmd: Vec<String>,
}

#[derive(Args)]
pub struct Logs {
    #[command(flatten)]
    pub lab: Target,
    pub node: String,
    /// Which log [default: patroni on PostgreSQL nodes, etcd on etcd members, haproxy on the
    /// HAProxy node, pgbackrest elsewhere].
    #[arg(value_enum)]
    pub component: Option<Component>,
    /// Keep printing new lines until Ctrl-C.
    #[arg(long, short)]
    pub follow: bool,
}

#[derive(Args)]
pub struct NodeArg {
    #[command(flatten)]
    pub lab: Changing,
    pub node: String,
}

#[derive(Args)]
pub struct Handover {
    #[command(flatten)]
    pub lab: Changing,
    /// The replica to promote [default: Patroni's choice for a switchover, the first
    /// streaming replica for a failover].
    #[arg(long, value_name = "NODE")]
    pub to: Option<String>,
}

#[derive(Args)]
pub struct Drill {
    #[command(flatten)]
    pub lab: Changing,
    pub scenario: Scenario,
    /// Also read through the read-only entry (HAProxy's 5001, or the read-only multi-host
    /// string) and report what reads saw.
    #[arg(long)]
    pub reader: bool,
    /// JSON for scripts instead of text for people.
    #[arg(long)]
    pub json: bool,
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
    On,
    Off,
}

#[derive(Args)]
pub struct Sync {
    #[command(flatten)]
    pub lab: Changing,
    pub mode: OnOff,
    /// synchronous_mode_strict: with no synchronous standby left, writes stop rather than go
    /// on unprotected.
    #[arg(long)]
    pub strict: bool,
}

#[derive(Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub lab: Changing,
    /// The kind of backup.
    #[arg(long = "type", value_enum, default_value = "full", value_name = "TYPE")]
    pub kind: BackupType,
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
    #[arg(long)]
    pub yes: bool,
}

#[derive(Subcommand)]
pub enum EtcdCommand {
    /// Stop etcd on these members.
    Stop(Members),
    /// Start etcd on these members again.
    Start(Members),
}

#[derive(Args)]
pub struct Members {
    #[command(flatten)]
    pub lab: Changing,
    #[arg(required = true)]
    pub nodes: Vec<String>,
}

#[derive(Args)]
pub struct Destroy {
    #[command(flatten)]
    pub lab: Changing,
    /// Destroy every lab on this Docker Engine.
    #[arg(long, conflicts_with = "name")]
    pub all: bool,
}

#[derive(Subcommand)]
pub enum ImageCommand {
    /// Build the lab image from Debian packages (nothing happens when it already exists).
    Build(ImageBuild),
    /// Print the versions of PostgreSQL, Patroni, etcd and pgBackRest inside the image.
    Info {
        /// The image to describe.
        #[arg(long, default_value = IMAGE)]
        image: String,
    },
}

#[derive(Args)]
pub struct ImageBuild {
    /// Rebuild even when the image exists.
    #[arg(long)]
    pub force: bool,
    /// A Debian mirror to install from (for example a classroom's local mirror); default: the
    /// one this host's apt uses, else deb.debian.org.
    #[arg(long, value_name = "URL")]
    pub mirror: Option<String>,
    /// The tag to build.
    #[arg(long, default_value = IMAGE)]
    pub image: String,
}
