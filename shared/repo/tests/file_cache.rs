//! The local cache of snapshot and index files: used once filled, never
//! trusted (a bad entry is dropped and the store read), never deciding
//! what exists (the store's listing does), never needed (an unwritable
//! cache is only a warning), and holding sealed bytes only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use chrono::Utc;
use lifeboat_repo::{
    Credential, FileCache, FileKind, Id, IndexFile, InitOptions, KdfParams, Repository, Snapshot,
    SnapshotSummary,
};
use lifeboat_store::{MemoryStore, ObjectStore};
use std::path::PathBuf;
use std::sync::Arc;

struct Fixture {
    mem: MemoryStore,
    repo: Repository,
    cred: Credential,
    dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let mem = MemoryStore::new();
    let store: Arc<dyn ObjectStore> = Arc::new(mem.clone());
    let cred = Credential::Passphrase("pw".into());
    let opts = InitOptions {
        kdf: Some(KdfParams::weak_for_tests(&cred).unwrap()),
        ..InitOptions::default()
    };
    let repo = Repository::init(store, &cred, opts).await.unwrap();
    Fixture {
        mem,
        repo,
        cred,
        dir: tempfile::tempdir().unwrap(),
    }
}

impl Fixture {
    async fn cached(&self) -> Repository {
        self.uncached()
            .await
            .with_cache(FileCache::new(self.dir.path().join("cache")))
    }

    async fn uncached(&self) -> Repository {
        Repository::open(Arc::new(self.mem.clone()), &self.cred)
            .await
            .unwrap()
    }

    /// Write a snapshot of `host` into the store.
    async fn save(&self, host: &str) -> Id {
        self.repo
            .save_file(FileKind::Snapshot, &snapshot(host))
            .await
            .unwrap()
    }

    fn entry(&self, kind: &str, id: &Id) -> PathBuf {
        self.dir
            .path()
            .join("cache")
            .join(self.repo.config().id.to_hex())
            .join(kind)
            .join(id.to_hex())
    }
}

fn snapshot(host: &str) -> Snapshot {
    Snapshot {
        version: 1,
        kind: "volume".into(),
        time: Utc::now(),
        hostname: host.into(),
        paths: vec!["/data".into()],
        tags: Default::default(),
        tree: Id([7; 32]),
        parent: None,
        summary: SnapshotSummary::default(),
        cluster: None,
        repository: None,
    }
}

#[tokio::test]
async fn a_cached_snapshot_is_read_from_disk_not_from_the_store() {
    let f = fixture().await;
    let id = f.save("a").await;
    let repo = f.cached().await;
    assert_eq!(repo.snapshots().await.unwrap().len(), 1);
    let entry = f.entry("snapshots", &id);
    let stored = f.mem.get(&FileKind::Snapshot.key(&id)).await.unwrap();
    assert_eq!(
        std::fs::read(&entry).unwrap(),
        stored.to_vec(),
        "sealed bytes, as stored"
    );

    // The store's copy rots: the cached handle still reads the snapshot
    // (from disk), while a handle without the cache sees the damage, which
    // is why check and repair never use the cache.
    f.mem
        .tamper(&FileKind::Snapshot.key(&id), Bytes::from_static(b"rot"));
    let listed = repo.snapshots().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].1.hostname, "a");
    let listing = f.uncached().await.snapshot_listing().await.unwrap();
    assert!(listing.usable.is_empty());
    assert_eq!(listing.unreadable.len(), 1);
}

#[cfg(unix)]
#[tokio::test]
async fn cache_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let f = fixture().await;
    let id = f.save("a").await;
    f.cached().await.snapshots().await.unwrap();
    let entry = f.entry("snapshots", &id);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&entry), 0o600);
    assert_eq!(mode(entry.parent().unwrap()), 0o700);
    assert_eq!(mode(&f.dir.path().join("cache")), 0o700);
}

#[tokio::test]
async fn a_tampered_or_planted_cache_entry_is_dropped_and_the_store_read() {
    let f = fixture().await;
    let id = f.save("real").await;
    let repo = f.cached().await;
    repo.snapshots().await.unwrap();
    let entry = f.entry("snapshots", &id);

    // Another snapshot of the same repository, sealed with its key, planted
    // under this id: its hash is not its name, so it is refused.
    let other = f.save("planted").await;
    let planted = f.mem.get(&FileKind::Snapshot.key(&other)).await.unwrap();
    f.mem.force_remove(&FileKind::Snapshot.key(&other));
    std::fs::write(&entry, &planted).unwrap();
    let listed = repo.snapshots().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].1.hostname, "real");
    let stored = f.mem.get(&FileKind::Snapshot.key(&id)).await.unwrap();
    assert_eq!(
        std::fs::read(&entry).unwrap(),
        stored.to_vec(),
        "replaced from the store"
    );

    // Truncated.
    std::fs::write(&entry, &stored[..stored.len() / 2]).unwrap();
    assert_eq!(repo.snapshots().await.unwrap()[0].1.hostname, "real");
    assert_eq!(std::fs::read(&entry).unwrap(), stored.to_vec());
}

#[tokio::test]
async fn what_the_store_no_longer_lists_leaves_the_cache_and_is_not_read() {
    let f = fixture().await;
    let kept = f.save("kept").await;
    let gone = f.save("forgotten").await;
    let repo = f.cached().await;
    assert_eq!(repo.snapshots().await.unwrap().len(), 2);
    assert!(f.entry("snapshots", &gone).exists());

    f.mem.force_remove(&FileKind::Snapshot.key(&gone));
    let listed = repo.snapshots().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0, kept);
    assert!(!f.entry("snapshots", &gone).exists());
    assert!(f.entry("snapshots", &kept).exists());
}

#[tokio::test]
async fn index_files_are_cached_too() {
    let f = fixture().await;
    let id = f
        .repo
        .save_file(FileKind::Index, &IndexFile::default())
        .await
        .unwrap();
    let repo = f.cached().await;
    repo.load_index().await.unwrap();
    assert!(f.entry("index", &id).exists());
    f.mem
        .tamper(&FileKind::Index.key(&id), Bytes::from_static(b"rot"));
    let load = repo.load_index_report().await.unwrap();
    assert!(load.unreadable.is_empty(), "read from the cache");
}

#[tokio::test]
async fn a_cache_that_cannot_be_written_is_only_a_warning() {
    let f = fixture().await;
    f.save("a").await;
    // The cache directory is a file: nothing can be created under it.
    let blocked = f.dir.path().join("blocked");
    std::fs::write(&blocked, b"not a directory").unwrap();
    let repo = f.uncached().await.with_cache(FileCache::new(&blocked));
    assert_eq!(repo.snapshots().await.unwrap().len(), 1);
    assert_eq!(repo.snapshots().await.unwrap().len(), 1);
}
