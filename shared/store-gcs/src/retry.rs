//! When to try a request again, and how long to wait first.

use chrono::{DateTime, Utc};
use std::time::Duration;

/// Bounded retries with exponential backoff and full jitter, as Google
/// recommends for Cloud Storage (429, 5xx and connection failures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, the first one included.
    pub attempts: u32,
    /// The backoff ceiling of the first retry; it doubles with every retry.
    pub base_delay: Duration,
    /// No wait is longer than this, a server's `Retry-After` included.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 6,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(32),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1 for the first retry): the
    /// server's `Retry-After` when it sent one, else a random time up to
    /// `base_delay * 2^(retry-1)`.
    pub(crate) fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(self.max_delay);
        }
        let factor = 1u32 << retry.saturating_sub(1).min(16);
        let ceiling = self.base_delay.saturating_mul(factor).min(self.max_delay);
        let ceiling_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(fastrand::u64(0..=ceiling_ms))
    }
}

/// Whether an answer with this status may succeed when sent again.
pub(crate) fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// A `Retry-After` value: seconds, or an HTTP date.
pub(crate) fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn backoff_grows_is_jittered_and_bounded() {
        let policy = RetryPolicy {
            attempts: 6,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
        };
        for _ in 0..200 {
            assert!(policy.delay(1, None) <= Duration::from_millis(100));
            assert!(policy.delay(3, None) <= Duration::from_millis(400));
            assert!(policy.delay(30, None) <= Duration::from_millis(1000));
        }
        // Jitter: not every wait is the ceiling.
        let waits: Vec<_> = (0..50).map(|_| policy.delay(4, None)).collect();
        assert!(waits.iter().any(|w| *w != waits[0]), "{waits:?}");
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_ceiling() {
        let policy = RetryPolicy::default();
        let now = DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let wait = parse_retry_after("3", now).unwrap();
        assert_eq!(policy.delay(1, Some(wait)), Duration::from_secs(3));
        let date = parse_retry_after("Tue, 01 Dec 2026 10:00:07 GMT", now).unwrap();
        assert_eq!(date, Duration::from_secs(7));
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(3600))),
            policy.max_delay
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn only_throttling_and_server_errors_are_retried() {
        for s in [429, 500, 502, 503, 504, 408] {
            assert!(retryable_status(s), "{s}");
        }
        for s in [200, 400, 401, 403, 404, 412, 416, 501] {
            assert!(!retryable_status(s), "{s}");
        }
    }
}
