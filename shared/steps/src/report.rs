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
use lifeboat_ops::detect::{anomalies, previous_in_series, Anomaly};
use lifeboat_repo::{FileKind, Id, Repository};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The `kind` of a workflow report file.
pub const WORKFLOW_REPORT_KIND: &str = "workflow";

/// `outcome`: everything done.
pub const OUTCOME_SUCCEEDED: &str = "succeeded";
/// `outcome`: a backup committed without some volumes it was asked to
/// protect: their copy failed (`stored.volumes_failed`), or their snapshot
/// did (`volumes_not_copied`).
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
    /// Claims asked for whose data is not in the snapshot (their snapshot
    /// or its planning failed): with `stored.volumes_failed`, what makes a
    /// backup partial.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes_not_copied: Vec<String>,
    /// Claims the policy leaves out (not bound, not CSI), with the reason;
    /// listed, and the backup is not partial for them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes_left_out: Vec<String>,
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
        outcome: outcome_of(&state).into(),
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
        volumes_left_out: state
            .volumes
            .as_ref()
            .map(|v| v.left_out.clone())
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

/// The outcome of a workflow: failed when a step failed; partial when a
/// backup left out a volume it was asked to protect because something
/// failed (a copy: `volumes_failed`; a VolumeSnapshot, a claim that could
/// not be read, a copy that could not be planned: `not_copied`); else
/// succeeded. Claims the policy leaves out (`left_out`: not bound, not
/// CSI) never make a backup partial.
pub fn outcome_of(state: &State) -> &'static str {
    let failed_copies = state
        .commit
        .as_ref()
        .is_some_and(|c| !c.volumes_failed.is_empty());
    let not_copied = state
        .volumes
        .as_ref()
        .is_some_and(|v| !v.not_copied.is_empty());
    if state.failure.is_some() {
        OUTCOME_FAILED
    } else if failed_copies || not_copied {
        OUTCOME_PARTIAL
    } else {
        OUTCOME_SUCCEEDED
    }
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

/// Anomalies of snapshot `id` against the previous snapshot of its series
/// (same cluster and scope: a one-namespace CI backup is not compared with
/// the full one).
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
    anomalies(previous_in_series(&snapshots, id), current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::{alerts_for, VOLUMES_NOT_COPIED};
    use serde_json::json;

    const NOT_FOUND: &str =
        "payments/ledger: volumesnapshot payments/lifeboat-ledger-3f2a failed: \
                             NotFound: volume 7f3c9a52-lifeboat-fixture-payments-ledger not found";
    const NOT_CSI: &str =
        "shop/shared-assets: persistentvolumeclaim shop/shared-assets: its volume \
                           lifeboat-fixture-shop-assets is not a CSI volume (nfs)";

    fn backup_state(not_copied: &[&str], left_out: &[&str], failed: &[&str]) -> State {
        State::parse(json!({
            "version": 1, "action": "backup", "cluster": "primary",
            "volumes": {"count": 1, "items": [], "not_copied": not_copied, "left_out": left_out},
            "commit": {"snapshot": "00".repeat(32), "time": "2026-12-07T01:00:00Z",
                       "objects": 90, "bytes": 1, "bytes_new": 1, "bytes_stored": 1,
                       "volumes_failed": failed}
        }))
        .unwrap()
    }

    fn report_of(state: &State) -> WorkflowReport {
        let mut r: WorkflowReport = serde_json::from_value(json!({
            "kind": WORKFLOW_REPORT_KIND, "action": "backup", "outcome": outcome_of(state),
            "cluster": "primary", "started": "2026-12-07T01:00:00Z",
            "finished": "2026-12-07T01:05:00Z", "duration_secs": 300.0
        }))
        .unwrap();
        r.stored = state.commit.clone();
        r.volumes_not_copied = state
            .volumes
            .iter()
            .flat_map(|v| v.not_copied.clone())
            .collect();
        r.volumes_left_out = state
            .volumes
            .iter()
            .flat_map(|v| v.left_out.clone())
            .collect();
        r
    }

    #[test]
    fn a_volume_whose_snapshot_failed_makes_the_backup_partial_with_an_alert() {
        let state = backup_state(&[NOT_FOUND], &[NOT_CSI], &[]);
        assert_eq!(outcome_of(&state), OUTCOME_PARTIAL);
        let alerts = alerts_for(&report_of(&state));
        let alert = alerts
            .iter()
            .find(|a| a.kind == VOLUMES_NOT_COPIED)
            .expect("no volumes-not-copied alert");
        assert!(
            alert.message.contains("payments/ledger"),
            "{}",
            alert.message
        );
        assert!(
            !alert.message.contains("shop/shared-assets"),
            "{}",
            alert.message
        );
        assert!(
            alert.subject.contains("1 volume(s) not copied"),
            "{}",
            alert.subject
        );
    }

    #[test]
    fn claims_left_out_by_policy_leave_the_backup_succeeded_and_are_listed() {
        let state = backup_state(&[], &[NOT_CSI], &[]);
        assert_eq!(outcome_of(&state), OUTCOME_SUCCEEDED);
        let r = report_of(&state);
        assert!(alerts_for(&r).is_empty());
        let listed = serde_json::to_value(&r).unwrap();
        assert_eq!(listed["volumes_left_out"], json!([NOT_CSI]));
    }

    #[test]
    fn a_failed_copy_makes_the_backup_partial_and_a_failure_failed() {
        let state = backup_state(
            &[],
            &[],
            &["shop/data-0: Lifeboat.Failed: the mover Job failed"],
        );
        assert_eq!(outcome_of(&state), OUTCOME_PARTIAL);
        let alerts = alerts_for(&report_of(&state));
        assert_eq!(alerts.len(), 1);
        assert!(alerts[0].message.contains("shop/data-0"));
        let mut failed = backup_state(&[NOT_FOUND], &[], &[]);
        failed.failure = Some(
            serde_json::from_value(json!({"Error": "Lifeboat.Failed", "Cause": "x"})).unwrap(),
        );
        assert_eq!(outcome_of(&failed), OUTCOME_FAILED);
    }
}
