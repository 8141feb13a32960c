//! Retry and Catch: which Retrier or Catcher an error name matches, and how
//! long to wait before a retry.
//!
//! Each Retrier counts its own attempts across one visit to the state (the
//! specification's "complex retry scenarios"); only the first Retrier whose
//! ErrorEquals matches is considered, even when its attempts are spent.

use std::time::Duration;

use crate::error::names;
use crate::model::{Catcher, Jitter, Retrier};

/// Whether `error` matches an `ErrorEquals` list.
///
/// `States.ALL` matches anything and `States.TaskFailed` anything but a
/// timeout; `States.Timeout` also matches `States.HeartbeatTimeout`.
/// `States.Runtime` is never matched.
pub fn error_matches(error_equals: &[String], error: &str) -> bool {
    if error == names::RUNTIME {
        return false;
    }
    let timeout = error == names::TIMEOUT || error == names::HEARTBEAT_TIMEOUT;
    error_equals.iter().any(|name| {
        name == error
            || name == names::ALL
            || (name == names::TASK_FAILED && !timeout)
            || (name == names::TIMEOUT && error == names::HEARTBEAT_TIMEOUT)
    })
}

impl Retrier {
    /// Whether this Retrier handles `error`.
    pub fn matches(&self, error: &str) -> bool {
        error_matches(&self.error_equals, error)
    }

    /// The wait before retry number `retries_done + 1`, before jitter:
    /// `IntervalSeconds * BackoffRate^retries_done`, capped by
    /// `MaxDelaySeconds`.
    pub fn delay(&self, retries_done: u32) -> Duration {
        let exponent = i32::try_from(retries_done).unwrap_or(i32::MAX);
        let mut seconds = self.interval_seconds as f64 * self.backoff_rate.powi(exponent);
        if let Some(max) = self.max_delay_seconds {
            seconds = seconds.min(max as f64);
        }
        Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX)
    }
}

/// Applies a jitter strategy; `unit` is a random number in `[0, 1)`.
pub fn jittered(delay: Duration, jitter: Jitter, unit: f64) -> Duration {
    match jitter {
        Jitter::None => delay,
        Jitter::Full => {
            Duration::try_from_secs_f64(delay.as_secs_f64() * unit.clamp(0.0, 1.0)).unwrap_or(delay)
        }
    }
}

/// The first Catcher that handles `error`.
pub fn find_catcher<'a>(catchers: &'a [Catcher], error: &str) -> Option<&'a Catcher> {
    catchers
        .iter()
        .find(|c| error_matches(&c.error_equals, error))
}

/// A retry decided by [`RetryCounter::next`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlannedRetry {
    /// Index of the Retrier in `Retry`.
    pub retrier: usize,
    /// Which retry of that Retrier this is (1-based).
    pub attempt: u32,
    /// The wait before it, jitter included.
    pub delay: Duration,
}

/// The retry counts of one visit to a state.
#[derive(Debug, Clone, Default)]
pub struct RetryCounter {
    counts: Vec<u32>,
    total: u32,
}

impl RetryCounter {
    /// Counts for a state's Retriers, all at zero.
    pub fn new(retriers: &[Retrier]) -> Self {
        RetryCounter {
            counts: vec![0; retriers.len()],
            total: 0,
        }
    }

    /// Retries made so far in this visit, all Retriers together (the
    /// Context Object's `State.RetryCount`).
    pub fn total(&self) -> u32 {
        self.total
    }

    /// Decides whether `error` is retried: `None` when no Retrier matches or
    /// the first that does has no attempts left.
    pub fn next(&mut self, retriers: &[Retrier], error: &str, unit: f64) -> Option<PlannedRetry> {
        let (index, retrier) = retriers
            .iter()
            .enumerate()
            .find(|(_, r)| r.matches(error))?;
        let count = self.counts.get_mut(index)?;
        if *count >= retrier.max_attempts {
            return None;
        }
        let delay = jittered(retrier.delay(*count), retrier.jitter, unit);
        *count += 1;
        self.total += 1;
        Some(PlannedRetry {
            retrier: index,
            attempt: *count,
            delay,
        })
    }
}
