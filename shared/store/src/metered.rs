//! Counting what a store is asked to do: [`MeteredStore`] wraps any
//! [`ObjectStore`] and counts its calls per kind and the bytes written and
//! read, so a command can say what it cost on a store that bills per request.
//!
//! The counts are of port calls, not of HTTP requests: one call may be
//! several requests on the wire (retries inside the store, the blocks of a
//! large Azure upload, the parts of an S3 multipart upload, the pages of a
//! listing, the versions a delete removes), and a local directory makes
//! none. `tests/bench/stores` shows both side by side.

use crate::{ObjectInfo, ObjectStore, PutOptions, Retention, StoreError};
use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// An [`ObjectStore`] that counts the calls made through it and forwards
/// each unchanged to the store inside. Counting is a few relaxed atomic
/// additions per call.
#[derive(Debug)]
pub struct MeteredStore {
    inner: Arc<dyn ObjectStore>,
    meter: Arc<StoreMeter>,
}

/// The counters of a [`MeteredStore`], shared with whoever reports them.
#[derive(Debug, Default)]
pub struct StoreMeter {
    put: AtomicU64,
    get: AtomicU64,
    get_range: AtomicU64,
    head: AtomicU64,
    list: AtomicU64,
    delete: AtomicU64,
    set_retention: AtomicU64,
    exists: AtomicU64,
    create: AtomicU64,
    ensure_lock_support: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
}

/// Calls per kind, failed ones included (a failed call still cost its
/// requests). A call may be several HTTP requests: see the module docs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreRequests {
    /// Objects written ([`ObjectStore::put`]).
    pub put: u64,
    /// Whole objects read ([`ObjectStore::get`]).
    pub get: u64,
    /// Ranges of objects read ([`ObjectStore::get_range`]).
    pub get_range: u64,
    /// Single objects' size and retention read ([`ObjectStore::head`]).
    pub head: u64,
    /// Listings by prefix, however many pages each took ([`ObjectStore::list`]).
    pub list: u64,
    /// Objects deleted ([`ObjectStore::delete`]).
    pub delete: u64,
    /// Retention set or extended ([`ObjectStore::set_retention`]).
    pub set_retention: u64,
    /// Checks that the bucket, container or directory exists.
    pub exists: u64,
    /// Store roots created (a directory; nothing on a bucket).
    pub create: u64,
    /// Checks that the bucket can enforce retention.
    pub ensure_lock_support: u64,
}

/// What a [`MeteredStore`] counted: `store` in the CLI's `--json` output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreUsage {
    /// Calls per kind.
    pub requests: StoreRequests,
    /// The sum of `requests`.
    pub requests_total: u64,
    /// Bytes handed to `put`, whether or not the store kept them (a write
    /// refused because the object exists still sent its bytes).
    pub bytes_up: u64,
    /// Bytes returned by `get` and `get_range`.
    pub bytes_down: u64,
}

impl MeteredStore {
    /// Wrap `inner` with fresh counters.
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        MeteredStore {
            inner,
            meter: Arc::default(),
        }
    }

    /// Wrap `inner`, returning the store to use and its counters.
    pub fn wrap(inner: Arc<dyn ObjectStore>) -> (Arc<dyn ObjectStore>, Arc<StoreMeter>) {
        let store = MeteredStore::new(inner);
        let meter = store.meter();
        (Arc::new(store), meter)
    }

    /// The counters, to read while or after the store is used.
    pub fn meter(&self) -> Arc<StoreMeter> {
        self.meter.clone()
    }
}

fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl StoreMeter {
    /// The counts so far.
    pub fn usage(&self) -> StoreUsage {
        let requests = StoreRequests {
            put: read(&self.put),
            get: read(&self.get),
            get_range: read(&self.get_range),
            head: read(&self.head),
            list: read(&self.list),
            delete: read(&self.delete),
            set_retention: read(&self.set_retention),
            exists: read(&self.exists),
            create: read(&self.create),
            ensure_lock_support: read(&self.ensure_lock_support),
        };
        StoreUsage {
            requests,
            requests_total: requests.kinds().iter().map(|(_, n, _)| n).sum(),
            bytes_up: read(&self.bytes_up),
            bytes_down: read(&self.bytes_down),
        }
    }
}

impl StoreRequests {
    /// (singular, count, plural) per kind, in the order they are printed.
    fn kinds(&self) -> [(&'static str, u64, &'static str); 10] {
        [
            ("put", self.put, "puts"),
            ("get", self.get, "gets"),
            ("range get", self.get_range, "range gets"),
            ("head", self.head, "heads"),
            ("list", self.list, "lists"),
            ("delete", self.delete, "deletes"),
            ("retention set", self.set_retention, "retention sets"),
            ("exists check", self.exists, "exists checks"),
            ("create", self.create, "creates"),
            (
                "lock support check",
                self.ensure_lock_support,
                "lock support checks",
            ),
        ]
    }
}

/// One line for people: `412 requests (310 puts, 80 range gets, ...),
/// 1.20 GiB up, 3.00 KiB down`; kinds that were not used are left out.
impl fmt::Display for StoreUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let noun = if self.requests_total == 1 {
            "request"
        } else {
            "requests"
        };
        write!(f, "{} {noun}", self.requests_total)?;
        let used: Vec<String> = self
            .requests
            .kinds()
            .iter()
            .filter(|(_, n, _)| *n > 0)
            .map(|(one, n, many)| format!("{n} {}", if *n == 1 { one } else { many }))
            .collect();
        if !used.is_empty() {
            write!(f, " ({})", used.join(", "))?;
        }
        write!(
            f,
            ", {} up, {} down",
            binary_size(self.bytes_up),
            binary_size(self.bytes_down)
        )
    }
}

/// `512 B`, `1.50 KiB`, `3.00 GiB`: how every Lifeboat output writes a size.
pub fn binary_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

#[async_trait]
impl ObjectStore for MeteredStore {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn exists(&self) -> Result<bool, StoreError> {
        bump(&self.meter.exists, 1);
        self.inner.exists().await
    }

    async fn create(&self) -> Result<(), StoreError> {
        bump(&self.meter.create, 1);
        self.inner.create().await
    }

    async fn ensure_lock_support(&self) -> Result<(), StoreError> {
        bump(&self.meter.ensure_lock_support, 1);
        self.inner.ensure_lock_support().await
    }

    async fn put(&self, key: &str, data: Bytes, opts: &PutOptions) -> Result<(), StoreError> {
        bump(&self.meter.put, 1);
        bump(&self.meter.bytes_up, data.len() as u64);
        self.inner.put(key, data, opts).await
    }

    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        bump(&self.meter.get, 1);
        let data = self.inner.get(key).await?;
        bump(&self.meter.bytes_down, data.len() as u64);
        Ok(data)
    }

    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Bytes, StoreError> {
        bump(&self.meter.get_range, 1);
        let data = self.inner.get_range(key, offset, len).await?;
        bump(&self.meter.bytes_down, data.len() as u64);
        Ok(data)
    }

    async fn head(&self, key: &str) -> Result<ObjectInfo, StoreError> {
        bump(&self.meter.head, 1);
        self.inner.head(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        bump(&self.meter.list, 1);
        self.inner.list(prefix).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        bump(&self.meter.delete, 1);
        self.inner.delete(key).await
    }

    async fn set_retention(&self, key: &str, retention: Retention) -> Result<(), StoreError> {
        bump(&self.meter.set_retention, 1);
        self.inner.set_retention(key, retention).await
    }

    fn retention_caveat(&self) -> Option<String> {
        self.inner.retention_caveat()
    }

    /// Not counted: only a local directory has temporaries to sweep, and
    /// its sweep is a directory walk, not a billed request.
    async fn remove_stale_temporaries(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.inner.remove_stale_temporaries(before).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{conformance, LockMode, MemoryStore};

    fn store() -> (Arc<dyn ObjectStore>, Arc<StoreMeter>) {
        MeteredStore::wrap(Arc::new(MemoryStore::with_object_lock()))
    }

    #[tokio::test]
    async fn every_kind_of_call_is_counted_with_the_bytes_moved() {
        let (s, meter) = store();
        assert_eq!(meter.usage(), StoreUsage::default());
        let opts = PutOptions::default();
        s.put("data/a", Bytes::from_static(b"hello world"), &opts)
            .await
            .unwrap();
        s.put("data/b", Bytes::from(vec![7u8; 1000]), &opts)
            .await
            .unwrap();
        assert_eq!(s.get("data/a").await.unwrap().as_ref(), b"hello world");
        assert_eq!(s.get_range("data/b", 10, 100).await.unwrap().len(), 100);
        assert_eq!(s.head("data/a").await.unwrap().size, 11);
        assert_eq!(s.list("data/").await.unwrap().len(), 2);
        let until = Utc::now() + chrono::Duration::days(1);
        s.set_retention(
            "data/a",
            Retention {
                mode: LockMode::Governance,
                until,
            },
        )
        .await
        .unwrap();
        s.delete("data/b").await.unwrap();
        assert!(s.exists().await.unwrap());
        s.create().await.unwrap();
        s.ensure_lock_support().await.unwrap();

        let u = meter.usage();
        let expected = StoreRequests {
            put: 2,
            get: 1,
            get_range: 1,
            head: 1,
            list: 1,
            delete: 1,
            set_retention: 1,
            exists: 1,
            create: 1,
            ensure_lock_support: 1,
        };
        assert_eq!(u.requests, expected);
        assert_eq!(u.requests_total, 11);
        assert_eq!(u.bytes_up, 1011);
        assert_eq!(u.bytes_down, 111);
    }

    #[tokio::test]
    async fn failed_calls_count_as_requests_but_read_nothing() {
        let (s, meter) = store();
        let opts = PutOptions::default();
        s.put("k", Bytes::from_static(b"12345"), &opts)
            .await
            .unwrap();
        // Objects are created once: the second write is refused, but its
        // bytes went up.
        assert!(s
            .put("k", Bytes::from_static(b"12345"), &opts)
            .await
            .unwrap_err()
            .is_already_exists());
        assert!(s.get("missing").await.is_err());
        assert!(s.get_range("k", 3, 10).await.is_err());
        let u = meter.usage();
        assert_eq!(
            (u.requests.put, u.requests.get, u.requests.get_range),
            (2, 1, 1)
        );
        assert_eq!((u.bytes_up, u.bytes_down), (10, 0));
    }

    #[tokio::test]
    async fn the_wrapper_forwards_unchanged() {
        let inner = MemoryStore::new();
        let (s, _) = MeteredStore::wrap(Arc::new(inner.clone()));
        assert_eq!(s.location(), inner.location());
        s.put("x", Bytes::from_static(b"abc"), &PutOptions::default())
            .await
            .unwrap();
        assert_eq!(inner.get("x").await.unwrap().as_ref(), b"abc");
        assert_eq!(s.retention_caveat(), inner.retention_caveat());
    }

    #[tokio::test]
    async fn the_conformance_suite_passes_through_the_wrapper() {
        let (s, meter) = MeteredStore::wrap(Arc::new(MemoryStore::with_object_lock()));
        let caps = conformance::Capabilities {
            retention: conformance::RetentionSupport::Enforced,
            ..conformance::Capabilities::default()
        };
        conformance::run(s, &caps).await.unwrap();
        let u = meter.usage();
        assert!(u.requests.put > 0 && u.requests.list > 0 && u.bytes_up > 0);
    }

    #[test]
    fn the_human_line_names_the_kinds_used() {
        let u = StoreUsage {
            requests: StoreRequests {
                put: 310,
                get: 1,
                get_range: 80,
                list: 12,
                ..Default::default()
            },
            requests_total: 403,
            bytes_up: 3 << 29,
            bytes_down: 3 << 10,
        };
        assert_eq!(
            u.to_string(),
            "403 requests (310 puts, 1 get, 80 range gets, 12 lists), 1.50 GiB up, 3.00 KiB down"
        );
        assert_eq!(
            StoreUsage::default().to_string(),
            "0 requests, 0 B up, 0 B down"
        );
    }

    #[test]
    fn the_json_names_every_kind() {
        let v = serde_json::to_value(StoreUsage::default()).unwrap();
        let kinds = v["requests"].as_object().unwrap();
        assert_eq!(kinds.len(), 10);
        assert!(v["bytes_up"].is_u64() && v["bytes_down"].is_u64() && v["requests_total"].is_u64());
    }
}
