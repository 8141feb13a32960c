//! The volume steps: snapshot-volumes and copy-volume (backup), the volume
//! part of commit, and restore-volumes.
//!
//! Claims on the EBS CSI driver are copied through the EBS direct APIs, one
//! Map item per block range of each volume; a range's result is durable
//! once returned, so a retried item rereads only its own range. Claims on
//! other drivers are copied by a mover Job in the protected cluster
//! ([`mover`]: the filesystem mover for Filesystem volumes, the block mover
//! for Block volumes), one Map item per volume.
//!
//! Claims of one namespace and driver labelled `lifeboat.dev/group` with
//! the same value are snapshotted together as one VolumeGroupSnapshot
//! ([`group`]), when the driver has a VolumeGroupSnapshotClass; otherwise
//! one by one, and the step result says why.

mod backup;
mod group;
mod missing;
pub mod mover;
mod mover_restore;
mod reattach;
mod restore;
mod snapshot;

pub use backup::{
    copied_volumes, copy_volume, release_older_snapshots, Base, CopyItem, CopyResult,
};
pub use missing::missing_volumes;
pub use reattach::{claims_to_exempt, volume_transform, ExemptClaims};
pub use restore::{restore_volumes, RestoredVolume, RestoredVolumes};
pub use snapshot::snapshot_volumes;

use crate::state::State;

/// The EBS CSI driver, whose snapshots the EBS direct APIs read.
pub const EBS_DRIVER: &str = "ebs.csi.aws.com";

/// The run a backup's VolumeSnapshots are labelled with: the execution's name.
pub(crate) fn run_name(state: &State) -> String {
    state
        .execution
        .as_ref()
        .and_then(|e| e.name.clone())
        .unwrap_or_else(|| state.started().format("%Y%m%dt%H%M%S").to_string())
}
