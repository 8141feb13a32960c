//! Pending markers: what keeps prune from deleting data that a backup under
//! way may have deduplicated against.
//!
//! A workflow backup exports, copies volumes and commits in separate steps,
//! holding the repository lock only inside each step. Each step deduplicates
//! against every blob in the index, including blobs that only snapshots about
//! to be forgotten reference, and nothing but the snapshot it commits at the
//! end makes that data "used". So the workflow writes `pending/<run>` before
//! its first write and removes it once its snapshot is committed (or the
//! workflow has failed). While a marker is live, prune deletes no pack that
//! the index lists and no pack written since the oldest live marker appeared.
//!
//! A marker lives until its `expires`, which the writer sets to outlast the
//! workflow's own timeout; but never longer than [`MAX_LEASE`] after the
//! store's modification time of the object, so a marker with a far-future
//! date (a bug, or planted) cannot stop pack deletion for good.

use crate::OpsError;
use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use lifeboat_repo::{Id, Repository};
use lifeboat_store::PutOptions;
use serde::{Deserialize, Serialize};

/// Prefix of pending markers.
pub const PENDING_PREFIX: &str = "pending/";

/// How long a workflow's marker lives: longer than the backup workflow's
/// `TimeoutSeconds` (86,400 s, infra/statemachine/backup.asl.json), so a
/// marker outlives every step and retry of its execution.
pub const WORKFLOW_LEASE: Duration = Duration::hours(25);

/// The longest life prune grants any marker, counted from the store's
/// modification time of the marker object.
pub const MAX_LEASE: Duration = Duration::hours(48);

/// The content of a `pending/<id>` object (plaintext JSON, like a lock).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingMarker {
    /// The run this marker protects (a workflow execution's name).
    pub run: String,
    /// What is under way, for messages.
    pub operation: String,
    pub started: DateTime<Utc>,
    pub expires: DateTime<Utc>,
}

/// A live marker as prune sees it.
#[derive(Debug, Clone)]
pub struct LiveMarker {
    pub key: String,
    /// The marker, if it parses (one that does not still counts, named by key).
    pub marker: Option<PendingMarker>,
    /// When the store wrote it (server time): data written since may be the run's.
    pub written: Option<DateTime<Utc>>,
}

/// The object key of `run`'s marker: a hash of the run name, so any name is safe.
pub fn pending_key(run: &str) -> String {
    format!("{PENDING_PREFIX}{}", Id::of_file(run.as_bytes()))
}

/// Write (or rewrite, on a retry) `run`'s marker, live for `lease` from now.
pub async fn begin(
    repo: &Repository,
    run: &str,
    operation: &str,
    lease: Duration,
) -> Result<(), OpsError> {
    let now = Utc::now();
    let marker = PendingMarker {
        run: run.to_string(),
        operation: operation.to_string(),
        started: now,
        expires: now + lease.min(MAX_LEASE),
    };
    let json = serde_json::to_vec_pretty(&marker)
        .map_err(|e| OpsError::InvalidInput(format!("pending marker of run {run:?}: {e}")))?;
    repo.store()
        .put(&pending_key(run), Bytes::from(json), &PutOptions::default())
        .await?;
    Ok(())
}

/// Remove `run`'s marker (nothing happens if there is none).
pub async fn end(repo: &Repository, run: &str) -> Result<(), OpsError> {
    repo.store().delete(&pending_key(run)).await?;
    Ok(())
}

/// The markers live at `now`. Expired ones are removed on the way when
/// `remove_expired` is set.
pub async fn live(
    repo: &Repository,
    now: DateTime<Utc>,
    remove_expired: bool,
) -> Result<Vec<LiveMarker>, OpsError> {
    let mut out = Vec::new();
    for obj in repo.store().list(PENDING_PREFIX).await? {
        let bytes = match repo.store().get(&obj.key).await {
            Ok(b) => b,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        };
        let marker: Option<PendingMarker> = match serde_json::from_slice(&bytes) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(object = %obj.key, error = %e, "malformed pending marker: counted as live until it is old");
                None
            }
        };
        let cap = obj.last_modified.map(|t| t + MAX_LEASE);
        let expires = match (marker.as_ref().map(|m| m.expires), cap) {
            (Some(e), Some(c)) => e.min(c),
            (Some(e), None) => e,
            (None, Some(c)) => c,
            (None, None) => now + MAX_LEASE,
        };
        if expires > now {
            out.push(LiveMarker {
                key: obj.key,
                marker,
                written: obj.last_modified,
            });
        } else if remove_expired {
            tracing::info!(object = %obj.key, "expired pending marker removed");
            repo.store().delete(&obj.key).await?;
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "pending_tests.rs"]
mod tests;
