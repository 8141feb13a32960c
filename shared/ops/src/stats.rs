//! `repo stats`: what the repository holds and how well it deduplicates.

use crate::OpsError;
use lifeboat_repo::{BlobType, FileKind, Repository};
use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct RepoStats {
    pub location: String,
    pub format_version: u32,
    pub snapshots: u64,
    pub packs: u64,
    pub index_files: u64,
    pub objects: u64,
    /// Bytes of all objects in the store.
    pub stored_bytes: u64,
    pub data_blobs: u64,
    pub tree_blobs: u64,
    /// Plaintext bytes of all distinct blobs.
    pub unique_bytes: u64,
    /// Sum of the logical sizes of all snapshots.
    pub logical_bytes: u64,
    /// logical / unique.
    pub dedup_ratio: f64,
    /// unique / stored pack bytes.
    pub compression_ratio: f64,
    pub object_lock: Option<String>,
}

pub async fn stats(repo: &Repository) -> Result<RepoStats, OpsError> {
    let all = repo.store().list("").await?;
    let pack_bytes: u64 = all
        .iter()
        .filter(|o| o.key.starts_with(FileKind::Pack.prefix()))
        .map(|o| o.size)
        .sum();
    let index = repo.load_index().await?;
    let snapshots = repo.snapshots().await?;
    let mut s = RepoStats {
        location: repo.store().location(),
        format_version: repo.config().version,
        snapshots: snapshots.len() as u64,
        packs: all
            .iter()
            .filter(|o| o.key.starts_with(FileKind::Pack.prefix()))
            .count() as u64,
        index_files: index.files.len() as u64,
        objects: all.len() as u64,
        stored_bytes: all.iter().map(|o| o.size).sum(),
        logical_bytes: snapshots.iter().map(|(_, s)| s.summary.bytes).sum(),
        object_lock: repo
            .config()
            .object_lock
            .map(|p| format!("{} for {} days", p.mode, p.days)),
        ..Default::default()
    };
    for (_, loc) in index.blobs() {
        match loc.blob_type {
            BlobType::Data => s.data_blobs += 1,
            BlobType::Tree => s.tree_blobs += 1,
        }
        s.unique_bytes += u64::from(loc.raw_length);
    }
    if s.unique_bytes > 0 {
        s.dedup_ratio = s.logical_bytes as f64 / s.unique_bytes as f64;
    }
    if pack_bytes > 0 {
        s.compression_ratio = s.unique_bytes as f64 / pack_bytes as f64;
    }
    Ok(s)
}
