//! One exchange against a local socket that answers fixed bytes: what comes
//! back, and which failures are worth another try.

#![allow(clippy::unwrap_used)]
use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A server that answers every connection with `answer` (after reading the
/// request head), or holds the connection open without a word when `None`.
async fn server(answer: Option<&'static str>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf).await;
                match answer {
                    Some(a) => {
                        let _ = conn.write_all(a.as_bytes()).await;
                        let _ = conn.shutdown().await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(30)).await,
                }
            });
        }
    });
    format!("http://{addr}/x")
}

fn get(url: &str) -> Request<Full<Bytes>> {
    Request::get(url).body(Full::new(Bytes::new())).unwrap()
}

const ANSWER: &str =
    "HTTP/1.1 206 Partial\r\ncontent-length: 5\r\nx-ms-error-code: none\r\nconnection: close\r\n\r\nhello";

/// [`ANSWER`] fetched with a body limit of `max_body` bytes.
async fn fetch(max_body: u64) -> Result<Reply, SendError> {
    let url = server(Some(ANSWER)).await;
    let client = http_client().unwrap();
    send_once(&client, get(&url), Duration::from_secs(5), max_body).await
}

#[tokio::test]
async fn the_whole_answer_comes_back_whatever_its_status() {
    let reply = fetch(100).await.unwrap();
    assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(reply.body, "hello");
    assert_eq!(reply.header("x-ms-error-code"), Some("none"));
    assert_eq!(reply.attempts, 1);
}

#[tokio::test]
async fn an_answer_over_the_limit_is_refused_for_good() {
    let err = fetch(4).await.unwrap_err();
    assert!(!err.retryable, "{err:?}");
    assert!(err.detail.contains("longer than 4 bytes"), "{err:?}");
}

#[tokio::test]
async fn no_connection_and_no_answer_in_time_are_worth_another_try() {
    let client = http_client().unwrap();
    // Bound and dropped: nothing listens there now.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let err = send_once(
        &client,
        get(&format!("http://{addr}/x")),
        Duration::from_secs(5),
        100,
    )
    .await
    .unwrap_err();
    assert!(err.retryable, "{err:?}");
    // The causes are kept: hyper's own line alone does not say what failed.
    assert!(err.detail.contains(": "), "{err:?}");

    let silent = server(None).await;
    let err = send_once(&client, get(&silent), Duration::from_millis(100), 100)
        .await
        .unwrap_err();
    assert!(
        err.retryable && err.detail.contains("no complete answer within"),
        "{err:?}"
    );
}
