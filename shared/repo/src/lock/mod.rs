//! Repository locks: how backups and prune keep out of each other's way.
//!
//! Backups take a shared lock, prune an exclusive one. A lock is a small
//! plaintext JSON object under `locks/`, refreshed every few minutes while its
//! holder runs; one not refreshed for [`STALE_AFTER`] is stale and ignored.
//! To acquire, a process writes its lock first and then lists the others; two
//! conflicting processes that race both see each other and both back off.

use crate::error::random_bytes;
use crate::repository::FileKind;
use crate::{Id, RepoError, Repository};
use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use lifeboat_store::{ObjectStore, PutOptions};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::task::AbortHandle;

/// A lock not refreshed for this long is stale.
pub const STALE_AFTER_MINUTES: i64 = 30;
const REFRESH_EVERY_SECS: u64 = 5 * 60;

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
    pub fn is_stale(&self, now: DateTime<Utc>) -> bool {
        now - self.refreshed > Duration::minutes(STALE_AFTER_MINUTES)
    }

    fn describe(&self) -> String {
        format!(
            "{} lock held by {} on host {} (pid {}) since {}; it goes stale {} min after its last refresh ({}), or remove it with `lifeboat repo unlock` if that process is gone",
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

/// A held lock. Call [`LockGuard::release`] when done; dropping it stops the
/// refreshes and leaves the lock to go stale.
#[derive(Debug)]
pub struct LockGuard {
    store: Arc<dyn ObjectStore>,
    key: String,
    refresher: AbortHandle,
}

impl LockGuard {
    pub async fn release(self) -> Result<(), RepoError> {
        self.refresher.abort();
        self.store.delete(&self.key).await?;
        Ok(())
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.refresher.abort();
    }
}

async fn write_lock(store: &dyn ObjectStore, key: &str, rec: &LockRecord) -> Result<(), RepoError> {
    let json = serde_json::to_vec(rec).map_err(|e| RepoError::malformed("lock", e))?;
    store
        .put(key, Bytes::from(json), &PutOptions::default())
        .await?;
    Ok(())
}

impl Repository {
    /// Every lock in the repository with its key.
    pub async fn locks(&self) -> Result<Vec<(String, LockRecord)>, RepoError> {
        let mut out = Vec::new();
        for o in self.store().list(FileKind::Lock.prefix()).await? {
            match self.store().get(&o.key).await {
                Ok(b) => match serde_json::from_slice::<LockRecord>(&b) {
                    Ok(r) => out.push((o.key, r)),
                    Err(e) => tracing::warn!(key = %o.key, error = %e, "ignoring malformed lock"),
                },
                // Released between the listing and the read.
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }

    /// Take a lock of `kind` for `operation`, or fail naming the holder of a conflicting one.
    pub async fn lock(&self, kind: LockKind, operation: &str) -> Result<LockGuard, RepoError> {
        let now = Utc::now();
        let mut rec = LockRecord {
            kind,
            operation: operation.to_string(),
            hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            pid: std::process::id(),
            created: now,
            refreshed: now,
        };
        let key = FileKind::Lock.key(&Id(random_bytes()?));
        write_lock(self.store().as_ref(), &key, &rec).await?;
        let others = self.locks().await?;
        let conflict = others.iter().find(|(k, r)| {
            *k != key
                && !r.is_stale(now)
                && (kind == LockKind::Exclusive || r.kind == LockKind::Exclusive)
        });
        if let Some((_, r)) = conflict {
            let msg = r.describe();
            self.store().delete(&key).await?;
            return Err(RepoError::Locked(msg));
        }
        let store = self.store().clone();
        let refresh_key = key.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(REFRESH_EVERY_SECS)).await;
                rec.refreshed = Utc::now();
                if let Err(e) = write_lock(store.as_ref(), &refresh_key, &rec).await {
                    tracing::warn!(error = %e, "could not refresh repository lock");
                }
            }
        });
        Ok(LockGuard {
            store: self.store().clone(),
            key,
            refresher: task.abort_handle(),
        })
    }

    /// Like [`Repository::lock`], but while a conflicting lock is held, try
    /// again with backoff for up to `wait` before giving up. Backups use this
    /// so that a prune running at the same moment delays them instead of
    /// failing them.
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

    /// Remove stale locks (all locks with `all`); returns how many were removed.
    pub async fn unlock(&self, all: bool) -> Result<usize, RepoError> {
        let now = Utc::now();
        let mut n = 0;
        for (key, r) in self.locks().await? {
            if all || r.is_stale(now) {
                self.store().delete(&key).await?;
                n += 1;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Credential, InitOptions, KdfParams};
    use lifeboat_store::MemoryStore;

    #[tokio::test]
    async fn shared_locks_coexist_and_exclusive_waits() {
        let store: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new());
        let cred = Credential::Passphrase("pw".into());
        let opts = InitOptions {
            kdf: Some(KdfParams::weak_for_tests(&cred).unwrap()),
            ..InitOptions::default()
        };
        let repo = Repository::init(store, &cred, opts).await.unwrap();
        let a = repo.lock(LockKind::Shared, "backup").await.unwrap();
        let b = repo.lock(LockKind::Shared, "backup").await.unwrap();
        let err = repo.lock(LockKind::Exclusive, "prune").await.unwrap_err();
        assert!(err.to_string().contains("held by backup"), "{err}");
        a.release().await.unwrap();
        b.release().await.unwrap();
        let p = repo.lock(LockKind::Exclusive, "prune").await.unwrap();
        assert!(repo.lock(LockKind::Shared, "backup").await.is_err());
        // A waiting backup gets in once the prune is done.
        let waiter = {
            let repo = repo.clone();
            tokio::spawn(async move {
                repo.lock_waiting(
                    LockKind::Shared,
                    "backup",
                    std::time::Duration::from_secs(30),
                )
                .await
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        p.release().await.unwrap();
        let b = waiter.await.unwrap().unwrap();
        b.release().await.unwrap();
        let p = repo.lock(LockKind::Exclusive, "prune").await.unwrap();
        let short = repo
            .lock_waiting(
                LockKind::Shared,
                "backup",
                std::time::Duration::from_millis(300),
            )
            .await;
        assert!(matches!(short, Err(RepoError::Locked(_))));
        assert_eq!(repo.locks().await.unwrap().len(), 1);
        p.release().await.unwrap();
        assert!(repo.locks().await.unwrap().is_empty());
    }
}
