//! The report step: what a workflow did (or why it failed), stored in the
//! repository as `reports/<id>` (kind `workflow`), sent to `reply_to`, with
//! failures and anomalies that look like an attack raised as alerts
//! ([`crate::alerts`]).

use crate::alerts::{alerts_for, raise, Alert};
use crate::env::StepEnv;
use crate::request::Action;
use crate::state::{to_value, Committed, Failure, Locked, Replicated, State, Verified};
use crate::StepError;
use chrono::{DateTime, Utc};
use lifeboat_kube::restore::Outcome;
use lifeboat_ops::detect::{anomalies, Anomaly};
use lifeboat_repo::{FileKind, Id, Repository};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The `kind` of a workflow report file.
pub const WORKFLOW_REPORT_KIND: &str = "workflow";

/// `outcome`: everything done.
pub const OUTCOME_SUCCEEDED: &str = "succeeded";
/// `outcome`: a backup committed without some volumes, whose copy failed
/// (`stored.volumes_failed`).
pub const OUTCOME_PARTIAL: &str = "partial";
/// `outcome`: the workflow failed (`failure`).
pub const OUTCOME_FAILED: &str = "failed";

/// A workflow's report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkflowReport {
    /// Always [`WORKFLOW_REPORT_KIND`].
    pub kind: String,
    pub action: Action,
    /// [`OUTCOME_SUCCEEDED`], [`OUTCOME_PARTIAL`] or [`OUTCOME_FAILED`].
    pub outcome: String,
    pub cluster: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<String>,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    pub duration_secs: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Id>,
    // Backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored: Option<Committed>,
    /// Bytes of objects per byte newly stored (higher: more deduplicated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_ratio: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<Verified>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locks: Option<Locked>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<Replicated>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_verified: Option<Verified>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes_not_copied: Vec<String>,
    /// Application groups: snapshotted together (a VolumeGroupSnapshot) or
    /// one by one, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_groups: Vec<String>,
    /// Volumes written into new snapshots in the target, each compared with
    /// the backup.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes_restored: Vec<crate::volumes::RestoredVolume>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes_not_restored: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anomalies: Vec<Anomaly>,
    /// The failure and the anomalies, as raised (published to the alert
    /// topic, when one is configured).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<Alert>,
    // Restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_cluster: Option<String>,
    /// Recovery point: age of the restored snapshot when the restore started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo_secs: Option<f64>,
    /// Recovery time: from the start of the execution to ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto_secs: Option<f64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub restored: BTreeMap<Outcome, u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// Where this report is stored (`reports/<id>`), once stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<Id>,
}

/// Build, store and send the report. A failure report is still written when
/// the repository cannot be reached: it is then only in the execution output.
pub async fn report(env: &dyn StepEnv, state: State) -> Result<Value, StepError> {
    let finished = Utc::now();
    let started = state.started();
    let request = &state.request;
    // A report is written even when the state is odd: an unreadable
    // restore-volumes result shows as no volumes.
    let restored_volumes: crate::volumes::RestoredVolumes = state
        .restored_volumes
        .clone()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let mut r = WorkflowReport {
        kind: WORKFLOW_REPORT_KIND.into(),
        action: request.action,
        outcome: if state.failure.is_some() {
            OUTCOME_FAILED
        } else if state
            .commit
            .as_ref()
            .is_some_and(|c| !c.volumes_failed.is_empty())
        {
            OUTCOME_PARTIAL
        } else {
            OUTCOME_SUCCEEDED
        }
        .into(),
        cluster: request.cluster.clone(),
        execution: state.execution.as_ref().and_then(|e| e.name.clone()),
        started,
        finished,
        duration_secs: (finished - started).num_milliseconds() as f64 / 1000.0,
        idempotency_key: request.idempotency_key.clone(),
        snapshot: state
            .commit
            .as_ref()
            .map(|c| c.snapshot)
            .or(state.resolved.as_ref().map(|r| r.snapshot)),
        dedup_ratio: state
            .commit
            .as_ref()
            .filter(|c| c.bytes_stored > 0)
            .map(|c| c.bytes as f64 / c.bytes_stored as f64),
        stored: state.commit.clone(),
        verified: state.verify.clone(),
        locks: state.lock.clone(),
        replica: state.replica.clone(),
        replica_verified: state.replica_verify.clone(),
        volumes_not_copied: state
            .volumes
            .as_ref()
            .map(|v| v.not_copied.clone())
            .unwrap_or_default(),
        volume_groups: state
            .volumes
            .as_ref()
            .map(|v| v.groups.clone())
            .unwrap_or_default(),
        volumes_restored: restored_volumes.volumes,
        volumes_not_restored: restored_volumes.not_restored,
        anomalies: vec![],
        alerts: vec![],
        source_cluster: state.resolved.as_ref().map(|r| r.source_cluster.clone()),
        rpo_secs: state
            .resolved
            .as_ref()
            .filter(|_| request.action == Action::Restore)
            .map(|r| r.rpo_secs),
        rto_secs: state
            .readiness
            .as_ref()
            .map(|_| (finished - started).num_milliseconds() as f64 / 1000.0),
        restored: restored_counts(&state),
        ready: state.readiness.as_ref().map(|r| r.ready),
        failure: state.failure.clone(),
        report: None,
    };
    let repo = match env.repository().await {
        Ok(repo) => Some(repo),
        Err(e) if state.failure.is_some() => {
            tracing::error!(error = %e, "failure report not stored: the repository cannot be opened");
            None
        }
        Err(e) => return Err(e),
    };
    if let (Some(repo), Some(c)) = (&repo, &state.commit) {
        r.anomalies = detect(repo, c.snapshot).await;
    }
    if let (Some(repo), Some(plan), true) = (&repo, &state.plan, state.failure.is_some()) {
        crate::backup::end_pending(repo, plan).await;
    }
    // Alerts go out before the report is stored: a publication that fails
    // fails the step, and its retry stores one report, not two.
    let mut alerts = alerts_for(&r);
    raise(env, &r, &mut alerts).await?;
    r.alerts = alerts;
    if let Some(repo) = &repo {
        match repo.save_file(FileKind::Report, &r).await {
            Ok(id) => r.report = Some(id),
            Err(e) => tracing::error!(error = %e, "the workflow report could not be stored"),
        }
    }
    if let Some(queue) = &request.reply_to {
        let body = serde_json::to_string(&r)
            .map_err(|e| StepError::failed(format!("report not serialisable: {e}")))?;
        env.send(queue, &body)
            .await
            .map_err(|e| e.context(&format!("sending the report to {queue}")))?;
    }
    to_value(&r)
}

fn restored_counts(state: &State) -> BTreeMap<Outcome, u64> {
    let mut out = BTreeMap::new();
    for r in [&state.foundation, &state.workloads].into_iter().flatten() {
        for (k, v) in &r.counts {
            *out.entry(*k).or_default() += v;
        }
    }
    out
}

/// Anomalies of snapshot `id` against the previous snapshot of its source.
async fn detect(repo: &Repository, id: Id) -> Vec<Anomaly> {
    let snapshots = match repo.snapshots().await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "anomaly detection skipped: snapshots unreadable");
            return vec![];
        }
    };
    let Some((_, current)) = snapshots.iter().find(|(i, _)| *i == id) else {
        return vec![];
    };
    let previous = snapshots
        .iter()
        .filter(|(i, s)| {
            *i != id
                && s.hostname == current.hostname
                && s.kind == current.kind
                && s.time < current.time
        })
        .max_by_key(|(_, s)| s.time)
        .map(|(_, s)| s);
    anomalies(previous, current)
}
