//! Backoff, `Retry-After` and the retry loop, with scripted attempts instead
//! of a server.

#![allow(clippy::unwrap_used)]
use super::*;
use crate::client::SendError;
use bytes::Bytes;
use http::HeaderValue;
use std::cell::Cell;

#[test]
fn backoff_grows_is_jittered_and_bounded() {
    let policy = RetryPolicy {
        max_attempts: 6,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(1000),
    };
    for _ in 0..200 {
        assert!(policy.delay(1, None) <= Duration::from_millis(100));
        assert!(policy.delay(3, None) <= Duration::from_millis(400));
        assert!(policy.delay(30, None) <= Duration::from_millis(1000));
    }
    // Jitter: not every wait is the ceiling.
    let waits: Vec<_> = (0..50).map(|_| policy.delay(4, None)).collect();
    assert!(waits.iter().any(|w| *w != waits[0]), "{waits:?}");
}

#[test]
fn retry_after_in_seconds_or_as_a_date_up_to_the_ceiling() {
    let policy = RetryPolicy::default();
    let now = DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let mut h = HeaderMap::new();
    h.insert(RETRY_AFTER, HeaderValue::from_static("3"));
    let wait = retry_after(&h, now).unwrap();
    assert_eq!(policy.delay(1, Some(wait)), Duration::from_secs(3));
    h.insert(
        RETRY_AFTER,
        HeaderValue::from_static("Tue, 01 Dec 2026 10:00:07 GMT"),
    );
    assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
    assert_eq!(
        policy.delay(1, Some(Duration::from_secs(3600))),
        policy.max_delay
    );
    // A date already past: back off as usual.
    h.insert(
        RETRY_AFTER,
        HeaderValue::from_static("Tue, 01 Dec 2026 09:59:00 GMT"),
    );
    assert_eq!(retry_after(&h, now), None);
    h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
    assert_eq!(retry_after(&h, now), None);
    assert_eq!(retry_after(&HeaderMap::new(), now), None);
}

#[test]
fn only_throttling_and_server_errors_are_retried() {
    for s in [429, 500, 502, 503, 504, 408] {
        assert!(retryable_status(StatusCode::from_u16(s).unwrap()), "{s}");
    }
    for s in [200, 201, 206, 400, 401, 403, 404, 409, 412, 416, 501] {
        assert!(!retryable_status(StatusCode::from_u16(s).unwrap()), "{s}");
    }
}

fn quick(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    }
}

fn reply(status: u16) -> Result<Reply, SendError> {
    Ok(Reply {
        status: StatusCode::from_u16(status).unwrap(),
        headers: HeaderMap::new(),
        body: Bytes::from_static(b"body"),
        attempts: 1,
    })
}

fn failed(retryable: bool) -> Result<Reply, SendError> {
    Err(SendError {
        detail: "connection refused".into(),
        retryable,
    })
}

/// The loop over `script`, one entry an attempt; how many attempts it made.
async fn run(
    policy: RetryPolicy,
    script: Vec<Result<Reply, SendError>>,
) -> (Result<Reply, Exhausted<SendError>>, usize) {
    let made = Cell::new(0);
    let script = std::cell::RefCell::new(script.into_iter());
    let outcome = send_with_retries(&policy, "GET /x", || {
        made.set(made.get() + 1);
        let next = script.borrow_mut().next().unwrap();
        async move { next }
    })
    .await;
    (outcome, made.get())
}

#[tokio::test]
async fn throttling_server_errors_and_lost_connections_are_tried_again() {
    let script = vec![reply(503), failed(true), reply(429), reply(200)];
    let (outcome, made) = run(quick(6), script).await;
    let last = outcome.unwrap();
    assert_eq!((last.status.as_u16(), last.attempts, made), (200, 4, 4));
}

#[tokio::test]
async fn final_answers_and_final_errors_are_not_retried() {
    for status in [404, 412, 416, 403] {
        let (outcome, made) = run(quick(6), vec![reply(status)]).await;
        assert_eq!((outcome.unwrap().status.as_u16(), made), (status, 1));
    }
    let (outcome, made) = run(quick(6), vec![failed(false)]).await;
    let e = outcome.unwrap_err();
    assert_eq!((e.attempts, made), (1, 1));
}

#[tokio::test]
async fn the_budget_ends_with_the_last_answer_or_error() {
    let (outcome, made) = run(quick(3), vec![reply(503), reply(503), reply(500)]).await;
    let last = outcome.unwrap();
    assert_eq!((last.status.as_u16(), last.attempts, made), (500, 3, 3));
    let script = vec![reply(503), failed(true), failed(true)];
    let (outcome, made) = run(quick(3), script).await;
    let e = outcome.unwrap_err();
    assert_eq!((e.attempts, made), (3, 3));
    assert_eq!(e.error.detail, "connection refused");
    // No attempts allowed still means one.
    let (outcome, made) = run(quick(0), vec![reply(503)]).await;
    assert_eq!((outcome.unwrap().attempts, made), (1, 1));
}

#[tokio::test]
async fn a_servers_retry_after_is_waited_for() {
    let mut throttled = reply(429).unwrap();
    throttled
        .headers
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    let policy = RetryPolicy {
        max_delay: Duration::from_secs(2),
        ..quick(2)
    };
    let started = std::time::Instant::now();
    let (outcome, _) = run(policy, vec![Ok(throttled), reply(200)]).await;
    assert_eq!(outcome.unwrap().status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_secs(1));
}
