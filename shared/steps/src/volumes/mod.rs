//! The volume steps: snapshot-volumes and copy-volume (backup), the volume
//! part of commit, and restore-volumes.
//!
//! Claims on the EBS CSI driver are copied through the EBS direct APIs, one
//! Map item per block range of each volume; a range's result is durable
//! once returned, so a retried item rereads only its own range. Claims on
//! other drivers are snapshotted and listed as not copied, with the reason
//! (the filesystem mover, a Job in the protected cluster, is not built yet).

mod backup;
mod restore;

pub use backup::{
    copied_volumes, copy_volume, release_older_snapshots, snapshot_volumes, Base, CopyItem,
    CopyResult,
};
pub use restore::{restore_volumes, RestoredVolume, RestoredVolumes};

use crate::state::State;
use crate::StepError;
use lifeboat_repo::{Id, Node, Repository};

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

/// The content of `path` in repository snapshot `snapshot`.
pub(crate) async fn node_at(
    repo: &Repository,
    snapshot: &Id,
    path: &str,
) -> Result<Option<Node>, StepError> {
    let snap: lifeboat_repo::Snapshot = repo
        .load_file(lifeboat_repo::FileKind::Snapshot, snapshot)
        .await?;
    let index = repo.load_index().await?;
    let mut tree = repo.load_tree(&index, &snap.tree).await?;
    let parts: Vec<&str> = path.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        let Some(node) = tree.nodes.into_iter().find(|n| n.name == *part) else {
            return Ok(None);
        };
        if i + 1 == parts.len() {
            return Ok(Some(node));
        }
        let Some(sub) = node.subtree else {
            return Ok(None);
        };
        tree = repo.load_tree(&index, &sub).await?;
    }
    Ok(None)
}
