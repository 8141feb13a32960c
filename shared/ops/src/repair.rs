//! `repo repair`: make a repository usable again after objects were damaged,
//! lost or planted, without deleting any of them (under Object Lock nobody
//! could).
//!
//! - Index files that cannot be read are superseded, and every pack that no
//!   readable index file lists is re-indexed from its own header: one new
//!   index file does both. So blobs listed only by a damaged (or deleted)
//!   index file are found again.
//! - Then the whole repository is checked against that index. Each snapshot
//!   whose data is still missing or unreadable (or that restore would refuse)
//!   gets a damage marker (`damage/<snapshot id>`), which leaves it out of
//!   `latest`, parent selection, prune's retention and lock extension; it can
//!   still be restored by id, as far as its data goes. A marker whose
//!   snapshot is whole again (or gone) is removed.
//! - Key objects and snapshot files that cannot be read are only reported:
//!   every command skips them already.

use crate::check::{check_with, CheckOptions};
use crate::{OpsError, Progress};
use chrono::Utc;
use lifeboat_repo::{
    parse_pack_header, DamageMarker, FileKind, Id, IndexFile, IndexPack, IndexedBlob, LockKind,
    RepoError, Repository,
};
use serde::Serialize;
use std::collections::HashSet;
use std::sync::Arc;
use tokio::task::JoinSet;

#[cfg(test)]
#[path = "repair_tests.rs"]
mod tests;

/// Packs read at once while re-indexing (each is read whole).
const PACK_READS: usize = 2;
/// Problems recorded in a damage marker.
const MARKER_PROBLEMS: usize = 10;

#[derive(Debug, Clone, Default)]
pub struct RepairOptions {
    /// Report what would be done, write and remove nothing (and take no lock).
    pub dry_run: bool,
    /// Also read every pack when deciding which snapshots are damaged.
    pub read_data: bool,
}

/// An object repair could not use, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Unusable {
    pub object: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairReport {
    pub dry_run: bool,
    /// Index files that cannot be read, superseded by the new index file.
    pub index_files_superseded: Vec<Unusable>,
    /// Packs that no readable index file listed, indexed from their headers.
    pub packs_indexed: u64,
    pub blobs_indexed: u64,
    /// Packs in no index whose header cannot be read or whose content does
    /// not hash to their name; left unindexed.
    pub packs_unreadable: Vec<Unusable>,
    /// The index file written (none in a dry run or when nothing needed one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_written: Option<Id>,
    /// Snapshots marked damaged by this run.
    pub snapshots_marked: Vec<Id>,
    /// Snapshots already marked damaged and still damaged.
    pub snapshots_still_damaged: Vec<Id>,
    /// Damage markers removed: their snapshot is whole again, or gone.
    pub markers_removed: Vec<Id>,
    /// Key objects and snapshot files that cannot be read: commands skip
    /// them; remove them by hand once their lock allows.
    pub skipped_objects: Vec<Unusable>,
}

/// Repair the repository (see the module documentation).
#[tracing::instrument(skip_all, fields(dry_run = opts.dry_run))]
pub async fn repair(
    repo: &Repository,
    opts: &RepairOptions,
    progress: Arc<Progress>,
) -> Result<RepairReport, OpsError> {
    if opts.dry_run {
        return repair_locked(repo, opts, progress).await;
    }
    let lock = repo.lock(LockKind::Exclusive, "repair").await?;
    let result = repair_locked(repo, opts, progress).await;
    lock.release().await?;
    result
}

async fn repair_locked(
    repo: &Repository,
    opts: &RepairOptions,
    progress: Arc<Progress>,
) -> Result<RepairReport, OpsError> {
    let mut report = RepairReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    progress.set_phase("loading indexes");
    let loaded = repo.load_index_report().await?;
    let damaged_files: Vec<Id> = loaded
        .unreadable
        .iter()
        .filter(|u| !u.superseded)
        .map(|u| u.id)
        .collect();
    report.index_files_superseded = loaded
        .unreadable
        .iter()
        .filter(|u| !u.superseded)
        .map(|u| Unusable {
            object: FileKind::Index.key(&u.id),
            reason: u.reason.clone(),
        })
        .collect();

    progress.set_phase("indexing packs no index lists");
    let unindexed: Vec<Id> = repo
        .list_ids(FileKind::Pack)
        .await?
        .into_iter()
        .filter(|p| !loaded.index.packs().contains_key(p))
        .collect();
    let packs = index_packs(repo, unindexed, &mut report, &progress).await?;
    report.packs_indexed = packs.len() as u64;
    report.blobs_indexed = packs.iter().map(|p| p.blobs.len() as u64).sum();

    let mut extra = Vec::new();
    if !packs.is_empty() || !damaged_files.is_empty() {
        let file = IndexFile {
            version: 1,
            supersedes: damaged_files,
            packs,
        };
        if opts.dry_run {
            // Checked as if written, under a name no stored file has.
            extra.push((Id([0; 32]), file));
        } else {
            report.index_written = Some(repo.save_file(FileKind::Index, &file).await?);
        }
    }

    progress.set_phase("checking snapshots");
    let checked = check_with(
        repo,
        CheckOptions {
            read_data: opts.read_data,
            snapshots: None,
        },
        extra,
        progress.clone(),
    )
    .await?;
    let listing = repo.snapshot_listing().await?;
    let present: HashSet<Id> = listing
        .usable
        .iter()
        .map(|(id, _)| *id)
        .chain(listing.damaged.iter().map(|(id, _, _)| *id))
        .collect();
    let markers = repo.damage_markers().await?;
    for sid in &checked.damaged_snapshots {
        if markers.contains_key(sid) {
            report.snapshots_still_damaged.push(*sid);
            continue;
        }
        let short = sid.short();
        let problems = checked
            .problems
            .iter()
            .filter(|p| p.snapshots.contains(&short))
            .take(MARKER_PROBLEMS)
            .map(|p| format!("{}: {}", p.object, p.message))
            .collect();
        if !opts.dry_run {
            repo.mark_damaged(&DamageMarker {
                version: 1,
                snapshot: *sid,
                time: Utc::now(),
                problems,
            })
            .await?;
        }
        tracing::warn!(snapshot = %sid, "marked damaged");
        report.snapshots_marked.push(*sid);
    }
    for sid in markers.keys() {
        let whole = present.contains(sid) && !checked.damaged_snapshots.contains(sid);
        if whole || !present.contains(sid) {
            if !opts.dry_run {
                repo.unmark_damaged(sid).await?;
            }
            report.markers_removed.push(*sid);
        }
    }
    report.markers_removed.sort();
    report.skipped_objects = repo
        .unusable_keys()
        .await?
        .into_iter()
        .map(|(object, reason)| Unusable { object, reason })
        .chain(listing.unreadable.into_iter().map(|(id, reason)| Unusable {
            object: FileKind::Snapshot.key(&id),
            reason,
        }))
        .collect();
    Ok(report)
}

/// Read each pack whole and list its blobs from its header; a pack whose
/// content does not hash to its name, or whose header does not open, is
/// reported and left out.
async fn index_packs(
    repo: &Repository,
    packs: Vec<Id>,
    report: &mut RepairReport,
    progress: &Progress,
) -> Result<Vec<IndexPack>, OpsError> {
    progress
        .items_total
        .store(packs.len() as u64, std::sync::atomic::Ordering::Relaxed);
    let mut out = Vec::new();
    let mut set = JoinSet::new();
    let mut pending = packs.into_iter();
    loop {
        while set.len() < PACK_READS {
            let Some(pack) = pending.next() else { break };
            let repo = repo.clone();
            set.spawn(async move { (pack, read_pack_index(&repo, pack).await) });
        }
        let Some(joined) = set.join_next().await else {
            break;
        };
        let (pack, read) = joined.map_err(|e| OpsError::Pipeline(e.to_string()))?;
        Progress::add(&progress.items_done, 1);
        match read {
            Ok(p) => out.push(p),
            Err(RepoError::Store(e)) if e.is_not_found() => {} // pruned meanwhile
            Err(e @ RepoError::Store(_)) => return Err(e.into()),
            Err(e) => {
                tracing::warn!(pack = %pack, error = %e, "cannot index a pack");
                report.packs_unreadable.push(Unusable {
                    object: FileKind::Pack.key(&pack),
                    reason: e.to_string(),
                });
            }
        }
    }
    out.sort_by_key(|p| p.id);
    Ok(out)
}

async fn read_pack_index(repo: &Repository, pack: Id) -> Result<IndexPack, RepoError> {
    let bytes = repo.store().get(&FileKind::Pack.key(&pack)).await?;
    let (key, format) = (repo.key().clone(), repo.format());
    tokio::task::spawn_blocking(move || {
        let what = format!("pack {pack}");
        let actual = Id::of_file(&bytes);
        if actual != pack {
            return Err(RepoError::HashMismatch {
                what,
                expected: pack,
                actual,
            });
        }
        let blobs = parse_pack_header(&key, format, &bytes, &what)?;
        Ok(IndexPack {
            id: pack,
            size: bytes.len() as u64,
            blobs: blobs.iter().map(IndexedBlob::from).collect(),
        })
    })
    .await
    .map_err(|e| RepoError::Malformed {
        what: format!("pack {pack}"),
        reason: e.to_string(),
    })?
}
