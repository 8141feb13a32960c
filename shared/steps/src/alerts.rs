//! Alerts: what the report step raises for people to act on. A workflow that
//! failed (a backup, a restore, a snapshot that failed verification) and each
//! anomaly that looks like an attack (data that stopped compressing, mass
//! deletions) become one alert each, published to the alert topic
//! (`LIFEBOAT_ALERT_TOPIC`, SNS) and recorded in the report.

use crate::env::StepEnv;
use crate::report::WorkflowReport;
use crate::StepError;
use serde::{Deserialize, Serialize};

/// The kind of the alert for a failed workflow; anomalies keep their own.
pub const WORKFLOW_FAILED: &str = "workflow-failed";
/// The kind of the alert for a partial backup: volumes asked for whose
/// snapshot or copy failed.
pub const VOLUMES_NOT_COPIED: &str = "volumes-not-copied";

/// One alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// [`WORKFLOW_FAILED`], [`VOLUMES_NOT_COPIED`], `mass-deletion` or
    /// `incompressible-data`.
    pub kind: String,
    /// One line, for an e-mail subject or a pager title.
    pub subject: String,
    pub message: String,
    /// SNS's message id, once published; absent when no topic is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<String>,
}

/// What the SNS message carries: the alert and where to look.
#[derive(Debug, Serialize)]
struct AlertMessage<'a> {
    kind: &'a str,
    message: &'a str,
    action: &'a str,
    cluster: &'a str,
    outcome: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    execution: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    snapshot: Option<String>,
    finished: String,
}

/// The alerts a report calls for, not yet published.
pub fn alerts_for(r: &WorkflowReport) -> Vec<Alert> {
    let action = r.action.name();
    let mut out = Vec::new();
    if let Some(f) = &r.failure {
        out.push(Alert {
            kind: WORKFLOW_FAILED.into(),
            subject: format!("Lifeboat: {action} of cluster {} failed", r.cluster),
            message: format!("{}: {}", f.error, f.cause),
            published: None,
        });
    }
    let missing: Vec<&String> = r
        .stored
        .iter()
        .flat_map(|c| &c.volumes_failed)
        .chain(&r.volumes_not_copied)
        .collect();
    if !missing.is_empty() {
        out.push(Alert {
            kind: VOLUMES_NOT_COPIED.into(),
            subject: format!(
                "Lifeboat: backup of cluster {} is partial: {} volume(s) not copied",
                r.cluster,
                missing.len()
            ),
            message: missing
                .iter()
                .map(|m| m.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            published: None,
        });
    }
    for a in &r.anomalies {
        out.push(Alert {
            kind: a.kind.clone(),
            subject: format!(
                "Lifeboat: {} in the {action} of cluster {}",
                a.kind, r.cluster
            ),
            message: a.message.clone(),
            published: None,
        });
    }
    out
}

/// Log every alert and publish it to the alert topic. A publication that
/// fails fails the step (its error kind says whether a retry can help):
/// an alert is never dropped silently.
pub async fn raise(
    env: &dyn StepEnv,
    r: &WorkflowReport,
    alerts: &mut [Alert],
) -> Result<(), StepError> {
    for a in alerts.iter_mut() {
        tracing::warn!(alert = %a.kind, cluster = %r.cluster, action = r.action.name(), "{}", a.message);
        let body = AlertMessage {
            kind: &a.kind,
            message: &a.message,
            action: r.action.name(),
            cluster: &r.cluster,
            outcome: &r.outcome,
            execution: r.execution.as_deref(),
            snapshot: r.snapshot.map(|s| s.to_string()),
            finished: r.finished.to_rfc3339(),
        };
        let body = serde_json::to_string_pretty(&body)
            .map_err(|e| StepError::failed(format!("alert not serialisable: {e}")))?;
        a.published = env
            .alert(&a.subject, &body)
            .await
            .map_err(|e| e.context(&format!("publishing the {} alert", a.kind)))?;
    }
    Ok(())
}
