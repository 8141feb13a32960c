use std::time::Duration;

use serde_json::json;

use crate::{
    error_matches, find_catcher, jittered, names, Jitter, Retrier, RetryCounter, StateKind,
    StateMachine,
};

fn retriers(retry: serde_json::Value) -> Vec<Retrier> {
    let machine = StateMachine::from_value(&json!({ "StartAt": "X", "States": {
        "X": { "Type": "Task", "Resource": "r", "End": true, "Retry": retry,
               "Catch": [ { "ErrorEquals": ["States.ALL"], "Next": "Z" } ] },
        "Z": { "Type": "Succeed" } } }))
    .unwrap();
    match &machine.states["X"].kind {
        StateKind::Task(task) => task.retry.clone(),
        _ => unreachable!(),
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[test]
fn defaults_are_those_of_the_spec() {
    let r = &retriers(json!([ { "ErrorEquals": ["E"] } ]))[0];
    assert_eq!(
        (r.interval_seconds, r.max_attempts, r.backoff_rate),
        (1, 3, 2.0)
    );
    assert_eq!((r.max_delay_seconds, r.jitter), (None, Jitter::None));
    assert_eq!(
        [r.delay(0), r.delay(1), r.delay(2)],
        [secs(1.0), secs(2.0), secs(4.0)]
    );
}

#[test]
fn backoff_and_max_delay_from_the_spec() {
    // "2 retry attempts after waits of 3 and 6 seconds".
    let r = retriers(
        json!([ { "ErrorEquals": ["States.Timeout"], "IntervalSeconds": 3, "MaxAttempts": 2, "BackoffRate": 2.0 } ]),
    );
    let mut counter = RetryCounter::new(&r);
    let delays: Vec<_> =
        std::iter::from_fn(|| counter.next(&r, names::TIMEOUT, 1.0).map(|p| p.delay)).collect();
    assert_eq!(delays, [secs(3.0), secs(6.0)]);
    // The same with MaxDelaySeconds 4: the second wait is 4 seconds.
    let r = retriers(
        json!([ { "ErrorEquals": ["States.Timeout"], "IntervalSeconds": 3, "MaxAttempts": 2, "BackoffRate": 2.0, "MaxDelaySeconds": 4 } ]),
    );
    let mut counter = RetryCounter::new(&r);
    let delays: Vec<_> =
        std::iter::from_fn(|| counter.next(&r, names::TIMEOUT, 1.0).map(|p| p.delay)).collect();
    assert_eq!(delays, [secs(3.0), secs(4.0)]);
    // A fractional rate.
    let r =
        &retriers(json!([ { "ErrorEquals": ["E"], "IntervalSeconds": 2, "BackoffRate": 1.5 } ]))[0];
    assert_eq!(r.delay(2), secs(4.5));
    // Huge exponents saturate rather than overflow.
    let r = &retriers(json!([ { "ErrorEquals": ["E"], "BackoffRate": 10.0 } ]))[0];
    assert_eq!(r.delay(4000), Duration::MAX);
}

#[test]
fn max_attempts_zero_never_retries() {
    // "retry any error except for States.Timeout".
    let r = retriers(
        json!([ { "ErrorEquals": ["States.Timeout"], "MaxAttempts": 0 }, { "ErrorEquals": ["States.ALL"] } ]),
    );
    let mut counter = RetryCounter::new(&r);
    assert_eq!(counter.next(&r, names::TIMEOUT, 1.0), None);
    let plan = counter.next(&r, "Other", 1.0).unwrap();
    assert_eq!((plan.retrier, plan.attempt, plan.delay), (1, 1, secs(1.0)));
    assert_eq!(counter.total(), 1);
}

#[test]
fn the_specs_complex_retry_scenario() {
    let r = retriers(json!([
        { "ErrorEquals": ["ErrorA", "ErrorB"], "IntervalSeconds": 1, "BackoffRate": 2, "MaxAttempts": 2 },
        { "ErrorEquals": ["ErrorC"], "IntervalSeconds": 5 }
    ]));
    let mut counter = RetryCounter::new(&r);
    let a = counter.next(&r, "ErrorA", 1.0).unwrap();
    let b = counter.next(&r, "ErrorB", 1.0).unwrap();
    let c = counter.next(&r, "ErrorC", 1.0).unwrap();
    assert_eq!(
        (a.delay, b.delay, c.delay),
        (secs(1.0), secs(2.0), secs(5.0))
    );
    assert_eq!((a.retrier, b.retrier, c.retrier), (0, 0, 1));
    // The fourth error matches the first Retrier, whose two attempts are spent:
    // no retry (the second Retrier is not consulted), so Catch applies.
    assert_eq!(counter.next(&r, "ErrorB", 1.0), None);
    assert_eq!(counter.total(), 3);
}

#[test]
fn full_jitter_scales_the_delay() {
    assert_eq!(jittered(secs(4.0), Jitter::Full, 0.25), secs(1.0));
    assert_eq!(jittered(secs(4.0), Jitter::Full, 0.0), Duration::ZERO);
    assert_eq!(jittered(secs(4.0), Jitter::None, 0.25), secs(4.0));
    let r = retriers(
        json!([ { "ErrorEquals": ["E"], "IntervalSeconds": 8, "JitterStrategy": "FULL" } ]),
    );
    let mut counter = RetryCounter::new(&r);
    assert_eq!(counter.next(&r, "E", 0.5).unwrap().delay, secs(4.0));
    assert_eq!(counter.next(&r, "E", 0.5).unwrap().delay, secs(8.0));
}

#[test]
fn error_name_matching() {
    let list = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(error_matches(&list(&["States.ALL"]), "Lifeboat.Retryable"));
    assert!(error_matches(&list(&["States.ALL"]), names::TIMEOUT));
    assert!(!error_matches(&list(&["States.ALL"]), names::RUNTIME));
    assert!(!error_matches(&list(&["States.Runtime"]), names::RUNTIME));
    assert!(error_matches(
        &list(&["States.TaskFailed"]),
        "Lambda.ServiceException"
    ));
    assert!(!error_matches(
        &list(&["States.TaskFailed"]),
        names::TIMEOUT
    ));
    assert!(!error_matches(
        &list(&["States.TaskFailed"]),
        names::HEARTBEAT_TIMEOUT
    ));
    assert!(error_matches(
        &list(&["States.Timeout"]),
        names::HEARTBEAT_TIMEOUT
    ));
    assert!(error_matches(&list(&["A", "B"]), "B"));
    assert!(!error_matches(&list(&["A", "B"]), "b"));
}

#[test]
fn catchers_are_scanned_in_order() {
    let machine = StateMachine::from_value(&json!({ "StartAt": "X", "States": {
        "X": { "Type": "Task", "Resource": "r", "End": true, "Catch": [
            { "ErrorEquals": ["A"], "Next": "One" },
            { "ErrorEquals": ["States.TaskFailed"], "Next": "Two" },
            { "ErrorEquals": ["States.ALL"], "Next": "Three" } ] },
        "One": { "Type": "Succeed" }, "Two": { "Type": "Succeed" }, "Three": { "Type": "Succeed" } } }))
    .unwrap();
    let StateKind::Task(task) = &machine.states["X"].kind else {
        unreachable!()
    };
    let next = |error: &str| find_catcher(&task.catch, error).map(|c| c.next.clone());
    assert_eq!(next("A").as_deref(), Some("One"));
    assert_eq!(next("B").as_deref(), Some("Two"));
    assert_eq!(next(names::TIMEOUT).as_deref(), Some("Three"));
    assert_eq!(next(names::RUNTIME), None);
}
