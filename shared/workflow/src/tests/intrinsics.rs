use serde_json::{json, Value};

use crate::Intrinsic;

fn eval(text: &str, input: Value) -> Result<Value, String> {
    Intrinsic::parse(text)?.evaluate(&input, &json!({ "Execution": { "Name": "run-7" } }))
}

#[test]
fn format_from_the_spec() {
    assert_eq!(
        eval(
            "States.Format('Your name is {}, we are in the year {}', $.name, 2020)",
            json!({ "name": "Foo", "zebra": "stripe" })
        )
        .unwrap(),
        json!("Your name is Foo, we are in the year 2020")
    );
    assert_eq!(
        eval(
            "States.Format('Welcome to {} {}\\'s playlist.', $.firstName, $.lastName)",
            json!({ "firstName": "Jane", "lastName": "Doe" })
        )
        .unwrap(),
        json!("Welcome to Jane Doe's playlist.")
    );
}

#[test]
fn format_escapes_values_and_errors() {
    assert_eq!(
        eval(
            "States.Format('\\{{}\\} {} {} {}', 1.5, true, null, $$.Execution.Name)",
            json!({})
        )
        .unwrap_or_else(|e| panic!("{e}")),
        json!("{1.5} true null run-7")
    );
    assert!(Intrinsic::parse("States.Format('{} {}', 1)")
        .unwrap_err()
        .contains("placeholder"));
    assert!(eval("States.Format('{}', $.o)", json!({ "o": { "a": 1 } })).is_err());
    // A template from a path.
    assert_eq!(
        eval("States.Format($.t, 'x')", json!({ "t": "<{}>" })).unwrap(),
        json!("<x>")
    );
}

#[test]
fn json_conversions_from_the_spec() {
    assert_eq!(
        eval(
            "States.StringToJson($.someString)",
            json!({ "someString": "{\"number\": 20}" })
        )
        .unwrap(),
        json!({ "number": 20 })
    );
    assert_eq!(
        eval(
            "States.JsonToString($.someJson)",
            json!({ "someJson": { "name": "Foo", "year": 2020 } })
        )
        .unwrap(),
        json!("{\"name\":\"Foo\",\"year\":2020}")
    );
}

#[test]
fn arrays_from_the_spec() {
    assert_eq!(
        eval(
            "States.Array('Foo', 2020, $.someJson, null)",
            json!({ "someJson": { "random": "abcdefg" } })
        )
        .unwrap(),
        json!(["Foo", 2020, { "random": "abcdefg" }, null])
    );
    let input = json!({ "inputArray": [1, 2, 3, 4, 5, 6, 7, 8, 9], "lookingFor": 5, "index": 5 });
    assert_eq!(
        eval("States.ArrayPartition($.inputArray,4)", input.clone()).unwrap(),
        json!([[1, 2, 3, 4], [5, 6, 7, 8], [9]])
    );
    assert_eq!(
        eval(
            "States.ArrayContains($.inputArray, $.lookingFor)",
            input.clone()
        )
        .unwrap(),
        json!(true)
    );
    assert_eq!(
        eval("States.ArrayRange(1, 9, 2)", json!({})).unwrap(),
        json!([1, 3, 5, 7, 9])
    );
    assert_eq!(
        eval("States.ArrayRange(3, 1, -1)", json!({})).unwrap(),
        json!([3, 2, 1])
    );
    assert!(eval("States.ArrayRange(1, 2000, 1)", json!({})).is_err());
    assert_eq!(
        eval("States.ArrayGetItem($.inputArray, $.index)", input.clone()).unwrap(),
        json!(6)
    );
    assert!(eval("States.ArrayGetItem($.inputArray, 9)", input.clone()).is_err());
    assert_eq!(
        eval("States.ArrayLength($.inputArray)", input).unwrap(),
        json!(9)
    );
    assert_eq!(
        eval(
            "States.ArrayUnique($.a)",
            json!({ "a": [1, 2, 3, 3, 3, 3, 3, 3, 4] })
        )
        .unwrap(),
        json!([1, 2, 3, 4])
    );
    assert!(eval("States.ArrayLength($.s)", json!({ "s": "x" })).is_err());
}

#[test]
fn math_from_the_spec() {
    assert_eq!(
        eval(
            "States.MathAdd($.value1, $.step)",
            json!({ "value1": 111, "step": -1 })
        )
        .unwrap(),
        json!(110)
    );
    assert!(eval("States.MathAdd(1.5, 1)", json!({})).is_err());
    let seeded = eval("States.MathRandom(1, 999, 42)", json!({})).unwrap();
    assert_eq!(
        seeded,
        eval("States.MathRandom(1, 999, 42)", json!({})).unwrap()
    );
    for _ in 0..50 {
        let n = eval(
            "States.MathRandom($.start, $.end)",
            json!({ "start": 1, "end": 10 }),
        )
        .unwrap()
        .as_i64()
        .unwrap();
        assert!((1..10).contains(&n), "{n}");
    }
}

#[test]
fn strings_encoding_and_merge_from_the_spec() {
    assert_eq!(
        eval(
            "States.Base64Encode($.input)",
            json!({ "input": "Data to encode" })
        )
        .unwrap(),
        json!("RGF0YSB0byBlbmNvZGU=")
    );
    assert_eq!(
        eval(
            "States.Base64Decode($.base64)",
            json!({ "base64": "RGF0YSB0byBlbmNvZGU=" })
        )
        .unwrap(),
        json!("Data to encode")
    );
    assert_eq!(
        eval(
            "States.StringSplit($.inputString, $.splitter)",
            json!({ "inputString": "1,2,3,4,5", "splitter": "," })
        )
        .unwrap(),
        json!(["1", "2", "3", "4", "5"])
    );
    let input = json!({
        "json1": { "a": { "a1": 1, "a2": 2 }, "b": 2 },
        "json2": { "a": { "a3": 1, "a4": 2 }, "c": 3 }
    });
    assert_eq!(
        eval("States.JsonMerge($.json1, $.json2, false)", input.clone()).unwrap(),
        json!({ "a": { "a3": 1, "a4": 2 }, "b": 2, "c": 3 })
    );
    assert_eq!(
        eval("States.JsonMerge($.json1, $.json2, true)", input).unwrap(),
        json!({ "a": { "a1": 1, "a2": 2, "a3": 1, "a4": 2 }, "b": 2, "c": 3 })
    );
}

#[test]
fn uuid_is_version_4() {
    let a = eval("States.UUID()", json!({})).unwrap();
    let b = eval("States.UUID()", json!({})).unwrap();
    let a = a.as_str().unwrap();
    assert_ne!(Some(a), b.as_str());
    assert_eq!(a.len(), 36);
    let parts: Vec<&str> = a.split('-').collect();
    assert_eq!(
        parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
        [8, 4, 4, 4, 12]
    );
    assert!(parts[2].starts_with('4'), "{a}");
    assert!(
        matches!(parts[3].chars().next(), Some('8' | '9' | 'a' | 'b')),
        "{a}"
    );
}

#[test]
fn nested_calls_and_parse_errors() {
    assert_eq!(
        eval(
            "States.ArrayLength(States.Array(1, 2, States.Array()))",
            json!({})
        )
        .unwrap(),
        json!(3)
    );
    assert_eq!(
        eval(
            "States.JsonToString(States.StringToJson('[1, 2]'))",
            json!({})
        )
        .unwrap(),
        json!("[1,2]")
    );
    for (text, needle) in [
        ("States.Hash($.a, 'SHA-1')", "unknown function"),
        ("States.UUID(1)", "takes 0"),
        ("States.Array('a'", "missing"),
        ("States.Array('a\\x')", "escape"),
        ("States.Array('open)", "unterminated"),
        ("States.Array(1) extra", "after"),
        ("States.Array(nope)", "unexpected"),
    ] {
        let error = Intrinsic::parse(text).unwrap_err();
        assert!(error.contains(needle), "{text}: {error}");
    }
}
