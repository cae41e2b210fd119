//! Every command built on the lab model: the lifecycle (create, bootstrap, start, stop,
//! destroy, reset), looking and connecting (list, status, watch, check, connect, psql, shell,
//! exec, logs), the drills, backups and restores, and a class's access (sheet, rotate).

pub mod access;
mod backups;
mod bootstrap;
mod check;
mod class;
mod connect;
mod create;
mod destroy;
mod drill;
mod drills;
mod engines;
pub mod exercise;
mod metrics;
mod pitr;
mod power;
mod records;
mod reset;
mod session;
mod show;
pub mod spread;
mod sync;
pub mod watch;

pub use backups::{BackupType, list as backups, table as backups_table, take as backup};
pub use bootstrap::bootstrap;
pub use check::{Next, Report as CheckReport, Step as CheckStep, check};
pub use class::{each as each_lab, each_at, in_class};
pub use connect::{ca, connect, write_ca};
pub use create::{CreateOptions, create, dry_run};
pub use destroy::{DestroyedAll, all_names, destroy, destroy_all};
pub use drill::drill;
pub use drills::{
    FaultReport, change_leader, etcd_members, heal, kill, partition, start_nodes, stop_nodes,
};
pub use engines::{EngineRow, engines, text as engines_text};
pub use metrics::metrics;
pub use pitr::{drill as pitr_drill, restore};
// The engine's timestamps, for the age of a lock container.
pub(crate) use pitr::parse_time;
pub use power::{start, stop};
pub use records::{LastDrill, LastReset, last_drill, last_reset, now as unix_now};
pub use reset::{has_snapshot, reset, snapshot};
pub use session::{Component, PsqlTarget, exec, logs, psql, shell};
pub use show::{Listed, list, list_text, status};
pub use sync::sync;
pub use watch::watch;
