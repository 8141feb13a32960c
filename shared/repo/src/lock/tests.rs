use super::*;
use crate::{Credential, InitOptions, KdfParams};
use async_trait::async_trait;
use lifeboat_store::{MemoryStore, ObjectInfo, Retention};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A memory store that can refuse writes under `locks/` and report objects
/// as written earlier than they were (the store's clock, as other readers see it).
#[derive(Debug, Default)]
struct TestStore {
    inner: MemoryStore,
    fail_lock_writes: AtomicBool,
    aged: Mutex<HashMap<String, Duration>>,
}

impl TestStore {
    fn age(&self, key: &str, by: Duration) {
        self.aged.lock().unwrap().insert(key.to_string(), by);
    }

    fn shifted(&self, mut o: ObjectInfo) -> ObjectInfo {
        if let Some(by) = self.aged.lock().unwrap().get(&o.key) {
            o.last_modified = o.last_modified.map(|t| t - *by);
        }
        o
    }
}

#[async_trait]
impl ObjectStore for TestStore {
    fn location(&self) -> String {
        "test".into()
    }
    async fn exists(&self) -> Result<bool, StoreError> {
        self.inner.exists().await
    }
    async fn create(&self) -> Result<(), StoreError> {
        self.inner.create().await
    }
    async fn ensure_lock_support(&self) -> Result<(), StoreError> {
        self.inner.ensure_lock_support().await
    }
    async fn put(&self, key: &str, data: Bytes, opts: &PutOptions) -> Result<(), StoreError> {
        if key.starts_with("locks/") && self.fail_lock_writes.load(Ordering::SeqCst) {
            return Err(StoreError::Transient {
                location: "test".into(),
                key: key.into(),
                detail: "refusing lock writes".into(),
            });
        }
        self.aged.lock().unwrap().remove(key);
        self.inner.put(key, data, opts).await
    }
    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        self.inner.get(key).await
    }
    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Bytes, StoreError> {
        self.inner.get_range(key, offset, len).await
    }
    async fn head(&self, key: &str) -> Result<ObjectInfo, StoreError> {
        Ok(self.shifted(self.inner.head(key).await?))
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let listed = self.inner.list(prefix).await?;
        Ok(listed.into_iter().map(|o| self.shifted(o)).collect())
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }
    async fn set_retention(&self, key: &str, retention: Retention) -> Result<(), StoreError> {
        self.inner.set_retention(key, retention).await
    }
}

async fn repo_on(store: Arc<dyn ObjectStore>) -> Repository {
    let cred = Credential::Passphrase("pw".into());
    let opts = InitOptions {
        kdf: Some(KdfParams::weak_for_tests(&cred).unwrap()),
        ..InitOptions::default()
    };
    Repository::init(store, &cred, opts).await.unwrap()
}

async fn test_repo() -> (Arc<TestStore>, Repository) {
    let store = Arc::new(TestStore::default());
    let repo = repo_on(store.clone()).await;
    (store, repo)
}

fn record(kind: LockKind, refreshed: DateTime<Utc>) -> LockRecord {
    LockRecord {
        kind,
        operation: "planted".into(),
        hostname: "elsewhere".into(),
        pid: 1,
        created: refreshed,
        refreshed,
    }
}

async fn plant(store: &dyn ObjectStore, key: &str, body: &[u8]) {
    store
        .put(key, Bytes::copy_from_slice(body), &PutOptions::default())
        .await
        .unwrap();
}

async fn plant_lock(store: &dyn ObjectStore, key: &str, rec: &LockRecord) {
    plant(store, key, &serde_json::to_vec(rec).unwrap()).await;
}

const PLANTED: &str = "locks/00000000000000000000000000000000000000000000000000000000000000aa";

#[tokio::test]
async fn shared_locks_coexist_and_exclusive_waits() {
    let store: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new());
    let repo = repo_on(store).await;
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

#[tokio::test]
async fn a_lock_dated_in_the_future_blocks_nobody_and_unlock_removes_it() {
    let (store, repo) = test_repo().await;
    let year_2999 = DateTime::parse_from_rfc3339("2999-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    plant_lock(
        store.as_ref(),
        PLANTED,
        &record(LockKind::Exclusive, year_2999),
    )
    .await;
    let b = repo.lock(LockKind::Shared, "backup").await.unwrap();
    b.release().await.unwrap();
    assert_eq!(repo.unlock(false).await.unwrap(), 1);
    assert!(repo.lock_entries().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_lock_that_does_not_parse_blocks_nobody_and_unlock_removes_it() {
    let (store, repo) = test_repo().await;
    plant(store.as_ref(), PLANTED, b"\x00 not a lock").await;
    let p = repo.lock(LockKind::Exclusive, "prune").await.unwrap();
    p.release().await.unwrap();
    let entries = repo.lock_entries().await.unwrap();
    assert!(matches!(
        entries[0].status(Utc::now()),
        LockStatus::Untrusted(ref r) if r.contains("does not parse")
    ));
    assert_eq!(repo.unlock(false).await.unwrap(), 1);
    assert!(repo.lock_entries().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_lock_the_store_wrote_long_ago_is_stale_whatever_it_claims() {
    let (store, repo) = test_repo().await;
    // The writer claims a refresh just now, but the store last wrote it 45 min ago.
    plant_lock(
        store.as_ref(),
        PLANTED,
        &record(LockKind::Exclusive, Utc::now()),
    )
    .await;
    store.age(PLANTED, Duration::minutes(45));
    let b = repo.lock(LockKind::Shared, "backup").await.unwrap();
    b.release().await.unwrap();
    assert_eq!(repo.unlock(false).await.unwrap(), 1);
}

#[tokio::test]
async fn a_lock_the_store_wrote_just_now_holds_although_its_writer_clock_is_behind() {
    let (store, repo) = test_repo().await;
    // The backup's host clock is 45 min behind: its `refreshed` looks stale,
    // but the store wrote the lock a moment ago.
    plant_lock(
        store.as_ref(),
        PLANTED,
        &record(LockKind::Shared, Utc::now() - Duration::minutes(45)),
    )
    .await;
    let err = repo.lock(LockKind::Exclusive, "prune").await.unwrap_err();
    assert!(matches!(err, RepoError::Locked(_)), "{err}");
    assert_eq!(repo.unlock(false).await.unwrap(), 0);
    assert_eq!(repo.lock_entries().await.unwrap().len(), 1);
}

#[test]
fn status_is_judged_from_the_store_time() {
    let now = Utc::now();
    let entry = |refreshed: DateTime<Utc>, lm: Option<DateTime<Utc>>| LockEntry {
        key: PLANTED.into(),
        record: Ok(record(LockKind::Shared, refreshed)),
        last_modified: lm,
    };
    let m = Duration::minutes;
    assert_eq!(entry(now, Some(now - m(10))).status(now), LockStatus::Fresh);
    assert_eq!(
        entry(now - m(31), Some(now - m(31))).status(now),
        LockStatus::Stale
    );
    // It claims a refresh long after the store last wrote it.
    assert!(matches!(
        entry(now, Some(now - m(45))).status(now),
        LockStatus::Untrusted(_)
    ));
    assert_eq!(
        entry(now - m(60), Some(now - m(1))).status(now),
        LockStatus::Fresh
    );
    // Dated by the store in the future (a local file with a touched mtime).
    assert!(matches!(
        entry(now, Some(now + m(60))).status(now),
        LockStatus::Untrusted(_)
    ));
    // A store without times: the writer's clock, but never the future.
    assert_eq!(entry(now - m(5), None).status(now), LockStatus::Fresh);
    assert_eq!(entry(now - m(40), None).status(now), LockStatus::Stale);
    assert!(matches!(
        entry(now + m(600), None).status(now),
        LockStatus::Untrusted(_)
    ));
}

#[tokio::test(start_paused = true)]
async fn a_lock_that_keeps_being_refreshed_stays_held_past_the_stale_time() {
    let (_store, repo) = test_repo().await;
    let guard = repo.lock(LockKind::Shared, "backup").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(40 * 60)).await;
    guard.handle().ensure_held().await.unwrap();
    guard.release().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_lock_not_refreshed_for_half_the_stale_time_is_no_longer_held() {
    let (store, repo) = test_repo().await;
    let guard = repo.lock(LockKind::Shared, "backup").await.unwrap();
    let handle = guard.handle();
    handle.ensure_held().await.unwrap();
    store.fail_lock_writes.store(true, Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_secs(14 * 60)).await;
    // Refreshes failed, but not for long enough to matter yet.
    handle.ensure_held().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(2 * 60)).await;
    let err = handle.ensure_held().await.unwrap_err();
    assert!(matches!(err, RepoError::LockLost { .. }), "{err}");
    assert!(
        err.to_string().contains("not refreshed for 16 min"),
        "{err}"
    );
    // Refreshes that work again do not make it trustworthy again: a prune
    // may have come and gone in the gap.
    store.fail_lock_writes.store(false, Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_secs(10 * 60)).await;
    assert!(handle.ensure_held().await.is_err());
    guard.release().await.unwrap();
    assert!(repo.lock_entries().await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_removed_lock_is_no_longer_held_and_is_not_written_again() {
    let (store, repo) = test_repo().await;
    let guard = repo.lock(LockKind::Shared, "backup").await.unwrap();
    let handle = guard.handle();
    store.delete(handle.key()).await.unwrap();
    let err = handle.ensure_held().await.unwrap_err();
    assert!(err.to_string().contains("removed"), "{err}");
    tokio::time::sleep(std::time::Duration::from_secs(11 * 60)).await;
    assert!(repo.lock_entries().await.unwrap().is_empty());
    guard.release().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_exclusive_lock_that_appeared_while_held_fails_the_check() {
    let (store, repo) = test_repo().await;
    let guard = repo.lock(LockKind::Shared, "backup").await.unwrap();
    let handle = guard.handle();
    // A prune that judged the backup's lock stale (or ran after `unlock --all`).
    plant_lock(
        store.as_ref(),
        PLANTED,
        &record(LockKind::Exclusive, Utc::now()),
    )
    .await;
    let err = handle.ensure_held().await.unwrap_err();
    assert!(err.to_string().contains("an exclusive lock"), "{err}");
    guard.release().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_exclusive_lock_that_backs_off_again_does_not_fail_the_check() {
    let (store, repo) = test_repo().await;
    let guard = repo.lock(LockKind::Shared, "backup").await.unwrap();
    // A prune trying to lock: it writes its lock, sees the backup's and removes its own.
    plant_lock(
        store.as_ref(),
        PLANTED,
        &record(LockKind::Exclusive, Utc::now()),
    )
    .await;
    let contender = store.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        contender.delete(PLANTED).await.unwrap();
    });
    guard.handle().ensure_held().await.unwrap();
    guard.release().await.unwrap();
}

#[tokio::test]
async fn with_lock_releases_the_lock_when_the_operation_fails() {
    let (_store, repo) = test_repo().await;
    let r: Result<(), RepoError> = repo
        .with_lock(
            LockKind::Shared,
            "backup",
            std::time::Duration::ZERO,
            |_lock| async { Err(RepoError::InvalidOption("boom".into())) },
        )
        .await;
    assert!(r.is_err());
    assert!(repo.lock_entries().await.unwrap().is_empty());
}

#[tokio::test]
async fn with_lock_releases_the_lock_when_the_operation_panics() {
    let (_store, repo) = test_repo().await;
    let panicking = {
        let repo = repo.clone();
        tokio::spawn(async move {
            repo.with_lock(
                LockKind::Exclusive,
                "prune",
                std::time::Duration::ZERO,
                |_lock| async {
                    if std::hint::black_box(true) {
                        panic!("injected panic in the operation");
                    }
                    Ok::<u8, RepoError>(0)
                },
            )
            .await
        })
    };
    assert!(panicking.await.unwrap_err().is_panic());
    assert!(repo.lock_entries().await.unwrap().is_empty());
    // And the next backup is not blocked.
    let b = repo.lock(LockKind::Shared, "backup").await.unwrap();
    b.release().await.unwrap();
}

#[tokio::test]
async fn with_lock_returns_the_value_and_releases() {
    let (_store, repo) = test_repo().await;
    let v = repo
        .with_lock(
            LockKind::Shared,
            "backup",
            std::time::Duration::ZERO,
            |lock| async move {
                lock.ensure_held().await?;
                Ok::<_, RepoError>(7)
            },
        )
        .await
        .unwrap();
    assert_eq!(v, 7);
    assert!(repo.lock_entries().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_cancelled_operation_leaves_no_lock() {
    let (_store, repo) = test_repo().await;
    let op = repo.with_lock(
        LockKind::Shared,
        "backup",
        std::time::Duration::ZERO,
        |_lock| async {
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            Ok::<(), RepoError>(())
        },
    );
    // A timeout drops the operation's future while it holds the lock.
    let timed_out = tokio::time::timeout(std::time::Duration::from_millis(200), op).await;
    assert!(timed_out.is_err());
    for _ in 0..50 {
        if repo.lock_entries().await.unwrap().is_empty() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the lock of the cancelled operation is still there");
}
