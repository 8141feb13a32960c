//! Verification of one snapshot: every pack it uses is read and every blob
//! re-hashed, every object it references carries its lock, and (for a cluster
//! snapshot) every API object is read back and parsed, which proves that a
//! restore from this repository alone can succeed. The outcome is recorded in
//! the repository as a `reports/` file of kind `verification`, so a restore
//! can pick the latest *verified* snapshot.

use crate::check::{check, CheckOptions, Problem, Severity};
use crate::cluster::load_objects;
use crate::series::Series;
use crate::{OpsError, Progress};
use chrono::{DateTime, Utc};
use lifeboat_repo::{FileKind, Id, Repository, Snapshot};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

/// The `kind` of a verification report file.
pub const VERIFICATION_KIND: &str = "verification";

/// Problems kept in a verification record (the count is always complete).
const PROBLEMS_KEPT: usize = 20;

/// What a verification found, as stored in `reports/<id>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verification {
    /// Always [`VERIFICATION_KIND`].
    pub kind: String,
    pub snapshot: Id,
    /// The cluster (or host) the snapshot is of.
    pub source: String,
    pub time: DateTime<Utc>,
    /// The repository verified, e.g. `s3://lifeboat-dr/prod`.
    pub repository: String,
    pub ok: bool,
    pub problem_count: u64,
    pub problems: Vec<Problem>,
    pub packs_read: u64,
    pub bytes_read: u64,
    pub objects_lock_checked: u64,
    /// API objects read back and parsed (cluster snapshots).
    pub objects_decoded: u64,
    pub duration_secs: f64,
    /// The repository's `config` and key set when verified (absent in
    /// older records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<lifeboat_repo::RepoFingerprint>,
}

/// Verify snapshot `id` and record the outcome in the repository.
#[tracing::instrument(skip_all, fields(snapshot = %id.short()))]
pub async fn verify_snapshot(
    repo: &Repository,
    id: Id,
    progress: Arc<Progress>,
) -> Result<(Verification, Id), OpsError> {
    let started = std::time::Instant::now();
    let snapshot: Snapshot = repo.load_file(FileKind::Snapshot, &id).await?;
    let report = check(
        repo,
        CheckOptions {
            read_data: true,
            snapshots: Some(vec![id]),
        },
        progress.clone(),
    )
    .await?;
    let mut problems: Vec<Problem> = report
        .problems
        .into_iter()
        .filter(|p| p.severity == Severity::Error)
        .collect();
    let mut objects_decoded = 0;
    if let Some(source) = &snapshot.cluster {
        match load_objects(repo, source, snapshot.tree, &progress).await {
            Ok(items) => objects_decoded = items.len() as u64,
            Err(e) => problems.push(Problem {
                severity: Severity::Error,
                object: format!("snapshot {}", id.short()),
                message: format!("its API objects cannot be read back: {e}"),
                snapshots: vec![id.short()],
            }),
        }
    }
    let problem_count = problems.len() as u64;
    problems.truncate(PROBLEMS_KEPT);
    let verification = Verification {
        kind: VERIFICATION_KIND.into(),
        snapshot: id,
        source: snapshot.hostname.clone(),
        time: Utc::now(),
        repository: repo.store().location(),
        ok: problem_count == 0,
        problem_count,
        problems,
        packs_read: report.packs_read,
        bytes_read: report.bytes_read,
        objects_lock_checked: report.objects_lock_checked,
        objects_decoded,
        duration_secs: started.elapsed().as_secs_f64(),
        fingerprint: Some(repo.fingerprint().await?),
    };
    progress.set_phase("saving verification");
    let report_id = repo.save_file(FileKind::Report, &verification).await?;
    tracing::info!(
        ok = verification.ok,
        problems = problem_count,
        "snapshot verified"
    );
    Ok((verification, report_id))
}

/// Every verification record in the repository (other reports are skipped;
/// a report that cannot be read is skipped with a warning).
pub async fn verifications(repo: &Repository) -> Result<Vec<Verification>, OpsError> {
    let mut out = Vec::new();
    let ids = repo.list_ids(FileKind::Report).await?;
    let mut reports = repo.read_files::<Value>(FileKind::Report, ids).await?;
    reports.sort_by_key(|(id, _)| *id);
    for (id, read) in reports {
        let value = match read {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(report = %id.short(), error = %e, "unreadable report skipped");
                continue;
            }
        };
        if value.get("kind").and_then(Value::as_str) != Some(VERIFICATION_KIND) {
            continue;
        }
        match serde_json::from_value::<Verification>(value) {
            Ok(v) => out.push(v),
            Err(e) => {
                tracing::warn!(report = %id.short(), error = %e, "malformed verification skipped")
            }
        }
    }
    Ok(out)
}

/// The newest snapshot of `source` in `series` that passed verification in
/// this repository, with its verification. A restore's `latest` is
/// [`Series::Full`]: a CI backup of one namespace never stands in for the
/// cluster.
pub async fn latest_verified(
    repo: &Repository,
    source: &str,
    series: &Series,
) -> Result<Option<(Id, Snapshot, Verification)>, OpsError> {
    let location = repo.store().location();
    let verified = verifications(repo).await?;
    let mut best: Option<(Id, Snapshot, Verification)> = None;
    for (id, snap) in repo.snapshots().await? {
        if snap.hostname != source || !series.contains(&snap) {
            continue;
        }
        let Some(v) = verified
            .iter()
            .filter(|v| v.snapshot == id && v.ok && v.repository == location)
            .max_by_key(|v| v.time)
        else {
            continue;
        };
        if best.as_ref().is_none_or(|(_, b, _)| snap.time > b.time) {
            best = Some((id, snap, v.clone()));
        }
    }
    Ok(best)
}
