//! Entra ID (Azure AD) access tokens for the Blob service: the OAuth2
//! client-credentials grant with a client secret (service principal) or a
//! federated token as client assertion (workload identity), cached until
//! shortly before they expire.

use crate::credentials::{ClientProof, EntraCredentials};
use crate::redact::{scrub, Secret};
use bytes::Bytes;
use http::{header, Method, Request};
use http_body_util::Full;
use lifeboat_store_http::{send_once, HttpClient, MAX_TOKEN_ANSWER};
use serde::Deserialize;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use tracing::debug;

/// The scope of every token: the Blob (Storage) service.
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// A token is renewed this long before it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(300);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Why no token could be had.
#[derive(Debug)]
pub(crate) struct TokenError {
    pub retryable: bool,
    pub detail: String,
}

/// Fetches and caches tokens for one application.
#[derive(Debug)]
pub(crate) struct TokenSource {
    creds: EntraCredentials,
    client: HttpClient,
    cache: Mutex<Option<(Secret, Instant)>>,
}

#[derive(Deserialize)]
struct TokenReply {
    access_token: String,
    /// Seconds; Entra sends a number, some older endpoints a string.
    expires_in: serde_json::Value,
}

#[derive(Deserialize)]
struct TokenFailure {
    error: Option<String>,
    error_description: Option<String>,
}

impl TokenSource {
    pub fn new(creds: EntraCredentials, client: HttpClient) -> TokenSource {
        TokenSource {
            creds,
            client,
            cache: Mutex::new(None),
        }
    }

    /// A valid token, from the cache or newly fetched.
    pub async fn token(&self) -> Result<Secret, TokenError> {
        // Held across the fetch so that concurrent requests wait for one token.
        let mut cache = self.cache.lock().await;
        if let Some((token, renew_at)) = cache.as_ref() {
            if Instant::now() < *renew_at {
                return Ok(token.clone());
            }
        }
        let (token, lifetime) = self.fetch().await?;
        let renew_in = lifetime.checked_sub(RENEW_BEFORE).unwrap_or(lifetime / 2);
        debug!(tenant = %self.creds.tenant_id, lifetime_secs = lifetime.as_secs(), "Entra ID token obtained");
        *cache = Some((token.clone(), Instant::now() + renew_in));
        Ok(token)
    }

    fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.creds.authority_host.trim_end_matches('/'),
            self.creds.tenant_id
        )
    }

    /// The form of the client-credentials grant.
    fn form(&self) -> Result<String, TokenError> {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &self.creds.client_id)
            .append_pair("scope", STORAGE_SCOPE);
        match &self.creds.proof {
            ClientProof::Secret(secret) => {
                form.append_pair("client_secret", secret.expose());
            }
            ClientProof::FederatedTokenFile(path) => {
                let assertion = std::fs::read_to_string(path).map_err(|e| TokenError {
                    retryable: false,
                    detail: format!(
                        "cannot read the federated token file {} (AZURE_FEDERATED_TOKEN_FILE): {e}",
                        path.display()
                    ),
                })?;
                form.append_pair("client_assertion_type", ASSERTION_TYPE)
                    .append_pair("client_assertion", assertion.trim());
            }
        }
        Ok(form.finish())
    }

    async fn fetch(&self) -> Result<(Secret, Duration), TokenError> {
        let url = self.token_url();
        let request = Request::builder()
            .method(Method::POST)
            .uri(&url)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(self.form()?)))
            .map_err(|e| TokenError {
                retryable: false,
                detail: format!("invalid token endpoint {url}: {e}"),
            })?;
        let reply = send_once(&self.client, request, REQUEST_TIMEOUT, MAX_TOKEN_ANSWER)
            .await
            .map_err(|e| TokenError {
                retryable: e.retryable,
                detail: format!(
                    "Entra ID token request to {url} failed: {}",
                    scrub(&e.detail)
                ),
            })?;
        let (status, body) = (reply.status, reply.body);
        if !status.is_success() {
            let why = serde_json::from_slice::<TokenFailure>(&body)
                .ok()
                .map(|f| {
                    let description = f.error_description.unwrap_or_default();
                    // Entra appends trace and correlation ids on further lines.
                    let first_line = description.lines().next().unwrap_or("").to_string();
                    format!("{}: {first_line}", f.error.unwrap_or_default())
                })
                .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
            return Err(TokenError {
                retryable: status.as_u16() == 429 || status.is_server_error(),
                detail: scrub(&format!(
                    "Entra ID refused a token for client {} in tenant {} (HTTP {}): {why}",
                    self.creds.client_id,
                    self.creds.tenant_id,
                    status.as_u16()
                )),
            });
        }
        let reply: TokenReply = serde_json::from_slice(&body).map_err(|e| TokenError {
            retryable: false,
            detail: format!("Entra ID's token answer from {url} is not understood: {e}"),
        })?;
        let secs = match &reply.expires_in {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        }
        .unwrap_or(3600);
        Ok((Secret::new(&reply.access_token), Duration::from_secs(secs)))
    }
}

#[cfg(test)]
#[path = "entra_tests.rs"]
pub(crate) mod tests;
