//! The trigger: turns SQS messages (CI pipelines), scheduled EventBridge
//! events and runbook requests into workflow executions.
//!
//! Every message is checked on its own: an invalid one is reported as a
//! batch item failure with the field that is wrong (SQS then redelivers it
//! and, after `maxReceiveCount`, moves it to the dead-letter queue), while
//! the valid messages of the same batch start. A repeated idempotency key
//! starts nothing new: the execution name is derived from the key, and the
//! starter answers with the first execution.

use crate::request::{Action, Request};
use crate::StepError;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Which state machine a request starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Machine {
    Backup,
    Restore,
    Verify,
}

impl Machine {
    pub fn for_action(action: Action) -> Machine {
        match action {
            Action::Backup => Machine::Backup,
            Action::Restore => Machine::Restore,
            Action::Verify => Machine::Verify,
        }
    }
}

/// An execution started (or found, for a repeated key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    pub execution: String,
    pub already_started: bool,
}

/// Starts executions: Step Functions in AWS, the local runner on a laptop.
#[async_trait]
pub trait Starter: Send + Sync {
    async fn start(
        &self,
        machine: Machine,
        name: &str,
        input: &Value,
    ) -> Result<Started, StepError>;
}

/// One message's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Triggered {
    /// The SQS message id, or `event` for an EventBridge event.
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<Started>,
    /// Why the message was refused or could not start anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The SQS partial batch response (`ReportBatchItemFailures`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct BatchResponse {
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<ItemFailure>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ItemFailure {
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

/// The execution name for a request: from its idempotency key (so a repeat
/// finds the first execution), else unique.
pub fn execution_name(request: &Request, fallback: &str) -> String {
    let key = request.idempotency_key.as_deref().unwrap_or(fallback);
    lifeboat_aws::execution_name(&format!(
        "{}-{}-{key}",
        request.action.name(),
        request.cluster
    ))
}

/// Start one request.
pub async fn start_request(
    starter: &dyn Starter,
    body: &str,
    fallback: &str,
) -> Result<Started, StepError> {
    let request = Request::parse(body).map_err(|e| StepError::invalid(e.to_string()))?;
    let input = serde_json::to_value(&request)
        .map_err(|e| StepError::failed(format!("request not serialisable: {e}")))?;
    let name = execution_name(&request, fallback);
    let started = starter
        .start(Machine::for_action(request.action), &name, &input)
        .await?;
    tracing::info!(
        execution = %started.execution,
        repeat = started.already_started,
        action = request.action.name(),
        cluster = %request.cluster,
        "request started"
    );
    Ok(started)
}

/// Handle any event the trigger receives: an SQS batch, a scheduled
/// EventBridge event (request in `detail`), or a bare request (runbooks).
/// Returns the partial batch response for SQS, and every message's outcome.
pub async fn handle_event(
    starter: &dyn Starter,
    event: &Value,
) -> Result<(BatchResponse, Vec<Triggered>), StepError> {
    let mut response = BatchResponse::default();
    let mut outcomes = Vec::new();
    if let Some(records) = event.get("Records").and_then(Value::as_array) {
        for (i, record) in records.iter().enumerate() {
            let id = record
                .get("messageId")
                .and_then(Value::as_str)
                .map_or_else(|| format!("record {i}"), str::to_string);
            let result = match record.get("body").and_then(Value::as_str) {
                Some(body) => start_request(starter, body, &id).await,
                None => Err(StepError::invalid(
                    "field `body`: missing in the SQS record",
                )),
            };
            match result {
                Ok(s) => outcomes.push(Triggered {
                    message: id,
                    started: Some(s),
                    error: None,
                }),
                Err(e) => {
                    tracing::warn!(message = %id, error = %e, "message refused");
                    response.batch_item_failures.push(ItemFailure {
                        item_identifier: id.clone(),
                    });
                    outcomes.push(Triggered {
                        message: id,
                        started: None,
                        error: Some(e.to_string()),
                    });
                }
            }
        }
        return Ok((response, outcomes));
    }
    let (body, fallback) = if event.get("detail-type").is_some() {
        let detail = event.get("detail").ok_or_else(|| {
            StepError::invalid("field `detail`: missing in the EventBridge event")
        })?;
        let fallback = event
            .get("time")
            .and_then(Value::as_str)
            .unwrap_or("scheduled")
            .to_string();
        (detail.to_string(), fallback)
    } else {
        (event.to_string(), "direct".to_string())
    };
    let started = start_request(starter, &body, &fallback).await?;
    outcomes.push(Triggered {
        message: "event".into(),
        started: Some(started),
        error: None,
    });
    Ok((response, outcomes))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// Starts nothing; remembers names like Step Functions does.
    #[derive(Default)]
    struct Recorder(Mutex<HashMap<String, Value>>);

    #[async_trait]
    impl Starter for Recorder {
        async fn start(
            &self,
            machine: Machine,
            name: &str,
            input: &Value,
        ) -> Result<Started, StepError> {
            let mut seen = self.0.lock().unwrap();
            let already = seen.contains_key(name);
            seen.entry(name.to_string())
                .or_insert_with(|| input.clone());
            Ok(Started {
                execution: format!("{machine:?}:{name}"),
                already_started: already,
            })
        }
    }

    fn sqs(bodies: &[&str]) -> Value {
        json!({"Records": bodies.iter().enumerate().map(|(i, b)| json!({
            "messageId": format!("m{i}"), "body": b, "eventSource": "aws:sqs"
        })).collect::<Vec<_>>()})
    }

    #[tokio::test]
    async fn invalid_messages_fail_alone_and_name_the_field() {
        let r = Recorder::default();
        let good = r#"{"version":1,"action":"backup","cluster":"prod","idempotency_key":"k1"}"#;
        let bad = r#"{"version":1,"action":"backup"}"#;
        let (resp, out) = handle_event(&r, &sqs(&[good, bad, "not json"]))
            .await
            .unwrap();
        assert_eq!(
            resp.batch_item_failures
                .iter()
                .map(|f| f.item_identifier.as_str())
                .collect::<Vec<_>>(),
            ["m1", "m2"]
        );
        assert!(out[0].started.is_some());
        assert!(out[1]
            .error
            .as_deref()
            .unwrap()
            .contains("field `cluster`: missing"));
        assert!(out[2].error.as_deref().unwrap().contains("not valid JSON"));
    }

    #[tokio::test]
    async fn a_repeated_idempotency_key_starts_nothing_new() {
        let r = Recorder::default();
        let msg =
            r#"{"version":1,"action":"backup","cluster":"prod","idempotency_key":"deploy-7"}"#;
        let (_, first) = handle_event(&r, &sqs(&[msg])).await.unwrap();
        let (_, second) = handle_event(&r, &sqs(&[msg])).await.unwrap();
        let (a, b) = (
            first[0].started.clone().unwrap(),
            second[0].started.clone().unwrap(),
        );
        assert_eq!(a.execution, b.execution);
        assert!(!a.already_started && b.already_started);
        assert_eq!(r.0.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn scheduled_events_and_runbook_requests_start_the_right_machine() {
        let r = Recorder::default();
        let scheduled = json!({"detail-type": "Scheduled Event", "time": "2026-11-27T00:00:00Z",
            "detail": {"version": 1, "action": "backup", "cluster": "prod", "requested_by": "schedule"}});
        let (_, out) = handle_event(&r, &scheduled).await.unwrap();
        assert!(out[0]
            .started
            .as_ref()
            .unwrap()
            .execution
            .starts_with("Backup:"));
        let failover =
            json!({"version": 1, "action": "restore", "cluster": "dr", "source_cluster": "prod"});
        let (_, out) = handle_event(&r, &failover).await.unwrap();
        assert!(out[0]
            .started
            .as_ref()
            .unwrap()
            .execution
            .starts_with("Restore:"));
        let verify = sqs(&[
            r#"{"version":1,"action":"verify","cluster":"prod","snapshot":"latest","requested_by":"ci"}"#,
        ]);
        let (resp, out) = handle_event(&r, &verify).await.unwrap();
        assert!(resp.batch_item_failures.is_empty());
        assert!(out[0]
            .started
            .as_ref()
            .unwrap()
            .execution
            .starts_with("Verify:"));
        let broken = json!({"detail-type": "Scheduled Event"});
        assert_eq!(
            handle_event(&r, &broken).await.unwrap_err().kind,
            crate::ErrorKind::InvalidInput
        );
    }
}

/// Starts executions in AWS Step Functions; the state machines' ARNs come
/// from `LIFEBOAT_STATE_MACHINE_ARN` (backup),
/// `LIFEBOAT_RESTORE_STATE_MACHINE_ARN` and
/// `LIFEBOAT_VERIFY_STATE_MACHINE_ARN`.
#[derive(Debug)]
pub struct StepFunctionsStarter {
    sdk: aws_config::SdkConfig,
    backup: Option<String>,
    restore: Option<String>,
    verify: Option<String>,
}

impl StepFunctionsStarter {
    pub async fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        StepFunctionsStarter {
            sdk: aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await,
            backup: var("LIFEBOAT_STATE_MACHINE_ARN"),
            restore: var("LIFEBOAT_RESTORE_STATE_MACHINE_ARN"),
            verify: var("LIFEBOAT_VERIFY_STATE_MACHINE_ARN"),
        }
    }
}

#[async_trait]
impl Starter for StepFunctionsStarter {
    async fn start(
        &self,
        machine: Machine,
        name: &str,
        input: &Value,
    ) -> Result<Started, StepError> {
        let (arn, var) = match machine {
            Machine::Backup => (&self.backup, "LIFEBOAT_STATE_MACHINE_ARN"),
            Machine::Restore => (&self.restore, "LIFEBOAT_RESTORE_STATE_MACHINE_ARN"),
            Machine::Verify => (&self.verify, "LIFEBOAT_VERIFY_STATE_MACHINE_ARN"),
        };
        let arn = arn
            .as_deref()
            .ok_or_else(|| StepError::invalid(format!("{var} is not set")))?;
        let s = lifeboat_aws::start_execution(&self.sdk, arn, name, &input.to_string()).await?;
        Ok(Started {
            execution: s.execution_arn,
            already_started: s.already_started,
        })
    }
}
