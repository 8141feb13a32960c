//! One token request per kind of credentials.

use super::file::{AuthorizedUser, ExternalAccount, ServiceAccountKey, SubjectTokenSource};
use super::jwt::service_account_claims;
use super::token::{
    oauth_refusal, parse_impersonated, parse_oauth, AccessToken, AuthError, AuthErrorKind,
};
use super::GcsCredentials;
use crate::api::encode;
use crate::transport::{redact, Http, Request};
use bytes::Bytes;
use chrono::Utc;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderName, Method};
use lifeboat_store_http::retryable_status;
use serde_json::{json, Value};
use std::time::Instant;

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// What the STS token must allow when a service account is impersonated
/// with it (the impersonated token then gets the storage scope).
const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
const FORM: &str = "application/x-www-form-urlencoded";

/// A fresh token for `creds`; `None` for anonymous access.
pub(crate) async fn fetch(
    creds: &GcsCredentials,
    http: &Http,
    scope: &str,
) -> Result<Option<AccessToken>, AuthError> {
    Ok(Some(match creds {
        GcsCredentials::Anonymous => return Ok(None),
        GcsCredentials::ServiceAccount(key) => service_account(key, http, scope).await?,
        GcsCredentials::AuthorizedUser(user) => authorized_user(user, http).await?,
        GcsCredentials::ExternalAccount(acct) => external_account(acct, http, scope).await?,
        GcsCredentials::MetadataServer { host } => metadata_server(host, http, scope).await?,
    }))
}

async fn service_account(
    key: &ServiceAccountKey,
    http: &Http,
    scope: &str,
) -> Result<AccessToken, AuthError> {
    let claims = service_account_claims(&key.client_email, scope, &key.token_uri, Utc::now());
    let jwt = key
        .key
        .sign_jwt(&key.private_key_id, &claims)
        .map_err(|e| AuthError::new(AuthErrorKind::Config, e))?;
    let what = format!("service account {} token", key.client_email);
    let body = form(&[("grant_type", JWT_BEARER), ("assertion", &jwt)]);
    let answer = exchange(http, post_form(&key.token_uri, body), &what).await?;
    parse_oauth(&answer, Instant::now())
        .map_err(|e| AuthError::new(AuthErrorKind::Denied, format!("{what}: {e}")))
}

async fn authorized_user(user: &AuthorizedUser, http: &Http) -> Result<AccessToken, AuthError> {
    let what = format!("refresh-token grant for client {}", user.client_id);
    let body = form(&[
        ("grant_type", "refresh_token"),
        ("client_id", &user.client_id),
        ("client_secret", &user.client_secret),
        ("refresh_token", &user.refresh_token),
    ]);
    let answer = exchange(http, post_form(&user.token_uri, body), &what).await?;
    parse_oauth(&answer, Instant::now())
        .map_err(|e| AuthError::new(AuthErrorKind::Denied, format!("{what}: {e}")))
}

async fn external_account(
    acct: &ExternalAccount,
    http: &Http,
    scope: &str,
) -> Result<AccessToken, AuthError> {
    let subject = subject_token(&acct.source, http).await?;
    let sts_scope = if acct.service_account_impersonation_url.is_some() {
        CLOUD_PLATFORM
    } else {
        scope
    };
    let body = form(&[
        ("grant_type", TOKEN_EXCHANGE),
        ("audience", &acct.audience),
        ("scope", sts_scope),
        ("requested_token_type", ACCESS_TOKEN_TYPE),
        ("subject_token_type", &acct.subject_token_type),
        ("subject_token", &subject),
    ]);
    let what = format!("STS token exchange for {}", acct.audience);
    let answer = exchange(http, post_form(&acct.token_url, body), &what).await?;
    let federated = parse_oauth(&answer, Instant::now())
        .map_err(|e| AuthError::new(AuthErrorKind::Denied, format!("{what}: {e}")))?;
    let Some(url) = &acct.service_account_impersonation_url else {
        return Ok(federated);
    };
    let what = format!("service account impersonation at {}", redact(url));
    let req = Request::new(Method::POST, url.as_str())
        .header(AUTHORIZATION, format!("Bearer {}", federated.secret))
        .header(CONTENT_TYPE, "application/json")
        .body(Bytes::from(
            json!({"scope": [scope], "lifetime": "3600s"}).to_string(),
        ));
    let answer = exchange(http, req, &what).await?;
    parse_impersonated(&answer, Instant::now(), Utc::now())
        .map_err(|e| AuthError::new(AuthErrorKind::Denied, format!("{what}: {e}")))
}

/// The subject token an external identity provider left for us.
async fn subject_token(source: &SubjectTokenSource, http: &Http) -> Result<String, AuthError> {
    let config = |d: String| AuthError::new(AuthErrorKind::Config, d);
    let (raw, field, origin) = match source {
        SubjectTokenSource::File { path, json_field } => {
            let text = tokio::fs::read_to_string(path).await.map_err(|e| {
                config(format!(
                    "cannot read the subject token file {}: {e}",
                    path.display()
                ))
            })?;
            (text, json_field, path.display().to_string())
        }
        SubjectTokenSource::Url {
            url,
            headers,
            json_field,
        } => {
            let mut req = Request::new(Method::GET, url.as_str());
            for (name, value) in headers {
                let name = HeaderName::try_from(name.as_str()).map_err(|_| {
                    config(format!(
                        "invalid header name {name:?} in credential_source.headers"
                    ))
                })?;
                req = req.header(name, value.as_str());
            }
            let what = format!("subject token from {}", redact(url));
            let body = exchange(http, req, &what).await?;
            (
                String::from_utf8_lossy(&body).into_owned(),
                json_field,
                what,
            )
        }
    };
    let token = match field {
        None => raw.trim().to_string(),
        Some(f) => serde_json::from_str::<Value>(&raw)
            .ok()
            .and_then(|v| v.get(f).and_then(Value::as_str).map(str::to_string))
            .ok_or_else(|| config(format!("{origin} holds no JSON field {f:?}")))?,
    };
    if token.is_empty() {
        return Err(config(format!("the subject token in {origin} is empty")));
    }
    Ok(token)
}

async fn metadata_server(host: &str, http: &Http, scope: &str) -> Result<AccessToken, AuthError> {
    let base = if host.starts_with("http://") || host.starts_with("https://") {
        host.trim_end_matches('/').to_string()
    } else {
        format!("http://{host}")
    };
    let url = format!(
        "{base}/computeMetadata/v1/instance/service-accounts/default/token?scopes={}",
        encode(scope)
    );
    let req =
        Request::new(Method::GET, url).header(HeaderName::from_static("metadata-flavor"), "Google");
    // Off Google Cloud the server does not exist: do not wait long for it.
    let mut quick = http.clone();
    quick.retry.max_attempts = quick.retry.max_attempts.min(3);
    let what = format!("metadata server token from {base}");
    let answer = exchange(&quick, req, &what)
        .await
        .map_err(|e| match e.kind {
            AuthErrorKind::Transient => AuthError::new(
                AuthErrorKind::Transient,
                format!(
                "no Google credentials found: GOOGLE_APPLICATION_CREDENTIALS is not set, gcloud's \
                 application_default_credentials.json is absent and the metadata server at {base} \
                 (GCE, GKE workload identity) did not answer ({})",
                e.detail
            ),
            ),
            _ => e,
        })?;
    parse_oauth(&answer, Instant::now())
        .map_err(|e| AuthError::new(AuthErrorKind::Denied, format!("{what}: {e}")))
}

fn post_form(url: &str, body: String) -> Request {
    Request::new(Method::POST, url)
        .header(CONTENT_TYPE, FORM)
        .body(Bytes::from(body))
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Send a token request (with retries) and return the body of its success.
async fn exchange(http: &Http, req: Request, what: &str) -> Result<Bytes, AuthError> {
    match http.send(&req).await {
        Err(e) => Err(AuthError::new(
            AuthErrorKind::Transient,
            format!("{what}: {}", e.detail),
        )),
        Ok(r) if r.status.is_success() => Ok(r.body),
        Ok(r) => {
            let kind = if retryable_status(r.status) {
                AuthErrorKind::Transient
            } else {
                AuthErrorKind::Denied
            };
            Err(AuthError::new(
                kind,
                format!(
                    "{what} at {}: {}",
                    redact(&req.url),
                    oauth_refusal(r.status.as_u16(), &r.body)
                ),
            ))
        }
    }
}
