//! Every token flow against a local HTTP server standing in for Google's
//! endpoints: what is sent (grant, claims, signature, headers) and what is
//! done with the answer (caching, refusals). Real Google is not reached.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::jwt::testing::new_key_pem;
use super::token::AuthErrorKind;
use super::{Auth, GcsCredentials, STORAGE_SCOPE};
use crate::testing::{json, TestServer};
use crate::transport::Http;
use aws_lc_rs::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use lifeboat_store_http::RetryPolicy;
use serde_json::Value;
use std::time::Duration;

fn http() -> Http {
    let retry = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
    };
    Http::new(retry, Duration::from_secs(10)).unwrap()
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn token_answer(token: &str, expires_in: u64) -> crate::testing::Answer {
    json(
        200,
        serde_json::json!({"access_token": token, "expires_in": expires_in, "token_type": "Bearer"}),
    )
}

#[tokio::test]
async fn a_service_account_signs_a_jwt_that_verifies_and_its_token_is_cached() {
    let server = TestServer::start(|_| token_answer("ya29.sa", 3600)).await;
    let dir = tempfile::tempdir().unwrap();
    let pem = new_key_pem();
    let file = serde_json::json!({
        "type": "service_account", "project_id": "p", "private_key_id": "kid-7",
        "private_key": pem, "client_email": "backup@p.iam.gserviceaccount.com",
        "token_uri": format!("{}/token", server.url),
    });
    let path = write(&dir, "sa.json", &file.to_string());
    let creds = GcsCredentials::from_file(&path).unwrap();
    let GcsCredentials::ServiceAccount(key) = &creds else {
        panic!("{creds:?}")
    };
    let public = key.key.public_key();
    assert!(!format!("{creds:?}").contains("PRIVATE KEY"));

    let auth = Auth::new(creds, http());
    assert_eq!(auth.header().await.unwrap().unwrap(), "Bearer ya29.sa");
    assert_eq!(auth.header().await.unwrap().unwrap(), "Bearer ya29.sa");
    let seen = server.requests();
    assert_eq!(seen.len(), 1, "the second request used the cached token");
    let req = &seen[0];
    assert_eq!(
        (req.method.as_str(), req.target.as_str()),
        ("POST", "/token")
    );
    assert_eq!(
        req.form_value("grant_type").unwrap(),
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    let jwt = req.form_value("assertion").unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    let decode =
        |s: &str| -> Value { serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).unwrap()).unwrap() };
    let (header, claims) = (decode(parts[0]), decode(parts[1]));
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], "kid-7");
    assert_eq!(claims["iss"], "backup@p.iam.gserviceaccount.com");
    assert_eq!(claims["scope"], STORAGE_SCOPE);
    assert_eq!(claims["aud"], format!("{}/token", server.url));
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap() - iat, 3600);
    assert!((iat - chrono::Utc::now().timestamp()).abs() < 60);
    let signed = format!("{}.{}", parts[0], parts[1]);
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public)
        .verify(
            signed.as_bytes(),
            &URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
        )
        .expect("the JWT's signature verifies with the key's public half");

    auth.invalidate().await;
    auth.header().await.unwrap();
    assert_eq!(server.requests().len(), 2, "invalidate forces a new token");
}

#[tokio::test]
async fn a_token_about_to_expire_is_not_reused() {
    // 200 s left is inside the refresh margin: every request asks again.
    let server = TestServer::start(|_| token_answer("short", 200)).await;
    let dir = tempfile::tempdir().unwrap();
    let file = serde_json::json!({"type": "authorized_user", "client_id": "cid",
        "client_secret": "csecret", "refresh_token": "rtoken",
        "token_uri": format!("{}/oauth", server.url)});
    let path = write(&dir, "adc.json", &file.to_string());
    let auth = Auth::new(GcsCredentials::from_file(&path).unwrap(), http());
    auth.header().await.unwrap();
    auth.header().await.unwrap();
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn an_authorized_user_refreshes_its_token() {
    let server = TestServer::start(|_| token_answer("ya29.user", 3600)).await;
    let dir = tempfile::tempdir().unwrap();
    let file = serde_json::json!({"type": "authorized_user", "client_id": "cid",
        "client_secret": "csecret", "refresh_token": "1//rtoken",
        "token_uri": format!("{}/oauth", server.url)});
    let path = write(&dir, "adc.json", &file.to_string());
    let creds = GcsCredentials::from_file(&path).unwrap();
    let shown = format!("{creds:?}");
    assert!(
        !shown.contains("csecret") && !shown.contains("rtoken"),
        "{shown}"
    );
    let auth = Auth::new(creds, http());
    assert_eq!(auth.header().await.unwrap().unwrap(), "Bearer ya29.user");
    let req = &server.requests()[0];
    assert_eq!(req.target, "/oauth");
    assert_eq!(req.form_value("grant_type").unwrap(), "refresh_token");
    assert_eq!(req.form_value("client_id").unwrap(), "cid");
    assert_eq!(req.form_value("client_secret").unwrap(), "csecret");
    assert_eq!(req.form_value("refresh_token").unwrap(), "1//rtoken");
}

#[tokio::test]
async fn an_external_account_exchanges_its_subject_token_then_impersonates() {
    let server = TestServer::start(|req| match req.target.as_str() {
        "/sts" => token_answer("federated", 3600),
        "/impersonate" => json(
            200,
            serde_json::json!({"accessToken": "ya29.impersonated",
                "expireTime": (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339()}),
        ),
        _ => json(404, serde_json::json!({})),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    write(&dir, "token.json", r#"{"id_token": "k8s-projected-jwt"}"#);
    let file = serde_json::json!({
        "type": "external_account",
        "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/pool/providers/prov",
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": format!("{}/sts", server.url),
        "service_account_impersonation_url": format!("{}/impersonate", server.url),
        // Relative: resolved against the credentials file's directory.
        "credential_source": {"file": "token.json",
            "format": {"type": "json", "subject_token_field_name": "id_token"}},
    });
    let path = write(&dir, "wif.json", &file.to_string());
    let auth = Auth::new(GcsCredentials::from_file(&path).unwrap(), http());
    assert_eq!(
        auth.header().await.unwrap().unwrap(),
        "Bearer ya29.impersonated"
    );
    let seen = server.requests();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let sts = &seen[0];
    assert_eq!(sts.target, "/sts");
    assert_eq!(
        sts.form_value("grant_type").unwrap(),
        "urn:ietf:params:oauth:grant-type:token-exchange"
    );
    assert_eq!(
        sts.form_value("subject_token").unwrap(),
        "k8s-projected-jwt"
    );
    assert_eq!(
        sts.form_value("subject_token_type").unwrap(),
        "urn:ietf:params:oauth:token-type:jwt"
    );
    assert!(sts
        .form_value("audience")
        .unwrap()
        .ends_with("/providers/prov"));
    assert_eq!(
        sts.form_value("scope").unwrap(),
        "https://www.googleapis.com/auth/cloud-platform"
    );
    let imp = &seen[1];
    assert_eq!(imp.target, "/impersonate");
    assert_eq!(imp.header("authorization"), Some("Bearer federated"));
    let body: Value = serde_json::from_slice(&imp.body).unwrap();
    assert_eq!(body["scope"], serde_json::json!([STORAGE_SCOPE]));
}

#[tokio::test]
async fn an_external_account_without_impersonation_uses_the_sts_token() {
    let server = TestServer::start(|_| token_answer("federated", 3600)).await;
    let dir = tempfile::tempdir().unwrap();
    let token = write(&dir, "token", "plain-subject-token\n");
    let file = serde_json::json!({"type": "external_account", "audience": "aud",
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": format!("{}/sts", server.url),
        "credential_source": {"file": token}});
    let creds = GcsCredentials::from_json(&file.to_string(), None).unwrap();
    let auth = Auth::new(creds, http());
    assert_eq!(auth.header().await.unwrap().unwrap(), "Bearer federated");
    let sts = &server.requests()[0];
    assert_eq!(
        sts.form_value("subject_token").unwrap(),
        "plain-subject-token"
    );
    assert_eq!(sts.form_value("scope").unwrap(), STORAGE_SCOPE);
}

#[tokio::test]
async fn the_metadata_server_is_asked_with_its_flavor_header() {
    let server = TestServer::start(|req| {
        if req.header("metadata-flavor") == Some("Google") {
            token_answer("ya29.gce", 3600)
        } else {
            json(403, serde_json::json!({}))
        }
    })
    .await;
    let host = server.addr.clone();
    let creds =
        GcsCredentials::from_lookup(|n| (n == "GCE_METADATA_HOST").then(|| host.clone())).unwrap();
    let auth = Auth::new(creds, http());
    assert_eq!(auth.header().await.unwrap().unwrap(), "Bearer ya29.gce");
    let req = &server.requests()[0];
    assert_eq!(req.method, "GET");
    assert!(
        req.target.starts_with("/computeMetadata/v1/instance/service-accounts/default/token?scopes=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fdevstorage.read_write"),
        "{}",
        req.target
    );
}

#[tokio::test]
async fn an_unreachable_metadata_server_says_no_credentials_were_found() {
    // A port nobody listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    drop(listener);
    let creds = GcsCredentials::MetadataServer { host };
    let err = Auth::new(creds, http()).header().await.unwrap_err();
    assert_eq!(err.kind, AuthErrorKind::Transient);
    assert!(
        err.detail.contains("no Google credentials found")
            && err.detail.contains("GOOGLE_APPLICATION_CREDENTIALS"),
        "{}",
        err.detail
    );
}

#[tokio::test]
async fn a_refused_grant_is_denied_without_echoing_secrets() {
    let server = TestServer::start(|_| {
        json(
            400,
            serde_json::json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}),
        )
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = serde_json::json!({"type": "service_account", "private_key_id": "k",
        "private_key": new_key_pem(), "client_email": "sa@p.iam",
        "token_uri": format!("{}/token", server.url)});
    let path = write(&dir, "sa.json", &file.to_string());
    let err = Auth::new(GcsCredentials::from_file(&path).unwrap(), http())
        .header()
        .await
        .unwrap_err();
    assert_eq!(err.kind, AuthErrorKind::Denied);
    assert!(
        err.detail.contains("sa@p.iam")
            && err.detail.contains("invalid_grant: Invalid JWT Signature."),
        "{}",
        err.detail
    );
    assert!(!err.detail.contains("assertion"), "{}", err.detail);
    assert_eq!(server.requests().len(), 1, "a refusal is not retried");
}

#[test]
fn unsupported_and_broken_files_are_refused_by_name() {
    let err =
        GcsCredentials::from_json(r#"{"type": "impersonated_service_account"}"#, None).unwrap_err();
    assert!(err.contains("impersonated_service_account"), "{err}");
    let err = GcsCredentials::from_json(r#"{"client_email": "x"}"#, None).unwrap_err();
    assert!(err.contains("type"), "{err}");
    let aws = serde_json::json!({"type": "external_account", "audience": "a",
        "subject_token_type": "t", "token_url": "u",
        "credential_source": {"environment_id": "aws1"}});
    let err = GcsCredentials::from_json(&aws.to_string(), None).unwrap_err();
    assert!(err.contains("AWS-sourced"), "{err}");
}

#[test]
fn gclouds_file_comes_after_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let file = serde_json::json!({"type": "authorized_user", "client_id": "gcloud-cid",
        "client_secret": "s", "refresh_token": "r"});
    write(
        &dir,
        "application_default_credentials.json",
        &file.to_string(),
    );
    let config = dir.path().to_string_lossy().into_owned();
    let creds =
        GcsCredentials::from_lookup(|n| (n == "CLOUDSDK_CONFIG").then(|| config.clone())).unwrap();
    assert!(
        matches!(&creds, GcsCredentials::AuthorizedUser(u) if u.client_id == "gcloud-cid" && u.token_uri == "https://oauth2.googleapis.com/token"),
        "{creds:?}"
    );
}
