//! The trigger: turns SQS messages (CI pipelines), scheduled EventBridge
//! events and runbook requests into workflow executions.
//!
//! Every message is checked on its own: an invalid one is reported as a
//! batch item failure with the field that is wrong (SQS then redelivers it
//! and, after `maxReceiveCount`, moves it to the dead-letter queue), while
//! the valid messages of the same batch start. A request that its sender may
//! not make ([`crate::authorize`]) is set aside at once: to the dead-letter
//! queue with the reason, and an alert. A repeated idempotency key starts
//! nothing new: the execution name is derived from the key, and the starter
//! answers with the first execution, or fails if the key came with a
//! different request. A request without a key gets a fresh execution (the
//! SQS message id, the Lambda request id).

use crate::authorize::{authorize, Gate, Origin, Refused};
use crate::fleet::Fleet;
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

/// Start one request that has been parsed and authorized.
pub async fn start_request(
    starter: &dyn Starter,
    request: &Request,
    fallback: &str,
) -> Result<Started, StepError> {
    let input = serde_json::to_value(request)
        .map_err(|e| StepError::failed(format!("request not serialisable: {e}")))?;
    let name = execution_name(request, fallback);
    let started = starter
        .start(Machine::for_action(request.action), &name, &input)
        .await?;
    tracing::info!(
        execution = %started.execution,
        repeat = started.already_started,
        action = request.action.name(),
        cluster = %request.cluster,
        sender = ?request.sender,
        "request started"
    );
    Ok(started)
}

/// The fleet file, read once per event and only if a request needs it.
struct FleetOnce<'a> {
    gate: &'a dyn Gate,
    fleet: tokio::sync::OnceCell<Fleet>,
}

impl FleetOnce<'_> {
    async fn get(&self) -> Result<&Fleet, StepError> {
        self.fleet.get_or_try_init(|| self.gate.fleet()).await
    }
}

/// What became of one message.
enum Outcome {
    Started(Started),
    /// Not authorized; set aside with this reason.
    Refused(String),
}

/// Parse, authorize and start one request. An invalid request is an error;
/// an unauthorized one is handed to the gate and reported as refused.
async fn handle_one(
    starter: &dyn Starter,
    fleet: &FleetOnce<'_>,
    body: &str,
    origin: &Origin,
    message: &str,
    fallback: &str,
) -> Result<Outcome, StepError> {
    let mut request = Request::parse(body).map_err(|e| StepError::invalid(e.to_string()))?;
    let needs_fleet = request.action == Action::Restore || request.reply_to.is_some();
    let verdict = if needs_fleet {
        authorize(fleet.get().await?, &mut request, origin)
    } else {
        authorize(&Fleet::empty(), &mut request, origin)
    };
    if let Err(reason) = verdict {
        tracing::warn!(msg = message, sender = ?origin.requester(), %reason, "request refused");
        let refused = Refused {
            message: message.to_string(),
            sender: origin.requester().map(str::to_string),
            reason: reason.clone(),
            body: body.to_string(),
        };
        fleet.gate.refuse(&refused).await?;
        return Ok(Outcome::Refused(reason));
    }
    Ok(Outcome::Started(
        start_request(starter, &request, fallback).await?,
    ))
}

/// Handle any event the trigger receives: an SQS batch, a scheduled
/// EventBridge event (request in `detail`), or a bare request (runbooks).
/// `invocation_id` (the Lambda request id) names a bare request's execution
/// when it has no idempotency key. Returns the partial batch response for
/// SQS, and every message's outcome.
pub async fn handle_event(
    starter: &dyn Starter,
    gate: &dyn Gate,
    event: &Value,
    invocation_id: &str,
) -> Result<(BatchResponse, Vec<Triggered>), StepError> {
    let fleet = FleetOnce {
        gate,
        fleet: tokio::sync::OnceCell::new(),
    };
    let mut response = BatchResponse::default();
    let mut outcomes = Vec::new();
    if let Some(records) = event.get("Records").and_then(Value::as_array) {
        for (i, record) in records.iter().enumerate() {
            let id = record
                .get("messageId")
                .and_then(Value::as_str)
                .map_or_else(|| format!("record {i}"), str::to_string);
            let origin = Origin::Queue {
                sender: record
                    .pointer("/attributes/SenderId")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            };
            let result = match record.get("body").and_then(Value::as_str) {
                Some(body) => handle_one(starter, &fleet, body, &origin, &id, &id).await,
                None => Err(StepError::invalid(
                    "field `body`: missing in the SQS record",
                )),
            };
            match result {
                Ok(Outcome::Started(s)) => outcomes.push(Triggered {
                    message: id,
                    started: Some(s),
                    error: None,
                }),
                // Set aside already: not a batch failure, so not redelivered.
                Ok(Outcome::Refused(reason)) => outcomes.push(Triggered {
                    message: id,
                    started: None,
                    error: Some(format!("refused: {reason}")),
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
    let (body, fallback, origin) = if event.get("detail-type").is_some() {
        let detail = event.get("detail").ok_or_else(|| {
            StepError::invalid("field `detail`: missing in the EventBridge event")
        })?;
        let fallback = event
            .get("time")
            .and_then(Value::as_str)
            .unwrap_or(invocation_id)
            .to_string();
        (detail.to_string(), fallback, Origin::Schedule)
    } else {
        // Never a constant: a bare request is a new request.
        (event.to_string(), invocation_id.to_string(), Origin::Invoke)
    };
    match handle_one(starter, &fleet, &body, &origin, "event", &fallback).await? {
        Outcome::Started(started) => {
            outcomes.push(Triggered {
                message: "event".into(),
                started: Some(started),
                error: None,
            });
            Ok((response, outcomes))
        }
        Outcome::Refused(reason) => Err(StepError::new(
            crate::ErrorKind::PermissionDenied,
            format!("request refused: {reason}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// Starts nothing; remembers names and inputs like Step Functions does,
    /// and refuses a known name with another input as the real starter does.
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
            if let Some(first) = seen.get(name) {
                if first != input {
                    return Err(StepError::invalid(format!(
                        "execution {name}: reused with a different request"
                    )));
                }
            }
            let already = seen.contains_key(name);
            seen.entry(name.to_string())
                .or_insert_with(|| input.clone());
            Ok(Started {
                execution: format!("{machine:?}:{name}"),
                already_started: already,
            })
        }
    }

    /// A fleet in memory; remembers what it set aside.
    struct TestGate {
        fleet: Fleet,
        refused: Mutex<Vec<Refused>>,
    }

    impl TestGate {
        fn new() -> TestGate {
            let fleet = Fleet::parse(
                r#"{"version":1,"clusters":{
                    "prod":{"access":{"eks":{"name":"prod"}}},
                    "dr":{"access":{"eks":{"name":"dr"}},"restore_from":[
                      {"requesters":["AROARUNBOOK:*","invoke"],"sources":["prod"]}]}}}"#,
                "test",
            )
            .unwrap();
            TestGate {
                fleet,
                refused: Mutex::default(),
            }
        }
    }

    #[async_trait]
    impl Gate for TestGate {
        async fn fleet(&self) -> Result<Fleet, StepError> {
            Ok(self.fleet.clone())
        }
        async fn refuse(&self, refused: &Refused) -> Result<(), StepError> {
            self.refused.lock().unwrap().push(refused.clone());
            Ok(())
        }
    }

    fn sqs(bodies: &[&str]) -> Value {
        sqs_from("AIDACIUSER", bodies)
    }

    fn sqs_from(sender: &str, bodies: &[&str]) -> Value {
        json!({"Records": bodies.iter().enumerate().map(|(i, b)| json!({
            "messageId": format!("m{i}"), "body": b, "eventSource": "aws:sqs",
            "attributes": {"SenderId": sender}
        })).collect::<Vec<_>>()})
    }

    #[tokio::test]
    async fn invalid_messages_fail_alone_and_name_the_field() {
        let (r, g) = (Recorder::default(), TestGate::new());
        let good = r#"{"version":1,"action":"backup","cluster":"prod","idempotency_key":"k1"}"#;
        let bad = r#"{"version":1,"action":"backup"}"#;
        let (resp, out) = handle_event(&r, &g, &sqs(&[good, bad, "not json"]), "req")
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
        let (r, g) = (Recorder::default(), TestGate::new());
        let msg =
            r#"{"version":1,"action":"backup","cluster":"prod","idempotency_key":"deploy-7"}"#;
        let (_, first) = handle_event(&r, &g, &sqs(&[msg]), "a").await.unwrap();
        let (_, second) = handle_event(&r, &g, &sqs(&[msg]), "b").await.unwrap();
        let (a, b) = (
            first[0].started.clone().unwrap(),
            second[0].started.clone().unwrap(),
        );
        assert_eq!(a.execution, b.execution);
        assert!(!a.already_started && b.already_started);
        assert_eq!(r.0.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_repeated_key_with_a_different_request_fails() {
        let (r, g) = (Recorder::default(), TestGate::new());
        let first = r#"{"version":1,"action":"backup","cluster":"prod","idempotency_key":"k"}"#;
        let other = r#"{"version":1,"action":"backup","cluster":"prod","idempotency_key":"k","tags":{"x":"y"}}"#;
        let (resp, _) = handle_event(&r, &g, &sqs(&[first]), "a").await.unwrap();
        assert!(resp.batch_item_failures.is_empty());
        let (resp, out) = handle_event(&r, &g, &sqs(&[other]), "b").await.unwrap();
        assert_eq!(resp.batch_item_failures.len(), 1);
        assert!(out[0]
            .error
            .as_deref()
            .unwrap()
            .contains("different request"));
        // The same key from another sender is another request too.
        let (resp, _) = handle_event(&r, &g, &sqs_from("AIDAOTHER", &[first]), "c")
            .await
            .unwrap();
        assert_eq!(resp.batch_item_failures.len(), 1);
    }

    #[tokio::test]
    async fn bare_requests_without_a_key_each_start_a_new_execution() {
        let (r, g) = (Recorder::default(), TestGate::new());
        let failover =
            json!({"version": 1, "action": "restore", "cluster": "dr", "source_cluster": "prod"});
        let (_, drill) = handle_event(&r, &g, &failover, "lambda-req-1")
            .await
            .unwrap();
        let (_, real) = handle_event(&r, &g, &failover, "lambda-req-2")
            .await
            .unwrap();
        let (a, b) = (
            drill[0].started.clone().unwrap(),
            real[0].started.clone().unwrap(),
        );
        assert_ne!(a.execution, b.execution);
        assert!(!a.already_started && !b.already_started);
        // The same invocation retried by Lambda finds its execution.
        let (_, retried) = handle_event(&r, &g, &failover, "lambda-req-2")
            .await
            .unwrap();
        assert_eq!(retried[0].started.as_ref().unwrap().execution, b.execution);
    }

    #[tokio::test]
    async fn an_unauthorized_restore_is_set_aside_with_its_reason() {
        let (r, g) = (Recorder::default(), TestGate::new());
        let restore = r#"{"version":1,"action":"restore","cluster":"dr","source_cluster":"prod","requested_by":"runbook"}"#;
        let backup = r#"{"version":1,"action":"backup","cluster":"prod"}"#;
        let (resp, out) = handle_event(&r, &g, &sqs(&[restore, backup]), "req")
            .await
            .unwrap();
        // Not redelivered: it is in the dead-letter queue already.
        assert!(resp.batch_item_failures.is_empty());
        assert!(out[0].started.is_none());
        assert!(out[0]
            .error
            .as_deref()
            .unwrap()
            .contains("AIDACIUSER may not restore"));
        assert!(out[1].started.is_some());
        let refused = g.refused.lock().unwrap().clone();
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].sender.as_deref(), Some("AIDACIUSER"));
        assert_eq!(refused[0].body, restore);
        assert!(r
            .0
            .lock()
            .unwrap()
            .keys()
            .all(|k| !k.starts_with("restore")));

        // The granted role may; requested_by comes from the origin.
        let (_, out) = handle_event(&r, &g, &sqs_from("AROARUNBOOK:failover", &[restore]), "x")
            .await
            .unwrap();
        let name = out[0].started.as_ref().unwrap().execution.clone();
        let input = r.0.lock().unwrap()[name.trim_start_matches("Restore:")].clone();
        assert_eq!(input["requested_by"], "ci");
        assert_eq!(input["sender"], "AROARUNBOOK:failover");
    }

    #[tokio::test]
    async fn scheduled_events_and_runbook_requests_start_the_right_machine() {
        let (r, g) = (Recorder::default(), TestGate::new());
        let scheduled = json!({"detail-type": "Scheduled Event", "time": "2026-11-27T00:00:00Z",
            "detail": {"version": 1, "action": "backup", "cluster": "prod", "requested_by": "schedule"}});
        let (_, out) = handle_event(&r, &g, &scheduled, "req").await.unwrap();
        assert!(out[0]
            .started
            .as_ref()
            .unwrap()
            .execution
            .starts_with("Backup:"));
        let failover =
            json!({"version": 1, "action": "restore", "cluster": "dr", "source_cluster": "prod"});
        let (_, out) = handle_event(&r, &g, &failover, "req").await.unwrap();
        assert!(out[0]
            .started
            .as_ref()
            .unwrap()
            .execution
            .starts_with("Restore:"));
        let verify = sqs(&[
            r#"{"version":1,"action":"verify","cluster":"prod","snapshot":"latest","requested_by":"ci"}"#,
        ]);
        let (resp, out) = handle_event(&r, &g, &verify, "req").await.unwrap();
        assert!(resp.batch_item_failures.is_empty());
        assert!(out[0]
            .started
            .as_ref()
            .unwrap()
            .execution
            .starts_with("Verify:"));
        let broken = json!({"detail-type": "Scheduled Event"});
        assert_eq!(
            handle_event(&r, &g, &broken, "req").await.unwrap_err().kind,
            crate::ErrorKind::InvalidInput
        );
        // A scheduled event cannot restore; a direct call of a refused restore fails.
        let scheduled_restore = json!({"detail-type": "Scheduled Event", "time": "t",
            "detail": {"version": 1, "action": "restore", "cluster": "dr", "source_cluster": "prod"}});
        assert_eq!(
            handle_event(&r, &g, &scheduled_restore, "req")
                .await
                .unwrap_err()
                .kind,
            crate::ErrorKind::PermissionDenied
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
