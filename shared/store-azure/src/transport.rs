//! One Blob service request: the URL (endpoint, path, query, SAS) and the
//! authorization of each attempt (Shared Key, SAS or an Entra token). The
//! client, the exchange and the retries are `lifeboat-store-http`'s.

use crate::entra::TokenSource;
use crate::redact::{scrub, Secret, SecretBytes};
use crate::signing;
use bytes::Bytes;
use chrono::Utc;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use http::{HeaderMap, Method, Request};
use http_body_util::Full;
use lifeboat_store_http::{
    send_once, send_with_retries, HttpClient, Reply, RetryPolicy, RetryableError, MAX_OBJECT_ANSWER,
};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::sync::Arc;
use std::time::Duration;

/// The Blob service version every request asks for: version-level
/// immutability headers need 2020-06-12 or later; Azurite 3.37 knows it.
pub const API_VERSION: &str = "2025-01-05";

/// Everything but the unreserved characters is percent-encoded in a query value.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A path segment keeps `/` between the parts of a blob name.
pub(crate) const PATH: &AsciiSet = &QUERY_VALUE.remove(b'/');

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
    /// How long one attempt may take, the body included.
    pub timeout: Duration,
}

impl RetryableError for NoReply {
    fn retryable(&self) -> bool {
        self.retryable
    }
    fn detail(&self) -> &str {
        &self.detail
    }
}

impl Transport {
    /// Send `req`, retrying what may pass on a later try; each attempt is
    /// dated and authorized anew. The last answer is returned whatever its
    /// status; `Err` only when no answer came.
    pub async fn send(&self, req: &BlobRequest) -> Result<Reply, NoReply> {
        let what = format!("{} {}", req.method, req.path);
        send_with_retries(&self.retry, &what, || self.attempt(req))
            .await
            .map_err(|spent| NoReply {
                attempts: spent.attempts,
                ..spent.error
            })
    }

    async fn attempt(&self, req: &BlobRequest) -> Result<Reply, NoReply> {
        let request = self.build(req).await?;
        send_once(&self.client, request, self.timeout, MAX_OBJECT_ANSWER)
            .await
            .map_err(|e| NoReply {
                retryable: e.retryable,
                auth: false,
                attempts: 1,
                detail: scrub(&e.detail),
            })
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

/// Percent-encode a blob path (container and name), keeping `/`.
pub(crate) fn encode_path(raw: &str) -> String {
    utf8_percent_encode(raw, PATH).to_string()
}

#[cfg(test)]
#[path = "transport_tests.rs"]
mod tests;
