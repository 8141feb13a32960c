use serde_json::{json, Value};

use crate::io;
use crate::names;
use crate::Path;

fn select(path: &str, input: &Value) -> Result<Value, String> {
    Path::parse(path).unwrap().select(input, &json!({}))
}

#[test]
fn reference_paths_from_the_spec() {
    let input = json!({ "foo": 123, "bar": ["a", "b", "c"], "car": { "cdr": true } });
    assert_eq!(select("$.foo", &input).unwrap(), json!(123));
    assert_eq!(select("$.bar", &input).unwrap(), json!(["a", "b", "c"]));
    assert_eq!(select("$.car.cdr", &input).unwrap(), json!(true));
    assert_eq!(select("$", &input).unwrap(), input);
    for path in ["$.foo", "$.bar", "$.car.cdr", "$['car']['cdr']", "$.bar[0]"] {
        assert!(Path::parse(path).unwrap().is_reference(), "{path}");
    }
}

#[test]
fn bracket_index_and_escaped_names() {
    let input = json!({
        "store": { "book": [ { "title": "A" }, { "title": "B" } ] },
        "store.book": "dotted",
        "a b": 1,
        "ledgers": [[0, [1, 2, { "foo": "deep" }]]],
    });
    assert_eq!(
        select("$['store']['book'][1]['title']", &input).unwrap(),
        json!("B")
    );
    assert_eq!(
        select("$[\"store\"].book[0].title", &input).unwrap(),
        json!("A")
    );
    assert_eq!(select("$.store\\.book", &input).unwrap(), json!("dotted"));
    assert_eq!(
        select("$.\\stor\\e.boo\\k[0].title", &input).unwrap(),
        json!("A")
    );
    assert_eq!(select("$.a b", &input).unwrap(), json!(1));
    assert_eq!(
        select("$.ledgers[0][1][2].foo", &input).unwrap(),
        json!("deep")
    );
    assert_eq!(
        select("$.store.book[-1].title", &input).unwrap(),
        json!("B")
    );
}

#[test]
fn missing_nodes_are_errors_for_reference_paths() {
    let input = json!({ "a": { "b": [1] } });
    let error = select("$.a.c", &input).unwrap_err();
    assert!(error.contains("$.a.c"), "{error}");
    assert!(select("$.a.b[1]", &input).is_err());
    assert!(select("$.a.b.c", &input).is_err());
}

#[test]
fn indefinite_paths_gather_an_array() {
    let input = json!({ "vals": [0, 10, 20, 30, 40, 50], "o": { "x": 1, "y": 2 } });
    assert_eq!(select("$.vals[-3:]", &input).unwrap(), json!([30, 40, 50]));
    assert_eq!(select("$.vals[1:3]", &input).unwrap(), json!([10, 20]));
    assert_eq!(select("$.vals[::2]", &input).unwrap(), json!([0, 20, 40]));
    assert_eq!(select("$.vals[::-2]", &input).unwrap(), json!([50, 30, 10]));
    assert_eq!(select("$.vals[0,1]", &input).unwrap(), json!([0, 10]));
    assert_eq!(select("$.o.*", &input).unwrap(), json!([1, 2]));
    assert_eq!(select("$.o['x','y']", &input).unwrap(), json!([1, 2]));
    assert_eq!(select("$.vals[*]", &input).unwrap(), input["vals"]);
    assert_eq!(select("$.missing[*]", &input).unwrap(), json!([]));
    assert!(!Path::parse("$.vals[1:3]").unwrap().is_reference());
}

#[test]
fn context_paths_apply_to_the_context_object() {
    let path = Path::parse("$$.Execution.Name").unwrap();
    assert!(path.is_context());
    let value = path
        .select(
            &json!({ "Execution": "wrong" }),
            &json!({ "Execution": { "Name": "run-1" } }),
        )
        .unwrap();
    assert_eq!(value, json!("run-1"));
}

#[test]
fn unsupported_and_malformed_paths_are_refused() {
    for (path, needle) in [
        ("foo", "must begin with \"$\""),
        ("$..book", "recursive descent"),
        ("$.book[?(@.price < 10)]", "filter"),
        ("$.a.", "ends with"),
        ("$.a[1", "unterminated"),
        ("$['a'", "expected \",\""),
        ("$.vals[::0]", "step"),
        ("$x", "unexpected"),
    ] {
        let error = Path::parse(path).unwrap_err();
        assert!(error.contains(needle), "{path}: {error}");
    }
}

#[test]
fn result_path_overwrites_or_creates_fields() {
    // The specification's examples.
    let raw = json!({ "master": { "detail": [1, 2, 3] } });
    let overwrite = Path::parse("$.master.detail").unwrap();
    assert_eq!(
        overwrite.set(raw.clone(), json!(6)).unwrap(),
        json!({ "master": { "detail": 6 } })
    );
    let create = Path::parse("$.master.result.sum").unwrap();
    assert_eq!(
        create.set(raw, json!(6)).unwrap(),
        json!({ "master": { "detail": [1, 2, 3], "result": { "sum": 6 } } })
    );
    let greeting = Path::parse("$.b.greeting").unwrap();
    assert_eq!(
        greeting.set(json!({ "a": 1 }), json!("Hi!")).unwrap(),
        json!({ "a": 1, "b": { "greeting": "Hi!" } })
    );
    let index = Path::parse("$.list[1]").unwrap();
    assert_eq!(
        index.set(json!({ "list": [1, 2] }), json!("x")).unwrap(),
        json!({ "list": [1, "x"] })
    );
    assert_eq!(
        Path::root().set(json!({ "a": 1 }), json!(7)).unwrap(),
        json!(7)
    );
}

#[test]
fn result_path_on_a_non_object_fails_with_result_path_match_failure() {
    let error =
        io::result_path(Some(&Path::parse("$.x").unwrap()), json!("foo"), json!(1)).unwrap_err();
    assert_eq!(error.error, names::RESULT_PATH_MATCH_FAILURE);
    let error = io::result_path(
        Some(&Path::parse("$.a[5]").unwrap()),
        json!({ "a": [] }),
        json!(1),
    )
    .unwrap_err();
    assert_eq!(error.error, names::RESULT_PATH_MATCH_FAILURE);
    // null ResultPath: the raw input passes through.
    assert_eq!(
        io::result_path(None, json!({ "k": 1 }), json!(2)).unwrap(),
        json!({ "k": 1 })
    );
}

#[test]
fn input_and_output_path_null_give_an_empty_object() {
    let ctx = json!({});
    assert_eq!(
        io::input_path(None, &json!({ "a": 1 }), &ctx).unwrap(),
        json!({})
    );
    assert_eq!(
        io::output_path(None, json!({ "a": 1 }), &ctx).unwrap(),
        json!({})
    );
    let error =
        io::input_path(Some(&Path::parse("$.nope").unwrap()), &json!({}), &ctx).unwrap_err();
    assert_eq!(error.error, names::RUNTIME);
}
