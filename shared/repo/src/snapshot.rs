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
}
