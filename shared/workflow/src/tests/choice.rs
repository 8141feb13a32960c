use serde_json::{json, Value};

use super::{echo, run_with};
use crate::choice::compare;
use crate::{names, ExecutionStatus, Operator};

/// Runs a one-rule Choice on `input`; "Yes" when the rule holds.
async fn holds(rule: Value, input: Value) -> Result<bool, ExecutionStatus> {
    let mut rule = rule;
    rule["Next"] = json!("Yes");
    let definition = json!({
        "StartAt": "C",
        "States": {
            "C": { "Type": "Choice", "Choices": [rule], "Default": "No" },
            "Yes": { "Type": "Pass", "Result": true, "End": true },
            "No": { "Type": "Pass", "Result": false, "End": true }
        }
    });
    let execution = run_with(&definition.to_string(), input, echo()).await;
    match execution.output {
        Some(Value::Bool(b)) => Ok(b),
        _ => Err(execution.status),
    }
}

#[tokio::test]
async fn the_specs_dispatch_example() {
    let definition = r#"{
      "StartAt": "DispatchEvent",
      "States": {
        "DispatchEvent": {
          "Type": "Choice",
          "Choices": [
            { "Not": { "Variable": "$.type", "StringEquals": "Private" }, "Next": "Public" },
            { "And": [
                { "Variable": "$.value", "IsPresent": true },
                { "Variable": "$.value", "IsNumeric": true },
                { "Variable": "$.value", "NumericGreaterThanEquals": 20 },
                { "Variable": "$.value", "NumericLessThan": 30 } ],
              "Next": "ValueInTwenties" },
            { "Variable": "$.rating", "NumericGreaterThanPath": "$.auditThreshold", "Next": "StartAudit" }
          ],
          "Default": "RecordEvent"
        },
        "Public": { "Type": "Pass", "Result": "Public", "End": true },
        "ValueInTwenties": { "Type": "Pass", "Result": "ValueInTwenties", "End": true },
        "StartAudit": { "Type": "Pass", "Result": "StartAudit", "End": true },
        "RecordEvent": { "Type": "Pass", "Result": "RecordEvent", "End": true }
      }
    }"#;
    for (input, expected) in [
        (json!({ "type": "Private", "value": 22 }), "ValueInTwenties"),
        (json!({ "type": "Public", "value": 22 }), "Public"),
        (
            json!({ "type": "Private", "value": 35, "rating": 9, "auditThreshold": 5 }),
            "StartAudit",
        ),
        (
            json!({ "type": "Private", "rating": 1, "auditThreshold": 5 }),
            "RecordEvent",
        ),
    ] {
        let execution = run_with(definition, input.clone(), echo()).await;
        assert_eq!(execution.output, Some(json!(expected)), "{input}");
    }
}

#[test]
fn comparison_operators() {
    use Operator::*;
    let cases: &[(Operator, Value, Value, bool)] = &[
        (StringEquals, json!("a"), json!("a"), true),
        (StringEquals, json!("a"), json!("A"), false),
        (StringLessThan, json!("abc"), json!("abd"), true),
        (StringGreaterThan, json!("b"), json!("a"), true),
        (StringLessThanEquals, json!("a"), json!("a"), true),
        (StringGreaterThanEquals, json!("a"), json!("b"), false),
        (NumericEquals, json!(1), json!(1.0), true),
        (NumericLessThan, json!(1), json!(2), true),
        (NumericGreaterThan, json!(-1.5), json!(-2), true),
        (NumericLessThanEquals, json!(3), json!(3), true),
        (NumericGreaterThanEquals, json!(2), json!(3), false),
        (BooleanEquals, json!(false), json!(false), true),
        (BooleanEquals, json!(true), json!(false), false),
        (
            TimestampEquals,
            json!("2016-03-14T01:59:00Z"),
            json!("2016-03-14T02:59:00+01:00"),
            true,
        ),
        (
            TimestampLessThan,
            json!("2016-03-14T01:59:00Z"),
            json!("2016-03-14T02:00:00Z"),
            true,
        ),
        (
            TimestampGreaterThan,
            json!("2017-01-01T00:00:00Z"),
            json!("2016-03-14T01:59:00Z"),
            true,
        ),
        (
            TimestampLessThanEquals,
            json!("2016-03-14T01:59:00Z"),
            json!("2016-03-14T01:59:00Z"),
            true,
        ),
        (
            TimestampGreaterThanEquals,
            json!("2015-03-14T01:59:00Z"),
            json!("2016-03-14T01:59:00Z"),
            false,
        ),
        // Values of the wrong type compare false.
        (StringEquals, json!(1), json!("1"), false),
        (NumericEquals, json!("1"), json!(1), false),
        (BooleanEquals, json!("true"), json!(true), false),
        (
            TimestampEquals,
            json!("2016-03-14"),
            json!("2016-03-14"),
            false,
        ),
        (
            TimestampEquals,
            json!("2016-03-14t01:59:00z"),
            json!("2016-03-14t01:59:00z"),
            false,
        ),
        // Is* take the expected truth.
        (IsNull, json!(null), json!(true), true),
        (IsNull, json!(0), json!(false), true),
        (IsNumeric, json!(1.5), json!(true), true),
        (IsString, json!(1), json!(true), false),
        (IsBoolean, json!(true), json!(true), true),
        (
            IsTimestamp,
            json!("2016-03-14T01:59:00Z"),
            json!(true),
            true,
        ),
        (IsTimestamp, json!("yesterday"), json!(false), true),
    ];
    for (operator, value, operand, expected) in cases {
        assert_eq!(
            compare(*operator, value, operand),
            *expected,
            "{operator:?} {value} {operand}"
        );
    }
}

#[test]
fn string_matches_wildcards_and_escapes() {
    let cases = [
        ("foo*.log", "foo23.log", true),
        ("*.log", "zebra.log", true),
        ("foo*.*", "foobar.zebra", true),
        ("foo*.log", "foo23.txt", false),
        ("*", "", true),
        ("a*b*c", "aXXbYYc", true),
        ("a*b*c", "aXXbYY", false),
        ("literal\\*star", "literal*star", true),
        ("literal\\*star", "literalXstar", false),
        ("back\\\\slash", "back\\slash", true),
        ("?", "x", false),
    ];
    for (pattern, text, expected) in cases {
        assert_eq!(
            compare(Operator::StringMatches, &json!(text), &json!(pattern)),
            expected,
            "{pattern} ~ {text}"
        );
    }
}

#[tokio::test]
async fn path_operands_is_present_and_boolean_logic() {
    let input = json!({ "a": 5, "b": 5, "s": "x", "flag": true, "t": "2020-01-01T00:00:00Z" });
    assert_eq!(
        holds(
            json!({ "Variable": "$.a", "NumericEqualsPath": "$.b" }),
            input.clone()
        )
        .await,
        Ok(true)
    );
    assert_eq!(
        holds(
            json!({ "Variable": "$.s", "StringEqualsPath": "$.s" }),
            input.clone()
        )
        .await,
        Ok(true)
    );
    assert_eq!(
        holds(
            json!({ "Variable": "$.flag", "BooleanEqualsPath": "$.flag" }),
            input.clone()
        )
        .await,
        Ok(true)
    );
    assert_eq!(
        holds(
            json!({ "Variable": "$.t", "TimestampLessThanEqualsPath": "$.t" }),
            input.clone()
        )
        .await,
        Ok(true)
    );
    assert_eq!(
        holds(
            json!({ "Variable": "$.nope", "IsPresent": false }),
            input.clone()
        )
        .await,
        Ok(true)
    );
    assert_eq!(
        holds(
            json!({ "Variable": "$.a", "IsPresent": false }),
            input.clone()
        )
        .await,
        Ok(false)
    );
    assert_eq!(
        holds(json!({ "Or": [ { "Variable": "$.a", "NumericEquals": 1 }, { "Variable": "$.s", "StringEquals": "x" } ] }), input.clone()).await,
        Ok(true)
    );
    // And stops at the first false rule: the missing path after it is never read.
    assert_eq!(
        holds(json!({ "And": [ { "Variable": "$.a", "NumericEquals": 1 }, { "Variable": "$.missing", "NumericEquals": 1 } ] }), input.clone()).await,
        Ok(false)
    );
    assert_eq!(
        holds(
            json!({ "Variable": "$$.State.Name", "StringEquals": "C" }),
            input
        )
        .await,
        Ok(true)
    );
}

#[tokio::test]
async fn a_missing_variable_is_a_runtime_error() {
    let status = holds(
        json!({ "Variable": "$.missing", "NumericEquals": 1 }),
        json!({}),
    )
    .await;
    match status {
        Err(ExecutionStatus::Failed { error, .. }) => assert_eq!(error, names::RUNTIME),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn no_match_without_default_is_no_choice_matched() {
    let definition = r#"{"StartAt": "C", "States": {
        "C": { "Type": "Choice", "Choices": [ { "Variable": "$.a", "NumericEquals": 1, "Next": "E" } ] },
        "E": { "Type": "Succeed" } }}"#;
    let execution = run_with(definition, json!({ "a": 2 }), echo()).await;
    assert_eq!(
        execution.status,
        ExecutionStatus::Failed {
            error: names::NO_CHOICE_MATCHED.to_string(),
            cause: "no Choice Rule matched the input and there is no Default".to_string()
        }
    );
    // Choice passes its effective input through InputPath and OutputPath.
    let definition = r#"{"StartAt": "C", "States": {
        "C": { "Type": "Choice", "InputPath": "$.in", "OutputPath": "$.keep",
               "Choices": [ { "Variable": "$.a", "NumericEquals": 1, "Next": "E" } ] },
        "E": { "Type": "Succeed" } }}"#;
    let execution = run_with(definition, json!({ "in": { "a": 1, "keep": "k" } }), echo()).await;
    assert_eq!(execution.output, Some(json!("k")));
}
