//! Planted, rotten and lost objects: check names each, commands keep
//! working, and repair makes the repository usable again.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::backup::{backup, BackupOptions};
use crate::check::{check, Severity};
use crate::restore::{restore, RestoreOptions};
use bytes::Bytes;
use lifeboat_repo::{
    encode_blob, BlobType, Credential, InitOptions, KdfParams, Node, NodeType, PackBuilder,
    Snapshot, SnapshotSummary, Tree,
};
use lifeboat_store::{MemoryStore, ObjectStore, PutOptions};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

const JUNK_ID: &str = "0000000000000000000000000000000000000000000000000000000000000001";

async fn repo() -> (MemoryStore, Repository) {
    let mem = MemoryStore::new();
    let cred = Credential::Passphrase("pw".into());
    let opts = InitOptions {
        kdf: Some(KdfParams::weak_for_tests(&cred).unwrap()),
        ..InitOptions::default()
    };
    let repo = Repository::init(Arc::new(mem.clone()), &cred, opts)
        .await
        .unwrap();
    (mem, repo)
}

fn progress() -> Arc<Progress> {
    Arc::new(Progress::default())
}

/// Back up a directory holding one file with `content`.
async fn backed_up(repo: &Repository, dir: &std::path::Path, content: &[u8]) -> Id {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("f"), content).unwrap();
    let opts = BackupOptions {
        paths: vec![dir.to_path_buf()],
        ..Default::default()
    };
    backup(repo, opts, progress()).await.unwrap().snapshot_id
}

async fn packs(repo: &Repository) -> HashSet<Id> {
    repo.list_ids(FileKind::Pack)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

async fn restores(repo: &Repository, id: &Id) -> bool {
    let out = tempfile::tempdir().unwrap();
    let opts = RestoreOptions {
        target: out.path().join("t"),
        ..Default::default()
    };
    restore(repo, id, &opts, progress()).await.is_ok()
}

fn errors_about(report: &crate::check::CheckReport, what: &str) -> usize {
    report
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Error && p.object.contains(what))
        .count()
}

/// A snapshot of a crafted tree (stored in a pack of its own, indexed).
async fn crafted(repo: &Repository, nodes: Vec<Node>) -> Id {
    let key = repo.key().clone();
    let json = serde_json::to_vec(&Tree { nodes }).unwrap();
    let tid = key.blob_id(&json);
    let mut b = PackBuilder::new(1024);
    b.add(&encode_blob(&key, BlobType::Tree, tid, &json, 3).unwrap())
        .unwrap();
    let (pack, bytes, blobs) = b.finish(&key).unwrap();
    let size = bytes.len() as u64;
    repo.store()
        .put(
            &FileKind::Pack.key(&pack),
            Bytes::from(bytes),
            &PutOptions::default(),
        )
        .await
        .unwrap();
    let file = IndexFile {
        version: 1,
        supersedes: vec![],
        packs: vec![IndexPack {
            id: pack,
            size,
            blobs: blobs.iter().map(IndexedBlob::from).collect(),
        }],
    };
    repo.save_file(FileKind::Index, &file).await.unwrap();
    let snap = Snapshot {
        version: 1,
        kind: "volume".into(),
        time: Utc::now(),
        hostname: "h".into(),
        paths: vec!["/x".into()],
        tags: Default::default(),
        tree: tid,
        parent: None,
        summary: SnapshotSummary::default(),
        cluster: None,
    };
    repo.save_file(FileKind::Snapshot, &snap).await.unwrap()
}

#[tokio::test]
async fn check_refuses_the_trees_that_restore_refuses() {
    let (_, repo) = repo().await;
    let file = |n: &[u8]| Node::new(OsStr::from_bytes(n), NodeType::File);
    let dotdot = crafted(&repo, vec![file(b"..")]).await;
    let slash = crafted(&repo, vec![file(b"a/b")]).await;
    let nul = crafted(&repo, vec![file(b"a\0b")]).await;
    let twice = crafted(
        &repo,
        vec![file(b"x"), Node::new(OsStr::new("x"), NodeType::Dir)],
    )
    .await;
    let fine = crafted(&repo, vec![file(b"ok")]).await;
    let report = check(&repo, CheckOptions::default(), progress())
        .await
        .unwrap();
    let refusals: Vec<_> = report
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Error && p.message.contains("restore refuses"))
        .collect();
    assert_eq!(refusals.len(), 4, "{:?}", report.problems);
    assert!(refusals.iter().any(|p| p.message.contains("twice")));
    for id in [dotdot, slash, nul, twice] {
        assert!(report.damaged_snapshots.contains(&id));
        assert!(!restores(&repo, &id).await, "restore refuses it too");
    }
    assert!(!report.damaged_snapshots.contains(&fine));
    // A scoped check (what verify runs) refuses it too.
    let scoped = check(
        &repo,
        CheckOptions {
            read_data: true,
            snapshots: Some(vec![twice]),
        },
        progress(),
    )
    .await
    .unwrap();
    assert!(scoped.errors() > 0);
}

#[tokio::test]
async fn check_names_every_planted_object_and_commands_still_work() {
    let (mem, repo) = repo().await;
    let dir = tempfile::tempdir().unwrap();
    let id = backed_up(&repo, &dir.path().join("v"), b"data").await;
    for prefix in ["keys/", "snapshots/", "index/"] {
        mem.put(
            &format!("{prefix}{JUNK_ID}"),
            Bytes::from_static(b"junk"),
            &PutOptions::default(),
        )
        .await
        .unwrap();
    }
    // Open, list, resolve, back up, restore and prune all still work.
    let cred = Credential::Passphrase("pw".into());
    let repo = Repository::open(Arc::new(mem.clone()), &cred)
        .await
        .unwrap();
    assert_eq!(repo.resolve_snapshot("latest").await.unwrap().0, id);
    assert!(restores(&repo, &id).await);
    backed_up(&repo, &dir.path().join("v"), b"more data").await;

    let report = check(&repo, CheckOptions::default(), progress())
        .await
        .unwrap();
    assert_eq!(errors_about(&report, &format!("keys/{JUNK_ID}")), 1);
    assert_eq!(errors_about(&report, &format!("snapshot {JUNK_ID}")), 1);
    assert_eq!(errors_about(&report, &format!("index {JUNK_ID}")), 1);
    assert_eq!(report.errors(), 3, "{:?}", report.problems);
}

#[tokio::test]
async fn repair_reindexes_the_packs_of_a_rotten_index_file() {
    let (mem, repo) = repo().await;
    let dir = tempfile::tempdir().unwrap();
    let id = backed_up(&repo, &dir.path().join("v"), b"precious").await;
    let files = repo.list_ids(FileKind::Index).await.unwrap();
    assert_eq!(files.len(), 1);
    mem.tamper(&FileKind::Index.key(&files[0]), Bytes::from_static(b"rot"));
    // Before: the snapshot's data is in no readable index.
    assert!(!restores(&repo, &id).await);

    let dry = repair(
        &repo,
        &RepairOptions {
            dry_run: true,
            read_data: false,
        },
        progress(),
    )
    .await
    .unwrap();
    assert_eq!(dry.index_files_superseded.len(), 1);
    assert!(dry.packs_indexed > 0);
    assert!(dry.index_written.is_none());
    assert!(
        dry.snapshots_marked.is_empty(),
        "the re-index makes it whole"
    );
    assert_eq!(repo.list_ids(FileKind::Index).await.unwrap().len(), 1);
    assert!(mem.list("locks/").await.unwrap().is_empty());

    let done = repair(&repo, &RepairOptions::default(), progress())
        .await
        .unwrap();
    assert!(done.index_written.is_some());
    assert!(restores(&repo, &id).await);
    let report = check(&repo, CheckOptions::default(), progress())
        .await
        .unwrap();
    assert_eq!(report.errors(), 0, "{:?}", report.problems);
    assert!(report
        .problems
        .iter()
        .any(|p| p.severity == Severity::Warning && p.message.contains("superseded")));
    // A second run finds nothing to do.
    let again = repair(&repo, &RepairOptions::default(), progress())
        .await
        .unwrap();
    assert!(again.index_written.is_none());
}

#[tokio::test]
async fn repair_marks_a_snapshot_whose_data_is_lost_and_unmarks_it_when_it_is_back() {
    let (mem, repo) = repo().await;
    let dir = tempfile::tempdir().unwrap();
    let old = backed_up(&repo, &dir.path().join("a"), b"old data").await;
    let before = packs(&repo).await;
    let new = backed_up(&repo, &dir.path().join("b"), b"new data").await;
    let lost: Vec<Id> = packs(&repo).await.difference(&before).copied().collect();
    let mut kept = Vec::new();
    for p in &lost {
        kept.push(mem.get(&FileKind::Pack.key(p)).await.unwrap());
        mem.force_remove(&FileKind::Pack.key(p));
    }
    assert_eq!(repo.resolve_snapshot("latest").await.unwrap().0, new);

    let dry = repair(
        &repo,
        &RepairOptions {
            dry_run: true,
            read_data: false,
        },
        progress(),
    )
    .await
    .unwrap();
    assert_eq!(dry.snapshots_marked, vec![new]);
    assert_eq!(repo.resolve_snapshot("latest").await.unwrap().0, new);

    let done = repair(&repo, &RepairOptions::default(), progress())
        .await
        .unwrap();
    assert_eq!(done.snapshots_marked, vec![new]);
    // `latest` and parent selection now pass it by; it can still be named.
    assert_eq!(repo.resolve_snapshot("latest").await.unwrap().0, old);
    assert_eq!(repo.resolve_snapshot(&new.to_hex()).await.unwrap().0, new);
    let report = check(&repo, CheckOptions::default(), progress())
        .await
        .unwrap();
    assert!(report.damaged_snapshots.contains(&new));
    assert!(!report.damaged_snapshots.contains(&old));
    assert!(report
        .problems
        .iter()
        .any(|p| p.severity == Severity::Warning && p.message.contains("marked damaged")));

    // The packs come back (e.g. copied from the replica): the mark goes.
    for (p, bytes) in lost.iter().zip(kept) {
        mem.put(&FileKind::Pack.key(p), bytes, &PutOptions::default())
            .await
            .unwrap();
    }
    let healed = repair(&repo, &RepairOptions::default(), progress())
        .await
        .unwrap();
    assert_eq!(healed.markers_removed, vec![new]);
    assert_eq!(repo.resolve_snapshot("latest").await.unwrap().0, new);
}

#[tokio::test]
async fn a_lost_copy_of_a_duplicate_blob_does_not_damage_its_snapshots() {
    let (mem, repo) = repo().await;
    let dir = tempfile::tempdir().unwrap();
    let id = backed_up(&repo, &dir.path().join("v"), b"twice stored").await;
    // Store every pack a second time under a second index file, as two
    // concurrent writers would, then lose the preferred copies.
    let index = repo.load_index().await.unwrap();
    let key = repo.key().clone();
    let mut copy = PackBuilder::new(1 << 20);
    for (bid, loc) in index.blobs() {
        let data = repo.read_blob(&index, bid).await.unwrap();
        copy.add(&encode_blob(&key, loc.blob_type, *bid, &data, 3).unwrap())
            .unwrap();
    }
    let (pack, bytes, blobs) = copy.finish(&key).unwrap();
    let size = bytes.len() as u64;
    mem.put(
        &FileKind::Pack.key(&pack),
        Bytes::from(bytes),
        &PutOptions::default(),
    )
    .await
    .unwrap();
    repo.save_file(
        FileKind::Index,
        &IndexFile {
            version: 1,
            supersedes: vec![],
            packs: vec![IndexPack {
                id: pack,
                size,
                blobs: blobs.iter().map(IndexedBlob::from).collect(),
            }],
        },
    )
    .await
    .unwrap();
    let index = repo.load_index().await.unwrap();
    let first: HashSet<Id> = index.blobs().map(|(_, l)| l.pack).collect();
    for p in &first {
        mem.force_remove(&FileKind::Pack.key(p));
    }
    assert!(restores(&repo, &id).await, "restore falls back to the copy");
    let report = check(&repo, CheckOptions::default(), progress())
        .await
        .unwrap();
    assert!(report.errors() > 0, "the lost packs are still reported");
    assert!(report.damaged_snapshots.is_empty(), "{:?}", report.problems);
    // Extend-locks and prune see both copies of each blob.
    let all: HashSet<Id> = index.blobs().map(|(b, _)| *b).collect();
    let used = crate::reachable::packs_of(&index, &all);
    assert!(used.contains(&pack));
    assert!(first.iter().all(|p| used.contains(p)));
}
