//! `repo extend-locks`: keep every object that a snapshot needs locked for the
//! policy's full period from now. Locks are only ever extended.
//!
//! An object whose lock still has more than `days - slack` to run is left as it
//! is (slack is half the period, at most a day), so running this daily rewrites
//! each object's retention about once per period, not every day.

use crate::reachable::{packs_of, protected_keys, reachable_blobs};
use crate::{OpsError, Progress};
use chrono::{Duration, Utc};
use lifeboat_repo::Id;
use lifeboat_repo::{LockKind, LockPolicy, Repository};
use lifeboat_store::Retention;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::Arc;
use tokio::task::JoinSet;

/// What extend-locks leaves alone.
#[derive(Debug, Clone, Default)]
pub struct ExtendOptions {
    /// Snapshots whose objects are not extended for their sake: a replica's
    /// snapshots that the primary has forgotten, whose locks must run out so
    /// that replication can remove them.
    pub skip_snapshots: HashSet<Id>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExtendReport {
    pub objects: u64,
    pub extended: u64,
    pub already_sufficient: u64,
    pub until: String,
}

#[tracing::instrument(skip_all)]
pub async fn extend_locks(
    repo: &Repository,
    opts: &ExtendOptions,
    progress: Arc<Progress>,
) -> Result<ExtendReport, OpsError> {
    let policy = repo.config().object_lock.ok_or_else(|| {
        OpsError::InvalidInput(format!(
            "repository {} has no Object Lock policy (set one with `repo init --lock-mode ... --lock-days ...`)",
            repo.store().location()
        ))
    })?;
    repo.with_lock(
        LockKind::Shared,
        "extend-locks",
        crate::backup::lock_wait(),
        |_lock| extend_locks_locked(repo, opts, policy, progress),
    )
    .await
}

async fn extend_locks_locked(
    repo: &Repository,
    opts: &ExtendOptions,
    policy: LockPolicy,
    progress: Arc<Progress>,
) -> Result<ExtendReport, OpsError> {
    progress.set_phase("finding referenced objects");
    let mut snapshots = repo.snapshots().await?;
    snapshots.retain(|(id, _)| !opts.skip_snapshots.contains(id));
    let index = repo.load_index().await?;
    let snaps: Vec<_> = snapshots.iter().map(|(_, s)| s).collect();
    let blobs = reachable_blobs(repo, &index, &snaps).await?;
    let packs = packs_of(&index, &blobs);
    let keys = protected_keys(
        repo,
        &index,
        snapshots.iter().map(|(id, _)| id),
        packs.iter(),
    )
    .await?;

    let period = Duration::days(i64::from(policy.days));
    let slack = (period / 2).min(Duration::days(1));
    let target = Retention {
        mode: policy.mode,
        until: Utc::now() + period,
    };
    let good_enough = target.until - slack;
    let mut report = ExtendReport {
        objects: keys.len() as u64,
        until: target.until.to_rfc3339(),
        ..Default::default()
    };
    progress.set_phase("extending locks");
    progress
        .items_total
        .store(keys.len() as u64, std::sync::atomic::Ordering::Relaxed);
    let mut set = JoinSet::new();
    let mut pending = keys.into_iter();
    loop {
        while set.len() < 16 {
            let Some(key) = pending.next() else { break };
            let store = repo.store().clone();
            set.spawn(async move {
                let head = store.head(&key).await?;
                if head
                    .retention
                    .is_some_and(|r| r.mode == target.mode && r.until >= good_enough)
                {
                    return Ok::<bool, OpsError>(false);
                }
                store.set_retention(&key, target).await?;
                Ok(true)
            });
        }
        let Some(joined) = set.join_next().await else {
            break;
        };
        match joined.map_err(|e| OpsError::Pipeline(e.to_string()))? {
            Ok(true) => report.extended += 1,
            Ok(false) => report.already_sufficient += 1,
            Err(e) => return Err(e),
        }
        Progress::add(&progress.items_done, 1);
    }
    Ok(report)
}
