//! The filesystem and block movers: `lifeboat volume backup` and `lifeboat
//! volume restore` run as a Kubernetes Job in the protected cluster, for
//! volumes of any CSI driver (any cloud, on-premises). The Jobs, their
//! Secrets (the repository's passphrase) and their staging claims are in
//! Lifeboat's own namespace ([`MoverSettings::namespace`], default
//! `lifeboat-system`), never in the application's.
//!
//! - Backup: the application's VolumeSnapshot is imported into Lifeboat's
//!   namespace (a pre-provisioned content with the same snapshot handle,
//!   deletion policy Retain); a claim made from it there (a *staging*
//!   claim, so the application's volume is never touched) is mounted
//!   read-only at [`VOLUME_MOUNT`] (Filesystem) or attached at
//!   [`VOLUME_DEVICE`] (Block), and the Job backs it up into the repository.
//! - Restore: a new, empty staging claim is filled from the repository by
//!   the Job, then snapshotted there; that snapshot is imported into the
//!   application's namespace, and the restored claim takes it as its
//!   dataSource, like a volume restored through the EBS path.
//!
//! Everything is stamped with a nonce only Lifeboat can compute
//! ([`crate::csi::owned`]): an object of the same name without it is
//! refused, never adopted.
//!
//! [`manifest`] builds the objects (pure, tested field by field);
//! [`job`] creates them, waits for the Job and reads its result (the
//! command's JSON, written to the container's termination message).

pub mod job;
pub mod manifest;
mod settings;

pub use job::{check_name, ensure_namespace, remove, start, wait_for, JobResult};
pub use manifest::{
    Direction, MoverJob, CLAIM_ANNOTATION, MOVER_LABEL, TERMINATION_LOG, VOLUME_DEVICE,
    VOLUME_MOUNT,
};
pub use settings::{MoverSettings, DEFAULT_NAMESPACE};
