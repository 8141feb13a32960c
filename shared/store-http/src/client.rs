//! One hyper client for a store's calls (and its token requests), and one
//! exchange on it: send a request, collect the whole answer.

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

/// The HTTP client of a store: HTTPS (or plain HTTP, for emulators and the
/// metadata server) with whole bodies. Cloning is cheap and shares the pool.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The longest answer a store call may bring: far above any object Lifeboat
/// writes (packs are at most 256 MiB), so only an endpoint that never stops
/// sending is cut short instead of filling memory.
pub const MAX_OBJECT_ANSWER: u64 = 4 << 30;

/// The longest answer a token endpoint may bring: tokens are a few KiB.
pub const MAX_TOKEN_ANSWER: u64 = 1 << 20;

/// Idle connections are closed after this, before the services or a proxy
/// between drop them and a request finds the connection gone.
const POOL_IDLE: Duration = Duration::from_secs(30);

/// A client over rustls with AWS-LC and the system's root certificates.
///
/// Without system roots (a scratch container) it still works over plain
/// HTTP, and HTTPS fails with a certificate error naming the host: better
/// than refusing emulators because a CA bundle is missing.
pub fn http_client() -> Result<HttpClient, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = match hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(provider.clone())
    {
        Ok(b) => b,
        Err(e) => {
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
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE)
        .build(connector))
}

/// A complete answer, whatever its status: callers decide what a status
/// means, the retry loop only whether it is worth another try.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// How many attempts it took (1 from [`send_once`]; set by
    /// [`crate::send_with_retries`]), for error messages.
    pub attempts: u32,
}

impl Reply {
    /// A header's value, when it is present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Why no complete answer came. The detail names neither URL nor headers:
/// callers add what may be shown (a URL without its query, say).
#[derive(Debug, Clone)]
pub struct SendError {
    pub detail: String,
    /// Whether another try could help: connection failures and timeouts
    /// can pass, an answer over the size limit will not.
    pub retryable: bool,
}

/// Send `request` once and collect the whole answer, within `timeout` for
/// the exchange and `max_body` bytes for the body.
pub async fn send_once(
    client: &HttpClient,
    request: Request<Full<Bytes>>,
    timeout: Duration,
    max_body: u64,
) -> Result<Reply, SendError> {
    let limit = usize::try_from(max_body).unwrap_or(usize::MAX);
    let exchange = async {
        let response = client.request(request).await.map_err(|e| SendError {
            detail: chain(&e),
            retryable: true,
        })?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, limit)
            .collect()
            .await
            .map_err(|e| match e.downcast_ref::<LengthLimitError>() {
                Some(_) => SendError {
                    detail: format!("the answer is longer than {max_body} bytes"),
                    retryable: false,
                },
                None => SendError {
                    detail: format!("reading the answer: {}", chain(&*e)),
                    retryable: true,
                },
            })?
            .to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
            attempts: 1,
        })
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(outcome) => outcome,
        Err(_) => Err(SendError {
            detail: format!("no complete answer within {timeout:?}"),
            retryable: true,
        }),
    }
}

/// An error with its causes on one line: hyper's own message ("client
/// error (Connect)") says little without them.
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
#[path = "client_tests.rs"]
mod tests;
