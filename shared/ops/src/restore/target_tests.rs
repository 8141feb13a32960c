//! What a restore does to a target that already holds entries, and what it
//! leaves out: symlinks planted in the target are never followed, device
//! nodes and set-id bits need asking for, a failed file leaves nothing
//! half-written.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::backup::{backup, BackupOptions, ParentChoice};
use lifeboat_repo::InitOptions;
use lifeboat_store::ObjectStore;
use std::fs;
use std::os::unix::fs::{symlink, FileTypeExt, PermissionsExt};
use std::path::Path;

async fn repo() -> Repository {
    crate::testing::memory_repo(InitOptions::default()).await
}

async fn snapshot_of(repo: &Repository, path: &Path) -> Id {
    let opts = BackupOptions {
        paths: vec![path.to_path_buf()],
        parent: ParentChoice::None,
        ..Default::default()
    };
    backup(repo, opts, Arc::new(Progress::default()))
        .await
        .unwrap()
        .snapshot_id
}

async fn restore_into(
    repo: &Repository,
    id: &Id,
    target: &Path,
) -> Result<RestoreSummary, OpsError> {
    let opts = RestoreOptions {
        target: target.to_path_buf(),
        ..Default::default()
    };
    restore(repo, id, &opts, Arc::new(Progress::default())).await
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// An "outside" directory, 0700, with one file, and a way to see it unchanged.
struct Outside {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Outside {
    fn new() -> Outside {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outside");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("victim"), b"root only").unwrap();
        fs::set_permissions(path.join("victim"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).unwrap();
        Outside { _dir: dir, path }
    }

    fn assert_untouched(&self) {
        let names: Vec<_> = fs::read_dir(&self.path)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["victim"], "nothing appears outside the target");
        assert_eq!(mode(&self.path), 0o700, "outside keeps its mode");
        let victim = self.path.join("victim");
        assert_eq!(fs::read(&victim).unwrap(), b"root only");
        assert_eq!(mode(&victim), 0o600);
    }
}

#[tokio::test]
async fn a_symlinked_directory_in_the_target_is_replaced_not_followed() {
    let repo = repo().await;
    let src = tempfile::tempdir().unwrap();
    let s = src.path().join("src");
    fs::create_dir(&s).unwrap();
    fs::write(s.join("f.txt"), b"snapshot data").unwrap();
    fs::set_permissions(&s, fs::Permissions::from_mode(0o777)).unwrap();
    let id = snapshot_of(&repo, &s).await;

    let outside = Outside::new();
    let t = tempfile::tempdir().unwrap();
    symlink(&outside.path, t.path().join("src")).unwrap();
    restore_into(&repo, &id, t.path()).await.unwrap();

    outside.assert_untouched();
    let restored = t.path().join("src");
    assert!(fs::symlink_metadata(&restored).unwrap().is_dir());
    assert_eq!(fs::read(restored.join("f.txt")).unwrap(), b"snapshot data");
    assert_eq!(mode(&restored), 0o777);
}

#[tokio::test]
async fn a_symlinked_file_in_the_target_is_replaced_not_written_through() {
    let repo = repo().await;
    let src = tempfile::tempdir().unwrap();
    let s = src.path().join("src");
    fs::create_dir_all(s.join("sub")).unwrap();
    fs::write(s.join("sub/file.txt"), b"snapshot data").unwrap();
    fs::set_permissions(s.join("sub/file.txt"), fs::Permissions::from_mode(0o644)).unwrap();
    let id = snapshot_of(&repo, &s).await;

    let outside = Outside::new();
    let t = tempfile::tempdir().unwrap();
    fs::create_dir_all(t.path().join("src/sub")).unwrap();
    let planted = t.path().join("src/sub/file.txt");
    symlink(outside.path.join("victim"), &planted).unwrap();
    restore_into(&repo, &id, t.path()).await.unwrap();

    outside.assert_untouched();
    assert!(fs::symlink_metadata(&planted).unwrap().is_file());
    assert_eq!(fs::read(&planted).unwrap(), b"snapshot data");
    assert_eq!(mode(&planted), 0o644);
}

#[tokio::test]
async fn two_snapshots_restored_in_turn_stay_inside_the_target() {
    let repo = repo().await;
    let outside = Outside::new();
    let src = tempfile::tempdir().unwrap();
    let s = src.path().join("src");
    fs::create_dir(&s).unwrap();
    // The first snapshot holds d -> outside ...
    symlink(&outside.path, s.join("d")).unwrap();
    let first = snapshot_of(&repo, &s).await;
    // ... the second a directory d with a subdirectory and a file.
    fs::remove_file(s.join("d")).unwrap();
    fs::create_dir_all(s.join("d/planted")).unwrap();
    fs::write(s.join("d/planted/x"), b"x").unwrap();
    let second = snapshot_of(&repo, &s).await;

    let t = tempfile::tempdir().unwrap();
    restore_into(&repo, &first, t.path()).await.unwrap();
    assert!(fs::symlink_metadata(t.path().join("src/d"))
        .unwrap()
        .file_type()
        .is_symlink());
    restore_into(&repo, &second, t.path()).await.unwrap();

    outside.assert_untouched();
    assert!(fs::symlink_metadata(t.path().join("src/d"))
        .unwrap()
        .is_dir());
    assert_eq!(fs::read(t.path().join("src/d/planted/x")).unwrap(), b"x");
}

#[tokio::test]
async fn an_included_paths_symlinked_parent_is_not_followed() {
    let repo = repo().await;
    let src = tempfile::tempdir().unwrap();
    let s = src.path().join("src");
    fs::create_dir_all(s.join("a")).unwrap();
    fs::write(s.join("a/f"), b"f").unwrap();
    let id = snapshot_of(&repo, &s).await;
    let outside = Outside::new();
    let t = tempfile::tempdir().unwrap();
    symlink(&outside.path, t.path().join("src")).unwrap();
    let opts = RestoreOptions {
        target: t.path().to_path_buf(),
        include: Some("src/a".into()),
        ..Default::default()
    };
    restore(&repo, &id, &opts, Arc::new(Progress::default()))
        .await
        .unwrap();
    outside.assert_untouched();
    assert_eq!(fs::read(t.path().join("src/a/f")).unwrap(), b"f");
}

#[tokio::test]
async fn set_id_bits_are_cleared_unless_asked_for() {
    let repo = repo().await;
    let src = tempfile::tempdir().unwrap();
    let s = src.path().join("src");
    fs::create_dir(&s).unwrap();
    fs::write(s.join("tool"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(s.join("tool"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::set_permissions(&s, fs::Permissions::from_mode(0o2775)).unwrap();
    let id = snapshot_of(&repo, &s).await;

    let t = tempfile::tempdir().unwrap();
    let summary = restore_into(&repo, &id, t.path()).await.unwrap();
    assert_eq!(mode(&t.path().join("src/tool")), 0o755);
    assert_eq!(
        mode(&t.path().join("src")),
        0o2775,
        "a directory keeps set-group-id"
    );
    assert!(
        summary
            .warnings
            .iter()
            .any(|w| w.contains("src/tool") && w.contains("--restore-setuid")),
        "{:?}",
        summary.warnings
    );

    let t = tempfile::tempdir().unwrap();
    let opts = RestoreOptions {
        target: t.path().to_path_buf(),
        restore_setuid: true,
        ..Default::default()
    };
    let summary = restore(&repo, &id, &opts, Arc::new(Progress::default()))
        .await
        .unwrap();
    assert_eq!(mode(&t.path().join("src/tool")), 0o4755);
    assert!(summary.warnings.is_empty(), "{:?}", summary.warnings);
}

#[tokio::test]
async fn device_nodes_are_skipped_unless_asked_for() {
    let repo = repo().await;
    // /dev/null as a source path: a character device node in the snapshot.
    let id = snapshot_of(&repo, Path::new("/dev/null")).await;

    let t = tempfile::tempdir().unwrap();
    let summary = restore_into(&repo, &id, t.path()).await.unwrap();
    assert!(fs::symlink_metadata(t.path().join("null")).is_err());
    assert_eq!(summary.special, 0);
    assert!(
        summary
            .warnings
            .iter()
            .any(|w| w.contains("--restore-devices")),
        "{:?}",
        summary.warnings
    );

    let t = tempfile::tempdir().unwrap();
    let opts = RestoreOptions {
        target: t.path().to_path_buf(),
        restore_devices: true,
        ..Default::default()
    };
    let summary = restore(&repo, &id, &opts, Arc::new(Progress::default()))
        .await
        .unwrap();
    match fs::symlink_metadata(t.path().join("null")) {
        Ok(made) => {
            assert!(is_root());
            assert!(made.file_type().is_char_device());
            assert_eq!(summary.special, 1);
        }
        // Not root, or root without CAP_MKNOD (a container): named, not made.
        Err(_) => {
            assert!(
                summary.warnings.iter().any(|w| w.contains("null")),
                "{:?}",
                summary.warnings
            );
        }
    }
}

#[tokio::test]
async fn a_failed_file_leaves_the_old_one_and_names_the_file_and_the_pack() {
    let (store, repo) = crate::testing::memory_repo_and_store(InitOptions::default()).await;
    let src = tempfile::tempdir().unwrap();
    let s = src.path().join("src");
    fs::create_dir(&s).unwrap();
    // Incompressible, several content-defined chunks.
    let data = crate::testing::random_bytes(3_000_000, 11);
    fs::write(s.join("rand.bin"), &data).unwrap();
    let id = snapshot_of(&repo, &s).await;

    // Damage the last chunk of rand.bin in its pack.
    let snap: Snapshot = repo.load_file(FileKind::Snapshot, &id).await.unwrap();
    let index = repo.load_index().await.unwrap();
    let root = repo.load_tree(&index, &snap.tree).await.unwrap();
    let dir = repo
        .load_tree(&index, &root.nodes[0].subtree.unwrap())
        .await
        .unwrap();
    let last = dir.nodes[0].content.last().unwrap();
    assert!(dir.nodes[0].content.len() > 1);
    let loc = *index.get(&last.id).unwrap();
    let key = FileKind::Pack.key(&loc.pack);
    let mut pack = store.get(&key).await.unwrap().to_vec();
    pack[loc.offset as usize + loc.length as usize / 2] ^= 0xff;
    store.tamper(&key, pack.into());

    let t = tempfile::tempdir().unwrap();
    fs::create_dir(t.path().join("src")).unwrap();
    let old = t.path().join("src/rand.bin");
    fs::write(&old, b"the old file").unwrap();
    let err = restore_into(&repo, &id, t.path()).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&old.display().to_string()), "{msg}");
    assert!(msg.contains(&loc.pack.to_string()), "{msg}");
    assert!(msg.contains(&format!("offset {}", last.offset)), "{msg}");
    // The old file is untouched and no temporary is left beside it.
    assert_eq!(fs::read(&old).unwrap(), b"the old file");
    let names: Vec<_> = fs::read_dir(t.path().join("src"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["rand.bin"]);
}
