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
