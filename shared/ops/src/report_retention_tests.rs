//! The reports' retention: old reports go, the proof of a kept snapshot's
//! verification stays.
#![allow(clippy::unwrap_used)]

use crate::backup::{backup, BackupOptions};
use crate::forget::RetentionPolicy;
use crate::prune::{prune, PruneOptions};
use crate::verify::{verifications, verify_snapshot};
use crate::Progress;
use lifeboat_repo::{FileKind, InitOptions};
use std::sync::Arc;

fn opts(keep_reports: chrono::Duration) -> PruneOptions {
    PruneOptions {
        policy: RetentionPolicy {
            last: 1,
            ..RetentionPolicy::default()
        },
        dry_run: false,
        grace: chrono::Duration::zero(),
        keep_reports: Some(keep_reports),
    }
}

#[tokio::test]
async fn old_reports_go_but_the_verification_of_a_kept_snapshot_stays() {
    let repo = crate::testing::memory_repo(InitOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut snapshots = Vec::new();
    for round in 0..2 {
        std::fs::write(dir.path().join("f"), format!("round {round}")).unwrap();
        let opts = BackupOptions {
            paths: vec![dir.path().to_path_buf()],
            ..Default::default()
        };
        let out = backup(&repo, opts, Arc::new(Progress::default()))
            .await
            .unwrap();
        verify_snapshot(&repo, out.snapshot_id, Arc::new(Progress::default()))
            .await
            .unwrap();
        snapshots.push(out.snapshot_id);
    }
    let workflow = serde_json::json!({"kind": "workflow", "outcome": "succeeded"});
    repo.save_file(FileKind::Report, &workflow).await.unwrap();
    assert_eq!(repo.list_ids(FileKind::Report).await.unwrap().len(), 3);

    // Reports younger than the retention stay, whatever they are.
    let r = prune(
        &repo,
        &opts(chrono::Duration::days(1)),
        Arc::new(Progress::default()),
    )
    .await
    .unwrap();
    assert_eq!(r.snapshots_removed, vec![snapshots[0]]);
    assert_eq!(r.reports.unwrap().removed, 0);
    assert_eq!(repo.list_ids(FileKind::Report).await.unwrap().len(), 3);

    // Older ones go: the workflow report and the forgotten snapshot's
    // verification; the kept snapshot's verification stays.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let r = prune(
        &repo,
        &opts(chrono::Duration::zero()),
        Arc::new(Progress::default()),
    )
    .await
    .unwrap()
    .reports
    .unwrap();
    assert_eq!(
        (r.removed, r.kept_for_snapshots, r.locked),
        (2, 1, 0),
        "{r:?}"
    );
    let left = verifications(&repo).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].snapshot, snapshots[1]);
    assert_eq!(repo.list_ids(FileKind::Report).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_dry_run_counts_without_deleting_and_junk_is_kept() {
    let (mem, repo) = crate::testing::memory_repo_and_store(InitOptions::default()).await;
    let report = serde_json::json!({"kind": "workflow"});
    let id = repo.save_file(FileKind::Report, &report).await.unwrap();
    // A second report, rotted in place.
    let other = repo
        .save_file(FileKind::Report, &serde_json::json!({"kind": "restore"}))
        .await
        .unwrap();
    mem.tamper(
        &FileKind::Report.key(&other),
        bytes::Bytes::from_static(b"junk"),
    );
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let dry = PruneOptions {
        dry_run: true,
        ..opts(chrono::Duration::zero())
    };
    let r = prune(&repo, &dry, Arc::new(Progress::default()))
        .await
        .unwrap()
        .reports
        .unwrap();
    assert_eq!((r.removed, r.unreadable), (1, 1), "{r:?}");
    assert!(repo.list_ids(FileKind::Report).await.unwrap().contains(&id));
    let r = prune(
        &repo,
        &opts(chrono::Duration::zero()),
        Arc::new(Progress::default()),
    )
    .await
    .unwrap()
    .reports
    .unwrap();
    assert_eq!((r.removed, r.unreadable), (1, 1), "{r:?}");
    assert_eq!(repo.list_ids(FileKind::Report).await.unwrap(), vec![other]);
}
