//! Security review finding 25 end to end: a tenant's file holding snapshot
//! JSON is backed up; someone with write access to the bucket copies that
//! data blob's sealed bytes out of its pack to `snapshots/<BLAKE3 of them>`,
//! with a far-future time, and runs `prune --keep-last 1`. In a version-1
//! repository the copy passes for the newest snapshot and prune deletes the
//! real one; in a version-2 repository it does not open, and the real
//! snapshot stays.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use lifeboat_ops::backup::{backup, BackupOptions};
use lifeboat_ops::forget::RetentionPolicy;
use lifeboat_ops::prune::{prune, PruneOptions, PruneReport};
use lifeboat_ops::{OpsError, Progress};
use lifeboat_repo::{
    Credential, FileKind, Format, Id, InitOptions, KdfParams, Repository, Snapshot, SnapshotSummary,
};
use lifeboat_store::{MemoryStore, ObjectStore, PutOptions};
use std::sync::Arc;

/// What the tenant writes into their volume: valid snapshot JSON, in the
/// retention group (kind, host, paths) of the volume's real snapshots and
/// compressible (as a sealed snapshot's JSON is stored compressed).
fn snapshot_json(path: String) -> Vec<u8> {
    let snap = Snapshot {
        version: 1,
        kind: "volume".into(),
        time: "2099-01-01T00:00:00Z".parse().unwrap(),
        hostname: "host".into(),
        paths: vec![path],
        tags: [("note".to_string(), "a".repeat(200))].into(),
        tree: Id([0; 32]),
        parent: None,
        summary: SnapshotSummary::default(),
        cluster: None,
        repository: None,
    };
    serde_json::to_vec(&snap).unwrap()
}

/// Back up the tenant's file, plant its blob as a snapshot, prune to the
/// last snapshot. Returns the store, the real snapshot and prune's result.
async fn attack(format: Format) -> (Arc<dyn ObjectStore>, Id, Result<PruneReport, OpsError>) {
    let dir = tempfile::tempdir().unwrap();
    let json = snapshot_json(dir.path().display().to_string());
    std::fs::write(dir.path().join("snapshot.json"), json).unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new());
    let cred = Credential::Passphrase("pw".into());
    let opts = InitOptions {
        kdf: Some(KdfParams::weak_for_tests(&cred).unwrap()),
        format,
        ..InitOptions::default()
    };
    let repo = Repository::init(store.clone(), &cred, opts).await.unwrap();
    let opts = BackupOptions {
        paths: vec![dir.path().to_path_buf()],
        tags: Default::default(),
        parent: Default::default(),
        hostname: Some("host".into()),
        ignore_inode: false,
    };
    let real = backup(&repo, opts, Arc::default())
        .await
        .unwrap()
        .snapshot_id;

    // The attacker's copy: the file's sealed blob, cut out of its pack.
    let index = repo.load_index().await.unwrap();
    let snap: Snapshot = repo.load_file(FileKind::Snapshot, &real).await.unwrap();
    let mut tree = repo.load_tree(&index, &snap.tree).await.unwrap();
    while tree.nodes[0].name.as_str() != "snapshot.json" {
        let sub = tree.nodes[0].subtree.unwrap();
        tree = repo.load_tree(&index, &sub).await.unwrap();
    }
    let blob_id = tree.nodes[0].content[0].id;
    let sealed = repo
        .read_sealed_blob(&index, &blob_id)
        .await
        .unwrap()
        .sealed;
    let planted = Id::of_file(&sealed);
    store
        .put(
            &FileKind::Snapshot.key(&planted),
            sealed,
            &PutOptions::default(),
        )
        .await
        .unwrap();

    let opts = PruneOptions {
        policy: RetentionPolicy {
            last: 1,
            ..RetentionPolicy::default()
        },
        dry_run: false,
        grace: chrono::Duration::zero(),
        keep_reports: None,
    };
    let report = prune(&repo, &opts, Arc::new(Progress::default())).await;
    (store, real, report)
}

/// Why version 2 exists (this documents the version-1 weakness, which stays
/// in version-1 repositories).
#[tokio::test]
async fn version_1_planted_blob_snapshot_makes_prune_delete_the_real_one() {
    let (store, real, _) = attack(Format::V1).await;
    let gone = store.head(&FileKind::Snapshot.key(&real)).await;
    assert!(gone.is_err_and(|e| e.is_not_found()));
}

#[tokio::test]
async fn version_2_planted_blob_snapshot_does_not_make_prune_delete_the_real_one() {
    let (store, real, report) = attack(Format::V2).await;
    store.head(&FileKind::Snapshot.key(&real)).await.unwrap();
    // Prune either refuses to run on a repository with an object that does
    // not open, or skips that object; it never trusts it.
    if let Ok(report) = report {
        assert!(report.snapshots_removed.is_empty(), "{report:?}");
    }
}
