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
