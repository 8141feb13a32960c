//! Requests to Cloud Storage and its token endpoints as values that can be
//! sent more than once, on the client and with the retries of
//! `lifeboat-store-http`.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::Method;
use http_body_util::Full;
use lifeboat_store_http::{
    http_client, send_once, send_with_retries, HttpClient, Reply, RetryPolicy, SendError,
    MAX_OBJECT_ANSWER,
};
use std::time::Duration;

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

    /// `METHOD url` without the query, for logs and errors.
    fn what(&self) -> String {
        format!("{} {}", self.method, redact(&self.url))
    }
}

/// The shared client, with the store's retries and timeout. Cloning is cheap.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    client: HttpClient,
    pub(crate) retry: RetryPolicy,
    timeout: Duration,
}

impl Http {
    /// The client, or why TLS could not be set up.
    pub(crate) fn new(retry: RetryPolicy, timeout: Duration) -> Result<Http, String> {
        Ok(Http {
            client: http_client()?,
            retry,
            timeout,
        })
    }

    /// Send once: an answer of any status, or why none came.
    pub(crate) async fn send_once(&self, req: &Request) -> Result<Reply, SendError> {
        let refused = |detail: String| SendError {
            detail,
            retryable: false,
        };
        let mut builder = http::Request::builder()
            .method(req.method.clone())
            .uri(&req.url);
        for (name, value) in &req.headers {
            let value = HeaderValue::from_str(value)
                .map_err(|_| refused(format!("header {name} holds an invalid value")))?;
            builder = builder.header(name, value);
        }
        let request = builder
            .body(Full::new(req.body.clone()))
            .map_err(|e| refused(format!("invalid request to {}: {e}", redact(&req.url))))?;
        send_once(&self.client, request, self.timeout, MAX_OBJECT_ANSWER)
            .await
            .map_err(|e| SendError {
                detail: format!("{}: {}", req.what(), e.detail),
                ..e
            })
    }

    /// Send with retries: throttling (429), server errors and connection
    /// failures are retried with backoff. Returns the first answer that is not
    /// retryable, or the last answer (or transport failure) once the attempts
    /// are used up.
    pub(crate) async fn send(&self, req: &Request) -> Result<Reply, SendError> {
        send_with_retries(&self.retry, &req.what(), || self.send_once(req))
            .await
            .map_err(|spent| spent.error)
    }
}

/// A URL for logs and errors: the query is dropped (upload ids, page tokens).
pub(crate) fn redact(url: &str) -> &str {
    url.split_once('?').map_or(url, |(path, _)| path)
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
