//! Replication over time: locks that outlive `days`, a rotated passphrase,
//! and a prune on the primary.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::check::{check, CheckOptions};
use crate::forget::RetentionPolicy;
use crate::prune::{prune, PruneOptions};
use crate::verify::verify_snapshot;
use chrono::{Duration, Utc};
use lifeboat_repo::{Id, InitOptions, KdfParams, KeyRemoval, LockPolicy};
use lifeboat_store::{LockMode, MemoryStore, Retention};
use std::path::Path;

const DAYS: u32 = 30;

fn progress() -> Arc<Progress> {
    Arc::new(Progress::default())
}

/// A primary and an empty replica store, both with Object Lock.
async fn locked_primary(cred: &Credential) -> (MemoryStore, Repository, MemoryStore) {
    let mem = MemoryStore::with_object_lock();
    let opts = InitOptions {
        object_lock: Some(LockPolicy {
            mode: LockMode::Governance,
            days: DAYS,
        }),
        kdf: Some(KdfParams::weak_for_tests(cred).unwrap()),
        ..InitOptions::default()
    };
    let repo = Repository::init(Arc::new(mem.clone()), cred, opts)
        .await
        .unwrap();
    (mem, repo, MemoryStore::with_object_lock())
}

async fn backup_dir(repo: &Repository, dir: &Path) -> Id {
    let opts = crate::backup::BackupOptions {
        paths: vec![dir.to_path_buf()],
        ..Default::default()
    };
    crate::backup::backup(repo, opts, progress())
        .await
        .unwrap()
        .snapshot_id
}

/// Let every lock in `store` run out, as `days` without extension would.
async fn expire_all_locks(store: &MemoryStore) {
    let past = Retention {
        mode: LockMode::Governance,
        until: Utc::now() - Duration::seconds(1),
    };
    for obj in store.list("").await.unwrap() {
        store.force_retention(&obj.key, Some(past));
    }
}

async fn check_errors(repo: &Repository) -> usize {
    let opts = CheckOptions {
        read_data: true,
        snapshots: None,
    };
    let r = check(repo, opts, progress()).await.unwrap();
    r.errors()
}

#[tokio::test]
async fn replica_locks_are_extended_so_verify_replica_passes_after_the_lock_period() {
    let cred = Credential::Passphrase("pw".into());
    let (_, src, dst_mem) = locked_primary(&cred).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a"), vec![7u8; 300_000]).unwrap();
    let snap = backup_dir(&src, dir.path()).await;
    let dst_store: Arc<dyn ObjectStore> = Arc::new(dst_mem.clone());
    let (dst, _) = open_replica(&src, dst_store.clone(), &cred).await.unwrap();
    replicate(&src, &dst, progress()).await.unwrap();

    // `days` pass: every lock the first copy wrote has run out.
    expire_all_locks(&dst_mem).await;
    let (dst, _) = open_replica(&src, dst_store.clone(), &cred).await.unwrap();
    let r = replicate(&src, &dst, progress()).await.unwrap();
    let locks = r.locks.unwrap();
    assert!(locks.extended >= 4, "{locks:?}");

    for key in ["config".to_string(), FileKind::Snapshot.key(&snap)] {
        let until = dst_mem.head(&key).await.unwrap().retention.unwrap().until;
        assert!(
            until > Utc::now() + Duration::days(i64::from(DAYS) - 1),
            "{key}"
        );
    }
    for obj in dst_mem.list("keys/").await.unwrap() {
        let until = dst_mem
            .head(&obj.key)
            .await
            .unwrap()
            .retention
            .unwrap()
            .until;
        assert!(until > Utc::now() + Duration::days(i64::from(DAYS) - 1));
    }
    let (v, _) = verify_snapshot(&dst, snap, progress()).await.unwrap();
    assert!(v.ok, "{:?}", v.problems);
}

#[tokio::test]
async fn a_rotated_passphrase_reaches_the_replica_and_the_old_key_goes_once_unlocked() {
    let old = Credential::Passphrase("old".into());
    let (src_mem, src, dst_mem) = locked_primary(&old).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a"), vec![3u8; 100_000]).unwrap();
    let snap = backup_dir(&src, dir.path()).await;
    let dst_store: Arc<dyn ObjectStore> = Arc::new(dst_mem.clone());
    let (dst, _) = open_replica(&src, dst_store.clone(), &old).await.unwrap();
    replicate(&src, &dst, progress()).await.unwrap();

    // Rotate on the primary: add the new key, remove the old (locked: revoked).
    let new = Credential::Passphrase("new".into());
    src.add_key(&new, KdfParams::weak_for_tests(&new).unwrap())
        .await
        .unwrap();
    let old_id = src.key_id().unwrap();
    let src = Repository::open(Arc::new(src_mem.clone()), &new)
        .await
        .unwrap();
    let outcome = src.remove_key(&old_id).await.unwrap();
    assert!(matches!(outcome, KeyRemoval::Revoked { .. }), "{outcome:?}");

    // The new passphrase (shared by both regions) opens the replica.
    let (dst, _) = open_replica(&src, dst_store.clone(), &new).await.unwrap();
    let r = replicate(&src, &dst, progress()).await.unwrap();
    assert_eq!(dst.revoked_keys().await.unwrap().len(), 1);
    assert!(r.locks.is_some());

    // `days` pass on both sides; the revoked key is no longer extended.
    expire_all_locks(&src_mem).await;
    expire_all_locks(&dst_mem).await;
    crate::extend_locks::extend_locks(&src, &Default::default(), progress())
        .await
        .unwrap();
    let old_key = FileKind::Key.key(&old_id);
    let r = src_mem.head(&old_key).await.unwrap().retention.unwrap();
    assert!(
        !r.is_active(Utc::now()),
        "the revoked key's lock was extended"
    );

    // Prune on the primary deletes it; the next replication removes it there.
    let pruned = prune(
        &src,
        &PruneOptions {
            policy: RetentionPolicy {
                last: 10,
                ..RetentionPolicy::default()
            },
            dry_run: false,
            grace: Duration::zero(),
            keep_reports: None,
        },
        progress(),
    )
    .await
    .unwrap();
    assert_eq!(pruned.keys_removed, vec![old_id]);
    let r = replicate(&src, &dst, progress()).await.unwrap();
    assert!(r.keys_removed >= 1, "{r:?}");
    assert!(dst_mem.head(&old_key).await.unwrap_err().is_not_found());
    assert!(Repository::open(dst_store.clone(), &old).await.is_err());
    let (v, _) = verify_snapshot(&dst, snap, progress()).await.unwrap();
    assert!(v.ok, "{:?}", v.problems);
}

#[tokio::test]
async fn the_replicas_older_snapshot_stays_restorable_after_the_primary_prunes() {
    let cred = Credential::Passphrase("pw".into());
    let (src_mem, src, dst_mem) = locked_primary(&cred).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a"), vec![1u8; 200_000]).unwrap();
    let s0 = backup_dir(&src, dir.path()).await;
    let dst_store: Arc<dyn ObjectStore> = Arc::new(dst_mem.clone());
    let (dst, _) = open_replica(&src, dst_store.clone(), &cred).await.unwrap();
    replicate(&src, &dst, progress()).await.unwrap();
    // Entirely new content (another file: no reuse by size and mtime): S0's
    // pack is S0's alone.
    std::fs::remove_file(dir.path().join("a")).unwrap();
    std::fs::write(dir.path().join("b"), vec![2u8; 200_000]).unwrap();
    let s1 = backup_dir(&src, dir.path()).await;
    replicate(&src, &dst, progress()).await.unwrap();

    // The primary's locks on S0 run out and prune forgets it.
    expire_all_locks(&src_mem).await;
    let pruned = prune(
        &src,
        &PruneOptions {
            policy: RetentionPolicy {
                last: 1,
                ..RetentionPolicy::default()
            },
            dry_run: false,
            grace: Duration::zero(),
            keep_reports: None,
        },
        progress(),
    )
    .await
    .unwrap();
    assert_eq!(pruned.snapshots_removed, vec![s0]);
    assert!(pruned.packs_deleted >= 1 && pruned.index_files_written == 1);

    // The replica copies the prune's index file; S0 is still locked there.
    let r = replicate(&src, &dst, progress()).await.unwrap();
    assert_eq!(r.indexes_copied, 1);
    assert_eq!(r.snapshots_pending_removal, 1);
    assert!(r.packs_reindexed >= 1, "{r:?}");
    assert_eq!(dst.snapshots().await.unwrap().len(), 2);
    assert_eq!(
        check_errors(&dst).await,
        0,
        "S0 must still restore from the replica"
    );
    let (v, _) = verify_snapshot(&dst, s0, progress()).await.unwrap();
    assert!(
        v.problems
            .iter()
            .all(|p| !p.message.contains("not in any index")),
        "{:?}",
        v.problems
    );

    // S0's replica lock was not extended; once it runs out S0 goes there too.
    let key = FileKind::Snapshot.key(&s0);
    assert!(
        dst_mem.head(&key).await.unwrap().retention.unwrap().until
            < Utc::now() + Duration::days(i64::from(DAYS)),
    );
    dst_mem.force_retention(&key, None);
    let r = replicate(&src, &dst, progress()).await.unwrap();
    assert_eq!(r.snapshots_removed, 1);
    let left: Vec<Id> = dst
        .snapshots()
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(left, vec![s1]);
    assert_eq!(check_errors(&dst).await, 0);
}
