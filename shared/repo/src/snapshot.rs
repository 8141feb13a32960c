use crate::Id;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Figures about one backup run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SnapshotSummary {
    pub files: u64,
    pub dirs: u64,
    /// Logical bytes of all file content in the snapshot.
    pub bytes: u64,
    /// Bytes actually read from the source (files unchanged since the parent are not read).
    pub bytes_read: u64,
    /// Plaintext bytes of blobs that were new to the repository.
    pub bytes_new: u64,
    /// Bytes of new blobs as stored (compressed and encrypted).
    pub bytes_stored: u64,
    pub blobs_new: u64,
    pub packs_written: u64,
    pub duration_secs: f64,
}

/// A snapshot manifest: the content of a `snapshots/<id>` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u32,
    /// What was backed up: `volume` for files and devices.
    pub kind: String,
    pub time: DateTime<Utc>,
    pub hostname: String,
    /// The source paths, absolute, in the order given.
    pub paths: Vec<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The root tree: one node per source path.
    pub tree: Id,
    /// The snapshot whose file metadata let unchanged files be skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Id>,
    pub summary: SnapshotSummary,
    /// For `cluster` snapshots: where the objects came from and what they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterSource>,
    /// The repository's `config` and key set when the snapshot was written
    /// (absent in older snapshots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<crate::RepoFingerprint>,
}

/// The source of a `cluster` snapshot. Its tree holds
/// `objects/<resource>/<namespace>/<name>` (cluster-scoped objects have no
/// namespace level) and the same paths under `status/`, one blob each of
/// canonical JSON; `<resource>` is a [`ClusterResource::key`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterSource {
    /// The kubeconfig context (or the name given with `--cluster-name`).
    pub name: String,
    /// The API server URL.
    pub server: String,
    /// The scope as the user gave it.
    pub scope: serde_json::Value,
    /// Every resource with at least one object in the snapshot.
    pub resources: Vec<ClusterResource>,
    /// The volumes whose data the snapshot holds, under `volumes/` in its
    /// tree. Absent in snapshots without volume data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeData>,
    /// Whether `scope` is the cluster's whole configured scope (nothing left
    /// out by the request beyond the defaults). Absent in older snapshots:
    /// see [`ClusterSource::is_full`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full: Option<bool>,
    /// The id of `scope` (`cluster_scope::scope_id`). Absent in older
    /// snapshots: computed from `scope` then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_id: Option<String>,
    /// Claims in scope whose data the backup was asked to copy but could
    /// not (the snapshot or the copy failed): the snapshot is partial for
    /// them. Absent when none, and in older snapshots.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes_missing: Vec<MissingVolume>,
    /// The export's warnings, as the backup printed them (at most 100):
    /// what it could not read (an aggregated API not served, a resource
    /// that could not be listed), whose objects the snapshot lacks. Absent
    /// when none, and in older snapshots.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// A claim in scope whose data a cluster snapshot does not hold although it
/// should: its VolumeSnapshot or its copy failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingVolume {
    pub namespace: String,
    pub claim: String,
    /// What failed, as the backup reported it.
    pub reason: String,
}

/// One volume's data in a cluster snapshot: which claim it served, the CSI
/// snapshot it was copied from, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeData {
    /// The claim, as in the snapshot's objects.
    pub namespace: String,
    pub claim: String,
    /// The PersistentVolume it was bound to, and its CSI driver.
    pub volume: String,
    pub driver: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// `Filesystem` or `Block`.
    pub mode: String,
    /// Bytes of the volume.
    pub size: u64,
    /// The driver's snapshot the data was read from, and its class.
    pub csi_snapshot: String,
    pub snapshot_class: String,
    /// The VolumeGroupSnapshot it was taken with; absent when taken alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// What copied the data: `ebs` (the EBS direct APIs, by block), `block`
    /// (an image or device, by block) or `filesystem` (the files of the
    /// mounted snapshot).
    pub mover: String,
    /// The node in the snapshot's tree: `volumes/<namespace>/<claim>`, a
    /// file node of fixed-size chunks for the block movers, a directory for
    /// `filesystem`.
    pub path: String,
    /// For an incremental copy: the earlier driver snapshot that only the
    /// blocks changed since were read against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    pub blocks_read: u64,
    pub bytes_read: u64,
    /// New data, as stored (compressed and encrypted).
    pub bytes_stored: u64,
}

/// One kind of object in a cluster snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterResource {
    /// API group; empty for the core group.
    pub group: String,
    pub version: String,
    /// Plural resource name, e.g. `deployments`.
    pub resource: String,
    pub kind: String,
    pub namespaced: bool,
    /// Whether the resource has a status subresource in the source cluster.
    #[serde(default)]
    pub has_status: bool,
    pub objects: u64,
}

impl ClusterResource {
    /// `deployments.apps`, or `configmaps` for the core group: the directory
    /// name under `objects/` and `status/`.
    pub fn key(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The manifest documented in docs/format.md ("Volume data in cluster
    /// snapshots") is a promise: it must keep reading, field for field.
    #[test]
    fn golden_cluster_manifest_with_volumes_reads_and_round_trips() {
        let text = include_str!("../tests/golden-manifests/cluster-with-volumes.json");
        let snap: Snapshot = serde_json::from_str(text).unwrap();
        let cluster = snap.cluster.as_ref().unwrap();
        let v = &cluster.volumes[0];
        assert_eq!(v.path, "volumes/shop/data");
        assert_eq!(v.mover, "ebs");
        assert_eq!(v.base.as_deref(), Some("snap-0fedcba9876543210"));
        assert_eq!(v.group, None);
        assert_eq!(v.size, 1 << 30);
        let again: Snapshot = serde_json::from_value(serde_json::to_value(&snap).unwrap()).unwrap();
        assert_eq!(again, snap);
        let want: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_value(&snap).unwrap(), want);
    }

    #[test]
    fn snapshots_without_volumes_do_not_mention_them() {
        let text = include_str!("../tests/golden-manifests/cluster-with-volumes.json");
        let mut snap: Snapshot = serde_json::from_str(text).unwrap();
        if let Some(c) = snap.cluster.as_mut() {
            c.volumes.clear();
        }
        let json = serde_json::to_string(&snap).unwrap();
        assert!(!json.contains("volumes"), "{json}");
    }
}
