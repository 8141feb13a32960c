//! `repo prune`: forget snapshots by GFS policy and delete what nothing needs
//! any more, never touching an object whose lock has not expired.

use crate::forget::{apply_policy, Decision, RetentionPolicy};
use crate::reachable::{packs_of, reachable_blobs};
use crate::report_retention::{prune_reports, ReportRetention};
use crate::{OpsError, Progress};
use chrono::Utc;
use lifeboat_repo::{
    FileKind, Id, IndexFile, IndexPack, IndexedBlob, LockHandle, LockKind, Repository,
};
use lifeboat_store::StoreError;
use serde::Serialize;
use std::collections::HashSet;
use std::sync::Arc;

/// The longest grace period accepted: longer ones are almost certainly a
/// mistake, and far longer ones would overflow date arithmetic.
pub const MAX_GRACE: chrono::Duration = chrono::Duration::days(365);

/// Temporary files younger than this are never removed, whatever the grace:
/// a write under way (another process taking its lock) may own them.
const MIN_TEMPORARY_AGE: chrono::Duration = chrono::Duration::minutes(15);

#[derive(Debug, Clone, Default)]
pub struct PruneOptions {
    pub policy: RetentionPolicy,
    pub dry_run: bool,
    /// Unreferenced packs younger than this are kept: they may belong to a
    /// backup still under way whose snapshot is not written yet (a workflow
    /// exports in one step and commits in a later one, holding no lock in
    /// between). The CLI's default is six hours.
    pub grace: chrono::Duration,
    /// Reports (`reports/`) older than this are deleted once unlocked,
    /// except the verification records of snapshots still in the
    /// repository; `None` keeps every report.
    pub keep_reports: Option<chrono::Duration>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    pub dry_run: bool,
    pub decisions: Vec<Decision>,
    pub snapshots_removed: Vec<Id>,
    /// Snapshots the policy would remove but whose lock has not expired.
    pub snapshots_locked: Vec<Id>,
    pub packs_deleted: u64,
    pub bytes_freed: u64,
    /// Unreferenced packs still under lock (deleted by a later prune).
    pub packs_locked: u64,
    /// Unreferenced packs younger than the grace period (a backup under way
    /// may need them; deleted by a later prune if still unreferenced).
    pub packs_recent: u64,
    /// Unreferenced packs kept because a backup under way (a live
    /// `pending/` marker) may reference them.
    pub packs_pending: u64,
    /// The runs whose pending markers are live.
    pub pending_runs: Vec<String>,
    pub packs_kept: u64,
    pub index_files_written: u64,
    pub index_files_deleted: u64,
    /// Temporary files of interrupted writes (local stores) removed.
    pub temporaries_removed: u64,
    /// Revoked key objects deleted now that their locks have expired.
    pub keys_removed: Vec<Id>,
    /// The reports' retention, when one was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reports: Option<ReportRetention>,
}

/// Delete an object unless its lock is still active. Returns whether it was deleted.
pub(crate) async fn delete_if_unlocked(
    repo: &Repository,
    key: &str,
    dry_run: bool,
) -> Result<bool, OpsError> {
    let head = match repo.store().head(key).await {
        Ok(h) => h,
        Err(e) if e.is_not_found() => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    if head.retention.is_some_and(|r| r.is_active(Utc::now())) {
        return Ok(false);
    }
    if dry_run {
        return Ok(true);
    }
    match repo.store().delete(key).await {
        Ok(()) => Ok(true),
        Err(StoreError::Locked { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[tracing::instrument(skip_all, fields(dry_run = opts.dry_run))]
pub async fn prune(
    repo: &Repository,
    opts: &PruneOptions,
    progress: Arc<Progress>,
) -> Result<PruneReport, OpsError> {
    if opts.dry_run {
        // It deletes nothing, so it keeps nobody out.
        return prune_locked(repo, opts, &progress, None).await;
    }
    let wait = std::time::Duration::ZERO;
    repo.with_lock(LockKind::Exclusive, "prune", wait, |lock| async move {
        prune_locked(repo, opts, &progress, Some(lock)).await
    })
    .await
}

async fn prune_locked(
    repo: &Repository,
    opts: &PruneOptions,
    progress: &Progress,
    lock: Option<LockHandle>,
) -> Result<PruneReport, OpsError> {
    if opts.grace < chrono::Duration::zero() || opts.grace > MAX_GRACE {
        return Err(OpsError::InvalidInput(format!(
            "grace period of {} s: it must be between 0 and {} days",
            opts.grace.num_seconds(),
            MAX_GRACE.num_days()
        )));
    }
    let now = Utc::now();
    let cutoff = now.checked_sub_signed(opts.grace).ok_or_else(|| {
        OpsError::InvalidInput(format!(
            "grace period of {} s reaches before the earliest representable time",
            opts.grace.num_seconds()
        ))
    })?;
    let mut report = PruneReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    progress.set_phase("applying retention policy");
    let snapshots = repo.snapshots().await?;
    report.decisions = apply_policy(&opts.policy, &snapshots);
    let remove: HashSet<Id> = report
        .decisions
        .iter()
        .filter(|d| !d.keep)
        .map(|d| d.id)
        .collect();
    let mut kept = Vec::new();
    for (id, snap) in &snapshots {
        if remove.contains(id) {
            if delete_if_unlocked(repo, &FileKind::Snapshot.key(id), opts.dry_run).await? {
                report.snapshots_removed.push(*id);
                continue;
            }
            report.snapshots_locked.push(*id);
        }
        kept.push(snap);
    }

    progress.set_phase("finding unreferenced data");
    let index = repo.load_index().await?;
    let used_blobs = reachable_blobs(repo, &index, &kept).await?;
    let used_packs = packs_of(&index, &used_blobs);
    // Deleting packs is safe only while no backup could have started.
    if let Some(lock) = &lock {
        lock.ensure_held().await?;
    }
    let listed = repo.store().list(FileKind::Pack.prefix()).await?;
    // A backup under way may reference any indexed pack and every pack
    // written since its marker appeared; its snapshot is not written yet.
    let markers = crate::pending::live(repo, now, !opts.dry_run).await?;
    report.pending_runs = markers
        .iter()
        .map(|m| {
            m.marker
                .as_ref()
                .map_or_else(|| m.key.clone(), |p| p.run.clone())
        })
        .collect();
    let pending_since = markers
        .iter()
        .map(|m| m.written.unwrap_or(chrono::DateTime::<Utc>::MIN_UTC))
        .min();
    let mut deleted = HashSet::new();
    for obj in &listed {
        let Some(pack) = FileKind::Pack.parse_key(&obj.key) else {
            continue;
        };
        if used_packs.contains(&pack) {
            report.packs_kept += 1;
            continue;
        }
        if obj.last_modified.is_some_and(|t| t > cutoff) {
            report.packs_recent += 1;
            continue;
        }
        if let Some(since) = pending_since {
            if index.packs().contains_key(&pack) || obj.last_modified.is_none_or(|t| t >= since) {
                report.packs_pending += 1;
                continue;
            }
        }
        if delete_if_unlocked(repo, &obj.key, opts.dry_run).await? {
            report.packs_deleted += 1;
            report.bytes_freed += obj.size;
            deleted.insert(pack);
        } else {
            report.packs_locked += 1;
        }
    }

    report.keys_removed = repo.remove_revoked_keys(opts.dry_run).await?;
    if let Some(age) = opts.keep_reports {
        progress.set_phase("applying the reports' retention");
        let before = now.checked_sub_signed(age).ok_or_else(|| {
            OpsError::InvalidInput(format!("report retention of {} days", age.num_days()))
        })?;
        let removed: HashSet<Id> = report.snapshots_removed.iter().copied().collect();
        let present: HashSet<Id> = repo
            .list_ids(FileKind::Snapshot)
            .await?
            .into_iter()
            .filter(|id| !removed.contains(id))
            .collect();
        report.reports = Some(prune_reports(repo, &present, before, opts.dry_run).await?);
    }
    if !opts.dry_run {
        let before = cutoff.min(now - MIN_TEMPORARY_AGE);
        report.temporaries_removed = repo.store().remove_stale_temporaries(before).await?;
    }

    // Rewrite the index without the deleted packs, superseding every index file present.
    let indexed_deleted = deleted.iter().any(|p| index.packs().contains_key(p));
    if indexed_deleted && !opts.dry_run {
        progress.set_phase("rewriting index");
        let present = repo.list_ids(FileKind::Index).await?;
        let mut packs: std::collections::HashMap<Id, IndexPack> = std::collections::HashMap::new();
        // Every copy of a blob stored twice is kept: a reader falls back to
        // the other when one is damaged.
        for (id, loc) in index.all_locations() {
            if deleted.contains(&loc.pack) {
                continue;
            }
            let size = index.packs().get(&loc.pack).copied().unwrap_or(0);
            packs
                .entry(loc.pack)
                .or_insert_with(|| IndexPack {
                    id: loc.pack,
                    size,
                    blobs: Vec::new(),
                })
                .blobs
                .push(IndexedBlob {
                    id: *id,
                    blob_type: loc.blob_type,
                    offset: loc.offset,
                    length: loc.length,
                    raw_length: loc.raw_length,
                    compression: loc.compression,
                });
        }
        let mut packs: Vec<IndexPack> = packs.into_values().collect();
        for p in &mut packs {
            p.blobs.sort_by_key(|b| b.offset);
        }
        let file = IndexFile {
            version: 1,
            supersedes: present.clone(),
            packs,
        };
        repo.save_file(FileKind::Index, &file).await?;
        report.index_files_written = 1;
        for old in present {
            if delete_if_unlocked(repo, &FileKind::Index.key(&old), false).await? {
                report.index_files_deleted += 1;
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
#[path = "prune_tests.rs"]
mod tests;
