use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{echo, event_types, invoker, machine, opts, run_with};
use crate::{names, run, ExecutionStatus, HistoryEventType, RunOptions, TaskFailure, TaskInvoker};

/// Fails `failures` times with `error`, then returns the retry count it saw.
fn flaky(failures: u32, error: &'static str) -> (Arc<dyn TaskInvoker>, Arc<AtomicU32>) {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let invoker = invoker(move |_, _, ctx: crate::TaskContext| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            if n < failures {
                Err(TaskFailure::new(error, format!("failure {}", n + 1)))
            } else {
                Ok(
                    json!({ "retry_count": ctx.retry_count, "context_count": ctx.context_object["State"]["RetryCount"] }),
                )
            }
        }
    });
    (invoker, calls)
}

const RETRYING: &str = r#"{"StartAt": "T", "States": {
    "T": { "Type": "Task", "Resource": "arn:flaky", "End": true,
           "Retry": [ { "ErrorEquals": ["Lifeboat.Retryable"], "IntervalSeconds": 2, "MaxAttempts": 3, "BackoffRate": 2 } ] } }}"#;

#[tokio::test]
async fn retries_until_success_and_counts_retries() {
    let (invoker, calls) = flaky(2, "Lifeboat.Retryable");
    let execution = run_with(RETRYING, json!({}), invoker).await;
    assert_eq!(
        execution.output,
        Some(json!({ "retry_count": 2, "context_count": 2 }))
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let retries: Vec<_> = execution
        .history
        .iter()
        .filter(|e| e.event_type == HistoryEventType::RetryScheduled)
        .map(|e| (e.retry_attempt, e.detail.clone().unwrap_or_default()))
        .collect();
    assert_eq!(
        retries,
        [
            (Some(1), "Retry[0] in 2.000s".to_string()),
            (Some(2), "Retry[0] in 4.000s".to_string())
        ]
    );
}

#[tokio::test]
async fn retries_stop_after_max_attempts() {
    let (invoker, calls) = flaky(10, "Lifeboat.Retryable");
    let execution = run_with(RETRYING, json!({}), invoker).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        4,
        "1 attempt + MaxAttempts 3 retries"
    );
    assert_eq!(
        execution.status,
        ExecutionStatus::Failed {
            error: "Lifeboat.Retryable".into(),
            cause: "failure 4".into()
        }
    );
    // Errors the Retrier does not name are not retried.
    let (invoker, calls) = flaky(10, "Lifeboat.InvalidInput");
    let execution = run_with(RETRYING, json!({}), invoker).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(!execution.succeeded());
}

#[tokio::test]
async fn max_attempts_zero_goes_straight_to_catch() {
    let definition = r#"{"StartAt": "T", "States": {
        "T": { "Type": "Task", "Resource": "arn:flaky", "Next": "Done",
               "Retry": [ { "ErrorEquals": ["Lifeboat.Failed"], "MaxAttempts": 0 }, { "ErrorEquals": ["States.ALL"] } ],
               "Catch": [ { "ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "Report" } ] },
        "Report": { "Type": "Pass", "End": true },
        "Done": { "Type": "Succeed" } }}"#;
    let (invoker, calls) = flaky(10, "Lifeboat.Failed");
    let execution = run_with(definition, json!({ "cluster": "shop" }), invoker).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        execution.output,
        Some(
            json!({ "cluster": "shop", "failure": { "Error": "Lifeboat.Failed", "Cause": "failure 1" } })
        )
    );
    assert!(event_types(&execution).contains(&"ErrorCaught".to_string()));
}

#[tokio::test]
async fn catch_without_result_path_outputs_the_error() {
    let definition = r#"{"StartAt": "T", "States": {
        "T": { "Type": "Task", "Resource": "arn:x", "InputPath": "$.sub", "End": true,
               "Catch": [ { "ErrorEquals": ["Other"], "Next": "Wrong" }, { "ErrorEquals": ["States.TaskFailed"], "Next": "Handler" } ] },
        "Wrong": { "Type": "Fail", "Error": "Wrong" },
        "Handler": { "Type": "Pass", "End": true } }}"#;
    let (invoker, _) = flaky(1, "Boom");
    let execution = run_with(definition, json!({ "sub": {} }), invoker).await;
    assert_eq!(
        execution.output,
        Some(json!({ "Error": "Boom", "Cause": "failure 1" }))
    );
}

#[tokio::test]
async fn runtime_errors_are_neither_retried_nor_caught() {
    let definition = r#"{"StartAt": "T", "States": {
        "T": { "Type": "Task", "Resource": "arn:x", "OutputPath": "$.missing", "End": true,
               "Retry": [ { "ErrorEquals": ["States.ALL"] } ],
               "Catch": [ { "ErrorEquals": ["States.ALL"], "Next": "Handler" } ] },
        "Handler": { "Type": "Succeed" } }}"#;
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let invoker = invoker(move |_, _, _| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Ok(json!({ "present": 1 })) }
    });
    let execution = run_with(definition, json!({}), invoker).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    match execution.status {
        ExecutionStatus::Failed { error, cause } => {
            assert_eq!(error, names::RUNTIME);
            assert!(cause.contains("OutputPath"), "{cause}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn result_path_match_failure_can_be_caught() {
    let definition = r#"{"StartAt": "T", "States": {
        "T": { "Type": "Task", "Resource": "arn:x", "ResultPath": "$.a.b", "End": true,
               "Catch": [ { "ErrorEquals": ["States.ResultPathMatchFailure"], "ResultPath": null, "Next": "Handler" } ] },
        "Handler": { "Type": "Pass", "Result": "handled", "ResultPath": "$.note", "End": true } }}"#;
    let execution = run_with(definition, json!({ "a": "string" }), echo()).await;
    assert_eq!(
        execution.output,
        Some(json!({ "a": "string", "note": "handled" }))
    );
}

fn sleeper(millis: u64) -> Arc<dyn TaskInvoker> {
    invoker(move |_, _, _| async move {
        tokio::time::sleep(Duration::from_millis(millis)).await;
        Ok(json!("late"))
    })
}

#[tokio::test]
async fn task_timeout_is_states_timeout_and_not_task_failed() {
    let definition = r#"{"StartAt": "T", "States": {
        "T": { "Type": "Task", "Resource": "arn:slow", "TimeoutSeconds": 1, "End": true,
               "Retry": [ { "ErrorEquals": ["States.TaskFailed"] } ],
               "Catch": [ { "ErrorEquals": ["States.TaskFailed"], "Next": "Wrong" },
                          { "ErrorEquals": ["States.Timeout"], "ResultPath": "$.timeout", "Next": "TimedOut" } ] },
        "Wrong": { "Type": "Fail" },
        "TimedOut": { "Type": "Pass", "End": true } }}"#;
    let options = RunOptions {
        timeout_scale: 0.02,
        ..opts()
    };
    let started = Instant::now();
    let execution = run(&machine(definition), json!({}), sleeper(30_000), options).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let output = execution.output.clone().unwrap();
    assert_eq!(output["timeout"]["Error"], json!("States.Timeout"));
    let types = event_types(&execution);
    assert!(types.contains(&"TaskTimedOut".to_string()), "{types:?}");
    assert!(!types.contains(&"RetryScheduled".to_string()), "{types:?}");
}

#[tokio::test]
async fn timeout_seconds_path_and_default_task_timeout() {
    let definition = r#"{"StartAt": "T", "States": {
        "T": { "Type": "Task", "Resource": "arn:slow", "TimeoutSecondsPath": "$.limit", "End": true } }}"#;
    let options = RunOptions {
        timeout_scale: 0.02,
        ..opts()
    };
    let execution = run(
        &machine(definition),
        json!({ "limit": 2 }),
        sleeper(30_000),
        options.clone(),
    )
    .await;
    assert!(
        matches!(execution.status, ExecutionStatus::Failed { ref error, .. } if error == names::TIMEOUT)
    );
    // No TimeoutSeconds: the run's default applies (60 s scaled to 60 ms here)...
    let definition = r#"{"StartAt": "T", "States": { "T": { "Type": "Task", "Resource": "arn:slow", "End": true } }}"#;
    let options = RunOptions {
        timeout_scale: 0.001,
        ..opts()
    };
    let execution = run(&machine(definition), json!({}), sleeper(300), options).await;
    assert!(
        matches!(execution.status, ExecutionStatus::Failed { ref error, .. } if error == names::TIMEOUT)
    );
    // ... unless there is none.
    let options = RunOptions {
        default_task_timeout: None,
        timeout_scale: 0.001,
        ..opts()
    };
    let execution = run(&machine(definition), json!({}), sleeper(300), options).await;
    assert_eq!(execution.output, Some(json!("late")));
}

#[tokio::test]
async fn machine_timeout_is_timed_out() {
    let definition = r#"{"TimeoutSeconds": 1, "StartAt": "T", "States": {
        "T": { "Type": "Task", "Resource": "arn:slow", "End": true } }}"#;
    let options = RunOptions {
        timeout_scale: 0.02,
        default_task_timeout: None,
        ..opts()
    };
    let execution = run(&machine(definition), json!({}), sleeper(30_000), options).await;
    assert_eq!(execution.status, ExecutionStatus::TimedOut);
    assert_eq!(
        execution.history.last().unwrap().event_type,
        HistoryEventType::ExecutionTimedOut
    );
    assert_eq!(
        execution.history.last().unwrap().error.as_deref(),
        Some(names::TIMEOUT)
    );
}
