//! `lifeboat-trigger`: SQS batches (CI), scheduled EventBridge events and
//! runbook requests in, workflow executions out (see docs/workflows.md).
//! Invalid SQS messages are reported per item, so the valid ones still start.

use lambda_runtime::{service_fn, LambdaEvent};
use lifeboat_lambda::{init_process, Failure};
use lifeboat_steps::authorize::EnvGate;
use lifeboat_steps::trigger::{handle_event, StepFunctionsStarter};
use lifeboat_steps::Environment;
use serde_json::Value;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_process();
    let starter = Arc::new(StepFunctionsStarter::from_env().await);
    // Refused requests go to the dead-letter queue with their reason, and an alert.
    let gate = Arc::new(EnvGate {
        env: Environment::from_env(),
        dead_letter_queue: std::env::var("LIFEBOAT_DEAD_LETTER_QUEUE")
            .ok()
            .filter(|v| !v.is_empty()),
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (starter, gate) = (starter.clone(), gate.clone());
        async move {
            // The request id names a bare request's execution: a new one per
            // invocation, the same one when Lambda retries it.
            let (response, outcomes) = handle_event(
                starter.as_ref(),
                gate.as_ref(),
                &event.payload,
                &event.context.request_id,
            )
            .await
            .map_err(Failure)?;
            for o in &outcomes {
                tracing::info!(message = %o.message, started = ?o.started, error = ?o.error, "trigger outcome");
            }
            Ok::<_, Failure>(response)
        }
    }))
    .await
}
