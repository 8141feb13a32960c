use serde_json::json;

use crate::names;
use crate::Template;

#[test]
fn the_specs_parameters_example() {
    let template = Template::compile(&json!({
        "flagged": true,
        "parts": { "first.$": "$.vals[0]", "last3.$": "$.vals[-3:]" },
        "weekday.$": "$$.DayOfWeek",
        "formattedOutput.$": "States.Format('Today is {}', $$.DayOfWeek)"
    }))
    .unwrap();
    let input = json!({ "flagged": 7, "vals": [0, 10, 20, 30, 40, 50] });
    let context = json!({ "DayOfWeek": "TUESDAY" });
    assert_eq!(
        template.evaluate(&input, &context).unwrap(),
        json!({
            "flagged": true,
            "parts": { "first": 0, "last3": [30, 40, 50] },
            "weekday": "TUESDAY",
            "formattedOutput": "Today is TUESDAY"
        })
    );
}

#[test]
fn dynamic_fields_inside_arrays_and_literal_subtrees() {
    let template = Template::compile(&json!({
        "list": [ { "v.$": "$.a" }, 2, "$.not-a-path" ],
        "static": { "x": [1, { "y": "$.kept" }] }
    }))
    .unwrap();
    assert_eq!(
        template.evaluate(&json!({ "a": "A" }), &json!({})).unwrap(),
        json!({
            "list": [ { "v": "A" }, 2, "$.not-a-path" ],
            "static": { "x": [1, { "y": "$.kept" }] }
        })
    );
}

#[test]
fn a_path_that_selects_nothing_is_a_parameter_path_failure() {
    let template = Template::compile(&json!({ "x.$": "$.missing" })).unwrap();
    let error = template
        .evaluate(&json!({ "other": 1 }), &json!({}))
        .unwrap_err();
    assert_eq!(error.error, names::PARAMETER_PATH_FAILURE);
    assert!(error.cause.contains("x.$"), "{}", error.cause);
}

#[test]
fn a_failing_intrinsic_is_an_intrinsic_failure() {
    let template = Template::compile(&json!({ "x.$": "States.StringToJson($.s)" })).unwrap();
    let error = template
        .evaluate(&json!({ "s": "{not json" }), &json!({}))
        .unwrap_err();
    assert_eq!(error.error, names::INTRINSIC_FAILURE);
}

#[test]
fn compile_errors_name_the_field() {
    let error = Template::compile(&json!({ "a": { "b.$": 5 } })).unwrap_err();
    assert!(error.contains("a.b"), "{error}");
    let error = Template::compile(&json!({ "x": 1, "x.$": "$.y" })).unwrap_err();
    assert!(error.contains("twice"), "{error}");
    let error = Template::compile(&json!({ "x.$": "States.Nope()" })).unwrap_err();
    assert!(error.contains("unknown function"), "{error}");
    let error = Template::compile(&json!({ "x.$": "$..deep" })).unwrap_err();
    assert!(error.contains("recursive"), "{error}");
    assert!(Template::compile(&json!([1])).is_err());
}
