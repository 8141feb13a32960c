//! The review's reproduction: a workflow backup copies (deduplicating
//! against an old snapshot's pack), a prune forgets that snapshot, then the
//! backup commits.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::cluster::{commit_cluster, ExportedState};
use crate::forget::RetentionPolicy;
use crate::prune::{prune, PruneOptions};
use crate::volume::{copy_range, ByteRange, CopyOptions};
use crate::{OpsError, Progress};
use lifeboat_repo::{
    ChunkingParams, ClusterSource, FileKind, InitOptions, Snapshot, SnapshotSummary,
};
use lifeboat_volume::ImageFile;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

const SIZE: u64 = 4 << 20;

async fn repo() -> Repository {
    crate::testing::memory_repo(InitOptions {
        chunking: ChunkingParams {
            fixed_size: 65536,
            ..ChunkingParams::default()
        },
        ..InitOptions::default()
    })
    .await
}

fn image(path: &Path, seed: u8) -> ImageFile {
    let f = std::fs::File::create(path).unwrap();
    f.set_len(SIZE).unwrap();
    let data: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8 ^ seed).collect();
    f.write_all_at(&data, 0).unwrap();
    drop(f);
    ImageFile::open(path, 4096).unwrap()
}

/// Copy the whole image as one range (what a copy-volume step does).
async fn copy(repo: &Repository, img: &ImageFile) -> Id {
    let opts = CopyOptions {
        range: ByteRange {
            start: 0,
            end: SIZE,
        },
        base: None,
    };
    copy_range(repo, img, opts, Arc::new(Progress::default()))
        .await
        .unwrap()
        .tree
}

async fn snapshot_of(repo: &Repository, tree: Id, hours_ago: i64) -> Id {
    let snap = Snapshot {
        version: 1,
        kind: "volume".into(),
        time: Utc::now() - Duration::hours(hours_ago),
        hostname: "prod".into(),
        paths: vec!["vol".into()],
        tags: Default::default(),
        tree,
        parent: None,
        summary: SnapshotSummary::default(),
        cluster: None,
        repository: None,
    };
    repo.save_file(FileKind::Snapshot, &snap).await.unwrap()
}

fn exported(tree: Id) -> ExportedState {
    ExportedState {
        tree,
        cluster: ClusterSource {
            name: "prod".into(),
            server: "https://api".into(),
            scope: serde_json::json!({}),
            resources: vec![],
            volumes: vec![],
            full: Some(true),
            scope_id: None,
            volumes_missing: vec![],
            warnings: Vec::new(),
        },
        summary: SnapshotSummary::default(),
        warnings: vec![],
        warning_count: 0,
        excluded: 0,
    }
}

async fn prune_keep_last_one(repo: &Repository) -> crate::prune::PruneReport {
    let opts = PruneOptions {
        policy: RetentionPolicy {
            last: 1,
            ..RetentionPolicy::default()
        },
        dry_run: false,
        grace: Duration::zero(),
        keep_reports: None,
    };
    prune(repo, &opts, Arc::new(Progress::default()))
        .await
        .unwrap()
}

/// An old snapshot of image A, a newer one of image B; then the in-flight
/// backup copies image A again (every chunk deduplicated).
async fn scenario(repo: &Repository, dir: &Path, run: Option<&str>) -> (Id, Id) {
    let a = image(&dir.join("a.img"), 1);
    let b = image(&dir.join("b.img"), 2);
    let old = snapshot_of(repo, copy(repo, &a).await, 2).await;
    snapshot_of(repo, copy(repo, &b).await, 1).await;
    if let Some(run) = run {
        begin(repo, run, "backup", WORKFLOW_LEASE).await.unwrap();
    }
    let tree = copy(repo, &a).await;
    (old, tree)
}

#[tokio::test]
async fn a_prune_between_copy_and_commit_keeps_what_a_pending_backup_uses() {
    let repo = repo().await;
    let dir = tempfile::tempdir().unwrap();
    let (old, tree) = scenario(&repo, dir.path(), Some("backup-prod-1")).await;

    let r = prune_keep_last_one(&repo).await;
    assert_eq!(r.snapshots_removed, vec![old]);
    assert_eq!(r.packs_deleted, 0, "{r:?}");
    assert!(r.packs_pending >= 1);
    assert_eq!(r.pending_runs, vec!["backup-prod-1".to_string()]);

    let (id, _) = commit_cluster(&repo, &exported(tree), Default::default(), Utc::now())
        .await
        .unwrap();
    end(&repo, "backup-prod-1").await.unwrap();
    let check = crate::check::check(
        &repo,
        crate::check::CheckOptions {
            read_data: true,
            snapshots: Some(vec![id]),
        },
        Arc::new(Progress::default()),
    )
    .await
    .unwrap();
    assert_eq!(check.errors(), 0, "{:?}", check.problems);

    // With the backup committed and its marker gone, the old pack is
    // referenced by the new snapshot and still kept; nothing is pending.
    let r = prune_keep_last_one(&repo).await;
    assert_eq!(r.packs_pending, 0);
    assert!(r.pending_runs.is_empty());
}

#[tokio::test]
async fn commit_refuses_a_snapshot_whose_data_a_prune_removed() {
    let repo = repo().await;
    let dir = tempfile::tempdir().unwrap();
    // No marker: what a workflow without one (or a CLI copy) runs into.
    let (_, tree) = scenario(&repo, dir.path(), None).await;
    let r = prune_keep_last_one(&repo).await;
    assert!(r.packs_deleted >= 1, "{r:?}");
    let before = repo.list_ids(FileKind::Snapshot).await.unwrap().len();
    let err = commit_cluster(&repo, &exported(tree), Default::default(), Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(err, OpsError::DataMissing { .. }), "{err}");
    assert!(err.to_string().contains("run the backup again"), "{err}");
    assert_eq!(
        repo.list_ids(FileKind::Snapshot).await.unwrap().len(),
        before
    );
}

#[tokio::test]
async fn an_expired_marker_protects_nothing_and_is_removed() {
    let repo = repo().await;
    begin(&repo, "old-run", "backup", Duration::seconds(-1))
        .await
        .unwrap();
    begin(&repo, "live-run", "backup", WORKFLOW_LEASE)
        .await
        .unwrap();
    let live = live(&repo, Utc::now(), true).await.unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].marker.as_ref().unwrap().run, "live-run");
    assert_eq!(repo.store().list(PENDING_PREFIX).await.unwrap().len(), 1);
}

#[test]
fn the_workflow_lease_outlasts_the_backup_workflow() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../infra/statemachine/backup.asl.json"
    );
    let asl: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let timeout = asl["TimeoutSeconds"].as_i64().unwrap();
    assert!(Duration::seconds(timeout) < WORKFLOW_LEASE, "{timeout}");
    assert!(WORKFLOW_LEASE <= MAX_LEASE);
}
