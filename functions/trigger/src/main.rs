//! `lifeboat-trigger`: SQS batches (CI), scheduled EventBridge events and
//! runbook requests in, workflow executions out (see docs/workflows.md).
//! Invalid SQS messages are reported per item, so the valid ones still start.

use lambda_runtime::{service_fn, LambdaEvent};
use lifeboat_lambda::{init_process, Failure};
use lifeboat_steps::trigger::{handle_event, StepFunctionsStarter};
use serde_json::Value;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_process();
    let starter = Arc::new(StepFunctionsStarter::from_env().await);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let starter = starter.clone();
        async move {
            let (response, outcomes) = handle_event(starter.as_ref(), &event.payload)
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
