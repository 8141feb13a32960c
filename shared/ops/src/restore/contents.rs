//! A file's data: its chunks read from the repository, decoded and written at
//! their offsets, several at once.
//!
//! Chunks of one file are independent (each lands at its own offset), so a
//! file's next chunks are read and decoded while earlier ones are written.
//! On a repository that is not in the page cache, which is where a real
//! restore reads from, this keeps several reads in flight instead of one
//! read, then one write, then the next read. A budget shared by every file
//! bounds the bytes held at once, whatever the chunk sizes.

use super::target::{Attrs, Dir, Temp};
use crate::{OpsError, Progress};
use futures::stream::{self, StreamExt};
use lifeboat_repo::{BlobLocation, ChunkRef, Id, Index, Repository};
use rustix::fs::{openat, statat, AtFlags, FileType, Mode, OFlags};
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Reads (runs of chunks) of one file in flight at once.
const READS_PER_FILE: usize = 4;
/// Bytes (stored and decoded, in KiB) that all files' chunks in flight may
/// hold together: 96 MiB.
const BUDGET_KIB: u32 = 96 * 1024;
/// The most stored bytes one read fetches: chunks that lie back to back in
/// a pack are read together up to this size.
const RUN_MAX_BYTES: u64 = 8 * 1024 * 1024;

/// The memory that chunks being restored may hold, shared by all files.
#[derive(Debug, Clone)]
pub(super) struct Budget(Arc<Semaphore>);

impl Budget {
    pub(super) fn new() -> Self {
        Budget(Arc::new(Semaphore::new(BUDGET_KIB as usize)))
    }
}

/// Split a file's chunks (in file order) into runs that one ranged read
/// fetches: consecutive chunks whose preferred copies lie back to back in
/// one pack, up to [`RUN_MAX_BYTES`]. A backup writes a file's new chunks
/// in order, so most of a file is a few runs, and a restore from an object
/// store makes one request per run instead of one per chunk.
pub(super) fn runs(index: &Index, chunks: Vec<ChunkRef>) -> Vec<Vec<ChunkRef>> {
    let mut out: Vec<Vec<ChunkRef>> = Vec::new();
    // The location of the run's last chunk, and the run's stored bytes.
    let mut tail: Option<(BlobLocation, u64)> = None;
    for chunk in chunks {
        let loc = index.get(&chunk.id).copied();
        let extends = match (tail, loc, out.last_mut()) {
            (Some((prev, bytes)), Some(loc), Some(run)) => {
                let adjacent = loc.pack == prev.pack
                    && u64::from(loc.offset) == u64::from(prev.offset) + u64::from(prev.length);
                let fits = bytes + u64::from(loc.length) <= RUN_MAX_BYTES;
                if adjacent && fits {
                    run.push(chunk);
                    tail = Some((loc, bytes + u64::from(loc.length)));
                    true
                } else {
                    false
                }
            }
            _ => false,
        };
        if !extends {
            out.push(vec![chunk]);
            tail = loc.map(|l| (l, u64::from(l.length)));
        }
    }
    out
}

/// Write `chunks` into `file` (at `path`, named in errors); returns the bytes written.
///
/// Reading and decoding run ahead as tasks of their own, a run of
/// back-to-back chunks per read ([`runs`]); the writes into the file are
/// made one after another, in order: writers of one file only queue on its
/// inode lock (spinning on it, in the kernel), and in order the filesystem
/// lays the file out in one piece.
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
    let named: Arc<Path> = Arc::from(path);
    let reads = runs(&index, chunks).into_iter().map(move |run| {
        let (repo, index, budget) = (repo.clone(), index.clone(), budget.clone());
        let path = named.clone();
        tokio::spawn(async move {
            let cost = run
                .iter()
                .map(|c| {
                    index.get(&c.id).map_or(1, |loc| {
                        loc.length.div_ceil(1024) + loc.raw_length.div_ceil(1024)
                    })
                })
                .fold(0u32, u32::saturating_add)
                .clamp(1, BUDGET_KIB);
            let permit = budget
                .acquire_many_owned(cost)
                .await
                .map_err(|e| OpsError::Pipeline(format!("restore budget: {e}")))?;
            let data = read_run(&repo, &index, &run, &path).await?;
            Ok::<_, OpsError>((data, permit))
        })
    });
    let mut ready = stream::iter(reads).buffered(READS_PER_FILE);
    let mut written = 0;
    while let Some(next) = ready.next().await {
        let (data, permit) = next.map_err(|e| OpsError::Pipeline(e.to_string()))??;
        let (file, path) = (file.clone(), path.to_path_buf());
        let n = tokio::task::spawn_blocking(move || {
            let mut n = 0;
            for (offset, bytes) in &data {
                file.write_all_at(bytes, *offset)
                    .map_err(|e| OpsError::io(&path, e))?;
                n += bytes.len() as u64;
            }
            drop(permit);
            Ok::<u64, OpsError>(n)
        })
        .await
        .map_err(|e| OpsError::Pipeline(e.to_string()))??;
        written += n;
        Progress::add(&progress.bytes_written, n);
    }
    Ok(written)
}

/// The decoded chunks of a run, with their offsets in the file: one ranged
/// read for the whole run, decoded on a blocking thread. If that read or
/// any chunk in it fails, each chunk is read on its own, so a damaged
/// chunk is named and a good copy elsewhere is still found.
async fn read_run(
    repo: &Repository,
    index: &Index,
    run: &[ChunkRef],
    path: &Path,
) -> Result<Vec<(u64, Vec<u8>)>, OpsError> {
    if run.len() > 1 {
        let located: Vec<(Id, BlobLocation)> = run
            .iter()
            .filter_map(|c| index.get(&c.id).map(|loc| (c.id, *loc)))
            .collect();
        let together = match repo.read_sealed_run(&located).await {
            Ok(blobs) => {
                let key = repo.key().clone();
                tokio::task::spawn_blocking(move || {
                    blobs
                        .iter()
                        .map(|b| b.decode(&key))
                        .collect::<Result<Vec<_>, _>>()
                })
                .await
                .map_err(|e| OpsError::Pipeline(e.to_string()))?
            }
            Err(e) => Err(e),
        };
        match together {
            Ok(data) => return Ok(run.iter().map(|c| c.offset).zip(data).collect()),
            Err(e) => {
                tracing::warn!(path = %path.display(), chunks = run.len(), error = %e, "a run of chunks did not read in one piece; reading them one by one")
            }
        }
    }
    let mut out = Vec::with_capacity(run.len());
    for c in run {
        out.push((c.offset, read_chunk(repo, index, c, path).await?));
    }
    Ok(out)
}

/// One chunk, from its preferred copy or, when that is unreadable, from
/// another copy; a failure names the file, the offset and the pack.
async fn read_chunk(
    repo: &Repository,
    index: &Index,
    chunk: &ChunkRef,
    path: &Path,
) -> Result<Vec<u8>, OpsError> {
    let ChunkRef { id, offset } = *chunk;
    let chunk_error = |source: OpsError| OpsError::RestoreChunk {
        path: path.to_path_buf(),
        offset,
        pack: index.get(&id).map(|loc| loc.pack),
        source: Box::new(source),
    };
    // A chunk the index does not know fails in read_sealed_blob, which names it.
    match read_preferred(repo, index, &id).await? {
        Ok(data) => Ok(data),
        // Another copy of a blob stored twice (two writers at once)
        // may still be good: read_blob tries each in turn.
        Err(e) if index.locations(&id).nth(1).is_some() => {
            tracing::warn!(blob = %id, error = %e, "preferred copy unreadable; trying the others");
            repo.read_blob(index, &id)
                .await
                .map_err(|e| chunk_error(e.into()))
        }
        Err(e) => Err(chunk_error(e.into())),
    }
}

/// A chunk read from its preferred copy and decoded on a blocking thread:
/// the outer error is the pipeline's, the inner one the repository's.
async fn read_preferred(
    repo: &Repository,
    index: &Index,
    id: &Id,
) -> Result<Result<Vec<u8>, lifeboat_repo::RepoError>, OpsError> {
    let blob = match repo.read_sealed_blob(index, id).await {
        Ok(blob) => blob,
        Err(e) => return Ok(Err(e)),
    };
    let key = repo.key().clone();
    tokio::task::spawn_blocking(move || blob.decode(&key))
        .await
        .map_err(|e| OpsError::Pipeline(e.to_string()))
}

/// Where a file's data goes.
pub(super) enum Place {
    /// `name` in a directory of the target.
    In { dir: Arc<Dir>, name: OsString },
    /// The target itself, a block device the operator named: written in place.
    Device(PathBuf),
}

impl Place {
    pub(super) fn path(&self) -> PathBuf {
        match self {
            Place::In { dir, name } => dir.path().join(name),
            Place::Device(p) => p.clone(),
        }
    }
}

/// The file being written.
pub(super) enum Output {
    /// A temporary, renamed into place when complete.
    Temp(Temp),
    /// A block device, written in place; it keeps its own owner and mode.
    Device(Arc<File>),
}

impl Output {
    pub(super) fn file(&self) -> Arc<File> {
        match self {
            Output::Temp(t) => t.file.clone(),
            Output::Device(f) => f.clone(),
        }
    }

    /// Done writing: give a file its metadata and its name.
    pub(super) fn finish(self, attrs: &Attrs) -> io::Result<()> {
        match self {
            Output::Temp(t) => t.commit(Some(attrs)),
            Output::Device(_) => Ok(()),
        }
    }
}

/// Open where a file of `size` bytes goes: a block device already at its
/// place (the operator's target, or a device node where the snapshot has a
/// block device's data) is written in place; anything else is written into
/// a new temporary of the right (sparse) length.
pub(super) fn open_output(place: Place, blockdev: bool, size: u64) -> io::Result<Output> {
    let write = OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match place {
        Place::Device(path) => Ok(Output::Device(Arc::new(
            OpenOptions::new().write(true).open(path)?,
        ))),
        Place::In { dir, name } => {
            let device = blockdev
                && statat(dir.fd(), name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
                    .is_ok_and(|s| FileType::from_raw_mode(s.st_mode) == FileType::BlockDevice);
            if device {
                let fd = openat(dir.fd(), name.as_os_str(), write, Mode::empty())?;
                return Ok(Output::Device(Arc::new(File::from(fd))));
            }
            let temp = dir.temp_for(&name)?;
            temp.file.set_len(size)?;
            Ok(Output::Temp(temp))
        }
    }
}
