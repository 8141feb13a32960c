//! A file's data: its chunks read from the repository, decoded and written at
//! their offsets, several at once.
//!
//! Chunks of one file are independent (each lands at its own offset), so a
//! file's next chunks are read and decoded while earlier ones are written.
//! On a repository that is not in the page cache, which is where a real
//! restore reads from, this keeps several reads in flight instead of one
//! read, then one write, then the next read. A budget shared by every file
//! bounds the bytes held at once, whatever the chunk sizes.

use crate::{OpsError, Progress};
use futures::stream::{self, StreamExt};
use lifeboat_repo::{ChunkRef, Index, Repository};
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::Path;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Chunks of one file in flight at once.
const CHUNKS_PER_FILE: usize = 4;
/// Bytes (stored and decoded, in KiB) that all files' chunks in flight may
/// hold together: 96 MiB.
const BUDGET_KIB: u32 = 96 * 1024;

/// The memory that chunks being restored may hold, shared by all files.
#[derive(Debug, Clone)]
pub(super) struct Budget(Arc<Semaphore>);

impl Budget {
    pub(super) fn new() -> Self {
        Budget(Arc::new(Semaphore::new(BUDGET_KIB as usize)))
    }
}

/// Write `chunks` into `file` (at `path`, named in errors); returns the bytes written.
///
/// Reading and decoding run ahead as tasks of their own; the writes into the
/// file are made one after another, in order: writers of one file only
/// queue on its inode lock (spinning on it, in the kernel), and in order the
/// filesystem lays the file out in one piece.
pub(super) async fn write_chunks(
    repo: &Repository,
    index: &Arc<Index>,
    file: Arc<File>,
    path: &Path,
    chunks: Vec<ChunkRef>,
    budget: &Budget,
    progress: &Progress,
) -> Result<u64, OpsError> {
    let (repo, index, budget) = (repo.clone(), index.clone(), budget.0.clone());
    let decoded = chunks.into_iter().map(move |ChunkRef { id, offset }| {
        let (repo, index, budget) = (repo.clone(), index.clone(), budget.clone());
        tokio::spawn(async move {
            // A chunk the index does not know fails in read_blob, which names it.
            let cost = index.get(&id).map_or(1, |loc| {
                (loc.length.div_ceil(1024) + loc.raw_length.div_ceil(1024)).clamp(1, BUDGET_KIB)
            });
            let permit = budget
                .acquire_many_owned(cost)
                .await
                .map_err(|e| OpsError::Pipeline(format!("restore budget: {e}")))?;
            // read_blob falls back to another copy of a blob stored twice.
            let data = repo.read_blob(&index, &id).await?;
            Ok::<_, OpsError>((offset, data, permit))
        })
    });
    let mut ready = stream::iter(decoded).buffered(CHUNKS_PER_FILE);
    let mut written = 0;
    while let Some(next) = ready.next().await {
        let (offset, data, permit) = next.map_err(|e| OpsError::Pipeline(e.to_string()))??;
        let (file, path) = (file.clone(), path.to_path_buf());
        let n = tokio::task::spawn_blocking(move || {
            file.write_all_at(&data, offset)
                .map_err(|e| OpsError::io(&path, e))?;
            drop(permit);
            Ok::<u64, OpsError>(data.len() as u64)
        })
        .await
        .map_err(|e| OpsError::Pipeline(e.to_string()))??;
        written += n;
        Progress::add(&progress.bytes_written, n);
    }
    Ok(written)
}

/// Open the restore target: an existing block device is written in place,
/// anything else becomes a regular file of the right (sparse) length.
pub(super) fn open_target(path: &Path, size: u64) -> std::io::Result<File> {
    if let Ok(meta) = fs::metadata(path) {
        if meta.file_type().is_block_device() {
            return OpenOptions::new().write(true).open(path);
        }
        if meta.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a directory is in the way",
            ));
        }
    }
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    f.set_len(size)?;
    Ok(f)
}
