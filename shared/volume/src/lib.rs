//! Lifeboat's volume side.
//!
//! - [`block`]: a snapshot's data read block by block ([`BlockSource`]) and a
//!   new snapshot or volume written block by block ([`BlockSink`]), with an
//!   implementation over image files and block devices ([`ImageFile`]).
//!   The EBS direct APIs implement the same traits in [`ebs`].
//! - [`csi`]: snapshots of PersistentVolumeClaims through the CSI snapshot
//!   API (`snapshot.storage.k8s.io/v1`), and volumes restored from them.
//!
//! - [`mover`]: the filesystem and block movers, `lifeboat volume backup`
//!   and `restore` run as a Job in the protected cluster.
//!
//! Nothing here knows about the repository; `lifeboat-ops` copies blocks
//! between a source or sink and the repository.

pub mod block;
pub mod csi;
pub mod ebs;
mod error;
pub mod mover;

pub use block::{Block, BlockSink, BlockSource, ChangedBlock, Geometry, ImageFile};
pub use error::VolumeError;
