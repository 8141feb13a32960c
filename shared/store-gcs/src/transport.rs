//! One HTTP client (hyper, rustls with the system's roots) and the retry
//! loop every request goes through.

use crate::retry::{parse_retry_after, retryable_status, RetryPolicy};
use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use http::Method;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, warn};

/// A request that can be sent more than once (the body is shared, not copied).
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) method: Method,
    pub(crate) url: String,
    pub(crate) headers: Vec<(HeaderName, String)>,
    pub(crate) body: Bytes,
}

impl Request {
    pub(crate) fn new(method: Method, url: impl Into<String>) -> Request {
        Request {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    pub(crate) fn header(mut self, name: HeaderName, value: impl Into<String>) -> Request {
        self.headers.push((name, value.into()));
        self
    }

    pub(crate) fn body(mut self, body: Bytes) -> Request {
        self.body = body;
        self
    }
}

/// A whole answer.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Response {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// No usable answer arrived, after every attempt: the last reason.
#[derive(Debug, Clone)]
pub(crate) struct TransportError(pub(crate) String);

/// The shared client. Cloning is cheap.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    pub(crate) retry: RetryPolicy,
    timeout: Duration,
}

impl Http {
    /// The client, or why TLS could not be set up.
    pub(crate) fn new(retry: RetryPolicy, timeout: Duration) -> Result<Http, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = match hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider.clone())
        {
            Ok(b) => b,
            Err(e) => {
                // Plain-HTTP endpoints (the emulator, the metadata server)
                // still work; HTTPS fails with an unknown-issuer error.
                warn!(error = %e, "no trusted CA certificates found on this system (install ca-certificates); HTTPS endpoints will be refused");
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| format!("TLS setup failed: {e}"))?
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth();
                hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
            }
        };
        let connector = builder.https_or_http().enable_http1().build();
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Http {
            client,
            retry,
            timeout,
        })
    }

    /// Send once: an answer of any status, or why none came.
    pub(crate) async fn send_once(&self, req: &Request) -> Result<Response, TransportError> {
        let mut builder = http::Request::builder()
            .method(req.method.clone())
            .uri(&req.url);
        for (name, value) in &req.headers {
            let value = HeaderValue::from_str(value)
                .map_err(|_| TransportError(format!("header {name} holds an invalid value")))?;
            builder = builder.header(name, value);
        }
        let request = builder
            .body(Full::new(req.body.clone()))
            .map_err(|e| TransportError(format!("invalid request to {}: {e}", redact(&req.url))))?;
        let exchange = async {
            let resp = self.client.request(request).await.map_err(|e| {
                TransportError(format!(
                    "{} {}: {}",
                    req.method,
                    redact(&req.url),
                    chain(&e)
                ))
            })?;
            let status = resp.status().as_u16();
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.map_err(|e| {
                TransportError(format!(
                    "reading the answer of {} {}: {}",
                    req.method,
                    redact(&req.url),
                    chain(&e)
                ))
            })?;
            Ok(Response {
                status,
                headers: parts.headers,
                body: body.to_bytes(),
            })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(TransportError(format!(
                "{} {}: no answer within {}s",
                req.method,
                redact(&req.url),
                self.timeout.as_secs()
            ))),
        }
    }

    /// Send with retries: throttling (429), server errors and connection
    /// failures are retried with backoff. Returns the first answer that is not
    /// retryable, or the last answer (or transport failure) once the attempts
    /// are used up.
    pub(crate) async fn send(&self, req: &Request) -> Result<Response, TransportError> {
        let attempts = self.retry.attempts.max(1);
        let mut attempt = 1;
        loop {
            let outcome = self.send_once(req).await;
            let (retry_after, why) = match &outcome {
                Ok(resp) if !retryable_status(resp.status) => return outcome,
                Ok(resp) => (
                    resp.header(RETRY_AFTER.as_str())
                        .and_then(|v| parse_retry_after(v, chrono::Utc::now())),
                    format!("HTTP {}", resp.status),
                ),
                Err(e) => (None, e.0.clone()),
            };
            if attempt >= attempts {
                debug!(attempt, %why, "giving up after the last attempt");
                return outcome;
            }
            let wait = self.retry.delay(attempt, retry_after);
            warn!(method = %req.method, url = %redact(&req.url), attempt, wait_ms = wait.as_millis() as u64, %why, "retrying");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }
}

/// A URL for logs and errors: the query is dropped (upload ids, page tokens).
pub(crate) fn redact(url: &str) -> &str {
    url.split_once('?').map_or(url, |(path, _)| path)
}

/// An error with its causes, one line.
fn chain(err: &dyn StdError) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_left_out_of_logged_urls() {
        assert_eq!(
            redact("http://h/upload?upload_id=secret&name=x"),
            "http://h/upload"
        );
        assert_eq!(redact("http://h/b/x/o"), "http://h/b/x/o");
    }
}
