//! One conformance suite, written once, that every [`ObjectStore`] passes:
//! the local directory, memory, S3 (moto), Azure Blob (Azurite) and Google
//! Cloud Storage (its emulator). A new store is done when [`run`] passes
//! against it.
//!
//! The suite needs a fresh, empty store (a new bucket, container or prefix)
//! and says what the backend can show about retention through
//! [`Capabilities`]: emulators record retention without enforcing it, so
//! enforcement is checked only where the backend really enforces it.
//! Throttling, 5xx and permission errors come from a fault-injecting proxy in
//! the tests of each HTTP store, not from here.

use crate::{LockMode, ObjectStore, PutOptions, Retention, StoreError};
use bytes::Bytes;
use chrono::{Duration, SubsecRound, Utc};
use std::sync::Arc;

/// What a store under test does with retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionSupport {
    /// No retention: writes asking for it and [`ObjectStore::set_retention`]
    /// fail with [`StoreError::Unsupported`] (a local directory).
    None,
    /// Retention is stored and reported, but deletes and shortening are not
    /// refused by the backend itself (the emulators).
    Recorded,
    /// Retention is stored, reported and enforced (S3 on moto, memory).
    Enforced,
}

/// What the suite may expect of a store.
#[derive(Debug, Clone)]
pub struct Capabilities {
    pub retention: RetentionSupport,
    /// How many objects the listing test writes: more than one page of the
    /// backend's listing (1000 on S3 and GCS, 5000 on Azure).
    pub many_objects: usize,
    /// Size of the large-object test, in MiB.
    pub large_object_mib: usize,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            retention: RetentionSupport::None,
            many_objects: 1100,
            large_object_mib: 24,
        }
    }
}

/// Run every check against `store`, which must be empty. Returns the names
/// of the checks that passed, or every failure with its check's name.
pub async fn run(
    store: Arc<dyn ObjectStore>,
    caps: &Capabilities,
) -> Result<Vec<&'static str>, Vec<String>> {
    let mut passed = Vec::new();
    let mut failed = Vec::new();
    let checks: Vec<(&'static str, Check)> = vec![
        ("an_empty_store_lists_nothing", empty_store),
        ("objects_read_back_whole_and_by_range", read_back),
        ("a_missing_object_is_not_found", missing),
        (
            "objects_are_never_overwritten_but_locks_are",
            never_overwritten,
        ),
        (
            "concurrent_creates_of_one_key_leave_one_winner",
            concurrent_creates,
        ),
        ("listing_is_by_prefix_and_complete", listing),
        ("listing_crosses_pages", many_objects),
        ("a_large_object_round_trips", large_object),
        ("delete_removes_and_a_missing_delete_succeeds", delete),
        (
            "retention_is_written_and_extended_never_shortened",
            retention,
        ),
    ];
    for (name, check) in checks {
        match check(store.clone(), caps.clone()).await {
            Ok(()) => passed.push(name),
            Err(why) => failed.push(format!("{name}: {why}")),
        }
    }
    if failed.is_empty() {
        Ok(passed)
    } else {
        Err(failed)
    }
}

type Check = fn(
    Arc<dyn ObjectStore>,
    Capabilities,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>;

macro_rules! check {
    ($name:ident, |$store:ident, $caps:ident| $body:block) => {
        fn $name(
            $store: Arc<dyn ObjectStore>,
            $caps: Capabilities,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>> {
            Box::pin(async move {
                let _ = &$caps;
                $body
            })
        }
    };
}

fn ensure(cond: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(what())
    }
}

fn err(what: &str, e: StoreError) -> String {
    format!("{what}: {e}")
}

/// Bytes that differ for every `seed`, not all alike (so compression and
/// ranges are exercised honestly).
fn content(seed: u64, len: usize) -> Bytes {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

async fn put(store: &dyn ObjectStore, key: &str, data: Bytes) -> Result<(), String> {
    store
        .put(key, data, &PutOptions::default())
        .await
        .map_err(|e| err(&format!("put {key}"), e))
}

check!(empty_store, |store, caps| {
    let all = store.list("").await.map_err(|e| err("list", e))?;
    ensure(all.is_empty(), || {
        format!("a fresh store lists {} objects", all.len())
    })?;
    ensure(store.exists().await.map_err(|e| err("exists", e))?, || {
        "exists() is false for the store under test".into()
    })
});

check!(read_back, |store, caps| {
    let key = "data/ab/read-back";
    let data = content(1, 100_000);
    put(&*store, key, data.clone()).await?;
    let got = store.get(key).await.map_err(|e| err("get", e))?;
    ensure(got == data, || "get returned other bytes".into())?;
    let info = store.head(key).await.map_err(|e| err("head", e))?;
    ensure(info.size == 100_000, || {
        format!("head says {} bytes", info.size)
    })?;
    ensure(info.key == key, || {
        format!("head names {:?}, not {key:?}", info.key)
    })?;
    let now = Utc::now();
    ensure(
        info.last_modified
            .is_some_and(|t| (t - now).num_hours().abs() < 24),
        || {
            format!(
                "head's last-modified {:?} is not about now",
                info.last_modified
            )
        },
    )?;
    for (offset, len) in [(0u64, 1u64), (4096, 8192), (99_999, 1), (12_345, 87_655)] {
        let got = store
            .get_range(key, offset, len)
            .await
            .map_err(|e| err(&format!("get_range {offset}+{len}"), e))?;
        let want = data.slice(offset as usize..(offset + len) as usize);
        ensure(got == want, || {
            format!("get_range {offset}+{len} returned other bytes")
        })?;
    }
    match store.get_range(key, 99_000, 2_000).await {
        Ok(b) => Err(format!(
            "a range past the end returned {} bytes instead of an error",
            b.len()
        )),
        Err(_) => Ok(()),
    }?;
    let empty = store
        .get_range(key, 10, 0)
        .await
        .map_err(|e| err("get_range of 0 bytes", e))?;
    ensure(empty.is_empty(), || "an empty range returned bytes".into())
});

check!(missing, |store, caps| {
    let key = "snapshots/does-not-exist";
    let not_found = |what: &str, r: Result<(), StoreError>| match r {
        Err(e) if e.is_not_found() => ensure(e.to_string().contains("does-not-exist"), || {
            format!("{what}: the error does not name the key: {e}")
        }),
        Err(e) => Err(format!("{what}: not a not-found error: {e}")),
        Ok(()) => Err(format!("{what} of a missing object succeeded")),
    };
    not_found("get", store.get(key).await.map(|_| ()))?;
    not_found("head", store.head(key).await.map(|_| ()))?;
    not_found("get_range", store.get_range(key, 0, 10).await.map(|_| ()))
});

check!(never_overwritten, |store, caps| {
    let key = "index/never-overwritten";
    put(&*store, key, Bytes::from_static(b"first")).await?;
    match store
        .put(key, Bytes::from_static(b"second"), &PutOptions::default())
        .await
    {
        Err(e) if e.is_already_exists() => ensure(e.to_string().contains(key), || {
            format!("the error does not name the key: {e}")
        })?,
        Err(e) => return Err(format!("a second create failed otherwise: {e}")),
        Ok(()) => return Err("a second create of the same key succeeded".into()),
    }
    let got = store.get(key).await.map_err(|e| err("get", e))?;
    ensure(got == "first", || {
        format!("the object now holds {got:?}, not the first write")
    })?;
    let lock = "locks/conformance";
    put(&*store, lock, Bytes::from_static(b"one")).await?;
    put(&*store, lock, Bytes::from_static(b"two"))
        .await
        .map_err(|e| format!("a lock record was not refreshed in place: {e}"))?;
    let got = store.get(lock).await.map_err(|e| err("get lock", e))?;
    ensure(got == "two", || {
        format!("the lock holds {got:?}, not \"two\"")
    })
});

check!(concurrent_creates, |store, caps| {
    let key = "snapshots/contended";
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8u64 {
        let store = store.clone();
        tasks.spawn(async move {
            let data = content(100 + i, 50_000);
            let r = store.put(key, data.clone(), &PutOptions::default()).await;
            (data, r)
        });
    }
    let mut winners = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (data, r) = joined.map_err(|e| format!("a writer task failed: {e}"))?;
        match r {
            Ok(()) => winners.push(data),
            Err(e) if e.is_already_exists() => {}
            Err(e) => return Err(format!("a concurrent create failed otherwise: {e}")),
        }
    }
    ensure(winners.len() == 1, || {
        format!("{} of 8 concurrent creates succeeded", winners.len())
    })?;
    let got = store.get(key).await.map_err(|e| err("get", e))?;
    ensure(winners.first() == Some(&got), || {
        "the stored object is not the winner's".into()
    })
});

check!(listing, |store, caps| {
    let keys = [
        "keys/aa",
        "keys/bb",
        "keysx/cc",
        "packs/00/0011",
        "packs/01/0122",
    ];
    for (i, k) in keys.iter().enumerate() {
        put(&*store, k, content(200 + i as u64, 10 + i)).await?;
    }
    let mut under_keys: Vec<_> = store
        .list("keys/")
        .await
        .map_err(|e| err("list keys/", e))?
        .into_iter()
        .map(|o| (o.key, o.size))
        .collect();
    under_keys.sort();
    ensure(
        under_keys == vec![("keys/aa".to_string(), 10), ("keys/bb".to_string(), 11)],
        || format!("list(\"keys/\") gave {under_keys:?}"),
    )?;
    let mut data: Vec<_> = store
        .list("packs/")
        .await
        .map_err(|e| err("list packs/", e))?
        .into_iter()
        .map(|o| o.key)
        .collect();
    data.sort();
    ensure(data == ["packs/00/0011", "packs/01/0122"], || {
        format!("list(\"packs/\") gave {data:?}")
    })
});

check!(many_objects, |store, caps| {
    let n = caps.many_objects;
    let mut tasks = tokio::task::JoinSet::new();
    let sem = Arc::new(tokio::sync::Semaphore::new(32));
    for i in 0..n {
        let (store, sem) = (store.clone(), sem.clone());
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let key = format!("many/{i:06}");
            store
                .put(&key, Bytes::from(key.clone()), &PutOptions::default())
                .await
                .map_err(|e| err(&format!("put {key}"), e))
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.map_err(|e| format!("a writer task failed: {e}"))??;
    }
    let listed = store.list("many/").await.map_err(|e| err("list", e))?;
    let mut keys: Vec<_> = listed.iter().map(|o| o.key.clone()).collect();
    keys.sort();
    keys.dedup();
    ensure(keys.len() == n && listed.len() == n, || {
        format!(
            "{n} objects written, {} listed ({} distinct)",
            listed.len(),
            keys.len()
        )
    })
});

check!(large_object, |store, caps| {
    let len = caps.large_object_mib << 20;
    let key = "data/ff/large";
    let data = content(300, len + 12_345);
    put(&*store, key, data.clone()).await?;
    let info = store.head(key).await.map_err(|e| err("head", e))?;
    ensure(info.size == data.len() as u64, || {
        format!("head says {} bytes of {}", info.size, data.len())
    })?;
    let tail = store
        .get_range(key, len as u64, 12_345)
        .await
        .map_err(|e| err("get_range of the tail", e))?;
    ensure(tail == data.slice(len..), || {
        "the tail read back differs".into()
    })?;
    let got = store.get(key).await.map_err(|e| err("get", e))?;
    ensure(got == data, || "the object read back differs".into())
});

check!(delete, |store, caps| {
    let key = "reports/to-delete";
    put(&*store, key, Bytes::from_static(b"x")).await?;
    store.delete(key).await.map_err(|e| err("delete", e))?;
    match store.get(key).await {
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(format!("get after delete: {e}")),
        Ok(_) => return Err("the object is still there after delete".into()),
    }
    let listed = store.list("reports/").await.map_err(|e| err("list", e))?;
    ensure(listed.iter().all(|o| o.key != key), || {
        "a deleted object is still listed".into()
    })?;
    store
        .delete("reports/never-written")
        .await
        .map_err(|e| err("delete of a missing object", e))?;
    // A deleted key may be created again (a content-addressed rewrite).
    put(&*store, key, Bytes::from_static(b"y")).await
});

check!(retention, |store, caps| {
    let key = "snapshots/locked";
    let until = (Utc::now() + Duration::days(1)).trunc_subsecs(0);
    let lock = Retention {
        mode: LockMode::Governance,
        until,
    };
    let with_lock = PutOptions {
        retention: Some(lock),
    };
    if caps.retention == RetentionSupport::None {
        return match store.ensure_lock_support().await {
            Err(StoreError::Unsupported { .. }) => {
                match store.put(key, Bytes::from_static(b"x"), &with_lock).await {
                    Err(StoreError::Unsupported { .. }) => Ok(()),
                    other => Err(format!(
                        "a locked write to a store without retention gave {other:?}"
                    )),
                }
            }
            other => Err(format!(
                "ensure_lock_support on a store without retention gave {other:?}"
            )),
        };
    }
    store
        .ensure_lock_support()
        .await
        .map_err(|e| err("ensure_lock_support", e))?;
    store
        .put(key, Bytes::from_static(b"x"), &with_lock)
        .await
        .map_err(|e| err("a locked write", e))?;
    let seen = store.head(key).await.map_err(|e| err("head", e))?.retention;
    ensure(seen.is_some_and(|r| r.until >= until), || {
        format!("head reports retention {seen:?}, written {lock:?}")
    })?;
    let longer = Retention {
        until: until + Duration::days(1),
        ..lock
    };
    store
        .set_retention(key, longer)
        .await
        .map_err(|e| err("extending retention", e))?;
    let seen = store.head(key).await.map_err(|e| err("head", e))?.retention;
    ensure(seen.is_some_and(|r| r.until >= longer.until), || {
        format!("after extending, head reports {seen:?}")
    })?;
    // Asking for less than the current lock either does nothing or is
    // refused as locked; either way the lock stays.
    match store.set_retention(key, lock).await {
        Ok(()) | Err(StoreError::Locked { .. }) => {}
        Err(e) => return Err(err("asking for a shorter retention", e)),
    }
    let seen = store.head(key).await.map_err(|e| err("head", e))?.retention;
    ensure(seen.is_some_and(|r| r.until >= longer.until), || {
        format!("a refused shortening changed the retention to {seen:?}")
    })?;
    if caps.retention == RetentionSupport::Enforced {
        match store.delete(key).await {
            Err(StoreError::Locked { .. }) => {}
            other => return Err(format!("deleting a locked object gave {other:?}")),
        }
        store
            .get(key)
            .await
            .map_err(|e| err("get after a refused delete", e))?;
    }
    Ok(())
});

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{LocalStore, MemoryStore};

    #[tokio::test]
    async fn the_memory_store_conforms() {
        let caps = Capabilities {
            retention: RetentionSupport::Enforced,
            ..Capabilities::default()
        };
        run(Arc::new(MemoryStore::with_object_lock()), &caps)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn the_local_store_conforms() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().join("repo"));
        store.create().await.unwrap();
        run(Arc::new(store), &Capabilities::default())
            .await
            .unwrap();
    }

    /// The suite can fail: a store that overwrites is caught.
    #[tokio::test]
    async fn a_store_that_overwrites_fails_the_suite() {
        #[derive(Debug)]
        struct Overwriting(MemoryStore);
        #[async_trait::async_trait]
        impl ObjectStore for Overwriting {
            fn location(&self) -> String {
                self.0.location()
            }
            async fn exists(&self) -> Result<bool, StoreError> {
                self.0.exists().await
            }
            async fn create(&self) -> Result<(), StoreError> {
                self.0.create().await
            }
            async fn ensure_lock_support(&self) -> Result<(), StoreError> {
                self.0.ensure_lock_support().await
            }
            async fn put(&self, key: &str, data: Bytes, o: &PutOptions) -> Result<(), StoreError> {
                self.0.force_remove(key);
                self.0.put(key, data, o).await
            }
            async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
                self.0.get(key).await
            }
            async fn get_range(&self, key: &str, o: u64, l: u64) -> Result<Bytes, StoreError> {
                self.0.get_range(key, o, l).await
            }
            async fn head(&self, key: &str) -> Result<crate::ObjectInfo, StoreError> {
                self.0.head(key).await
            }
            async fn list(&self, prefix: &str) -> Result<Vec<crate::ObjectInfo>, StoreError> {
                self.0.list(prefix).await
            }
            async fn delete(&self, key: &str) -> Result<(), StoreError> {
                self.0.delete(key).await
            }
            async fn set_retention(&self, key: &str, r: Retention) -> Result<(), StoreError> {
                self.0.set_retention(key, r).await
            }
        }
        let caps = Capabilities {
            many_objects: 10,
            large_object_mib: 1,
            ..Capabilities::default()
        };
        let failed = run(Arc::new(Overwriting(MemoryStore::new())), &caps)
            .await
            .unwrap_err();
        assert!(
            failed
                .iter()
                .any(|f| f.starts_with("objects_are_never_overwritten")),
            "{failed:?}"
        );
        assert!(
            failed.iter().any(|f| f.starts_with("concurrent_creates")),
            "{failed:?}"
        );
    }
}
