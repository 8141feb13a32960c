//! Prune's guards: the grace period's bounds and the local store's leftovers.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::forget::RetentionPolicy;
use lifeboat_repo::{Credential, InitOptions, KdfParams, LockKind};
use lifeboat_store::{LocalStore, ObjectStore};

fn keep_last(n: u32) -> RetentionPolicy {
    RetentionPolicy {
        last: n,
        ..RetentionPolicy::default()
    }
}

#[tokio::test]
async fn a_huge_grace_is_refused_without_a_panic_and_the_lock_is_released() {
    let repo = crate::testing::memory_repo(InitOptions::default()).await;
    for grace in [
        MAX_GRACE + chrono::Duration::seconds(1),
        chrono::Duration::MAX,
        chrono::Duration::days(-1),
    ] {
        let opts = PruneOptions {
            policy: keep_last(1),
            dry_run: true,
            grace,
            keep_reports: None,
        };
        let err = prune(&repo, &opts, Arc::new(Progress::default()))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("grace period"), "{err}");
    }
    // No lock left behind: a backup's shared lock is granted at once.
    let lock = repo.lock(LockKind::Shared, "backup").await.unwrap();
    lock.release().await.unwrap();
    let opts = PruneOptions {
        policy: keep_last(1),
        dry_run: true,
        grace: MAX_GRACE,
        keep_reports: None,
    };
    prune(&repo, &opts, Arc::new(Progress::default()))
        .await
        .unwrap();
}

#[tokio::test]
async fn prune_removes_temporary_files_of_killed_writes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(&root));
    let cred = Credential::Passphrase("pw".into());
    let opts = InitOptions {
        kdf: Some(KdfParams::weak_for_tests(&cred).unwrap()),
        ..InitOptions::default()
    };
    let repo = Repository::init(store, &cred, opts).await.unwrap();
    let leftover = root.join(".tmp").join("376e3d0000000000000000aa");
    std::fs::write(&leftover, vec![9u8; 1 << 20]).unwrap();
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    std::fs::File::options()
        .write(true)
        .open(&leftover)
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();
    let in_flight = root.join(".tmp").join("376e3d0000000000000000bb");
    std::fs::write(&in_flight, b"a write under way").unwrap();

    let mut opts = PruneOptions {
        policy: keep_last(1),
        dry_run: true,
        grace: chrono::Duration::zero(),
        keep_reports: None,
    };
    let r = prune(&repo, &opts, Arc::new(Progress::default()))
        .await
        .unwrap();
    assert_eq!(r.temporaries_removed, 0, "a dry run removes nothing");
    assert!(leftover.exists());

    opts.dry_run = false;
    let r = prune(&repo, &opts, Arc::new(Progress::default()))
        .await
        .unwrap();
    assert_eq!(r.temporaries_removed, 1);
    assert!(!leftover.exists());
    assert!(in_flight.exists(), "younger than the minimum age");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rewritten_index_keeps_every_copy_of_a_blob_stored_twice() {
    use crate::backup::{backup, BackupOptions};
    let repo = crate::testing::memory_repo(InitOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let run = |seed: u64| {
        let mut data = vec![0u8; 1 << 20];
        crate::sample_data::Rng::new(seed).fill(&mut data);
        std::fs::write(src.join("f"), data).unwrap();
        let opts = BackupOptions {
            paths: vec![src.clone()],
            ..Default::default()
        };
        backup(&repo, opts, Arc::new(Progress::default()))
    };
    // The snapshot to forget first, then one whose blobs are stored twice
    // (as two writers at once would have), then another of the same data.
    run(2).await.unwrap();
    let a = run(1).await.unwrap();
    crate::testing::store_every_blob_twice(&repo).await;
    let b = run(1).await.unwrap();
    let before = repo.load_index().await.unwrap();
    let twice: Vec<Id> = before
        .blobs()
        .filter(|(id, _)| before.locations(id).count() == 2)
        .map(|(id, _)| *id)
        .collect();
    assert!(!twice.is_empty(), "the two writers stored nothing twice");
    // Keep the two newest: the first snapshot's pack goes, the index is rewritten.
    let opts = PruneOptions {
        policy: keep_last(2),
        dry_run: false,
        grace: chrono::Duration::zero(),
        keep_reports: None,
    };
    let report = prune(&repo, &opts, Arc::new(Progress::default()))
        .await
        .unwrap();
    assert!(
        report.packs_deleted > 0 && report.index_files_written == 1,
        "{report:?}"
    );
    assert!(!report.snapshots_removed.contains(&a.snapshot_id));
    assert!(!report.snapshots_removed.contains(&b.snapshot_id));
    // Every copy in a pack that is still there is still indexed, so the
    // kept snapshots' blobs are still stored twice.
    let after = repo.load_index().await.unwrap();
    let mut still_twice = 0;
    for id in &twice {
        let present = before
            .locations(id)
            .filter(|l| after.packs().contains_key(&l.pack))
            .count();
        assert_eq!(
            after.locations(id).count(),
            present,
            "blob {id} lost a copy"
        );
        still_twice += usize::from(present == 2);
    }
    assert!(
        still_twice > 0,
        "no blob of the kept snapshots is stored twice"
    );
}
