//! When to send a request again, how long to wait first, and the loop that
//! does it: the same for every cloud, as both Microsoft and Google recommend
//! (bounded attempts, exponential backoff with full jitter, `Retry-After`).

use crate::client::Reply;
use chrono::{DateTime, Utc};
use http::header::RETRY_AFTER;
use http::{HeaderMap, StatusCode};
use std::future::Future;
use std::time::Duration;
use tracing::{debug, warn};

/// How often and how patiently a store retries one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, the first one included (0 counts as 1).
    pub max_attempts: u32,
    /// The backoff ceiling of the first retry; it doubles with every retry.
    pub base_delay: Duration,
    /// No wait is longer than this, a server's `Retry-After` included: a
    /// throttled service must not park a backup for an hour.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(32),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1 for the first retry): the
    /// server's `Retry-After` when it sent one, else a random time up to
    /// `base_delay * 2^(retry-1)` (full jitter, so that many clients
    /// throttled at once do not come back at once).
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(self.max_delay);
        }
        let factor = 1u32 << retry.saturating_sub(1).min(16);
        let ceiling = self.base_delay.saturating_mul(factor).min(self.max_delay);
        let ceiling_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(fastrand::u64(0..=ceiling_ms))
    }
}

/// Whether an answer with `status` may succeed when sent again: a timeout,
/// throttling, or a server error other than "not implemented".
pub fn retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

/// The wait a `Retry-After` header asks for: seconds, or an HTTP date. A
/// date already past gives `None` (back off as usual): with a skewed clock
/// it would otherwise mean no wait at all.
pub fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&Utc) - now).to_std().ok()
}

/// A failed attempt, as the retry loop needs to see it.
pub trait RetryableError {
    /// Whether another attempt could help.
    fn retryable(&self) -> bool;
    /// One line for the log (no secrets: it is logged as it is).
    fn detail(&self) -> &str;
}

impl RetryableError for crate::client::SendError {
    fn retryable(&self) -> bool {
        self.retryable
    }
    fn detail(&self) -> &str {
        &self.detail
    }
}

/// The last failure of a request that got no answer, and how many attempts
/// were made.
#[derive(Debug, Clone)]
pub struct Exhausted<E> {
    pub error: E,
    pub attempts: u32,
}

/// Make attempts until one brings an answer that is not worth retrying, an
/// error that is not, or `policy.max_attempts` are spent. Each attempt is
/// built anew by `attempt` (a signature or a token may need renewing); `what`
/// names the request in the log (method and a URL without secrets).
///
/// The last answer is returned whatever its status, with
/// [`Reply::attempts`] set: the caller maps a status that persisted. `Err`
/// only when no answer came.
pub async fn send_with_retries<E, F, Fut>(
    policy: &RetryPolicy,
    what: &str,
    mut attempt: F,
) -> Result<Reply, Exhausted<E>>
where
    E: RetryableError,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Reply, E>>,
{
    let attempts = policy.max_attempts.max(1);
    let mut n = 1;
    loop {
        let outcome = attempt().await;
        let (wait_asked, why) = match &outcome {
            Ok(reply) if retryable_status(reply.status) => (
                retry_after(&reply.headers, Utc::now()),
                format!("HTTP {}", reply.status.as_u16()),
            ),
            Err(e) if e.retryable() => (None, e.detail().to_string()),
            _ => return finish(outcome, n),
        };
        if n >= attempts {
            debug!(what, attempt = n, %why, "giving up after the last attempt");
            return finish(outcome, n);
        }
        let wait = policy.delay(n, wait_asked);
        warn!(what, attempt = n, wait_ms = wait.as_millis() as u64, %why, "retrying");
        tokio::time::sleep(wait).await;
        n += 1;
    }
}

fn finish<E>(outcome: Result<Reply, E>, attempts: u32) -> Result<Reply, Exhausted<E>> {
    match outcome {
        Ok(mut reply) => {
            reply.attempts = attempts;
            Ok(reply)
        }
        Err(error) => Err(Exhausted { error, attempts }),
    }
}

#[cfg(test)]
#[path = "retry_tests.rs"]
mod tests;
