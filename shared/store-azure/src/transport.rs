//! One Blob service request on hyper: the URL (endpoint, path, query, SAS),
//! the authorization of each attempt (Shared Key, SAS or an Entra token), and
//! retries with exponential backoff and full jitter on throttling, 5xx and
//! connection failures, honouring `Retry-After`.

use crate::entra::TokenSource;
use crate::redact::{scrub, Secret, SecretBytes};
use crate::signing;
use bytes::Bytes;
use chrono::Utc;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, RETRY_AFTER};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, warn};

/// The Blob service version every request asks for: version-level
/// immutability headers need 2020-06-12 or later; Azurite 3.37 knows it.
pub const API_VERSION: &str = "2025-01-05";

/// The HTTP client shared by the Blob calls and the token requests.
pub(crate) type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Everything but the unreserved characters is percent-encoded in a query value.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A path segment keeps `/` between the parts of a blob name.
pub(crate) const PATH: &AsciiSet = &QUERY_VALUE.remove(b'/');

/// A client over rustls with AWS-LC (the provider the rest of Lifeboat uses)
/// and the system's root certificates; plain HTTP is allowed for emulators.
pub(crate) fn http_client() -> Result<HttpClient, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = match hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(provider.clone())
    {
        Ok(b) => b,
        Err(e) => {
            // No system roots (a scratch container): https fails later with a
            // certificate error naming the host; http (emulators) still works.
            warn!(error = %e, "no system root certificates found");
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS setup failed: {e}"))?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
        }
    };
    let connector = builder.https_or_http().enable_http1().build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// How often and how patiently to retry.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// The backoff before the second attempt; doubled for each further one.
    pub base_delay: Duration,
    /// The longest wait between attempts (also caps `Retry-After`).
    pub max_delay: Duration,
    /// How long one attempt may take, the body included.
    pub attempt_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
            attempt_timeout: Duration::from_secs(300),
        }
    }
}

/// How each attempt is authorized.
#[derive(Debug, Clone)]
pub(crate) enum Auth {
    SharedKey { key: Arc<SecretBytes> },
    Sas { token: Secret },
    Bearer(Arc<TokenSource>),
}

/// A request to the Blob service, relative to the account's endpoint.
#[derive(Debug, Clone)]
pub(crate) struct BlobRequest {
    pub method: Method,
    /// Percent-encoded, starting with `/`: `/container` or `/container/blob`.
    pub path: String,
    /// Decoded query parameters (the SAS is added by the transport).
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl BlobRequest {
    pub fn new(method: Method, path: String) -> BlobRequest {
        BlobRequest {
            method,
            path,
            query: Vec::new(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }
    }

    pub fn query(mut self, name: &str, value: &str) -> BlobRequest {
        self.query.push((name.to_string(), value.to_string()));
        self
    }

    /// Add a header; a value that is not valid in HTTP is dropped (all our
    /// values are ASCII we format ourselves).
    pub fn header(mut self, name: &'static str, value: &str) -> BlobRequest {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(HeaderName::from_static(name), v);
        }
        self
    }

    pub fn body(mut self, body: Bytes) -> BlobRequest {
        self.body = body;
        self
    }
}

/// A complete answer (status, headers, whole body), whatever its status.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// How many attempts it took.
    pub attempts: u32,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A request that got no usable answer.
#[derive(Debug)]
pub(crate) struct NoReply {
    /// Whether another try could help (false for an Entra ID refusal).
    pub retryable: bool,
    /// Whether the credentials were refused (no token) rather than the request.
    pub auth: bool,
    pub attempts: u32,
    pub detail: String,
}

/// Sends [`BlobRequest`]s to one storage account.
#[derive(Debug, Clone)]
pub(crate) struct Transport {
    pub client: HttpClient,
    /// `scheme://authority`, without a path.
    pub origin: String,
    /// The endpoint's path (`/devstoreaccount1` on the emulator), no trailing `/`.
    pub base_path: String,
    pub account: String,
    pub auth: Auth,
    pub retry: RetryPolicy,
}

/// Whether an answer with `status` is worth another try.
pub(crate) fn retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

impl Transport {
    /// Send `req`, retrying what may pass on a later try. The last answer is
    /// returned whatever its status; `Err` only when no answer came.
    pub async fn send(&self, req: &BlobRequest) -> Result<Reply, NoReply> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt >= self.retry.max_attempts;
            let wait = match self.attempt(req).await {
                Ok(reply) if retryable_status(reply.status) && !last => {
                    debug!(method = %req.method, path = %req.path, status = reply.status.as_u16(), attempt, "retrying");
                    retry_after(&reply.headers).unwrap_or_else(|| self.backoff(attempt))
                }
                Ok(mut reply) => {
                    reply.attempts = attempt;
                    return Ok(reply);
                }
                Err(e) if e.retryable && !last => {
                    debug!(method = %req.method, path = %req.path, error = %e.detail, attempt, "retrying");
                    self.backoff(attempt)
                }
                Err(mut e) => {
                    e.attempts = attempt;
                    return Err(e);
                }
            };
            tokio::time::sleep(wait.min(self.retry.max_delay)).await;
        }
    }

    /// Full jitter over an exponentially growing window.
    fn backoff(&self, attempt: u32) -> Duration {
        let window = self
            .retry
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.retry.max_delay);
        let mut seed = [0u8; 8];
        let fraction = match getrandom::getrandom(&mut seed) {
            Ok(()) => (u64::from_le_bytes(seed) % 1_000_001) as f64 / 1_000_000.0,
            Err(_) => 0.5,
        };
        window.mul_f64(fraction)
    }

    async fn attempt(&self, req: &BlobRequest) -> Result<Reply, NoReply> {
        let request = self.build(req).await?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| format!("{}: {}", e, source_chain(&e)))?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| format!("reading the answer failed: {e}"))?
                .to_bytes();
            Ok::<_, String>(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
                attempts: 1,
            })
        };
        match tokio::time::timeout(self.retry.attempt_timeout, exchange).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(detail)) => Err(NoReply {
                retryable: true,
                auth: false,
                attempts: 1,
                detail: scrub(&detail),
            }),
            Err(_) => Err(NoReply {
                retryable: true,
                auth: false,
                attempts: 1,
                detail: format!("no complete answer within {:?}", self.retry.attempt_timeout),
            }),
        }
    }

    /// The wire request: URL with query (and SAS), version, date, authorization.
    async fn build(&self, req: &BlobRequest) -> Result<Request<Full<Bytes>>, NoReply> {
        let path = format!("{}{}", self.base_path, req.path);
        let mut query: Vec<String> = req
            .query
            .iter()
            .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, QUERY_VALUE)))
            .collect();
        if let Auth::Sas { token } = &self.auth {
            query.push(token.expose().to_string());
        }
        let uri = if query.is_empty() {
            format!("{}{path}", self.origin)
        } else {
            format!("{}{path}?{}", self.origin, query.join("&"))
        };
        let mut headers = req.headers.clone();
        headers.insert("x-ms-version", HeaderValue::from_static(API_VERSION));
        let date = Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        if let Ok(v) = HeaderValue::from_str(&date) {
            headers.insert("x-ms-date", v);
        }
        if matches!(req.method, Method::PUT | Method::POST) || !req.body.is_empty() {
            headers.insert(
                http::header::CONTENT_LENGTH,
                HeaderValue::from(req.body.len()),
            );
        }
        match &self.auth {
            Auth::SharedKey { key } => {
                let s = signing::string_to_sign(
                    &req.method,
                    &headers,
                    &self.account,
                    &path,
                    &req.query,
                );
                let value = signing::authorization(&self.account, key.expose(), &s);
                insert_secret(&mut headers, AUTHORIZATION, &value)?;
            }
            Auth::Sas { .. } => {}
            Auth::Bearer(source) => {
                let token = source.token().await.map_err(|e| NoReply {
                    retryable: e.retryable,
                    auth: true,
                    attempts: 1,
                    detail: e.detail,
                })?;
                insert_secret(
                    &mut headers,
                    AUTHORIZATION,
                    &format!("Bearer {}", token.expose()),
                )?;
            }
        }
        let mut builder = Request::builder().method(req.method.clone()).uri(&uri);
        if let Some(h) = builder.headers_mut() {
            *h = headers;
        }
        builder
            .body(Full::new(req.body.clone()))
            .map_err(|e| NoReply {
                retryable: false,
                auth: false,
                attempts: 1,
                detail: scrub(&format!("cannot build the request for {path}: {e}")),
            })
    }
}

fn insert_secret(headers: &mut HeaderMap, name: HeaderName, value: &str) -> Result<(), NoReply> {
    let mut v = HeaderValue::from_str(value).map_err(|_| NoReply {
        retryable: false,
        auth: true,
        attempts: 1,
        detail: "the authorization is not a valid HTTP header value".into(),
    })?;
    v.set_sensitive(true);
    headers.insert(name, v);
    Ok(())
}

/// `Retry-After` as seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&Utc) - Utc::now()).to_std().ok()
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    parts.join(": ")
}

/// Percent-encode a blob path (container and name), keeping `/`.
pub(crate) fn encode_path(raw: &str) -> String {
    utf8_percent_encode(raw, PATH).to_string()
}

#[cfg(test)]
#[path = "transport_tests.rs"]
mod tests;
