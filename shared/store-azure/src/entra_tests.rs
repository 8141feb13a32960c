//! The token requests we build, checked against a tiny HTTP server on
//! loopback that plays the Entra ID token endpoint. This tests our client,
//! not Entra ID.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use super::*;
use crate::credentials::{ClientProof, EntraCredentials};
use crate::redact::Secret;
use lifeboat_store_http::http_client;
use std::sync::{Arc, Mutex as StdMutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One captured request: the request line and headers, and the body.
#[derive(Debug, Clone)]
pub(crate) struct Captured {
    pub head: String,
    pub body: String,
}

/// Serve `answers` in turn (status, JSON body), one per connection, and
/// record every request.
pub(crate) async fn token_server(
    answers: Vec<(u16, String)>,
) -> (String, Arc<StdMutex<Vec<Captured>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(StdMutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        for (status, body) in answers {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Read the head, then as much body as Content-Length says.
            let (head, body_start) = loop {
                let n = sock.read(&mut chunk).await.unwrap();
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break (String::from_utf8_lossy(&buf[..i]).to_string(), i + 4);
                }
            };
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            while buf.len() < body_start + len {
                let n = sock.read(&mut chunk).await.unwrap();
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            log.lock().unwrap().push(Captured {
                head,
                body: String::from_utf8_lossy(&buf[body_start..]).to_string(),
            });
            let reply = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            sock.write_all(reply.as_bytes()).await.unwrap();
            let _ = sock.shutdown().await;
        }
    });
    (format!("http://{addr}"), seen)
}

fn form_of(body: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn source(authority: &str, proof: ClientProof) -> TokenSource {
    TokenSource::new(
        EntraCredentials {
            tenant_id: "tenant-1".into(),
            client_id: "client-1".into(),
            proof,
            authority_host: authority.into(),
        },
        http_client().unwrap(),
    )
}

#[tokio::test]
async fn a_service_principal_asks_for_a_storage_token_once() {
    let (url, seen) = token_server(vec![(
        200,
        r#"{"token_type":"Bearer","expires_in":3599,"access_token":"tok-1"}"#.into(),
    )])
    .await;
    let s = source(&url, ClientProof::Secret(Secret::new("s3cr&t")));
    assert_eq!(s.token().await.unwrap().expose(), "tok-1");
    // Cached: the server answers once only, a second fetch would fail.
    assert_eq!(s.token().await.unwrap().expose(), "tok-1");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let req = &seen[0];
    assert!(
        req.head
            .starts_with("POST /tenant-1/oauth2/v2.0/token HTTP/1.1"),
        "{}",
        req.head
    );
    assert!(req
        .head
        .to_ascii_lowercase()
        .contains("content-type: application/x-www-form-urlencoded"));
    let form = form_of(&req.body);
    assert_eq!(field(&form, "grant_type"), Some("client_credentials"));
    assert_eq!(field(&form, "client_id"), Some("client-1"));
    assert_eq!(field(&form, "client_secret"), Some("s3cr&t"));
    assert_eq!(
        field(&form, "scope"),
        Some("https://storage.azure.com/.default")
    );
    assert_eq!(field(&form, "client_assertion"), None);
}

#[tokio::test]
async fn workload_identity_sends_the_federated_token_as_assertion() {
    let dir = std::env::temp_dir().join(format!("lb-azure-wi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, "eyJhbGciOi.fed.sig\n").unwrap();
    // expires_in as a string, and short-lived: renewed at half its life.
    let (url, seen) = token_server(vec![
        (200, r#"{"expires_in":"2","access_token":"tok-a"}"#.into()),
        (200, r#"{"expires_in":3600,"access_token":"tok-b"}"#.into()),
    ])
    .await;
    let s = source(&url, ClientProof::FederatedTokenFile(file.clone()));
    assert_eq!(s.token().await.unwrap().expose(), "tok-a");
    // Kubernetes rotates the file: the next token request reads it afresh.
    std::fs::write(&file, "eyJhbGciOi.rotated.sig").unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(s.token().await.unwrap().expose(), "tok-b");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let first = form_of(&seen[0].body);
    assert_eq!(
        field(&first, "client_assertion_type"),
        Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    );
    assert_eq!(
        field(&first, "client_assertion"),
        Some("eyJhbGciOi.fed.sig")
    );
    assert_eq!(field(&first, "client_secret"), None);
    assert_eq!(
        field(&form_of(&seen[1].body), "client_assertion"),
        Some("eyJhbGciOi.rotated.sig")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_refusal_is_final_and_names_the_client_not_the_secret() {
    let (url, _) = token_server(vec![(
        401,
        r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x"}"#.into(),
    )])
    .await;
    let s = source(&url, ClientProof::Secret(Secret::new("wrong-secret")));
    let err = s.token().await.unwrap_err();
    assert!(!err.retryable);
    assert!(
        err.detail.contains("client-1")
            && err.detail.contains("tenant-1")
            && err.detail.contains("invalid_client: AADSTS7000215")
            && !err.detail.contains("Trace ID")
            && !err.detail.contains("wrong-secret"),
        "{}",
        err.detail
    );
    let missing = source(
        &url,
        ClientProof::FederatedTokenFile("/nonexistent/lb-token".into()),
    );
    let err = missing.token().await.unwrap_err();
    assert!(
        err.detail.contains("AZURE_FEDERATED_TOKEN_FILE"),
        "{}",
        err.detail
    );
}
