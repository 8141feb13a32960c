//! Cluster state: `lifeboat backup` exports every API object in scope into a
//! `cluster` snapshot, one blob per object; `lifeboat restore` puts them back.

mod backup;
mod collector;
mod restore;

pub use backup::{backup_cluster, ClusterBackupOptions, ClusterBackupOutcome};
pub use restore::{restore_cluster, ClusterRestoreOutcome, RestoreReport};
