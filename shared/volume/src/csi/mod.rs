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
//! - [`group_snapshot_class`] / [`take_group_snapshot`]: the claims of one
//!   application (label `lifeboat.dev/group`) snapshotted together as a
//!   VolumeGroupSnapshot, each claim's member snapshot read as above.
//! - [`delete_older_snapshots`] / [`delete_older_group_snapshots`]: the
//!   newest of Lifeboat's snapshots of a claim or group kept, the rest
//!   deleted.
//! - [`import_snapshot`]: a driver snapshot handle brought into a namespace
//!   as a pre-provisioned VolumeSnapshotContent and VolumeSnapshot, for a
//!   restored claim's dataSource or a mover's staging claim.
//! - [`owned`]: objects with predictable names carry a nonce only Lifeboat
//!   can compute; one without it is refused, never adopted.

mod claim;
mod group;
mod group_class;
mod import;
pub mod owned;
mod release;
mod snapshot;

pub use claim::{claim, claims_in, parse_quantity, Claim};
pub(crate) use claim::{core, str_at};
pub use group::{group_snapshot_name, labelled_claims, take_group_snapshot, GROUP_LABEL};
pub use group_class::{group_snapshot_class, GroupClass, GROUP_CLASS_ANNOTATION};
pub use import::{
    delete_snapshot_and_content, find_ours, find_ready, import_snapshot, imported_content_name,
    retain_content, DeletionPolicy, SnapshotImport,
};
pub use owned::NONCE_ANNOTATION;
pub use release::{
    delete_older_group_snapshots, delete_older_snapshots, delete_snapshot, group_of_snapshot,
};
pub(crate) use snapshot::label_value;
pub use snapshot::{
    snapshot_class, snapshot_name, take_owned_snapshot, take_snapshot, wait_ready, CsiSnapshot,
    Wait, CLASS_ANNOTATION, MANAGED_LABEL, RUN_LABEL,
};
