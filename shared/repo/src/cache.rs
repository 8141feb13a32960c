//! A local cache of the repository files every command reads whole:
//! snapshots and indexes.
//!
//! Every command that resolves a snapshot, picks a parent, prunes, checks
//! or extends locks reads all snapshot files and all index files; on an
//! object store that is one GET per file per command, and the number grows
//! with every backup (finding 24 of the 2026-12 security review). These
//! files are immutable and named by the BLAKE3 hash of their stored bytes,
//! so a copy kept on local disk can be reused as long as the store still
//! lists it.
//!
//! What the cache can and cannot do:
//! - It holds the stored bytes, sealed: never plaintext, never a key. Files
//!   are 0600 in 0700 directories.
//! - It is never trusted: a cached file is used only when its hash is its
//!   name and it opens with the repository's key (the same checks as a
//!   file fetched from the store). A file that fails is removed and the
//!   store is asked instead, so a tampered, truncated or planted cache
//!   entry costs one GET, never a wrong answer.
//! - It never decides what exists: the store's listing does. A file whose
//!   id the store no longer lists (forgotten, pruned) is not read and is
//!   removed from the cache by [`FileCache::retain`].
//! - It is never needed: any error reading or writing it is a warning and
//!   the store is used.
//!
//! Layout: `<dir>/<repository id>/<kind>/<file id>`.

use crate::{FileKind, Id};
use bytes::Bytes;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The kinds worth caching: read whole by almost every command, immutable,
/// named by the hash of their bytes.
pub(crate) fn cacheable(kind: FileKind) -> bool {
    matches!(kind, FileKind::Snapshot | FileKind::Index)
}

/// A directory of sealed repository files, one subdirectory per repository.
#[derive(Debug, Clone)]
pub struct FileCache {
    dir: PathBuf,
}

impl FileCache {
    /// A cache under `dir` (created on first write, mode 0700).
    pub fn new(dir: impl Into<PathBuf>) -> FileCache {
        FileCache { dir: dir.into() }
    }

    /// The directory this cache lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn kind_dir(&self, repo: &Id, kind: FileKind) -> PathBuf {
        self.dir
            .join(repo.to_hex())
            .join(kind.prefix().trim_end_matches('/'))
    }

    fn path(&self, repo: &Id, kind: FileKind, id: &Id) -> PathBuf {
        self.kind_dir(repo, kind).join(id.to_hex())
    }

    /// The cached bytes of a file, if there are any. Not checked here: the
    /// caller checks them as it checks bytes from the store, and calls
    /// [`FileCache::remove`] when they fail.
    pub(crate) async fn get(&self, repo: &Id, kind: FileKind, id: &Id) -> Option<Bytes> {
        let path = self.path(repo, kind, id);
        match tokio::fs::read(&path).await {
            Ok(b) => Some(Bytes::from(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the local cache; asking the store");
                None
            }
        }
    }

    /// Keep the bytes of a file that was just checked. Written to a
    /// temporary name and renamed, so a reader never sees half a file.
    pub(crate) async fn put(&self, repo: &Id, kind: FileKind, id: &Id, bytes: &[u8]) {
        if let Err(e) = self.try_put(repo, kind, id, bytes).await {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot write the local cache; going on without it");
        }
    }

    async fn try_put(
        &self,
        repo: &Id,
        kind: FileKind,
        id: &Id,
        bytes: &[u8],
    ) -> std::io::Result<()> {
        let dir = self.kind_dir(repo, kind);
        create_private_dir(&dir).await?;
        let final_path = dir.join(id.to_hex());
        let tmp = dir.join(format!(".{}.{}", id.to_hex(), random_suffix()));
        write_private(&tmp, bytes).await?;
        if let Err(e) = tokio::fs::rename(&tmp, &final_path).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        Ok(())
    }

    /// Drop one entry (it failed its checks).
    pub(crate) async fn remove(&self, repo: &Id, kind: FileKind, id: &Id) {
        let path = self.path(repo, kind, id);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {
                tracing::warn!(path = %path.display(), "removed a cache entry that failed its checks")
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a bad cache entry")
            }
        }
    }

    /// Remove every entry of `kind` that is not in `listed` (the store's
    /// current listing), and any leftover temporary file. Returns how many
    /// entries were removed.
    pub(crate) async fn retain(&self, repo: &Id, kind: FileKind, listed: &[Id]) -> usize {
        let dir = self.kind_dir(repo, kind);
        let keep: HashSet<String> = listed.iter().map(|id| id.to_hex()).collect();
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return 0,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot list the local cache");
                return 0;
            }
        };
        let mut removed = 0;
        loop {
            let entry = match entries.next_entry().await {
                Ok(Some(entry)) => entry,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot list the local cache");
                    break;
                }
            };
            let name = entry.file_name().to_string_lossy().into_owned();
            if keep.contains(&name) {
                continue;
            }
            if tokio::fs::remove_file(entry.path()).await.is_ok() {
                removed += 1;
            }
        }
        removed
    }
}

fn random_suffix() -> String {
    let mut b = [0u8; 8];
    // A collision only makes two writers of the same immutable file race
    // for one temporary name; either result is the same bytes.
    let _ = getrandom::getrandom(&mut b);
    hex::encode(b)
}

#[cfg(unix)]
async fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
    })
    .await
    .map_err(std::io::Error::other)?
}

#[cfg(not(unix))]
async fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    tokio::fs::create_dir_all(dir).await
}

async fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut opts = tokio::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path).await?;
    f.write_all(bytes).await?;
    f.flush().await?;
    Ok(())
}
