//! Lifeboat's use cases, one module each, over a [`Repository`]:
//! volume backup and restore, check, prune with GFS retention, lock
//! extension, statistics and snapshot diffs.
//!
//! Operations are async and never start a runtime of their own; CPU-heavy
//! stages (chunking, hashing, compression, encryption) run on Tokio's blocking
//! pool. Long operations report through a shared [`Progress`].
//!
//! [`Repository`]: lifeboat_repo::Repository

pub mod backup;
pub mod check;
pub mod cluster;
pub mod compare;
pub mod detect;
pub mod diff;
mod error;
pub mod extend_locks;
pub mod forget;
pub mod memory;
pub mod pending;
mod progress;
pub mod prune;
mod reachable;
pub mod repair;
pub mod replicate;
pub mod report_retention;
pub mod restore;
pub mod sample_data;
pub mod sample_volume;
pub mod series;
pub mod stats;
#[cfg(test)]
mod testing;
pub mod verify;
pub mod volume;

pub use error::OpsError;
pub use progress::{Progress, ProgressSnapshot};
