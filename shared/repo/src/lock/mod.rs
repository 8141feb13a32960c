//! Repository locks: how backups and prune keep out of each other's way.
//!
//! Backups take a shared lock, prune an exclusive one. A lock is a small
//! plaintext JSON object under `locks/`, rewritten every few minutes while its
//! holder runs; one not rewritten for [`STALE_AFTER_MINUTES`] is stale and
//! ignored. Staleness is judged by the store's clock: the age of a lock is the
//! time since the store last wrote it (`last_modified`), measured against the
//! store's time of writing the reader's own lock. The writer's `refreshed`
//! field is only informative, so a writer's wrong clock can neither keep a
//! lock fresh forever nor make a live one look stale.
//!
//! To acquire, a process writes its lock first and then lists the others; two
//! conflicting processes that race both see each other and both back off.
//! [`Repository::with_lock`] releases the lock on every path, and
//! [`LockHandle::ensure_held`] tells an operation, before it saves a
//! snapshot, whether its lock can still be relied on.

mod guard;
#[cfg(test)]
mod tests;

pub use guard::{LockGuard, LockHandle};

use crate::error::random_bytes;
use crate::repository::FileKind;
use crate::{Id, RepoError, Repository};
use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use lifeboat_store::{ObjectStore, PutOptions, StoreError};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::panic::AssertUnwindSafe;

/// A lock not rewritten for this long (by the store's clock) is stale.
pub const STALE_AFTER_MINUTES: i64 = 30;
/// A holder whose lock has not been rewritten for this long no longer
/// relies on it: half the stale time, so that a lock is given up well
/// before anyone else may judge it stale.
pub const HOLD_WITHOUT_REFRESH_MINUTES: i64 = STALE_AFTER_MINUTES / 2;

fn stale_after() -> Duration {
    Duration::minutes(STALE_AFTER_MINUTES)
}

/// `t` plus the staleness period, saturating at the end of time (a store
/// or a planted record may name any date; none may panic a reader).
fn plus_stale(t: DateTime<Utc>) -> DateTime<Utc> {
    t.checked_add_signed(stale_after())
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockKind {
    /// Backups: many at once.
    Shared,
    /// Prune: alone.
    Exclusive,
}

/// The content of a `locks/<id>` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRecord {
    pub kind: LockKind,
    pub operation: String,
    pub hostname: String,
    pub pid: u32,
    pub created: DateTime<Utc>,
    pub refreshed: DateTime<Utc>,
}

impl LockRecord {
    fn new(kind: LockKind, operation: &str) -> Self {
        let now = Utc::now();
        LockRecord {
            kind,
            operation: operation.to_string(),
            hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            pid: std::process::id(),
            created: now,
            refreshed: now,
        }
    }

    fn describe(&self) -> String {
        format!(
            "{} lock held by {} on host {} (pid {}) since {}; it goes stale {} min after the store last wrote it (its holder last refreshed it at {}), or remove it with `lifeboat repo unlock` if that process is gone",
            match self.kind {
                LockKind::Shared => "a shared",
                LockKind::Exclusive => "an exclusive",
            },
            self.operation,
            self.hostname,
            self.pid,
            self.created.to_rfc3339(),
            STALE_AFTER_MINUTES,
            self.refreshed.to_rfc3339(),
        )
    }
}

/// How a reader judges one lock object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockStatus {
    /// Held: it conflicts with locks of the other kind.
    Fresh,
    /// Not written for [`STALE_AFTER_MINUTES`]: ignored, and `repo unlock` removes it.
    Stale,
    /// Junk (it does not parse) or dated in the future: ignored with a
    /// warning, and `repo unlock` removes it. The reason says which.
    Untrusted(String),
}

/// One object under `locks/`, as listed.
#[derive(Debug, Clone)]
pub struct LockEntry {
    pub key: String,
    /// The parsed record, or why it does not parse.
    pub record: Result<LockRecord, String>,
    /// When the store last wrote the object, by the store's clock.
    pub last_modified: Option<DateTime<Utc>>,
}

impl LockEntry {
    /// This lock's status at `store_now`, a time by the store's clock.
    pub fn status(&self, store_now: DateTime<Utc>) -> LockStatus {
        let rec = match &self.record {
            Ok(r) => r,
            Err(reason) => return LockStatus::Untrusted(format!("it does not parse: {reason}")),
        };
        let written = match self.last_modified {
            Some(lm) => {
                if lm > plus_stale(store_now) {
                    return LockStatus::Untrusted(format!(
                        "the store dates it {}, in the future",
                        lm.to_rfc3339()
                    ));
                }
                if rec.refreshed > plus_stale(lm) {
                    return LockStatus::Untrusted(format!(
                        "it claims a refresh at {}, more than {STALE_AFTER_MINUTES} min after the store wrote it ({})",
                        rec.refreshed.to_rfc3339(),
                        lm.to_rfc3339()
                    ));
                }
                lm
            }
            // A store that keeps no times: the writer's word is all there is.
            None => {
                if rec.refreshed > plus_stale(store_now) {
                    return LockStatus::Untrusted(format!(
                        "it claims a refresh at {}, in the future",
                        rec.refreshed.to_rfc3339()
                    ));
                }
                rec.refreshed
            }
        };
        if store_now - written > stale_after() {
            LockStatus::Stale
        } else {
            LockStatus::Fresh
        }
    }

    /// The record if this lock is fresh and conflicts with a lock of `kind`.
    /// Logs a warning for an untrusted lock, which is ignored.
    fn conflict(&self, kind: LockKind, store_now: DateTime<Utc>) -> Option<&LockRecord> {
        match self.status(store_now) {
            LockStatus::Fresh => self
                .record
                .as_ref()
                .ok()
                .filter(|r| kind == LockKind::Exclusive || r.kind == LockKind::Exclusive),
            LockStatus::Stale => None,
            LockStatus::Untrusted(reason) => {
                tracing::warn!(key = %self.key, %reason, "ignoring lock object (`lifeboat repo unlock` removes it)");
                None
            }
        }
    }
}

/// Every object under `locks/`, parsed or not.
pub(crate) async fn lock_entries(store: &dyn ObjectStore) -> Result<Vec<LockEntry>, RepoError> {
    let mut out = Vec::new();
    for o in store.list(FileKind::Lock.prefix()).await? {
        match store.get(&o.key).await {
            Ok(b) => out.push(LockEntry {
                record: serde_json::from_slice::<LockRecord>(&b).map_err(|e| e.to_string()),
                key: o.key,
                last_modified: o.last_modified,
            }),
            // Released between the listing and the read.
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// The store's time of writing `key`, read from `entries`; this machine's
/// clock if the store keeps no times.
fn store_time_of(entries: &[LockEntry], key: &str) -> DateTime<Utc> {
    entries
        .iter()
        .find(|e| e.key == key)
        .and_then(|e| e.last_modified)
        .unwrap_or_else(Utc::now)
}

async fn write_lock(store: &dyn ObjectStore, key: &str, rec: &LockRecord) -> Result<(), RepoError> {
    let json = serde_json::to_vec(rec).map_err(|e| RepoError::malformed("lock", e))?;
    store
        .put(key, Bytes::from(json), &PutOptions::default())
        .await?;
    Ok(())
}

impl Repository {
    /// Every lock in the repository that parses, with its key.
    pub async fn locks(&self) -> Result<Vec<(String, LockRecord)>, RepoError> {
        Ok(self
            .lock_entries()
            .await?
            .into_iter()
            .filter_map(|e| e.record.ok().map(|r| (e.key, r)))
            .collect())
    }

    /// Every object under `locks/`, including those that do not parse.
    pub async fn lock_entries(&self) -> Result<Vec<LockEntry>, RepoError> {
        lock_entries(self.store().as_ref()).await
    }

    /// Take a lock of `kind` for `operation`, or fail naming the holder of a
    /// conflicting one. Prefer [`Repository::with_lock`], which releases it
    /// on every path.
    pub async fn lock(&self, kind: LockKind, operation: &str) -> Result<LockGuard, RepoError> {
        let rec = LockRecord::new(kind, operation);
        let key = FileKind::Lock.key(&Id(random_bytes()?));
        write_lock(self.store().as_ref(), &key, &rec).await?;
        let written = tokio::time::Instant::now();
        let others = match self.lock_entries().await {
            Ok(o) => o,
            Err(e) => {
                let _ = self.store().delete(&key).await;
                return Err(e);
            }
        };
        let now = store_time_of(&others, &key);
        let conflict = others
            .iter()
            .filter(|e| e.key != key)
            .find_map(|e| e.conflict(kind, now));
        if let Some(r) = conflict {
            let msg = r.describe();
            self.store().delete(&key).await?;
            return Err(RepoError::Locked(msg));
        }
        Ok(LockGuard::start(self.store().clone(), key, rec, written))
    }

    /// Like [`Repository::lock`], but while a conflicting lock is held, try
    /// again with backoff for up to `wait` before giving up. Backups use this
    /// so that a prune running at the same moment delays them instead of
    /// failing them. A zero `wait` tries once.
    pub async fn lock_waiting(
        &self,
        kind: LockKind,
        operation: &str,
        wait: std::time::Duration,
    ) -> Result<LockGuard, RepoError> {
        let started = std::time::Instant::now();
        let mut pause = std::time::Duration::from_millis(100);
        let mut told = false;
        loop {
            match self.lock(kind, operation).await {
                Err(RepoError::Locked(msg)) if started.elapsed() + pause < wait => {
                    if !told {
                        tracing::warn!(holder = %msg, wait_secs = wait.as_secs(), "repository is locked; waiting");
                        told = true;
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_secs(2));
                }
                other => return other,
            }
        }
    }

    /// Run `f` holding a lock of `kind` (waiting for up to `wait` for a
    /// conflicting one to go, see [`Repository::lock_waiting`]), and release
    /// the lock however `f` ends: with a value, an error or a panic (the
    /// panic continues once the lock is gone). `f` gets a [`LockHandle`] to
    /// check with [`LockHandle::ensure_held`] before it commits anything.
    pub async fn with_lock<T, E, F, Fut>(
        &self,
        kind: LockKind,
        operation: &str,
        wait: std::time::Duration,
        f: F,
    ) -> Result<T, E>
    where
        F: FnOnce(LockHandle) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<RepoError>,
    {
        use futures::FutureExt;
        let guard = self.lock_waiting(kind, operation, wait).await?;
        let handle = guard.handle();
        let outcome = match std::panic::catch_unwind(AssertUnwindSafe(|| f(handle))) {
            Ok(fut) => AssertUnwindSafe(fut).catch_unwind().await,
            Err(panic) => Err(panic),
        };
        match outcome {
            Ok(Ok(value)) => {
                guard.release().await?;
                Ok(value)
            }
            Ok(Err(e)) => {
                guard.release_after_failure(operation).await;
                Err(e)
            }
            Err(panic) => {
                guard.release_after_failure(operation).await;
                std::panic::resume_unwind(panic)
            }
        }
    }

    /// Remove stale and untrusted locks (all locks with `all`); returns how
    /// many were removed. A lock the store refuses to delete (under Object
    /// Lock retention) is reported and left; it is ignored anyway.
    pub async fn unlock(&self, all: bool) -> Result<usize, RepoError> {
        // Read the store's clock from the time it writes a probe of our own.
        let probe = FileKind::Lock.key(&Id(random_bytes()?));
        if !all {
            let rec = LockRecord::new(LockKind::Shared, "unlock (reading the store's clock)");
            write_lock(self.store().as_ref(), &probe, &rec).await?;
        }
        let listed = self.lock_entries().await;
        if !all {
            self.store().delete(&probe).await?;
        }
        let entries = listed?;
        let now = store_time_of(&entries, &probe);
        let mut n = 0;
        for e in entries.iter().filter(|e| e.key != probe) {
            let status = e.status(now);
            if !all && status == LockStatus::Fresh {
                continue;
            }
            match self.store().delete(&e.key).await {
                Ok(()) => {
                    tracing::info!(key = %e.key, ?status, "removed lock");
                    n += 1;
                }
                Err(StoreError::Locked { until, .. }) => {
                    tracing::warn!(key = %e.key, %until, ?status, "the store keeps this lock object under retention; it cannot be removed, and it is ignored as long as it is not fresh");
                }
                Err(err) => return Err(err.into()),
            }
        }
        Ok(n)
    }
}
