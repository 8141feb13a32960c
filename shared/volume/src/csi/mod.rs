//! Volumes through the CSI snapshot API (`snapshot.storage.k8s.io/v1`).
//!
//! - [`claim`] / [`claims_in`]: a PersistentVolumeClaim resolved to its
//!   bound CSI volume (driver, handle, size, mode), or a clear reason it
//!   cannot be snapshotted (not bound, not CSI).
//! - [`snapshot_class`]: the VolumeSnapshotClass to use (asked for, named by
//!   the StorageClass, or the driver's default).
//! - [`take_snapshot`]: a labelled VolumeSnapshot with a stable name (a
//!   retried step finds its own), waited for until ready, with its content's
//!   handle and size.
//! - [`import_snapshot`]: a driver snapshot handle brought into a cluster as
//!   a pre-provisioned VolumeSnapshotContent and VolumeSnapshot, for a
//!   restored claim's dataSource.

mod claim;
mod snapshot;

pub use claim::{claim, claims_in, parse_quantity, Claim};
pub(crate) use claim::{core, str_at};
pub(crate) use snapshot::label_value;
pub use snapshot::{
    delete_older_snapshots, delete_snapshot, import_snapshot, snapshot_class, snapshot_name,
    take_snapshot, wait_ready, CsiSnapshot, Wait, CLASS_ANNOTATION, MANAGED_LABEL, RUN_LABEL,
};
