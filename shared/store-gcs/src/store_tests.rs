//! The store's HTTP behaviour against a local server that answers what each
//! test needs: retries, error mapping, token refresh, resumable recovery,
//! and the retention rules that need no emulator.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::testing::{json, Answer, Recorded, TestServer};
use crate::{GcsCredentials, GcsOptions, GcsStore, RetryPolicy};
use bytes::Bytes;
use chrono::{Duration as Days, SubsecRound, Utc};
use lifeboat_store::{LockMode, ObjectStore, PutOptions, Retention, StoreError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn fast(mut opts: GcsOptions) -> GcsOptions {
    opts.retry = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(2),
        max_delay: Duration::from_millis(20),
    };
    opts
}

fn store(server: &TestServer) -> GcsStore {
    GcsStore::with_options("bkt", "repo", fast(GcsOptions::emulator(&server.url))).unwrap()
}

fn status(code: u16) -> Answer {
    json(
        code,
        serde_json::json!({"error": {"code": code, "message": format!("injected {code}"),
        "errors": [{"reason": "injected", "message": "injected"}]}}),
    )
}

/// Answers `faults` in order, then `ok` for every later request.
fn scripted(faults: Vec<Answer>, ok: Answer) -> impl Fn(&Recorded) -> Answer {
    let n = AtomicUsize::new(0);
    move |_| {
        faults
            .get(n.fetch_add(1, Ordering::SeqCst))
            .cloned()
            .unwrap_or_else(|| ok.clone())
    }
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried() {
    let mut throttled = status(429);
    throttled.1.push(("retry-after".into(), "0".into()));
    let faults = vec![status(503), status(503), throttled];
    let server = TestServer::start(scripted(faults, (200, vec![], b"payload".to_vec()))).await;
    assert_eq!(store(&server).get("data/ab/x").await.unwrap(), "payload");
    let seen = server.requests();
    assert_eq!(seen.len(), 4);
    assert!(seen
        .iter()
        .all(|r| r.target == "/storage/v1/b/bkt/o/repo%2Fdata%2Fab%2Fx?alt=media"));
}

#[tokio::test]
async fn a_persisting_server_error_is_transient_and_names_the_key() {
    let server = TestServer::start(|_| status(500)).await;
    let err = store(&server).get("snapshots/s1").await.unwrap_err();
    assert!(matches!(err, StoreError::Transient { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("snapshots/s1")
            && text.contains("gs://bkt/repo")
            && text.contains("HTTP 500"),
        "{text}"
    );
    assert_eq!(
        server.requests().len(),
        4,
        "every attempt of the policy was made"
    );
}

#[tokio::test]
async fn a_refusal_is_access_denied_at_once() {
    let server = TestServer::start(|_| status(403)).await;
    let err = store(&server).head("index/i1").await.unwrap_err();
    assert!(matches!(err, StoreError::AccessDenied { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("index/i1") && text.contains("gs://bkt/repo"),
        "{text}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_rejected_token_is_replaced_once() {
    let storage_calls = AtomicUsize::new(0);
    let server = TestServer::start(move |req| {
        if req.target == "/token" {
            return json(
                200,
                serde_json::json!({"access_token": "t", "expires_in": 3600}),
            );
        }
        match storage_calls.fetch_add(1, Ordering::SeqCst) {
            0 => status(401),
            _ => (200, vec![], b"ok".to_vec()),
        }
    })
    .await;
    let creds = serde_json::json!({"type": "authorized_user", "client_id": "c", "client_secret": "s",
        "refresh_token": "r", "token_uri": format!("{}/token", server.url)});
    let mut opts = fast(GcsOptions::emulator(&server.url));
    opts.credentials = GcsCredentials::from_json(&creds.to_string(), None).unwrap();
    let store = GcsStore::with_options("bkt", "", opts).unwrap();
    assert_eq!(store.get("config").await.unwrap(), "ok");
    let seen = server.requests();
    let tokens = seen.iter().filter(|r| r.target == "/token").count();
    assert_eq!(tokens, 2, "{seen:?}");
    assert!(seen
        .iter()
        .filter(|r| r.target != "/token")
        .all(|r| r.header("authorization") == Some("Bearer t")));
}

#[tokio::test]
async fn creates_are_conditional_except_for_locks() {
    let server = TestServer::start(|req| {
        if req.target.contains("ifGenerationMatch=0")
            && String::from_utf8_lossy(&req.body).contains("taken")
        {
            status(412)
        } else {
            json(200, serde_json::json!({"name": "x"}))
        }
    })
    .await;
    let s = store(&server);
    s.put(
        "data/ab/new",
        Bytes::from_static(b"x"),
        &PutOptions::default(),
    )
    .await
    .unwrap();
    let err = s
        .put(
            "data/ab/taken",
            Bytes::from_static(b"x"),
            &PutOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(
        err.is_already_exists() && err.to_string().contains("data/ab/taken"),
        "{err}"
    );
    s.put(
        "locks/taken",
        Bytes::from_static(b"x"),
        &PutOptions::default(),
    )
    .await
    .unwrap();
    let targets: Vec<String> = server.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(
        targets,
        [
            "/upload/storage/v1/b/bkt/o?uploadType=multipart&ifGenerationMatch=0",
            "/upload/storage/v1/b/bkt/o?uploadType=multipart&ifGenerationMatch=0",
            "/upload/storage/v1/b/bkt/o?uploadType=multipart",
        ]
    );
}

/// A resumable session as Cloud Storage runs it: chunks append, a status
/// query (`bytes */N`) says how much is kept. One chunk fails with 503.
#[tokio::test]
async fn a_resumable_upload_resumes_where_the_session_says() {
    let kept = Arc::new(Mutex::new(Vec::<u8>::new()));
    let puts = AtomicUsize::new(0);
    let server_kept = kept.clone();
    let server = TestServer::start(move |req| {
        let mut kept = server_kept.lock().unwrap();
        if req.method == "POST" {
            assert!(
                req.target
                    .ends_with("uploadType=resumable&ifGenerationMatch=0"),
                "{}",
                req.target
            );
            let session = format!("http://{}/session/1", req.header("host").unwrap());
            return (200, vec![("location".into(), session)], vec![]);
        }
        let range = req.header("content-range").unwrap().to_string();
        let total: usize = range.rsplit('/').next().unwrap().parse().unwrap();
        let progress = |n: usize| -> Answer {
            if n == total {
                json(200, serde_json::json!({"name": "x"}))
            } else {
                (
                    308,
                    vec![("range".into(), format!("bytes=0-{}", n - 1))],
                    vec![],
                )
            }
        };
        if range.starts_with("bytes */") {
            return progress(kept.len());
        }
        if puts.fetch_add(1, Ordering::SeqCst) == 1 {
            // The second chunk: half of it is kept, then the answer is lost.
            let half = req.body.len() / 2;
            kept.extend_from_slice(&req.body[..half]);
            return status(503);
        }
        let start: usize = range["bytes ".len()..]
            .split('-')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(start, kept.len(), "a chunk starts where the session is");
        kept.extend_from_slice(&req.body);
        progress(kept.len())
    })
    .await;
    let mut opts = fast(GcsOptions::emulator(&server.url));
    opts.resumable_threshold = 1 << 20;
    opts.resumable_chunk = 256 << 10;
    let s = GcsStore::with_options("bkt", "", opts).unwrap();
    let data: Vec<u8> = (0..(1usize << 20) + 5000)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    s.put(
        "data/ff/big",
        Bytes::from(data.clone()),
        &PutOptions::default(),
    )
    .await
    .unwrap();
    assert!(
        *kept.lock().unwrap() == data,
        "the session holds the object's bytes"
    );
    let seen = server.requests();
    let queries = seen
        .iter()
        .filter(|r| {
            r.header("content-range")
                .is_some_and(|c| c.starts_with("bytes */"))
        })
        .count();
    assert_eq!(queries, 1, "one status query after the failed chunk");
    let first = &seen[0];
    let meta: serde_json::Value = serde_json::from_slice(&first.body).unwrap();
    assert_eq!(meta["crc32c"], crate::upload::crc32c(&data));
}

#[tokio::test]
async fn a_locked_object_refuses_delete_by_its_date_and_is_never_shortened() {
    let until = (Utc::now() + Days::days(3)).trunc_subsecs(0);
    let resource = serde_json::json!({"name": "repo/snapshots/s", "size": "3",
        "updated": Utc::now().to_rfc3339(),
        "retention": {"mode": "Locked", "retainUntilTime": until.to_rfc3339()}});
    let server = TestServer::start(move |req| match req.method.as_str() {
        "DELETE" => status(403),
        "GET" => json(200, resource.clone()),
        _ => json(200, serde_json::json!({})),
    })
    .await;
    let s = store(&server);
    let err = s.delete("snapshots/s").await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Locked { until: u, .. } if u.contains(&until.to_rfc3339()) && u.contains("compliance")),
        "{err:?}"
    );
    let shorter = Retention {
        mode: LockMode::Compliance,
        until: until - Days::days(1),
    };
    let err = s.set_retention("snapshots/s", shorter).await.unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    // Extending a Locked retention asks for Locked even when governance is asked.
    let longer = Retention {
        mode: LockMode::Governance,
        until: until + Days::days(1),
    };
    s.set_retention("snapshots/s", longer).await.unwrap();
    let seen = server.requests();
    let patches: Vec<_> = seen.iter().filter(|r| r.method == "PATCH").collect();
    assert_eq!(patches.len(), 1, "the shortening was never sent");
    let body: serde_json::Value = serde_json::from_slice(&patches[0].body).unwrap();
    assert_eq!(body["retention"]["mode"], "Locked");
    assert!(!patches[0].target.contains("overrideUnlockedRetention"));
}
