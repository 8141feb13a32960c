//! `volume backup`: files, directories, symlinks, special files, sparse files,
//! block devices and disk images into a snapshot.

mod open;
mod pipeline;
#[cfg(test)]
mod race_tests;
mod source;
mod span_reader;
mod walker;

pub(crate) use pipeline::all_zero;
pub use pipeline::{BlobPipeline, BlobSaver, PipelineResult};

use crate::{OpsError, Progress};
use chrono::Utc;
use lifeboat_repo::{FileKind, Id, LockHandle, LockKind, Repository, Snapshot, SnapshotSummary};
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use walker::{ParentTrees, Walker};

/// How long a backup waits for a running prune to finish before giving up,
/// unless `LIFEBOAT_LOCK_WAIT` says otherwise (see [`lock_wait`]).
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// How long writers wait for an exclusive lock (a prune) to go:
/// `LIFEBOAT_LOCK_WAIT` seconds, else [`LOCK_WAIT`]. The Lambda functions
/// set a short wait, so that a locked repository fails the step with
/// `Lifeboat.RepositoryLocked` and Step Functions waits between retries
/// instead of a running function; an unusable value is reported and
/// ignored.
pub fn lock_wait() -> std::time::Duration {
    match std::env::var("LIFEBOAT_LOCK_WAIT") {
        Err(_) => LOCK_WAIT,
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(secs) => std::time::Duration::from_secs(secs),
            Err(_) => {
                tracing::warn!(value = %v, "LIFEBOAT_LOCK_WAIT is not a number of seconds; waiting the default 600 s");
                LOCK_WAIT
            }
        },
    }
}

/// Which snapshot's file metadata lets unchanged files be skipped.
#[derive(Debug, Clone, Default)]
pub enum ParentChoice {
    /// The newest volume snapshot of the same paths from the same host.
    #[default]
    Auto,
    /// Read every file.
    None,
    /// This snapshot.
    Snapshot(Id),
}

#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    pub paths: Vec<PathBuf>,
    pub tags: BTreeMap<String, String>,
    pub parent: ParentChoice,
    /// Recorded in the snapshot; defaults to this machine's host name.
    pub hostname: Option<String>,
    /// Judge files unchanged since the parent by type, size and mtime,
    /// not inode and ctime (which change when the source is a fresh copy,
    /// as a volume restored from a snapshot is).
    pub ignore_inode: bool,
}

/// The result of a backup.
#[derive(Debug, Clone)]
pub struct BackupOutcome {
    pub snapshot_id: Id,
    pub snapshot: Snapshot,
    /// Files and directories that could not be read (the first 100).
    pub warnings: Vec<String>,
    pub warning_count: u64,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn absolute_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>, OpsError> {
    if paths.is_empty() {
        return Err(OpsError::InvalidInput("no path to back up".into()));
    }
    let mut names = HashSet::new();
    let mut out = Vec::new();
    for p in paths {
        let abs = std::path::absolute(p).map_err(|e| OpsError::io(p, e))?;
        std::fs::symlink_metadata(&abs).map_err(|e| OpsError::io(&abs, e))?;
        let name = abs
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| "root".into());
        if !names.insert(name.clone()) {
            return Err(OpsError::InvalidInput(format!(
                "two source paths are both named {:?}; back them up separately",
                name
            )));
        }
        out.push(abs);
    }
    Ok(out)
}

/// Back up `opts.paths` into a new snapshot.
#[tracing::instrument(skip_all, fields(paths = opts.paths.len()))]
pub async fn backup(
    repo: &Repository,
    opts: BackupOptions,
    progress: Arc<Progress>,
) -> Result<BackupOutcome, OpsError> {
    repo.with_lock(LockKind::Shared, "backup", lock_wait(), |lock| {
        backup_locked(repo, opts, progress, lock)
    })
    .await
}

async fn backup_locked(
    repo: &Repository,
    opts: BackupOptions,
    progress: Arc<Progress>,
    lock: LockHandle,
) -> Result<BackupOutcome, OpsError> {
    let started = Instant::now();
    let paths = absolute_paths(&opts.paths)?;
    let hostname = opts.hostname.clone().unwrap_or_else(hostname);
    let path_strings: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    progress.set_phase("loading index");
    let index = Arc::new(repo.load_index().await?);

    let parent =
        match &opts.parent {
            ParentChoice::None => None,
            ParentChoice::Snapshot(id) => Some((
                *id,
                repo.load_file::<Snapshot>(FileKind::Snapshot, id).await?,
            )),
            ParentChoice::Auto => repo.snapshots().await?.into_iter().rev().find(|(_, s)| {
                s.kind == "volume" && s.hostname == hostname && s.paths == path_strings
            }),
        };
    if let Some((id, _)) = &parent {
        tracing::info!(parent = %id.short(), "using parent snapshot");
    }

    progress.set_phase("backing up");
    let (pipeline, saver) = BlobPipeline::start(repo, index.clone(), progress.clone());
    let parent_trees = parent.as_ref().map(|_| ParentTrees {
        repo: repo.clone(),
        index: index.clone(),
        rt: tokio::runtime::Handle::current(),
        ignore_inode: opts.ignore_inode,
    });
    let parent_root = parent.as_ref().map(|(_, s)| s.tree);
    let chunking = repo.config().chunking;
    let walk_progress = progress.clone();
    let walked = tokio::task::spawn_blocking(move || {
        let mut walker = Walker::new(saver, chunking, walk_progress, parent_trees);
        let root = walker.backup_sources(&paths, parent_root);
        (root, walker)
    })
    .await
    .map_err(|e| OpsError::Pipeline(e.to_string()))?;
    let (root, walker) = walked;
    // Finish the pipeline even when the walk failed: if the walk failed because
    // the pipeline did, the pipeline's error is the root cause and wins.
    let written = pipeline.finish(walker.saver).await?;
    let tree = root?;
    let stats = walker.stats;

    progress.set_phase("saving snapshot");
    let snapshot = Snapshot {
        version: 1,
        kind: "volume".into(),
        time: Utc::now(),
        hostname,
        paths: path_strings,
        tags: opts.tags,
        tree,
        parent: parent.map(|(id, _)| id),
        summary: SnapshotSummary {
            files: stats.files,
            dirs: stats.dirs,
            bytes: stats.bytes,
            bytes_read: stats.bytes_read,
            bytes_new: written.bytes_new,
            bytes_stored: written.bytes_stored,
            blobs_new: written.blobs,
            packs_written: written.packs,
            duration_secs: started.elapsed().as_secs_f64(),
        },
        cluster: None,
        repository: Some(repo.fingerprint().await?),
    };
    lock.ensure_held().await?;
    let snapshot_id = repo.save_file(FileKind::Snapshot, &snapshot).await?;
    tracing::info!(snapshot = %snapshot_id.short(), files = stats.files, new = written.bytes_new, "backup done");
    Ok(BackupOutcome {
        snapshot_id,
        snapshot,
        warnings: stats.warnings,
        warning_count: stats.warning_count,
    })
}
