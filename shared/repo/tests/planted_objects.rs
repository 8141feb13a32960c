//! One junk, rotten or hostile object (a key, a snapshot, an index file, a
//! pack copy) must not make the repository unusable: readers skip it and
//! name it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use chrono::{Duration, Utc};
use lifeboat_repo::{
    encode_blob, BlobType, Credential, DamageMarker, FileKind, Id, IndexFile, IndexPack,
    IndexedBlob, InitOptions, KdfParams, KeyFile, MasterKey, PackBuilder, RepoError, Repository,
    Snapshot, SnapshotSummary,
};
use lifeboat_store::{MemoryStore, ObjectStore, PutOptions};
use std::sync::Arc;
use std::time::Instant;

const JUNK_ID: &str = "0000000000000000000000000000000000000000000000000000000000000001";

async fn repo() -> (MemoryStore, Repository, Credential) {
    let mem = MemoryStore::new();
    let store: Arc<dyn ObjectStore> = Arc::new(mem.clone());
    let cred = Credential::Passphrase("pw".into());
    let opts = InitOptions {
        kdf: Some(KdfParams::weak_for_tests(&cred).unwrap()),
        ..InitOptions::default()
    };
    let repo = Repository::init(store, &cred, opts).await.unwrap();
    (mem, repo, cred)
}

async fn plant(mem: &MemoryStore, key: &str, bytes: &[u8]) {
    mem.put(key, Bytes::copy_from_slice(bytes), &PutOptions::default())
        .await
        .unwrap();
}

fn snapshot(minutes_ago: i64) -> Snapshot {
    Snapshot {
        version: 1,
        kind: "volume".into(),
        time: Utc::now() - Duration::minutes(minutes_ago),
        hostname: "h".into(),
        paths: vec!["/data".into()],
        tags: Default::default(),
        tree: Id([7; 32]),
        parent: None,
        summary: SnapshotSummary::default(),
        cluster: None,
    }
}

/// A key object with KDF parameters far above the limits (1 GiB, 64 passes, 16 lanes).
fn kdf_bomb() -> Vec<u8> {
    let kf = KeyFile {
        version: 1,
        created: Utc::now(),
        hostname: "attacker".into(),
        kdf: KdfParams::Argon2id {
            memory_kib: 1024 * 1024,
            iterations: 64,
            parallelism: 16,
            salt: vec![1; 16],
        },
        wrapped: vec![0; 80],
    };
    serde_json::to_vec(&kf).unwrap()
}

#[tokio::test]
async fn planted_junk_key_does_not_lock_out_the_right_credential() {
    let (mem, repo, cred) = repo().await;
    plant(&mem, &format!("keys/{JUNK_ID}"), b"not json").await;
    let opened = Repository::open(Arc::new(mem.clone()), &cred)
        .await
        .unwrap();
    assert_eq!(opened.key_id(), repo.key_id());
    let bad = opened.unusable_keys().await.unwrap();
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].0, format!("keys/{JUNK_ID}"));
    // `repo keys` still lists the good one.
    assert_eq!(opened.keys().await.unwrap().len(), 1);
}

#[tokio::test]
async fn kdf_bomb_key_is_refused_quickly_without_spending_its_memory() {
    let (mem, repo, cred) = repo().await;
    // Named so that it is listed first.
    plant(&mem, &format!("keys/{JUNK_ID}"), &kdf_bomb()).await;
    let started = Instant::now();
    let opened = Repository::open(Arc::new(mem.clone()), &cred)
        .await
        .unwrap();
    // Deriving with 1 GiB and 64 passes would take minutes.
    assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
    assert_eq!(opened.key_id(), repo.key_id());
    let bad = opened.unusable_keys().await.unwrap();
    assert_eq!(bad.len(), 1);
    assert!(bad[0].1.contains("exceeds the limits"), "{}", bad[0].1);

    // With only the bomb left, the error names it (and still spends nothing).
    let only: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new());
    only.put(
        "config",
        mem.get("config").await.unwrap(),
        &PutOptions::default(),
    )
    .await
    .unwrap();
    only.put(
        &format!("keys/{JUNK_ID}"),
        Bytes::from(kdf_bomb()),
        &PutOptions::default(),
    )
    .await
    .unwrap();
    let started = Instant::now();
    let err = Repository::open(only, &cred).await.unwrap_err();
    assert!(started.elapsed().as_secs() < 5);
    assert!(err.to_string().contains(JUNK_ID), "{err}");
    assert!(err.to_string().contains("exceeds the limits"), "{err}");
}

#[tokio::test]
async fn key_objects_at_the_limit_still_open() {
    let (mem, repo, _) = repo().await;
    let cred = Credential::Passphrase("other".into());
    let at_limit = KdfParams::Argon2id {
        // Argon2 needs 8 KiB per lane.
        memory_kib: 8 * lifeboat_repo::MAX_KDF_PARALLELISM,
        iterations: lifeboat_repo::MAX_KDF_ITERATIONS,
        parallelism: lifeboat_repo::MAX_KDF_PARALLELISM,
        salt: vec![2; 16],
    };
    repo.add_key(&cred, at_limit).await.unwrap();
    Repository::open(Arc::new(mem), &cred).await.unwrap();
}

#[tokio::test]
async fn planted_junk_snapshot_does_not_hide_the_others() {
    let (mem, repo, _) = repo().await;
    let old = repo
        .save_file(FileKind::Snapshot, &snapshot(10))
        .await
        .unwrap();
    let new = repo
        .save_file(FileKind::Snapshot, &snapshot(5))
        .await
        .unwrap();
    plant(&mem, &format!("snapshots/{JUNK_ID}"), b"junk").await;

    let all = repo.snapshots().await.unwrap();
    assert_eq!(
        all.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        vec![old, new]
    );
    let listing = repo.snapshot_listing().await.unwrap();
    assert_eq!(listing.unreadable.len(), 1);
    assert_eq!(listing.unreadable[0].0.to_hex(), JUNK_ID);
    assert!(listing.unreadable[0].1.contains("content hashes to"));

    assert_eq!(repo.resolve_snapshot("latest").await.unwrap().0, new);
    assert_eq!(
        repo.resolve_snapshot(&old.to_hex()).await.unwrap().0,
        old,
        "a full id reads only that snapshot"
    );
    assert_eq!(
        repo.resolve_snapshot(&old.to_hex()[..12]).await.unwrap().0,
        old
    );
    let err = repo.resolve_snapshot(JUNK_ID).await.unwrap_err();
    assert!(err.to_string().contains(JUNK_ID), "{err}");
}

#[tokio::test]
async fn planted_junk_index_is_skipped_and_named() {
    let (mem, repo, _) = repo().await;
    let key = repo.key().clone();
    let (pack, blob) = store_pack(&mem, &key, b"hello").await;
    repo.save_file(FileKind::Index, &index_of(&[pack.clone()]))
        .await
        .unwrap();
    plant(&mem, &format!("index/{JUNK_ID}"), b"junk").await;
    let loaded = repo.load_index_report().await.unwrap();
    assert_eq!(loaded.unreadable.len(), 1);
    assert_eq!(loaded.unreadable[0].id.to_hex(), JUNK_ID);
    assert!(!loaded.unreadable[0].superseded);
    let index = repo.load_index().await.unwrap();
    assert_eq!(repo.read_blob(&index, &blob).await.unwrap(), b"hello");

    // Once a readable file supersedes it, it is known to be harmless.
    let fix = IndexFile {
        version: 1,
        supersedes: vec![JUNK_ID.parse().unwrap()],
        packs: vec![],
    };
    repo.save_file(FileKind::Index, &fix).await.unwrap();
    let loaded = repo.load_index_report().await.unwrap();
    assert!(loaded.unreadable[0].superseded);
}

async fn store_pack(mem: &MemoryStore, key: &MasterKey, data: &[u8]) -> (IndexPack, Id) {
    let id = key.blob_id(data);
    let mut b = PackBuilder::new(1024);
    b.add(&encode_blob(key, BlobType::Data, id, data, 3).unwrap())
        .unwrap();
    let (pack, bytes, blobs) = b.finish(key).unwrap();
    let size = bytes.len() as u64;
    plant(mem, &FileKind::Pack.key(&pack), &bytes).await;
    (
        IndexPack {
            id: pack,
            size,
            blobs: blobs.iter().map(IndexedBlob::from).collect(),
        },
        id,
    )
}

fn index_of(packs: &[IndexPack]) -> IndexFile {
    IndexFile {
        version: 1,
        supersedes: vec![],
        packs: packs.to_vec(),
    }
}

#[tokio::test]
async fn read_blob_falls_back_to_the_other_copy_of_a_duplicate_blob() {
    let (mem, repo, _) = repo().await;
    let key = repo.key().clone();
    // The same blob in two packs (two writers at once), each in its own index file.
    let (a, blob) = store_pack(&mem, &key, b"twice").await;
    let mut b = PackBuilder::new(1024);
    b.add(&encode_blob(&key, BlobType::Data, key.blob_id(b"pad"), b"pad", 3).unwrap())
        .unwrap();
    b.add(&encode_blob(&key, BlobType::Data, blob, b"twice", 3).unwrap())
        .unwrap();
    let (b_id, b_bytes, b_blobs) = b.finish(&key).unwrap();
    plant(&mem, &FileKind::Pack.key(&b_id), &b_bytes).await;
    let b = IndexPack {
        id: b_id,
        size: b_bytes.len() as u64,
        // Only the second entry is the real copy.
        blobs: vec![IndexedBlob::from(&b_blobs[1])],
    };
    repo.save_file(FileKind::Index, &index_of(&[a.clone()]))
        .await
        .unwrap();
    repo.save_file(FileKind::Index, &index_of(&[b.clone()]))
        .await
        .unwrap();
    let index = repo.load_index().await.unwrap();
    assert_eq!(index.locations(&blob).count(), 2);
    // Damage whichever copy is preferred: the read still succeeds.
    let preferred = index.get(&blob).unwrap().pack;
    mem.tamper(&FileKind::Pack.key(&preferred), Bytes::from_static(b"rot"));
    assert_eq!(repo.read_blob(&index, &blob).await.unwrap(), b"twice");
    // Both copies gone: the error names the blob's first copy's problem.
    let other = index.locations(&blob).nth(1).unwrap().pack;
    mem.tamper(&FileKind::Pack.key(&other), Bytes::from_static(b"rot"));
    assert!(repo.read_blob(&index, &blob).await.is_err());
}

#[tokio::test]
async fn a_snapshot_marked_damaged_is_left_out_of_latest_but_resolvable_by_id() {
    let (mem, repo, _) = repo().await;
    let old = repo
        .save_file(FileKind::Snapshot, &snapshot(10))
        .await
        .unwrap();
    let new = repo
        .save_file(FileKind::Snapshot, &snapshot(5))
        .await
        .unwrap();
    repo.mark_damaged(&DamageMarker {
        version: 1,
        snapshot: new,
        time: Utc::now(),
        problems: vec!["tree blob x: missing".into()],
    })
    .await
    .unwrap();
    assert_eq!(repo.resolve_snapshot("latest").await.unwrap().0, old);
    assert_eq!(repo.snapshots().await.unwrap().len(), 1);
    let listing = repo.snapshot_listing().await.unwrap();
    assert_eq!(listing.damaged.len(), 1);
    assert_eq!(listing.damaged[0].0, new);
    assert_eq!(repo.resolve_snapshot(&new.to_hex()).await.unwrap().0, new);

    // A junk marker (no key to seal it) hides nothing.
    plant(&mem, &FileKind::Damage.key(&old), b"junk").await;
    assert_eq!(repo.resolve_snapshot("latest").await.unwrap().0, old);
    repo.unmark_damaged(&new).await.unwrap();
    assert_eq!(repo.resolve_snapshot("latest").await.unwrap().0, new);
}

#[tokio::test]
async fn wrong_passphrase_still_says_so_next_to_a_junk_key() {
    let (mem, _, _) = repo().await;
    plant(&mem, &format!("keys/{JUNK_ID}"), b"{}").await;
    let err = Repository::open(Arc::new(mem), &Credential::Passphrase("nope".into()))
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::WrongCredential { .. }), "{err}");
}
