//! Prune's retention of `reports/`: reports are written on every backup,
//! verification and restore, so without one the prefix (and every reader
//! that lists it) grows without bound (security review, finding 24).
//!
//! A report older than the retention is deleted once its lock has expired,
//! except a verification record of a snapshot still in the repository: a
//! restore's `latest` takes only verified snapshots, and that record is the
//! proof. A report that cannot be read is kept (it may be of a newer
//! format) and counted.

use crate::verify::VERIFICATION_KIND;
use crate::OpsError;
use chrono::{DateTime, Utc};
use lifeboat_repo::{FileKind, Id, Repository};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashSet;

/// What the reports' retention did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ReportRetention {
    /// Reports older than the retention, deleted (or, in a dry run, to be).
    pub removed: u64,
    /// Old reports still under lock (deleted by a later prune).
    pub locked: u64,
    /// Old verification records kept because their snapshot is still here.
    pub kept_for_snapshots: u64,
    /// Old reports that cannot be read, kept.
    pub unreadable: u64,
}

/// Apply the retention: delete reports last modified before `cutoff`, but
/// keep the verification records of `snapshots` (every snapshot still in
/// the repository, locked ones included).
pub(crate) async fn prune_reports(
    repo: &Repository,
    snapshots: &HashSet<Id>,
    cutoff: DateTime<Utc>,
    dry_run: bool,
) -> Result<ReportRetention, OpsError> {
    let mut out = ReportRetention::default();
    let old: Vec<Id> = repo
        .store()
        .list(FileKind::Report.prefix())
        .await?
        .iter()
        .filter(|o| o.last_modified.is_some_and(|t| t < cutoff))
        .filter_map(|o| FileKind::Report.parse_key(&o.key))
        .collect();
    for (id, read) in repo.read_files::<Value>(FileKind::Report, old).await? {
        let value = match read {
            Ok(v) => v,
            Err(why) => {
                tracing::warn!(report = %id.short(), reason = %why, "old report cannot be read; kept");
                out.unreadable += 1;
                continue;
            }
        };
        if verifies_one_of(&value, snapshots) {
            out.kept_for_snapshots += 1;
            continue;
        }
        if crate::prune::delete_if_unlocked(repo, &FileKind::Report.key(&id), dry_run).await? {
            out.removed += 1;
        } else {
            out.locked += 1;
        }
    }
    Ok(out)
}

/// Whether a report is the verification record of one of `snapshots`.
fn verifies_one_of(report: &Value, snapshots: &HashSet<Id>) -> bool {
    report.get("kind").and_then(Value::as_str) == Some(VERIFICATION_KIND)
        && report
            .get("snapshot")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<Id>().ok())
            .is_some_and(|s| snapshots.contains(&s))
}

#[cfg(test)]
#[path = "report_retention_tests.rs"]
mod tests;
