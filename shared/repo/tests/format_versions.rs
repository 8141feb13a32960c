//! Format versions 1 and 2 side by side on fresh repositories: what each
//! writes, and the attack of security review finding 25 that version 2 stops
//! (a data blob whose plaintext is snapshot JSON, copied to `snapshots/`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use lifeboat_repo::{
    encode_blob, Aad, BlobType, Compression, Credential, FileKind, Format, Id, IndexFile,
    InitOptions, KdfParams, RepoError, Repository, Snapshot, SnapshotSummary,
};
use lifeboat_store::{MemoryStore, ObjectStore, PutOptions};
use std::sync::Arc;

async fn repo(format: Format) -> (Arc<dyn ObjectStore>, Repository) {
    let store: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new());
    let cred = Credential::Passphrase("pw".into());
    let opts = InitOptions {
        kdf: Some(KdfParams::weak_for_tests(&cred).unwrap()),
        format,
        ..InitOptions::default()
    };
    let repo = Repository::init(store.clone(), &cred, opts).await.unwrap();
    (store, repo)
}

/// Snapshot JSON with a far-future time, as a tenant would put in a file.
fn snapshot_json() -> Vec<u8> {
    let snap = Snapshot {
        version: 1,
        kind: "volume".into(),
        time: "2099-01-01T00:00:00Z".parse().unwrap(),
        hostname: "victim".into(),
        paths: vec!["/data".into(); 16],
        tags: Default::default(),
        tree: Id([0; 32]),
        parent: None,
        summary: SnapshotSummary::default(),
        cluster: None,
        repository: None,
    };
    serde_json::to_vec(&snap).unwrap()
}

/// Seal snapshot JSON as a data blob the way backup does, and store the
/// sealed bytes as `snapshots/<BLAKE3 of them>`; returns that id.
async fn plant_data_blob_as_snapshot(store: &Arc<dyn ObjectStore>, repo: &Repository) -> Id {
    let json = snapshot_json();
    let key = repo.key();
    let blob = encode_blob(
        key,
        repo.format(),
        BlobType::Data,
        key.blob_id(&json),
        &json,
        3,
    );
    let blob = blob.unwrap();
    assert_eq!(blob.compression, Compression::Zstd);
    let id = Id::of_file(&blob.sealed);
    let key = FileKind::Snapshot.key(&id);
    store
        .put(&key, blob.sealed.into(), &PutOptions::default())
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn new_repositories_are_version_2() {
    let store: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new());
    let cred = Credential::Passphrase("pw".into());
    let opts = InitOptions {
        kdf: Some(KdfParams::weak_for_tests(&cred).unwrap()),
        ..InitOptions::default()
    };
    let repo = Repository::init(store.clone(), &cred, opts).await.unwrap();
    assert_eq!(repo.config().version, 2);
    let reopened = Repository::open(store, &cred).await.unwrap();
    assert_eq!(reopened.format(), Format::V2);
}

/// A version-1 repository keeps writing version-1 objects: its files and
/// keys open with empty associated data, after a reopen too.
#[tokio::test]
async fn version_1_repository_keeps_writing_version_1_objects() {
    let (store, _) = repo(Format::V1).await;
    let cred = Credential::Passphrase("pw".into());
    let repo = Repository::open(store.clone(), &cred).await.unwrap();
    assert_eq!((repo.config().version, repo.format()), (1, Format::V1));
    let id = repo
        .save_file(FileKind::Index, &IndexFile::default())
        .await
        .unwrap();
    let bytes = store.get(&FileKind::Index.key(&id)).await.unwrap();
    let empty = Aad::file(Format::V1, FileKind::Index);
    assert!(repo.key().open(&bytes, &empty, "index").is_ok());
    let v2 = Aad::file(Format::V2, FileKind::Index);
    assert!(repo.key().open(&bytes, &v2, "index").is_err());
    let other = Credential::Passphrase("second".into());
    repo.add_key(&other, KdfParams::weak_for_tests(&other).unwrap())
        .await
        .unwrap();
    assert!(repo
        .keys()
        .await
        .unwrap()
        .iter()
        .all(|(_, k)| k.version == 1));
    Repository::open(store, &other).await.unwrap();
}

/// Why version 2 exists: in a version-1 repository the planted blob opens
/// as an authentic snapshot (with its future time it would win `latest`).
#[tokio::test]
async fn version_1_data_blob_copied_to_snapshots_passes_as_a_snapshot() {
    let (store, repo) = repo(Format::V1).await;
    let planted = plant_data_blob_as_snapshot(&store, &repo).await;
    let snap: Snapshot = repo.load_file(FileKind::Snapshot, &planted).await.unwrap();
    assert_eq!(snap.hostname, "victim");
    let (latest, _) = repo.resolve_snapshot("latest").await.unwrap();
    assert_eq!(latest, planted);
}

/// The same attack on a version-2 repository fails to open, with a
/// decryption error naming the snapshot.
#[tokio::test]
async fn version_2_data_blob_copied_to_snapshots_does_not_open() {
    let (store, repo) = repo(Format::V2).await;
    let planted = plant_data_blob_as_snapshot(&store, &repo).await;
    let err = repo
        .load_file::<Snapshot>(FileKind::Snapshot, &planted)
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::Decrypt { .. }), "{err}");
    assert!(err.to_string().contains(&format!("snapshot {planted}")));
    assert!(repo.resolve_snapshot("latest").await.is_err());
}

/// A sealed version-2 index or report is no snapshot either.
#[tokio::test]
async fn version_2_file_of_another_kind_does_not_open_as_a_snapshot() {
    let (store, repo) = repo(Format::V2).await;
    let json = serde_json::from_slice::<serde_json::Value>(&snapshot_json()).unwrap();
    let id = repo.save_file(FileKind::Report, &json).await.unwrap();
    let bytes = store.get(&FileKind::Report.key(&id)).await.unwrap();
    store
        .put(&FileKind::Snapshot.key(&id), bytes, &PutOptions::default())
        .await
        .unwrap();
    let err = repo
        .load_file::<Snapshot>(FileKind::Snapshot, &id)
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::Decrypt { .. }), "{err}");
    let report: serde_json::Value = repo.load_file(FileKind::Report, &id).await.unwrap();
    assert_eq!(report, json);
}

/// The plaintext config of a version-2 repository, rewritten to say
/// version 1 (which would make Lifeboat read and write objects without the
/// binding), is refused: the key object that opens says version 2, and its
/// version is authenticated.
#[tokio::test]
async fn version_2_config_downgraded_to_version_1_is_refused() {
    let (store, _) = repo(Format::V2).await;
    let raw = store.get("config").await.unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    v["version"] = 1.into();
    let downgraded = serde_json::to_vec(&v).unwrap();
    // Stores never overwrite; an attacker with write access deletes first.
    store.delete("config").await.unwrap();
    store
        .put("config", downgraded.into(), &PutOptions::default())
        .await
        .unwrap();
    let err = Repository::open(store.clone(), &Credential::Passphrase("pw".into()))
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::Malformed { .. }), "{err}");
    assert!(err.to_string().contains("config was altered"), "{err}");
}
