use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{echo, event_types, invoker, machine, opts, run_with};
use crate::{run, ExecutionStatus, HistoryEventType, RunOptions, StateType, TaskFailure};

/// The spec's "Add" function.
fn adder() -> Arc<dyn crate::TaskInvoker> {
    invoker(|resource, input: Value, _| async move {
        match resource.as_str() {
            "arn:add" => Ok(json!(
                input["val1"].as_i64().unwrap_or(0) + input["val2"].as_i64().unwrap_or(0)
            )),
            other => Err(TaskFailure::new("Unknown", other.to_string())),
        }
    })
}

#[tokio::test]
async fn a_task_result_becomes_the_output() {
    let definition = r#"{"StartAt": "Add", "States": {
        "Add": { "Type": "Task", "Resource": "arn:add", "End": true } }}"#;
    let execution = run_with(definition, json!({ "val1": 3, "val2": 4 }), adder()).await;
    assert_eq!(execution.status, ExecutionStatus::Succeeded);
    assert_eq!(execution.output, Some(json!(7)));
    assert_eq!(execution.name, "test-run");
    assert_eq!(
        execution.id,
        "arn:aws:states:local:000000000000:execution:Test:test-run"
    );
}

#[tokio::test]
async fn input_path_and_result_path_from_the_spec() {
    let definition = r#"{"StartAt": "Add", "States": {
        "Add": { "Type": "Task", "Resource": "arn:add", "InputPath": "$.numbers", "ResultPath": "$.sum", "End": true } }}"#;
    let input = json!({ "title": "Numbers to add", "numbers": { "val1": 3, "val2": 4 } });
    let execution = run_with(definition, input, adder()).await;
    assert_eq!(
        execution.output,
        Some(json!({ "title": "Numbers to add", "numbers": { "val1": 3, "val2": 4 }, "sum": 7 }))
    );
}

#[tokio::test]
async fn parameters_result_selector_result_path_output_path_in_order() {
    let definition = r#"{"StartAt": "T", "States": {
        "T": { "Type": "Task", "Resource": "arn:echo",
               "InputPath": "$.in",
               "Parameters": { "doubled.$": "States.Array($.v, $.v)", "name.$": "$$.Execution.Name", "fixed": 1 },
               "ResultSelector": { "first.$": "$.doubled[0]", "all.$": "$" },
               "ResultPath": "$.out.result",
               "OutputPath": "$.out",
               "End": true } }}"#;
    let execution = run_with(
        definition,
        json!({ "in": { "v": 5 }, "keep": true }),
        echo(),
    )
    .await;
    assert_eq!(
        execution.output,
        Some(
            json!({ "result": { "first": 5, "all": { "doubled": [5, 5], "name": "test-run", "fixed": 1 } } })
        )
    );
}

#[tokio::test]
async fn null_paths_discard_as_the_spec_says() {
    let definition = r#"{"StartAt": "A", "States": {
        "A": { "Type": "Task", "Resource": "arn:echo", "InputPath": null, "ResultPath": null, "Next": "B" },
        "B": { "Type": "Pass", "OutputPath": null, "End": true } }}"#;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let recorder = invoker(move |_, input, _| {
        let log = log.clone();
        async move {
            log.lock().unwrap().push(input.clone());
            Ok(json!("ignored"))
        }
    });
    let execution = run_with(definition, json!({ "a": 1 }), recorder).await;
    assert_eq!(*seen.lock().unwrap(), [json!({})]);
    assert_eq!(execution.output, Some(json!({})));
    let exited = execution
        .history
        .iter()
        .find(|e| e.event_type == HistoryEventType::StateExited(StateType::Task))
        .unwrap();
    assert_eq!(exited.data, Some(json!({ "a": 1 })));
}

#[tokio::test]
async fn pass_injects_its_result_at_result_path() {
    let definition = r#"{"StartAt": "ProvideTestData", "States": {
        "ProvideTestData": { "Type": "Pass", "Result": { "x-datum": 0.381018, "y-datum": 622.2269926397355 },
                             "ResultPath": "$.coords", "Next": "P2" },
        "P2": { "Type": "Pass", "Parameters": { "where.$": "$.georefOf", "state.$": "$$.State.Name" }, "ResultPath": "$.p", "End": true } }}"#;
    let execution = run_with(definition, json!({ "georefOf": "Home" }), echo()).await;
    assert_eq!(
        execution.output,
        Some(json!({
            "georefOf": "Home",
            "coords": { "x-datum": 0.381018, "y-datum": 622.2269926397355 },
            "p": { "where": "Home", "state": "P2" }
        }))
    );
}

#[tokio::test]
async fn the_task_sees_the_context_object() {
    let definition = r#"{"StartAt": "T", "States": {
        "T": { "Type": "Task", "Resource": "arn:ctx", "End": true,
               "Parameters": { "input.$": "$$.Execution.Input", "machine.$": "$$.StateMachine.Id",
                               "start.$": "$$.Execution.StartTime", "entered.$": "$$.State.EnteredTime" } } }}"#;
    let ctx_seen = invoker(|_, input, ctx: crate::TaskContext| async move {
        Ok(
            json!({ "params": input, "state": ctx.state_name, "retries": ctx.retry_count,
                   "execution": ctx.execution_name, "timeout": ctx.timeout.map(|t| t.as_secs()) }),
        )
    });
    let execution = run_with(definition, json!({ "k": "v" }), ctx_seen).await;
    let output = execution.output.unwrap();
    assert_eq!(output["params"]["input"], json!({ "k": "v" }));
    assert_eq!(
        output["params"]["machine"],
        json!("arn:aws:states:local:000000000000:stateMachine:Test")
    );
    assert!(output["params"]["start"].as_str().unwrap().ends_with('Z'));
    assert!(output["params"]["entered"].as_str().unwrap().contains('T'));
    assert_eq!(output["state"], json!("T"));
    assert_eq!(output["retries"], json!(0));
    assert_eq!(output["execution"], json!("test-run"));
    assert_eq!(
        output["timeout"],
        json!(60),
        "the specification's default TimeoutSeconds"
    );
}

#[tokio::test]
async fn wait_variants_and_time_scale() {
    let definition = r#"{"StartAt": "W1", "States": {
        "W1": { "Type": "Wait", "Seconds": 3600, "Next": "W2" },
        "W2": { "Type": "Wait", "SecondsPath": "$.delay", "Next": "W3" },
        "W3": { "Type": "Wait", "Timestamp": "2999-01-01T00:00:00Z", "Next": "W4" },
        "W4": { "Type": "Wait", "TimestampPath": "$.until", "OutputPath": "$.delay", "End": true } }}"#;
    let started = Instant::now();
    let input = json!({ "delay": 7200, "until": "2999-01-01T00:00:00+02:00" });
    let execution = run_with(definition, input, echo()).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(execution.output, Some(json!(7200)));
    // A real wait at a small scale.
    let definition =
        r#"{"StartAt": "W", "States": { "W": { "Type": "Wait", "Seconds": 1, "End": true } }}"#;
    let started = Instant::now();
    let options = RunOptions {
        time_scale: 0.05,
        ..opts()
    };
    let execution = run(&machine(definition), json!({}), echo(), options).await;
    assert!(execution.succeeded());
    assert!(
        started.elapsed() >= Duration::from_millis(45),
        "{:?}",
        started.elapsed()
    );
    // A bad SecondsPath is a runtime error.
    let definition = r#"{"StartAt": "W", "States": { "W": { "Type": "Wait", "SecondsPath": "$.d", "End": true } }}"#;
    let execution = run_with(definition, json!({ "d": "soon" }), echo()).await;
    assert!(
        matches!(execution.status, ExecutionStatus::Failed { ref error, .. } if error == "States.Runtime")
    );
}

#[tokio::test]
async fn fail_states_with_literals_paths_and_intrinsics() {
    let definition = r#"{"StartAt": "F", "States": {
        "F": { "Type": "Fail", "Error": "ErrorA", "Cause": "Kaiju attack" } }}"#;
    let execution = run_with(definition, json!({}), echo()).await;
    assert_eq!(
        execution.status,
        ExecutionStatus::Failed {
            error: "ErrorA".into(),
            cause: "Kaiju attack".into()
        }
    );
    let definition = r#"{"StartAt": "F", "States": {
        "F": { "Type": "Fail", "ErrorPath": "$.Error", "CausePath": "States.Format('code {}', $.code)" } }}"#;
    let execution = run_with(
        definition,
        json!({ "Error": "Custom.Err", "code": 42 }),
        echo(),
    )
    .await;
    assert_eq!(
        execution.status,
        ExecutionStatus::Failed {
            error: "Custom.Err".into(),
            cause: "code 42".into()
        }
    );
    let failed = execution.history.last().unwrap();
    assert_eq!(failed.event_type, HistoryEventType::ExecutionFailed);
    assert_eq!(failed.state.as_deref(), Some("F"));
    let execution = run_with(definition, json!({ "Error": 5, "code": 1 }), echo()).await;
    assert!(
        matches!(execution.status, ExecutionStatus::Failed { ref error, .. } if error == "States.Runtime")
    );
}

#[tokio::test]
async fn history_and_observer_record_every_step() {
    let definition = r#"{"StartAt": "T", "States": {
        "T": { "Type": "Task", "Resource": "arn:echo", "Next": "C" },
        "C": { "Type": "Choice", "Choices": [ { "Variable": "$.go", "BooleanEquals": true, "Next": "S" } ] },
        "S": { "Type": "Succeed" } }}"#;
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let options = RunOptions {
        observer: Some(Arc::new(move |event: &crate::HistoryEvent| {
            sink.lock().unwrap().push(event.to_string())
        })),
        ..opts()
    };
    let execution = run(&machine(definition), json!({ "go": true }), echo(), options).await;
    assert_eq!(
        event_types(&execution),
        [
            "ExecutionStarted",
            "TaskStateEntered",
            "TaskScheduled",
            "TaskSucceeded",
            "TaskStateExited",
            "ChoiceStateEntered",
            "ChoiceStateExited",
            "SucceedStateEntered",
            "SucceedStateExited",
            "ExecutionSucceeded",
        ]
    );
    let ids: Vec<u64> = execution.history.iter().map(|e| e.id).collect();
    assert_eq!(ids, (1..=10).collect::<Vec<_>>());
    let lines = lines.lock().unwrap();
    assert_eq!(lines.len(), 10);
    assert!(
        lines[2].contains("TaskScheduled T (arn:echo)"),
        "{}",
        lines[2]
    );
    assert!(
        lines[6].contains("ChoiceStateExited C next S"),
        "{}",
        lines[6]
    );
    let json = serde_json::to_value(&execution.history[1]).unwrap();
    assert_eq!(json["event_type"], json!("TaskStateEntered"));
}

#[tokio::test]
async fn the_run_future_is_send() {
    let machine = machine(r#"{"StartAt": "S", "States": { "S": { "Type": "Succeed" } }}"#);
    let handle = tokio::spawn(async move { run(&machine, json!(1), echo(), opts()).await });
    assert_eq!(handle.await.unwrap().output, Some(json!(1)));
}
