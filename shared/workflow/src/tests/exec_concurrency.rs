use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use super::{echo, event_types, invoker, run_with};
use crate::{ExecutionStatus, TaskFailure, TaskInvoker};

/// Sleeps `input.ms` milliseconds, tracking how many calls run at once, and
/// returns its input; fails when the input has `"fail": true`.
struct Tracker {
    running: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    order: Arc<Mutex<Vec<Value>>>,
}

fn tracker() -> (Arc<dyn TaskInvoker>, Tracker) {
    let t = Tracker {
        running: Arc::new(AtomicUsize::new(0)),
        peak: Arc::new(AtomicUsize::new(0)),
        order: Arc::new(Mutex::new(Vec::new())),
    };
    let (running, peak, order) = (t.running.clone(), t.peak.clone(), t.order.clone());
    let invoker = invoker(move |_, input: Value, _| {
        let (running, peak, order) = (running.clone(), peak.clone(), order.clone());
        async move {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            order.lock().unwrap().push(input.clone());
            tokio::time::sleep(Duration::from_millis(input["ms"].as_u64().unwrap_or(20))).await;
            running.fetch_sub(1, Ordering::SeqCst);
            if input["fail"] == json!(true) {
                return Err(TaskFailure::new(
                    "Item.Failed",
                    format!("item {}", input["i"]),
                ));
            }
            Ok(input)
        }
    });
    (invoker, t)
}

fn map_definition(max_concurrency: u64) -> String {
    json!({ "StartAt": "M", "States": { "M": {
        "Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": max_concurrency,
        "ItemProcessor": { "StartAt": "Work", "States": {
            "Work": { "Type": "Task", "Resource": "arn:work", "End": true } } },
        "End": true } } })
    .to_string()
}

fn items(n: u64) -> Value {
    json!({ "items": (0..n).map(|i| json!({ "i": i, "ms": 30 })).collect::<Vec<_>>() })
}

#[tokio::test]
async fn max_concurrency_really_bounds_the_iterations() {
    let (invoker, t) = tracker();
    let execution = run_with(&map_definition(2), items(7), invoker).await;
    assert!(execution.succeeded(), "{:?}", execution.status);
    assert_eq!(t.peak.load(Ordering::SeqCst), 2);
    let output = execution.output.unwrap();
    let indices: Vec<u64> = output
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["i"].as_u64().unwrap())
        .collect();
    assert_eq!(
        indices,
        (0..7).collect::<Vec<_>>(),
        "results keep the items' order"
    );
}

#[tokio::test]
async fn max_concurrency_zero_runs_everything_at_once_and_one_runs_in_order() {
    let (invoker, t) = tracker();
    let execution = run_with(&map_definition(0), items(5), invoker).await;
    assert!(execution.succeeded());
    assert_eq!(t.peak.load(Ordering::SeqCst), 5);

    let (invoker, t) = tracker();
    let mut input = items(4);
    input["items"][0]["ms"] = json!(60);
    let execution = run_with(&map_definition(1), input, invoker).await;
    assert!(execution.succeeded());
    assert_eq!(t.peak.load(Ordering::SeqCst), 1);
    let order: Vec<Value> = t
        .order
        .lock()
        .unwrap()
        .iter()
        .map(|v| v["i"].clone())
        .collect();
    assert_eq!(order, [json!(0), json!(1), json!(2), json!(3)]);
}

#[tokio::test]
async fn item_selector_context_and_result_processing() {
    let definition = r#"{"StartAt": "Validate-All", "States": { "Validate-All": {
        "Type": "Map", "InputPath": "$.detail", "ItemsPath": "$.shipped", "MaxConcurrencyPath": "$.limit",
        "ItemSelector": { "parcel.$": "$$.Map.Item.Value", "index.$": "$$.Map.Item.Index", "courier.$": "$.delivery-partner" },
        "ItemProcessor": { "StartAt": "Validate", "States": {
            "Validate": { "Type": "Task", "Resource": "arn:ship-val", "End": true } } },
        "ResultSelector": { "count.$": "States.ArrayLength($)", "first.$": "$[0]" },
        "ResultPath": "$.detail.shipped",
        "OutputPath": "$.detail",
        "End": true } } }"#;
    let input = json!({
        "ship-date": "2016-03-14T01:59:00Z",
        "detail": { "delivery-partner": "UQS", "limit": 2, "shipped": [
            { "prod": "R31", "dest-code": 9511, "quantity": 1344 },
            { "prod": "S39", "dest-code": 9511, "quantity": 40 } ] }
    });
    let execution = run_with(definition, input, echo()).await;
    assert_eq!(
        execution.output,
        Some(json!({
            "delivery-partner": "UQS", "limit": 2,
            "shipped": { "count": 2, "first": {
                "parcel": { "prod": "R31", "dest-code": 9511, "quantity": 1344 }, "index": 0, "courier": "UQS" } }
        }))
    );
    let scopes: Vec<String> = execution
        .history
        .iter()
        .filter(|e| e.state.as_deref() == Some("Validate"))
        .map(|e| e.scope.clone())
        .collect();
    assert!(
        scopes.contains(&"Validate-All[1]".to_string()),
        "{scopes:?}"
    );
}

#[tokio::test]
async fn legacy_iterator_and_parameters() {
    let definition = r#"{"StartAt": "M", "States": { "M": {
        "Type": "Map", "Parameters": { "v.$": "$$.Map.Item.Value", "tag": "x" },
        "Iterator": { "StartAt": "P", "States": { "P": { "Type": "Pass", "End": true } } },
        "ResultPath": "$.out", "End": true } } }"#;
    let execution = run_with(definition, json!([1, 2]), echo()).await;
    // The raw input is an array: ResultPath "$.out" cannot be applied to it.
    assert!(
        matches!(execution.status, ExecutionStatus::Failed { ref error, .. } if error == "States.ResultPathMatchFailure")
    );
    let definition = definition.replace("\"ResultPath\": \"$.out\", ", "");
    let execution = run_with(&definition, json!([1, 2]), echo()).await;
    assert_eq!(
        execution.output,
        Some(json!([{ "v": 1, "tag": "x" }, { "v": 2, "tag": "x" }]))
    );
}

#[tokio::test]
async fn a_failing_iteration_fails_the_map_and_can_be_caught() {
    let definition = r#"{"StartAt": "M", "States": {
        "M": { "Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 1,
               "ItemProcessor": { "StartAt": "Work", "States": { "Work": { "Type": "Task", "Resource": "arn:work", "End": true } } },
               "Catch": [ { "ErrorEquals": ["Item.Failed"], "ResultPath": "$.failure", "Next": "Report" } ],
               "End": true },
        "Report": { "Type": "Pass", "OutputPath": "$.failure", "End": true } }}"#;
    let (invoker, t) = tracker();
    let mut input = items(5);
    input["items"][1]["fail"] = json!(true);
    let execution = run_with(definition, input, invoker).await;
    assert_eq!(
        execution.output,
        Some(json!({ "Error": "Item.Failed", "Cause": "item 1" }))
    );
    assert_eq!(
        t.order.lock().unwrap().len(),
        2,
        "iterations after the failure never start"
    );
    assert!(event_types(&execution).contains(&"MapIterationFailed".to_string()));
    // Not caught: the execution fails with the iteration's error and state.
    let uncaught = definition.replace("\"Item.Failed\"", "\"Other\"");
    let (invoker, _) = tracker();
    let mut input = items(2);
    input["items"][0]["fail"] = json!(true);
    let execution = run_with(&uncaught, input, invoker).await;
    assert_eq!(
        execution.status,
        ExecutionStatus::Failed {
            error: "Item.Failed".into(),
            cause: "item 0".into()
        }
    );
    assert_eq!(
        execution.history.last().unwrap().state.as_deref(),
        Some("Work")
    );
}

#[tokio::test]
async fn items_path_must_select_an_array() {
    let execution = run_with(&map_definition(0), json!({ "items": "nope" }), echo()).await;
    assert!(
        matches!(execution.status, ExecutionStatus::Failed { ref error, .. } if error == "States.Runtime")
    );
    let execution = run_with(&map_definition(0), json!({ "items": [] }), echo()).await;
    assert_eq!(execution.output, Some(json!([])));
}

fn parallel_definition() -> String {
    let branch = |ms: u64, tag: &str| {
        json!({ "StartAt": format!("B{tag}"), "States": {
        format!("B{tag}"): { "Type": "Task", "Resource": "arn:work", "Parameters": { "ms": ms, "tag": tag }, "End": true } } })
    };
    json!({ "StartAt": "P", "States": {
        "P": { "Type": "Parallel", "Branches": [branch(80, "slow"), branch(10, "fast"), branch(40, "mid")],
               "ResultSelector": { "tags.$": "$[*].tag" }, "ResultPath": "$.result", "Next": "S" },
        "S": { "Type": "Succeed" } } })
    .to_string()
}

#[tokio::test]
async fn parallel_branches_run_concurrently_and_keep_their_order() {
    let (invoker, t) = tracker();
    let execution = run_with(&parallel_definition(), json!({ "keep": 1 }), invoker).await;
    assert_eq!(
        execution.output,
        Some(json!({ "keep": 1, "result": { "tags": ["slow", "fast", "mid"] } }))
    );
    assert_eq!(t.peak.load(Ordering::SeqCst), 3);
    let started = event_types(&execution)
        .iter()
        .filter(|t| *t == "ParallelBranchStarted")
        .count();
    assert_eq!(started, 3);
}

#[tokio::test]
async fn a_failing_branch_fails_the_parallel_with_its_error() {
    let definition = r#"{"StartAt": "P", "States": {
        "P": { "Type": "Parallel", "End": true,
               "Retry": [ { "ErrorEquals": ["Branch.Bad"], "MaxAttempts": 1 } ],
               "Catch": [ { "ErrorEquals": ["Branch.Bad"], "Next": "Caught" } ],
               "Branches": [
                 { "StartAt": "Ok", "States": { "Ok": { "Type": "Pass", "End": true } } },
                 { "StartAt": "Bad", "States": { "Bad": { "Type": "Fail", "Error": "Branch.Bad", "Cause": "no" } } } ] },
        "Caught": { "Type": "Pass", "End": true } }}"#;
    let execution = run_with(definition, json!({}), echo()).await;
    assert_eq!(
        execution.output,
        Some(json!({ "Error": "Branch.Bad", "Cause": "no" }))
    );
    let types = event_types(&execution);
    assert_eq!(types.iter().filter(|t| *t == "RetryScheduled").count(), 1);
    assert_eq!(
        types
            .iter()
            .filter(|t| *t == "ParallelBranchFailed")
            .count(),
        2
    );
}

#[tokio::test]
async fn nested_map_inside_parallel() {
    let definition = r#"{"StartAt": "P", "States": { "P": { "Type": "Parallel", "End": true, "Branches": [
        { "StartAt": "M", "States": { "M": { "Type": "Map", "ItemsPath": "$.xs", "End": true,
            "ItemSelector": { "sum.$": "States.MathAdd($$.Map.Item.Value, $.base)" },
            "ItemProcessor": { "StartAt": "T", "States": { "T": { "Type": "Task", "Resource": "arn:echo", "OutputPath": "$.sum", "End": true } } } } } },
        { "StartAt": "W", "States": { "W": { "Type": "Wait", "Seconds": 10, "OutputPath": "$.base", "End": true } } } ] } } }"#;
    let execution = run_with(definition, json!({ "xs": [1, 2, 3], "base": 10 }), echo()).await;
    assert_eq!(execution.output, Some(json!([[11, 12, 13], 10])));
    let scopes: Vec<&str> = execution
        .history
        .iter()
        .filter(|e| e.state.as_deref() == Some("T"))
        .map(|e| e.scope.as_str())
        .collect();
    assert!(scopes.contains(&"P.Branches[0]/M[2]"), "{scopes:?}");
}
