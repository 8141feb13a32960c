//! The filesystem and block movers: `lifeboat volume backup` and `lifeboat
//! volume restore` run as a Kubernetes Job in the protected cluster, for
//! volumes of any CSI driver (any cloud, on-premises).
//!
//! - Backup: a claim made from the VolumeSnapshot (a *staging* claim, so
//!   the application's volume is never touched) is mounted read-only at
//!   [`VOLUME_MOUNT`] (Filesystem) or attached at [`VOLUME_DEVICE`] (Block),
//!   and the Job backs it up into the repository.
//! - Restore: a new, empty staging claim is filled from the repository by
//!   the Job, then snapshotted; the restored claim takes that snapshot as
//!   its dataSource, like a volume restored through the EBS path.
//!
//! [`manifest`] builds the objects (pure, tested field by field);
//! [`job`] creates them, waits for the Job and reads its result (the
//! command's JSON, written to the container's termination message).

pub mod job;
pub mod manifest;

pub use job::{remove, start, wait_for, JobResult};
pub use manifest::{
    Direction, MoverJob, MoverSettings, MOVER_LABEL, TERMINATION_LOG, VOLUME_DEVICE, VOLUME_MOUNT,
};
