use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::{substitute, AslError, Count, StateKind, StateMachine, Transition};

fn parse(definition: Value) -> Result<StateMachine, AslError> {
    StateMachine::from_value(&definition)
}

fn error(definition: Value) -> String {
    match parse(definition) {
        Ok(_) => panic!("the definition should be refused"),
        Err(e) => e.to_string(),
    }
}

fn end() -> Value {
    json!({ "Type": "Succeed" })
}

#[test]
fn a_valid_definition_parses_into_the_model() {
    let machine = parse(json!({
        "Comment": "c",
        "StartAt": "Prepare",
        "TimeoutSeconds": 30,
        "States": {
            "Prepare": { "Type": "Task", "Resource": "arn:prepare", "ResultPath": "$.plan",
                         "TimeoutSeconds": 10, "HeartbeatSeconds": 5, "Next": "Done" },
            "Done": { "Type": "Succeed" }
        }
    }))
    .unwrap();
    assert_eq!(machine.start_at, "Prepare");
    assert_eq!(machine.timeout_seconds, Some(30));
    let StateKind::Task(task) = &machine.states["Prepare"].kind else {
        panic!("not a task")
    };
    assert_eq!(task.resource, "arn:prepare");
    assert_eq!(task.timeout, Some(Count::Fixed(10)));
    assert_eq!(task.transition, Transition::Next("Done".to_string()));
    assert_eq!(
        task.results.result_path.as_ref().map(|p| p.as_str()),
        Some("$.plan")
    );
    assert_eq!(
        task.filters.input_path.as_ref().map(|p| p.as_str()),
        Some("$")
    );
}

#[test]
fn start_at_and_transitions_must_name_states() {
    let e = error(json!({ "StartAt": "Nope", "States": { "A": end() } }));
    assert!(e.contains("StartAt") && e.contains("Nope"), "{e}");
    let e = error(json!({ "StartAt": "A", "States": {
        "A": { "Type": "Pass", "Next": "Missing" }, "B": end() } }));
    assert!(
        e.contains("state \"A\"") && e.contains("\"Next\"") && e.contains("Missing"),
        "{e}"
    );
    let e = error(json!({ "StartAt": "A", "States": {
        "A": { "Type": "Choice", "Choices": [ { "Variable": "$.x", "IsNull": true, "Next": "B" } ], "Default": "Gone" },
        "B": end() } }));
    assert!(e.contains("Default") && e.contains("Gone"), "{e}");
    let e = error(json!({ "StartAt": "A", "States": {
        "A": { "Type": "Task", "Resource": "r", "End": true,
               "Catch": [ { "ErrorEquals": ["States.ALL"], "Next": "Elsewhere" } ] } } }));
    assert!(
        e.contains("Catch[0].Next") && e.contains("Elsewhere"),
        "{e}"
    );
}

#[test]
fn terminal_states_and_reachability() {
    let e = error(json!({ "StartAt": "A", "States": { "A": { "Type": "Pass" } } }));
    assert!(e.contains("state \"A\"") && e.contains("Next"), "{e}");
    let e = error(json!({ "StartAt": "A", "States": { "A": { "Type": "Pass", "Next": "A" } } }));
    assert!(e.contains("no terminal state"), "{e}");
    let e = error(json!({ "StartAt": "A", "States": { "A": end(), "Island": end() } }));
    assert!(
        e.contains("Island") && e.contains("cannot be reached"),
        "{e}"
    );
    let e = error(
        json!({ "StartAt": "A", "States": { "A": { "Type": "Pass", "Next": "B", "End": true }, "B": end() } }),
    );
    assert!(e.contains("not both"), "{e}");
    let e = error(json!({ "StartAt": "A", "States": {
        "A": { "Type": "Choice", "Choices": [ { "Variable": "$.x", "IsNull": true, "Next": "B" } ], "End": true },
        "B": end() } }));
    assert!(e.contains("Choice"), "{e}");
}

#[test]
fn nested_machines_are_validated_recursively() {
    let e = error(json!({ "StartAt": "M", "States": {
        "M": { "Type": "Map", "End": true, "ItemProcessor": {
            "StartAt": "Inner", "States": { "Inner": { "Type": "Pass", "Next": "Outside" } } } },
        "Outside": end() } }));
    assert!(
        e.contains("state \"Inner\"") && e.contains("Outside"),
        "{e}"
    );
    let e = error(json!({ "StartAt": "P", "States": {
        "P": { "Type": "Parallel", "End": true, "Branches": [
            { "StartAt": "B1", "States": { "B1": end() } },
            { "StartAt": "Nope", "States": { "B2": end() } } ] } } }));
    assert!(
        e.contains("Parallel \"P\" Branches[1]") && e.contains("Nope"),
        "{e}"
    );
    let e = error(json!({ "StartAt": "M", "States": {
        "M": { "Type": "Map", "End": true, "Iterator": {
            "StartAt": "M", "States": { "M": end() } } } } }));
    assert!(e.contains("\"M\" is used more than once"), "{e}");
    let e = error(json!({ "StartAt": "M", "States": { "M": { "Type": "Map", "End": true } } }));
    assert!(e.contains("ItemProcessor"), "{e}");
}

#[test]
fn retry_and_catch_rules() {
    let task = |retry: Value| {
        json!({ "StartAt": "T", "States": {
        "T": { "Type": "Task", "Resource": "r", "End": true, "Retry": retry } } })
    };
    let e = error(task(
        json!([ { "ErrorEquals": ["States.ALL"] }, { "ErrorEquals": ["X"] } ]),
    ));
    assert!(e.contains("Retry[0]") && e.contains("States.ALL"), "{e}");
    let e = error(task(json!([ { "ErrorEquals": ["States.ALL", "X"] } ])));
    assert!(e.contains("alone"), "{e}");
    let e = error(task(json!([ { "ErrorEquals": [] } ])));
    assert!(e.contains("ErrorEquals"), "{e}");
    let e = error(task(
        json!([ { "ErrorEquals": ["X"], "BackoffRate": 0.5 } ]),
    ));
    assert!(e.contains("BackoffRate"), "{e}");
    let e = error(task(
        json!([ { "ErrorEquals": ["X"], "IntervalSeconds": 0 } ]),
    ));
    assert!(
        e.contains("IntervalSeconds") && e.contains("positive"),
        "{e}"
    );
    let e = error(task(
        json!([ { "ErrorEquals": ["X"], "JitterStrategy": "HALF" } ]),
    ));
    assert!(e.contains("JitterStrategy"), "{e}");
    let e = error(task(json!([ { "ErrorEquals": ["X"], "MaxAttemps": 2 } ])));
    assert!(e.contains("unknown field \"MaxAttemps\""), "{e}");
    assert!(parse(task(
        json!([ { "ErrorEquals": ["X"], "MaxAttempts": 0 }, { "ErrorEquals": ["States.ALL"] } ])
    ))
    .is_ok());
}

#[test]
fn field_errors_name_the_state_and_field() {
    let state = |s: Value| json!({ "StartAt": "S", "States": { "S": s } });
    let e = error(state(json!({ "Type": "Task", "End": true })));
    assert!(e.contains("state \"S\"") && e.contains("Resource"), "{e}");
    let e = error(state(
        json!({ "Type": "Task", "Resource": "r", "End": true, "ResultPth": "$.x" }),
    ));
    assert!(e.contains("unknown field \"ResultPth\""), "{e}");
    let e = error(state(json!({ "Type": "Pass", "End": true, "Assign": {} })));
    assert!(e.contains("\"Assign\" is not supported"), "{e}");
    let e = error(state(
        json!({ "Type": "Task", "Resource": "r", "End": true, "TimeoutSeconds": 5, "HeartbeatSeconds": 5 }),
    ));
    assert!(e.contains("HeartbeatSeconds"), "{e}");
    let e = error(state(
        json!({ "Type": "Task", "Resource": "r", "End": true, "TimeoutSeconds": 5, "TimeoutSecondsPath": "$.t" }),
    ));
    assert!(e.contains("TimeoutSecondsPath"), "{e}");
    let e = error(state(
        json!({ "Type": "Task", "Resource": "r", "End": true, "ResultPath": "$.a[*]" }),
    ));
    assert!(
        e.contains("ResultPath") && e.contains("Reference Path"),
        "{e}"
    );
    let e = error(state(
        json!({ "Type": "Task", "Resource": "r", "End": true, "ResultPath": "$$.x" }),
    ));
    assert!(e.contains("$$"), "{e}");
    let e = error(state(
        json!({ "Type": "Pass", "End": true, "Parameters": { "a.$": "$.b[" } }),
    ));
    assert!(e.contains("Parameters") && e.contains("a.$"), "{e}");
    let e = error(state(
        json!({ "Type": "Wait", "End": true, "Seconds": 1, "Timestamp": "2016-03-14T01:59:00Z" }),
    ));
    assert!(e.contains("exactly one"), "{e}");
    let e = error(state(
        json!({ "Type": "Wait", "End": true, "Timestamp": "2016-03-14 01:59" }),
    ));
    assert!(e.contains("Timestamp"), "{e}");
    let e = error(state(
        json!({ "Type": "Fail", "Error": "E", "ErrorPath": "$.e" }),
    ));
    assert!(e.contains("ErrorPath"), "{e}");
    let e = error(state(
        json!({ "Type": "Choice", "Choices": [ { "Variable": "$.a", "NumericEquals": "1", "Next": "S" } ] }),
    ));
    assert!(
        e.contains("Choices[0].NumericEquals") && e.contains("number"),
        "{e}"
    );
    let e = error(state(
        json!({ "Type": "Choice", "Choices": [ { "Not": { "Variable": "$.a", "IsNull": true, "Next": "S" }, "Next": "S" } ] }),
    ));
    assert!(e.contains("Choices[0].Not.Next"), "{e}");
    let e = error(state(
        json!({ "Type": "Choice", "Choices": [ { "Variable": "$.a", "StringMatches": "a\\b", "Next": "S" } ] }),
    ));
    assert!(e.contains("StringMatches"), "{e}");
    let e = error(state(
        json!({ "Type": "Choice", "Choices": [ { "Variable": "$.a", "Next": "S" } ] }),
    ));
    assert!(e.contains("exactly one comparison operator"), "{e}");
    let e = error(state(json!({ "Type": "Bogus" })));
    assert!(e.contains("unknown state type \"Bogus\""), "{e}");
    let e = error(json!({ "QueryLanguage": "JSONata", "StartAt": "S", "States": { "S": end() } }));
    assert!(e.contains("JSONata"), "{e}");
    assert!(matches!(
        StateMachine::from_json("{"),
        Err(AslError::Json(_))
    ));
}

#[test]
fn resources_include_branches_and_map_processors() {
    let machine = parse(json!({ "StartAt": "A", "States": {
        "A": { "Type": "Task", "Resource": "arn:a", "Next": "P" },
        "P": { "Type": "Parallel", "Next": "M", "Branches": [
            { "StartAt": "B", "States": { "B": { "Type": "Task", "Resource": "arn:b", "End": true } } },
            { "StartAt": "C", "States": { "C": { "Type": "Task", "Resource": "arn:a", "End": true } } } ] },
        "M": { "Type": "Map", "End": true, "ItemProcessor": { "StartAt": "D", "States": {
            "D": { "Type": "Task", "Resource": "arn:d", "End": true } } } } } }))
    .unwrap();
    let resources: Vec<String> = machine.resources().into_iter().collect();
    assert_eq!(resources, ["arn:a", "arn:b", "arn:d"]);
}

#[test]
fn substitutions_fill_placeholders() {
    let mut subs = BTreeMap::new();
    subs.insert(
        "PrepareFunctionArn".to_string(),
        "arn:aws:lambda:local:000000000000:function:lifeboat-prepare".to_string(),
    );
    subs.insert("Empty".to_string(), String::new());
    let out = substitute(
        r#"{"Resource": "${PrepareFunctionArn}", "x": "a${Empty}b", "p": "$.a"}"#,
        &subs,
    )
    .unwrap();
    assert_eq!(
        out,
        r#"{"Resource": "arn:aws:lambda:local:000000000000:function:lifeboat-prepare", "x": "ab", "p": "$.a"}"#
    );
    match substitute("${PrepareFunctionArn} ${Unknown}", &subs) {
        Err(AslError::UnknownSubstitution { key }) => assert_eq!(key, "Unknown"),
        other => panic!("{other:?}"),
    }
    match substitute("ok ${Unclosed", &subs) {
        Err(AslError::UnterminatedPlaceholder { offset }) => assert_eq!(offset, 3),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        substitute("no placeholders $ {}", &subs).unwrap(),
        "no placeholders $ {}"
    );
}
