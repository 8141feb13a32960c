//! Backups of a directory whose entries someone swaps while it is read.
#![allow(clippy::unwrap_used)]

use super::*;
use lifeboat_repo::{InitOptions, NodeType};
use rustix::fs::{mknodat, renameat_with, FileType, Mode, RenameFlags, CWD};
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// The data of every regular file in the snapshot's tree below its root.
async fn file_contents(repo: &Repository, id: &Id) -> Vec<(String, Vec<u8>)> {
    let snap: Snapshot = repo.load_file(FileKind::Snapshot, id).await.unwrap();
    let index = repo.load_index().await.unwrap();
    let root = repo.load_tree(&index, &snap.tree).await.unwrap();
    let src = repo
        .load_tree(&index, &root.nodes[0].subtree.unwrap())
        .await
        .unwrap();
    let mut out = Vec::new();
    for n in src.nodes.iter().filter(|n| n.node_type == NodeType::File) {
        let mut data = Vec::new();
        for c in &n.content {
            data.extend(repo.read_blob(&index, &c.id).await.unwrap());
        }
        out.push((n.name.clone(), data));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_swapped_for_a_symlink_or_a_fifo_are_neither_followed_nor_hang_the_backup() {
    let repo = crate::testing::memory_repo(InitOptions::default()).await;
    let secret_dir = tempfile::tempdir().unwrap();
    let secret = secret_dir.path().join("secret.txt");
    std::fs::write(&secret, b"the secret").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let (a, b, c) = (src.join("a"), src.join("b"), src.join("c"));
    std::fs::write(&a, b"harmless").unwrap();
    symlink(&secret, &b).unwrap();
    mknodat(CWD, &c, FileType::Fifo, Mode::from_raw_mode(0o644), 0).unwrap();

    // Swap the file with the symlink and with the FIFO, as fast as we can.
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, a, b, c) = (stop.clone(), a.clone(), b.clone(), c.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = renameat_with(CWD, &a, CWD, &b, RenameFlags::EXCHANGE);
                let _ = renameat_with(CWD, &a, CWD, &c, RenameFlags::EXCHANGE);
            }
        })
    };
    let mut failure = None;
    for round in 0..40 {
        let opts = BackupOptions {
            paths: vec![src.clone()],
            parent: ParentChoice::None,
            ..Default::default()
        };
        let run = backup(&repo, opts, Arc::new(Progress::default()));
        match tokio::time::timeout(std::time::Duration::from_secs(20), run).await {
            Err(_) => {
                failure = Some(format!("backup {round} hung"));
                break;
            }
            Ok(out) => {
                let id = out.unwrap().snapshot_id;
                for (name, data) in file_contents(&repo, &id).await {
                    if data != b"harmless" {
                        failure = Some(format!("backup {round} stored {name} as {data:?}"));
                    }
                }
            }
        }
        if failure.is_some() {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    // Release a reader stuck on the FIFO (without the fix), so the test ends.
    for p in [&a, &b, &c] {
        let _ = rustix::fs::open(
            Path::new(p),
            rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::NONBLOCK,
            Mode::empty(),
        );
    }
    assert!(failure.is_none(), "{}", failure.unwrap_or_default());
}
