//! Cluster state: `lifeboat backup` exports every API object in scope into a
//! `cluster` snapshot, one blob per object; `lifeboat restore` puts them back.

mod backup;
mod collector;
mod restore;
mod volumes;

pub use backup::{
    backup_cluster, commit_cluster, export_cluster, ClusterBackupOptions, ClusterBackupOutcome,
    ExportedState,
};
pub use restore::{load_objects, restore_cluster, ClusterRestoreOutcome, RestoreReport};
pub use volumes::{attach_volumes, tree_node, volume_path, CopiedVolume, VOLUMES_DIR};
