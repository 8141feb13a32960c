//! Restoring a path's contents into a target, and reading it back.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::backup::{backup, BackupOptions};
use lifeboat_repo::InitOptions;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;

async fn repo() -> Repository {
    crate::testing::memory_repo(InitOptions::default()).await
}

/// `vol/` with a file, a nested one and a sparse image; backed up.
async fn backed_up(repo: &Repository) -> (tempfile::TempDir, Id) {
    let dir = tempfile::tempdir().unwrap();
    let vol = dir.path().join("vol");
    fs::create_dir_all(vol.join("sub")).unwrap();
    fs::write(vol.join("a.txt"), b"alpha\n").unwrap();
    fs::write(vol.join("sub/b.bin"), vec![9u8; 200_000]).unwrap();
    fs::set_permissions(&vol, fs::Permissions::from_mode(0o750)).unwrap();
    let img = File::create(vol.join("disk.img")).unwrap();
    img.set_len(8 << 20).unwrap();
    img.write_all_at(&[1u8; 4096], 3 << 20).unwrap();
    let opts = BackupOptions {
        paths: vec![vol],
        ..Default::default()
    };
    let out = backup(repo, opts, Arc::new(Progress::default()))
        .await
        .unwrap();
    (dir, out.snapshot_id)
}

/// Restore `subtree` of snapshot `id` onto `target`, verified.
async fn restore_to(repo: &Repository, id: &Id, target: &Path, subtree: &str) -> RestoreSummary {
    restore(
        repo,
        id,
        &opts(target, subtree),
        Arc::new(Progress::default()),
    )
    .await
    .unwrap()
}

fn opts(target: &Path, subtree: &str) -> RestoreOptions {
    RestoreOptions {
        target: target.to_path_buf(),
        subtree: Some(subtree.into()),
        verify: true,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_directorys_contents_go_into_the_target_with_its_metadata_and_verify() {
    let repo = repo().await;
    let (src, id) = backed_up(&repo).await;
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("mnt");
    fs::create_dir_all(&target).unwrap();
    let s = restore_to(&repo, &id, &target, "vol").await;
    assert!(
        crate::compare::compare_trees(&src.path().join("vol"), &target)
            .unwrap()
            .is_empty()
    );
    let mode = fs::metadata(&target).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o750, "the volume root takes the backed-up mode");
    let v = s.verification.unwrap();
    assert!(v.matched(), "{v:?}");
    assert_eq!(v.files, 3);
    assert_eq!(v.bytes, 6 + 200_000 + (8 << 20));
}

#[tokio::test]
async fn a_files_data_goes_onto_the_target_itself() {
    let repo = repo().await;
    let (src, id) = backed_up(&repo).await;
    let out = tempfile::tempdir().unwrap();
    let device = out.path().join("device");
    let s = restore_to(&repo, &id, &device, "vol/disk.img").await;
    assert_eq!(
        fs::read(&device).unwrap(),
        fs::read(src.path().join("vol/disk.img")).unwrap()
    );
    assert!(s.verification.unwrap().matched());
    // Nothing else is created beside it.
    assert_eq!(fs::read_dir(out.path()).unwrap().count(), 1);
}

#[tokio::test]
async fn verification_names_what_differs() {
    let repo = repo().await;
    let (_src, id) = backed_up(&repo).await;
    let snap: Snapshot = repo.load_file(FileKind::Snapshot, &id).await.unwrap();
    let index = repo.load_index().await.unwrap();
    let root = repo.load_tree(&index, &snap.tree).await.unwrap();
    let vol = repo
        .load_tree(&index, &root.nodes[0].subtree.unwrap())
        .await
        .unwrap();
    let img = vol
        .nodes
        .iter()
        .find(|n| n.name == "disk.img")
        .unwrap()
        .clone();
    let out = tempfile::tempdir().unwrap();
    let device = out.path().join("device");
    restore_to(&repo, &id, &device, "vol/disk.img").await;
    // Damage a chunk, and write into a hole.
    let f = OpenOptions::new().write(true).open(&device).unwrap();
    f.write_all_at(&[2u8], (3 << 20) + 10).unwrap();
    f.write_all_at(&[5u8], 7 << 20).unwrap();
    drop(f);
    let v = verify::verify_files(
        &repo,
        &index,
        vec![(device.clone(), img)],
        Arc::new(Progress::default()),
    )
    .await
    .unwrap();
    assert_eq!(v.mismatch_count, 2, "{v:?}");
    assert!(v.mismatches[0].contains("differ from chunk"), "{v:?}");
    assert!(v.mismatches[1].contains("hole"), "{v:?}");
}

#[tokio::test]
async fn include_and_subtree_together_are_refused() {
    let repo = repo().await;
    let (_src, id) = backed_up(&repo).await;
    let out = tempfile::tempdir().unwrap();
    let mut o = opts(out.path(), "vol");
    o.include = Some("vol".into());
    let err = restore(&repo, &id, &o, Arc::new(Progress::default()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not both"), "{err}");
    let missing = restore(
        &repo,
        &id,
        &opts(out.path(), "vol/nope"),
        Arc::new(Progress::default()),
    )
    .await
    .unwrap_err();
    assert!(
        missing.to_string().contains("vol/nope is not in snapshot"),
        "{missing}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_copy_of_a_blob_stored_twice_is_read_from_the_other() {
    let (mem, repo) = crate::testing::memory_repo_and_store(InitOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let vol = dir.path().join("vol");
    fs::create_dir_all(&vol).unwrap();
    let data = crate::testing::random_bytes(3 << 20, 7);
    fs::write(vol.join("data.bin"), &data).unwrap();
    let backup_opts = BackupOptions {
        paths: vec![vol.clone()],
        ..Default::default()
    };
    let id = backup(&repo, backup_opts, Arc::new(Progress::default()))
        .await
        .unwrap()
        .snapshot_id;
    crate::testing::store_every_blob_twice(&repo).await;
    let index = repo.load_index().await.unwrap();
    let snap: lifeboat_repo::Snapshot = repo
        .load_file(lifeboat_repo::FileKind::Snapshot, &id)
        .await
        .unwrap();
    let root = repo.load_tree(&index, &snap.tree).await.unwrap();
    let tree = repo
        .load_tree(&index, &root.nodes[0].subtree.unwrap())
        .await
        .unwrap();
    let chunks = &tree.nodes[0].content;
    assert!(chunks.len() > 1, "{} chunks", chunks.len());
    // Rot the preferred copy of every chunk of the file.
    for c in chunks {
        assert_eq!(
            index.locations(&c.id).count(),
            2,
            "chunk {} not stored twice",
            c.id
        );
        let pack = index.get(&c.id).unwrap().pack;
        mem.tamper(
            &lifeboat_repo::FileKind::Pack.key(&pack),
            bytes::Bytes::from_static(b"rot"),
        );
    }
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("mnt");
    fs::create_dir_all(&target).unwrap();
    let s = restore_to(&repo, &id, &target, "vol").await;
    assert!(s.verification.unwrap().matched());
    assert_eq!(fs::read(target.join("data.bin")).unwrap(), data);
}

/// A file's chunks that lie back to back in a pack are read with one
/// request: restoring a 4 MiB disk image (64 fixed chunks) from a store
/// makes a few ranged reads, not one per chunk, and the data is exact.
#[tokio::test]
async fn back_to_back_chunks_are_read_in_one_request() {
    use lifeboat_store::{MemoryStore, MeteredStore};
    let (store, meter) = MeteredStore::wrap(Arc::new(MemoryStore::new()));
    let repo = crate::testing::repo_on(store, InitOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let vol = dir.path().join("vol");
    fs::create_dir_all(&vol).unwrap();
    let data = crate::testing::random_bytes(4 << 20, 11);
    fs::write(vol.join("disk.img"), &data).unwrap();
    let to_back_up = BackupOptions {
        paths: vec![vol],
        ..Default::default()
    };
    let id = backup(&repo, to_back_up, Arc::new(Progress::default()))
        .await
        .unwrap()
        .snapshot_id;

    let before = meter.usage().requests.get_range;
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("mnt");
    fs::create_dir_all(&target).unwrap();
    restore_to(&repo, &id, &target, "vol").await;
    let reads = meter.usage().requests.get_range - before;
    assert_eq!(fs::read(target.join("disk.img")).unwrap(), data);
    // 64 chunks; the trees are a read or two more.
    assert!(reads <= 8, "{reads} ranged reads for 64 chunks");
}

#[test]
fn runs_break_at_gaps_other_packs_unknown_chunks_and_the_size_cap() {
    use lifeboat_repo::{BlobType, ChunkRef, Compression, IndexFile, IndexPack, IndexedBlob};
    let pack = |n: u8| Id([n; 32]);
    let blob = |n: u8| Id([100 + n; 32]);
    let at = |id: Id, offset: u32, length: u32| IndexedBlob {
        id,
        blob_type: BlobType::Data,
        offset,
        length,
        raw_length: length,
        compression: Compression::None,
    };
    let mib = 1024 * 1024;
    let file = IndexFile {
        packs: vec![
            IndexPack {
                id: pack(1),
                size: 0,
                blobs: vec![
                    at(blob(0), 0, 100),
                    at(blob(1), 100, 50),
                    // A gap before blob 2.
                    at(blob(2), 200, 10),
                    at(blob(3), 210, 5 * mib),
                    // Past the 8 MiB cap with blob 3.
                    at(blob(4), 210 + 5 * mib, 4 * mib),
                ],
            },
            IndexPack {
                id: pack(2),
                size: 0,
                blobs: vec![at(blob(5), 0, 10)],
            },
        ],
        ..IndexFile::default()
    };
    let index = Index::from_files(vec![(Id([9; 32]), file)]);
    let chunk = |n: u8, offset: u64| ChunkRef {
        id: blob(n),
        offset,
    };
    let unknown = ChunkRef {
        id: Id([1; 32]),
        offset: 99,
    };
    let chunks = vec![
        chunk(0, 0),
        chunk(1, 1),
        chunk(2, 2),
        chunk(3, 3),
        chunk(4, 4),
        chunk(5, 5),
        unknown,
        chunk(0, 7),
    ];
    let runs: Vec<Vec<u64>> = contents::runs(&index, chunks)
        .iter()
        .map(|r| r.iter().map(|c| c.offset).collect())
        .collect();
    assert_eq!(
        runs,
        vec![vec![0, 1], vec![2, 3], vec![4], vec![5], vec![99], vec![7]]
    );
}
