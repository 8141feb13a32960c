use crate::{Retention, StoreError};
use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use std::fmt::Debug;

/// The only prefix whose objects may be replaced by a write: lock records are
/// refreshed in place. The bucket policy in `infra/template.yaml` makes the same
/// exception.
pub const MUTABLE_PREFIX: &str = "locks/";

/// Whether a write to `key` may replace an existing object.
pub fn may_overwrite(key: &str) -> bool {
    key.starts_with(MUTABLE_PREFIX)
}

/// Write `data` as a content-addressed object (one whose key names its content
/// hash): an object already stored under the key holds the same bytes, so
/// [`StoreError::AlreadyExists`] means the write is already done (a retry, a
/// concurrent writer of the same object).
pub async fn put_content_addressed(
    store: &dyn ObjectStore,
    key: &str,
    data: Bytes,
    opts: &PutOptions,
) -> Result<(), StoreError> {
    match store.put(key, data, opts).await {
        Err(e) if e.is_already_exists() => {
            tracing::debug!(
                key,
                "object already stored (content-addressed); not rewritten"
            );
            Ok(())
        }
        other => other,
    }
}

/// Options for writing one object.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    /// Object Lock retention to write the object with; `None` for no lock.
    pub retention: Option<Retention>,
}

/// What a listing or a HEAD tells about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Key relative to the store root, `/`-separated.
    pub key: String,
    pub size: u64,
    pub last_modified: Option<DateTime<Utc>>,
    /// Retention as the store reports it. Listings leave it `None`; [`ObjectStore::head`] fills it.
    pub retention: Option<Retention>,
}

/// A flat namespace of immutable objects.
///
/// Keys are relative, `/`-separated, and never start with `/`. Writes are atomic:
/// a reader sees either the whole object or nothing. Implementations retry
/// transient failures themselves and return [`StoreError::Transient`] only once
/// retries are exhausted.
#[async_trait]
pub trait ObjectStore: Send + Sync + Debug {
    /// A human-readable location such as `/srv/repo` or `s3://bucket/prefix`.
    fn location(&self) -> String;

    /// Whether the store exists (directory present, bucket reachable).
    async fn exists(&self) -> Result<bool, StoreError>;

    /// Create the store's root if the backend needs it (a directory).
    async fn create(&self) -> Result<(), StoreError>;

    /// Check that the backend can enforce Object Lock, or explain why not.
    async fn ensure_lock_support(&self) -> Result<(), StoreError>;

    /// Create an object atomically. Objects are immutable: when `key` already
    /// exists the write fails with [`StoreError::AlreadyExists`] and the stored
    /// object is left as it was, except for keys under [`MUTABLE_PREFIX`]
    /// (`locks/`), which are replaced.
    async fn put(&self, key: &str, data: Bytes, opts: &PutOptions) -> Result<(), StoreError>;

    /// Read a whole object.
    async fn get(&self, key: &str) -> Result<Bytes, StoreError>;

    /// Read `len` bytes starting at `offset`.
    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Bytes, StoreError>;

    /// Size, modification time and retention of one object.
    async fn head(&self, key: &str) -> Result<ObjectInfo, StoreError>;

    /// Every object whose key starts with `prefix`, in no particular order.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError>;

    /// Delete an object. Deleting a missing object succeeds; a locked one fails
    /// with [`StoreError::Locked`].
    async fn delete(&self, key: &str) -> Result<(), StoreError>;

    /// Set retention on an existing object, or extend it. A lock is never
    /// shortened: asking for an earlier date than the current one leaves the
    /// lock as it is, either as a success (nothing to do) or as
    /// [`StoreError::Locked`].
    async fn set_retention(&self, key: &str, retention: Retention) -> Result<(), StoreError>;

    /// Why the retention this store reports cannot be taken as proof, if it
    /// cannot: an emulator that records retention without enforcing it.
    /// `repo check` reports it beside its lock findings, so an emulator's
    /// locks are never mistaken for immutability.
    fn retention_caveat(&self) -> Option<String> {
        None
    }

    /// Remove temporary files that interrupted writes left behind and that
    /// were last modified before `before`; returns how many were removed.
    /// Stores whose writes leave nothing behind on failure (S3, memory) have
    /// none to remove.
    async fn remove_stale_temporaries(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let _ = before;
        Ok(0)
    }
}
