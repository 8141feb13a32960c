//! Bringing a replica in line with what the primary removed.
//!
//! The primary's prune deletes snapshots and packs and writes an index file
//! that supersedes every earlier one. Copied as it is, that index file would
//! hide from the replica the packs of every snapshot the replica still holds
//! but the primary has forgotten, so those would stop restoring. Instead, the
//! replica removes the snapshots the primary removed once their locks allow,
//! and until then indexes again every pack it holds that its live index files
//! no longer list. Key objects the primary removed (a passphrase rotation)
//! are removed from the replica too, once unlocked.

use super::ReplicateReport;
use crate::OpsError;
use chrono::Utc;
use lifeboat_repo::{revocation_key, FileKind, Id, Index, IndexFile, IndexPack, Repository};
use lifeboat_store::StoreError;
use std::collections::{HashMap, HashSet};
use tokio::task::JoinSet;

/// Delete `key` from the replica unless its lock forbids it. Returns whether it is gone.
async fn delete_if_unlocked(dst: &Repository, key: &str) -> Result<bool, OpsError> {
    let head = match dst.store().head(key).await {
        Ok(h) => h,
        Err(e) if e.is_not_found() => return Ok(true),
        Err(e) => return Err(e.into()),
    };
    if head.retention.is_some_and(|r| r.is_active(Utc::now())) {
        return Ok(false);
    }
    match dst.store().delete(key).await {
        Ok(()) => Ok(true),
        Err(StoreError::Locked { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Remove the replica's snapshots that are not among `primary` (the
/// primary's snapshot keys, listed before this run copied anything). Returns
/// the ones still locked: their locks must not be extended any more.
pub(super) async fn remove_forgotten_snapshots(
    dst: &Repository,
    primary: &HashSet<String>,
    report: &mut ReplicateReport,
) -> Result<HashSet<Id>, OpsError> {
    let mut still_locked = HashSet::new();
    for obj in dst.store().list(FileKind::Snapshot.prefix()).await? {
        if primary.contains(&obj.key) {
            continue;
        }
        let Some(id) = FileKind::Snapshot.parse_key(&obj.key) else {
            tracing::warn!(object = %obj.key, "replica object with a malformed snapshot name left alone");
            continue;
        };
        if delete_if_unlocked(dst, &obj.key).await? {
            tracing::info!(snapshot = %id.short(), "snapshot the primary forgot removed from the replica");
            report.snapshots_removed += 1;
        } else {
            still_locked.insert(id);
            report.snapshots_pending_removal += 1;
        }
    }
    Ok(still_locked)
}

/// Remove the replica's key objects (and revocation markers) that the
/// primary no longer has, once unlocked, as long as a key the primary still
/// has remains. Returns how many objects were removed.
pub(super) async fn remove_removed_keys(
    src: &Repository,
    dst: &Repository,
) -> Result<u64, OpsError> {
    let primary: HashSet<Id> = src.list_ids(FileKind::Key).await?.into_iter().collect();
    let replica = dst.list_ids(FileKind::Key).await?;
    if !replica.iter().any(|k| primary.contains(k)) {
        // Never leave the replica without a key that opens it.
        return Ok(0);
    }
    let mut removed = 0;
    for id in replica.iter().filter(|k| !primary.contains(k)) {
        if delete_if_unlocked(dst, &FileKind::Key.key(id)).await? {
            tracing::info!(key = %id.short(), "key object the primary removed removed from the replica");
            removed += 1;
        }
    }
    let primary_markers: HashSet<String> = src
        .store()
        .list(lifeboat_repo::REVOKED_PREFIX)
        .await?
        .into_iter()
        .map(|o| o.key)
        .collect();
    let keys_left: HashSet<Id> = dst.list_ids(FileKind::Key).await?.into_iter().collect();
    for obj in dst.store().list(lifeboat_repo::REVOKED_PREFIX).await? {
        let marker_of_gone_key = !keys_left.iter().any(|k| revocation_key(k) == obj.key);
        if !primary_markers.contains(&obj.key)
            && marker_of_gone_key
            && delete_if_unlocked(dst, &obj.key).await?
        {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Index again, in an index file of the replica's own, every pack the
/// replica holds that some index file lists but no live one does (the
/// primary's prune superseded it). Returns how many packs were indexed.
pub(super) async fn reindex_held_packs(dst: &Repository) -> Result<u64, OpsError> {
    let ids = dst.list_ids(FileKind::Index).await?;
    let mut files: Vec<(Id, IndexFile)> = Vec::with_capacity(ids.len());
    let mut set = JoinSet::new();
    let mut pending = ids.into_iter();
    loop {
        while set.len() < 8 {
            let Some(id) = pending.next() else { break };
            let repo = dst.clone();
            set.spawn(async move {
                let f: IndexFile = repo.load_file(FileKind::Index, &id).await?;
                Ok::<_, lifeboat_repo::RepoError>((id, f))
            });
        }
        match set.join_next().await {
            Some(r) => files.push(r.map_err(|e| OpsError::Pipeline(e.to_string()))??),
            None => break,
        }
    }
    let live = Index::from_files(files.clone());
    let held: HashSet<Id> = dst.list_ids(FileKind::Pack).await?.into_iter().collect();
    let mut lost: HashMap<Id, IndexPack> = HashMap::new();
    for (_, file) in files {
        for pack in file.packs {
            if !live.packs().contains_key(&pack.id) && held.contains(&pack.id) {
                lost.entry(pack.id).or_insert(pack);
            }
        }
    }
    if lost.is_empty() {
        return Ok(0);
    }
    let mut packs: Vec<IndexPack> = lost.into_values().collect();
    packs.sort_by_key(|p| p.id);
    let n = packs.len() as u64;
    let id = dst
        .save_file(
            FileKind::Index,
            &IndexFile {
                version: 1,
                supersedes: Vec::new(),
                packs,
            },
        )
        .await?;
    tracing::info!(index = %id.short(), packs = n, "packs a copied index file superseded indexed again in the replica");
    Ok(n)
}
