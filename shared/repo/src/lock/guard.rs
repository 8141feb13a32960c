//! A held lock: its refresher, what it knows about its own freshness, and
//! its release.

use super::{
    lock_entries, stale_after, write_lock, LockKind, LockRecord, LockStatus,
    HOLD_WITHOUT_REFRESH_MINUTES,
};
use crate::RepoError;
use chrono::{DateTime, Duration, Utc};
use lifeboat_store::ObjectStore;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::task::AbortHandle;
use tokio::time::Instant;

const REFRESH_EVERY: std::time::Duration = std::time::Duration::from_secs(5 * 60);
/// After a failed refresh, the next attempt comes sooner.
const RETRY_REFRESH_AFTER: std::time::Duration = std::time::Duration::from_secs(60);
/// How often, and how long apart, [`LockHandle::ensure_held`] looks again at
/// an exclusive lock before it believes it: a prune that tries to lock while
/// a backup holds its lock writes its own lock, sees the backup's and
/// removes its own again.
const CONFLICT_RECHECKS: [std::time::Duration; 3] = [
    std::time::Duration::from_secs(1),
    std::time::Duration::from_secs(2),
    std::time::Duration::from_secs(4),
];

fn hold_without_refresh() -> Duration {
    Duration::minutes(HOLD_WITHOUT_REFRESH_MINUTES)
}

/// What the holder knows about its lock.
#[derive(Debug)]
struct State {
    record: LockRecord,
    /// When the last successful write of the lock began, by this process's
    /// monotonic clock and by its wall clock (the larger gap of the two
    /// counts: the monotonic clock stops while the machine sleeps).
    written_at: Instant,
    written_at_wall: DateTime<Utc>,
    /// Why the lock can no longer be relied on, once it cannot.
    lost: Option<String>,
}

impl State {
    fn since_written(&self) -> Duration {
        let mono = Duration::from_std(self.written_at.elapsed()).unwrap_or(Duration::MAX);
        mono.max(Utc::now() - self.written_at_wall)
    }
}

#[derive(Debug)]
struct Held {
    store: Arc<dyn ObjectStore>,
    key: String,
    state: Mutex<State>,
}

impl Held {
    fn state(&self) -> MutexGuard<'_, State> {
        // The state is a few plain fields, consistent after any panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lose(&self, reason: String) -> String {
        let mut s = self.state();
        let reason = s.lost.get_or_insert(reason).clone();
        tracing::error!(key = %self.key, operation = %s.record.operation, %reason, "repository lock lost");
        reason
    }

    /// The reason the lock cannot be relied on, if it cannot: lost before,
    /// or not written for longer than the holder may go without.
    fn lost_or_overdue(&self) -> Option<String> {
        let (lost, since) = {
            let s = self.state();
            (s.lost.clone(), s.since_written())
        };
        if lost.is_some() {
            return lost;
        }
        (since > hold_without_refresh()).then(|| {
            self.lose(format!(
                "it was not refreshed for {} min (the limit is {HOLD_WITHOUT_REFRESH_MINUTES} min; others may judge it stale after {} min)",
                since.num_minutes(),
                super::STALE_AFTER_MINUTES
            ))
        })
    }

    /// Rewrite the lock, unless it is lost (or found lost now).
    async fn refresh(&self) -> Result<(), RepoError> {
        if self.lost_or_overdue().is_some() {
            return Ok(());
        }
        // Rewriting a lock that someone removed would hide that it was gone.
        match self.store.head(&self.key).await {
            Err(e) if e.is_not_found() => {
                self.lose(
                    "its lock object was removed (by `lifeboat repo unlock --all`?)".to_string(),
                );
                return Ok(());
            }
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        let started = Instant::now();
        let started_wall = Utc::now();
        let mut rec = self.state().record.clone();
        rec.refreshed = started_wall;
        write_lock(self.store.as_ref(), &self.key, &rec).await?;
        // A write that itself took too long leaves the gap before it open.
        if self.lost_or_overdue().is_none() {
            let mut s = self.state();
            s.record = rec;
            s.written_at = started;
            s.written_at_wall = started_wall;
        }
        Ok(())
    }

    fn is_lost(&self) -> bool {
        self.state().lost.is_some()
    }
}

/// A held lock. Prefer [`crate::Repository::with_lock`]; otherwise call
/// [`LockGuard::release`] when done. Dropping an unreleased guard (an
/// operation cancelled mid-way) stops the refreshes and deletes the lock
/// in the background, if a Tokio runtime is still there to do it.
#[derive(Debug)]
pub struct LockGuard {
    held: Arc<Held>,
    refresher: AbortHandle,
    released: bool,
}

impl LockGuard {
    pub(super) fn start(
        store: Arc<dyn ObjectStore>,
        key: String,
        record: LockRecord,
        written_at: Instant,
    ) -> Self {
        let held = Arc::new(Held {
            store,
            key,
            state: Mutex::new(State {
                record,
                written_at,
                written_at_wall: Utc::now(),
                lost: None,
            }),
        });
        let refreshing = held.clone();
        let task = tokio::spawn(async move {
            let mut pause = REFRESH_EVERY;
            loop {
                tokio::time::sleep(pause).await;
                pause = match refreshing.refresh().await {
                    Ok(()) => REFRESH_EVERY,
                    Err(e) => {
                        tracing::warn!(key = %refreshing.key, error = %e, "could not refresh repository lock; trying again in a minute");
                        RETRY_REFRESH_AFTER
                    }
                };
                if refreshing.is_lost() {
                    break;
                }
            }
        });
        LockGuard {
            held,
            refresher: task.abort_handle(),
            released: false,
        }
    }

    /// A handle for checking the lock while it is held.
    pub fn handle(&self) -> LockHandle {
        LockHandle {
            held: self.held.clone(),
        }
    }

    /// Stop refreshing and delete the lock.
    pub async fn release(mut self) -> Result<(), RepoError> {
        self.refresher.abort();
        self.released = true;
        self.held.store.delete(&self.held.key).await?;
        Ok(())
    }

    /// Release after the operation failed: a failure to delete the lock is
    /// logged, not returned, so that the operation's own error is the one
    /// reported.
    pub(super) async fn release_after_failure(self, operation: &str) {
        let key = self.held.key.clone();
        if let Err(e) = self.release().await {
            tracing::warn!(%key, %operation, error = %e, "could not remove the lock of a failed operation; it goes stale on its own");
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.refresher.abort();
        if self.released {
            return;
        }
        let held = self.held.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    if let Err(e) = held.store.delete(&held.key).await {
                        tracing::warn!(key = %held.key, error = %e, "could not remove an abandoned lock; it goes stale on its own");
                    }
                });
            }
            Err(_) => {
                tracing::warn!(key = %held.key, "an abandoned lock is left to go stale (no runtime to remove it)");
            }
        }
    }
}

/// What an operation holding a lock uses to check it (cheap to clone).
#[derive(Debug, Clone)]
pub struct LockHandle {
    held: Arc<Held>,
}

impl LockHandle {
    /// The store key of the lock object.
    pub fn key(&self) -> &str {
        &self.held.key
    }

    /// Succeed only if the lock can still be relied on: call it right
    /// before saving a snapshot (or anything that makes written data
    /// referenced). It fails with [`RepoError::LockLost`] if the lock was
    /// not rewritten within [`HOLD_WITHOUT_REFRESH_MINUTES`] (failed
    /// refreshes, a suspended process), if its object is gone, or, for a
    /// shared lock, if an exclusive lock (a prune) holds the repository now.
    pub async fn ensure_held(&self) -> Result<(), RepoError> {
        let (kind, operation) = {
            let s = self.held.state();
            (s.record.kind, s.record.operation.clone())
        };
        let lost = |reason: String| RepoError::LockLost {
            operation: operation.clone(),
            reason,
        };
        let mut rechecks = CONFLICT_RECHECKS.iter();
        loop {
            if let Some(reason) = self.held.lost_or_overdue() {
                return Err(lost(reason));
            }
            let entries = lock_entries(self.held.store.as_ref()).await?;
            let Some(own) = entries.iter().find(|e| e.key == self.held.key) else {
                return Err(lost(self.held.lose(
                    "its lock object was removed (by `lifeboat repo unlock --all`?)".into(),
                )));
            };
            // The store's clock now: its time of our last write, plus the time since.
            let now = match own.last_modified {
                Some(lm) => lm + self.held.state().since_written(),
                None => Utc::now(),
            };
            if own.status(now) != LockStatus::Fresh {
                return Err(lost(self.held.lose(format!(
                    "the store last wrote it at {}, over {} min ago",
                    own.last_modified.map(|t| t.to_rfc3339()).unwrap_or_default(),
                    stale_after().num_minutes()
                ))));
            }
            if kind == LockKind::Exclusive {
                return Ok(());
            }
            let exclusive = entries
                .iter()
                .filter(|e| e.key != self.held.key)
                .find_map(|e| e.conflict(kind, now).map(|r| (e.key.clone(), r.describe())));
            let Some((key, holder)) = exclusive else {
                return Ok(());
            };
            match rechecks.next() {
                Some(pause) => {
                    tracing::info!(%key, %holder, "an exclusive lock is present; looking again");
                    tokio::time::sleep(*pause).await;
                }
                None => {
                    return Err(lost(format!(
                        "{holder} (object {key}) appeared while it was held"
                    )))
                }
            }
        }
    }
}
