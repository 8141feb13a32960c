//! Operations and their repository locks: released on every path, and
//! checked before a snapshot is saved.
#![allow(clippy::unwrap_used, clippy::panic)]

use async_trait::async_trait;
use bytes::Bytes;
use chrono::Utc;
use lifeboat_ops::backup::{backup, BackupOptions, ParentChoice};
use lifeboat_ops::cluster::{commit_cluster, ExportedState};
use lifeboat_ops::forget::RetentionPolicy;
use lifeboat_ops::prune::{prune, PruneOptions};
use lifeboat_ops::volume::{copy_range, ByteRange, CopyOptions};
use lifeboat_ops::{OpsError, Progress};
use lifeboat_repo::{
    ClusterSource, Credential, FileKind, Id, InitOptions, KdfParams, LockKind, LockRecord,
    RepoError, Repository, SnapshotSummary,
};
use lifeboat_store::{MemoryStore, ObjectInfo, ObjectStore, PutOptions, Retention, StoreError};
use lifeboat_volume::ImageFile;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// A memory store with faults to order.
#[derive(Debug, Default)]
struct Faulty {
    inner: MemoryStore,
    /// Writes under `data/` fail (a full disk).
    fail_packs: AtomicBool,
    /// Listing `locks/` for the n-th time (from 1) plants a prune's exclusive lock first.
    plant_exclusive_at_list: Option<usize>,
    /// `data/` listings panic (a bug in prune).
    panic_listing_packs: bool,
    lock_lists: AtomicUsize,
}

const PLANTED: &str = "locks/00000000000000000000000000000000000000000000000000000000000000ee";

fn transient(key: &str) -> StoreError {
    StoreError::Transient {
        location: "faulty".into(),
        key: key.into(),
        detail: "injected failure".into(),
    }
}

#[async_trait]
impl ObjectStore for Faulty {
    fn location(&self) -> String {
        "faulty".into()
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
        if key.starts_with("data/") && self.fail_packs.load(Ordering::SeqCst) {
            return Err(transient(key));
        }
        self.inner.put(key, data, opts).await
    }
    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        self.inner.get(key).await
    }
    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Bytes, StoreError> {
        self.inner.get_range(key, offset, len).await
    }
    async fn head(&self, key: &str) -> Result<ObjectInfo, StoreError> {
        self.inner.head(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        if prefix.starts_with("locks/") {
            let n = self.lock_lists.fetch_add(1, Ordering::SeqCst) + 1;
            if self.plant_exclusive_at_list == Some(n) {
                let now = Utc::now();
                let rec = LockRecord {
                    kind: LockKind::Exclusive,
                    operation: "prune".into(),
                    hostname: "elsewhere".into(),
                    pid: 7,
                    created: now,
                    refreshed: now,
                };
                let body = Bytes::from(serde_json::to_vec(&rec).unwrap());
                self.inner
                    .put(PLANTED, body, &PutOptions::default())
                    .await?;
            }
        }
        if prefix.starts_with("data/") && self.panic_listing_packs {
            panic!("injected panic while listing packs");
        }
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }
    async fn set_retention(&self, key: &str, retention: Retention) -> Result<(), StoreError> {
        self.inner.set_retention(key, retention).await
    }
}

async fn repo_on(store: Arc<Faulty>) -> Repository {
    let cred = Credential::Passphrase("pw".into());
    let opts = InitOptions {
        kdf: Some(KdfParams::weak_for_tests(&cred).unwrap()),
        ..InitOptions::default()
    };
    Repository::init(store, &cred, opts).await.unwrap()
}

/// Locks other than the planted prune's.
async fn own_locks(repo: &Repository) -> Vec<String> {
    let entries = repo.lock_entries().await.unwrap();
    entries
        .into_iter()
        .map(|e| e.key)
        .filter(|k| k != PLANTED)
        .collect()
}

fn source_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), b"alpha\n").unwrap();
    std::fs::write(dir.path().join("b.bin"), vec![7u8; 300_000]).unwrap();
    dir
}

fn backup_opts(dir: &tempfile::TempDir, parent: ParentChoice) -> BackupOptions {
    BackupOptions {
        paths: vec![dir.path().to_path_buf()],
        parent,
        ..Default::default()
    }
}

fn progress() -> Arc<Progress> {
    Arc::new(Progress::default())
}

#[tokio::test]
async fn a_backup_with_a_junk_parent_leaves_no_lock() {
    let store = Arc::new(Faulty::default());
    let repo = repo_on(store.clone()).await;
    let junk = Id([1; 32]);
    store
        .put(
            &FileKind::Snapshot.key(&junk),
            Bytes::from_static(b"junk"),
            &PutOptions::default(),
        )
        .await
        .unwrap();
    let dir = source_dir();
    let err = backup(
        &repo,
        backup_opts(&dir, ParentChoice::Snapshot(junk)),
        progress(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("snapshot"), "{err}");
    assert!(own_locks(&repo).await.is_empty());
    // A prune is not blocked by it.
    let opts = PruneOptions {
        policy: RetentionPolicy {
            last: 1,
            ..Default::default()
        },
        ..Default::default()
    };
    store.inner.force_remove(&FileKind::Snapshot.key(&junk));
    prune(&repo, &opts, progress()).await.unwrap();
}

#[tokio::test]
async fn a_backup_to_a_store_that_fails_writes_leaves_no_lock() {
    let store = Arc::new(Faulty::default());
    store.fail_packs.store(true, Ordering::SeqCst);
    let repo = repo_on(store.clone()).await;
    let dir = source_dir();
    let err = backup(&repo, backup_opts(&dir, ParentChoice::None), progress())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    assert!(own_locks(&repo).await.is_empty());
}

#[tokio::test]
async fn a_volume_copy_to_a_store_that_fails_writes_leaves_no_lock() {
    let store = Arc::new(Faulty::default());
    store.fail_packs.store(true, Ordering::SeqCst);
    let repo = repo_on(store.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.img");
    let data: Vec<u8> = (0..(4u32 << 20)).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    let img = ImageFile::open(&path, 4096).unwrap();
    let opts = CopyOptions {
        range: ByteRange {
            start: 0,
            end: data.len() as u64,
        },
        base: None,
    };
    let err = copy_range(&repo, &img, opts, progress()).await.unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    assert!(own_locks(&repo).await.is_empty());
}

#[tokio::test]
async fn a_prune_that_panics_leaves_no_lock() {
    let store = Arc::new(Faulty {
        panic_listing_packs: true,
        ..Default::default()
    });
    let repo = repo_on(store.clone()).await;
    let opts = PruneOptions {
        policy: RetentionPolicy {
            last: 1,
            ..Default::default()
        },
        ..Default::default()
    };
    let pruning = {
        let repo = repo.clone();
        tokio::spawn(async move { prune(&repo, &opts, progress()).await })
    };
    assert!(pruning.await.unwrap_err().is_panic());
    assert!(own_locks(&repo).await.is_empty());
    // The next backup gets in.
    let dir = source_dir();
    backup(&repo, backup_opts(&dir, ParentChoice::None), progress())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_dry_run_prune_takes_no_exclusive_lock() {
    let store = Arc::new(Faulty::default());
    let repo = repo_on(store.clone()).await;
    // A backup under way.
    let held = repo.lock(LockKind::Shared, "backup").await.unwrap();
    let opts = PruneOptions {
        policy: RetentionPolicy {
            last: 1,
            ..Default::default()
        },
        dry_run: true,
        ..Default::default()
    };
    let report = prune(&repo, &opts, progress()).await.unwrap();
    assert!(report.dry_run);
    assert_eq!(
        own_locks(&repo).await,
        vec![held.handle().key().to_string()]
    );
    held.release().await.unwrap();
}

fn assert_lock_lost(err: &OpsError) {
    assert!(
        matches!(err, OpsError::Repo(RepoError::LockLost { .. })),
        "expected a lost lock, got: {err}"
    );
}

async fn snapshot_count(repo: &Repository) -> usize {
    repo.store()
        .list(FileKind::Snapshot.prefix())
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn a_backup_saves_no_snapshot_once_a_prune_holds_the_repository() {
    // The first listing is the backup's own acquisition; the second, before
    // it saves the snapshot, finds a prune's exclusive lock.
    let store = Arc::new(Faulty {
        plant_exclusive_at_list: Some(2),
        ..Default::default()
    });
    let repo = repo_on(store.clone()).await;
    let dir = source_dir();
    let err = backup(&repo, backup_opts(&dir, ParentChoice::None), progress())
        .await
        .unwrap_err();
    assert_lock_lost(&err);
    assert!(err.to_string().contains("held by prune"), "{err}");
    assert_eq!(snapshot_count(&repo).await, 0);
    assert!(own_locks(&repo).await.is_empty());
}

#[tokio::test]
async fn a_cluster_commit_saves_no_snapshot_once_a_prune_holds_the_repository() {
    let store = Arc::new(Faulty {
        plant_exclusive_at_list: Some(2),
        ..Default::default()
    });
    let repo = repo_on(store.clone()).await;
    let exported = ExportedState {
        tree: Id([3; 32]),
        cluster: ClusterSource {
            name: "prod".into(),
            server: "https://prod.example".into(),
            scope: serde_json::Value::Null,
            resources: Vec::new(),
            volumes: Vec::new(),
            full: Some(true),
            scope_id: None,
            volumes_missing: Vec::new(),
            warnings: Vec::new(),
        },
        summary: SnapshotSummary::default(),
        warnings: Vec::new(),
        warning_count: 0,
        excluded: 0,
    };
    let err = commit_cluster(&repo, &exported, Default::default(), Utc::now())
        .await
        .unwrap_err();
    assert_lock_lost(&err);
    assert_eq!(snapshot_count(&repo).await, 0);
    assert!(own_locks(&repo).await.is_empty());
}
