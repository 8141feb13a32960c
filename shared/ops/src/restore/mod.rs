//! `volume restore`: recreate a snapshot's files byte for byte, with their
//! metadata, under a target directory (or onto a block device), and on
//! request read them back and compare them with the snapshot ([`verify`]).

mod contents;
mod start;
mod target;
#[cfg(test)]
mod target_tests;
#[cfg(test)]
mod tests;
mod verify;
mod walk;

pub use verify::Verification;

use crate::{OpsError, Progress};
use contents::Place;
use lifeboat_repo::{FileKind, Id, Index, Node, NodeType, Repository, Snapshot, Tree};
use serde::Serialize;
use start::{file_onto_target, start, Start};
use std::path::PathBuf;
use std::sync::Arc;
use target::{Attrs, Dir, Shared};
use tokio::task::JoinSet;
use walk::Walk;

/// Files restored at once.
const FILES_IN_FLIGHT: usize = 6;

#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    pub target: PathBuf,
    /// Restore only this path inside the snapshot (relative to its root, e.g. `data/sub`).
    pub include: Option<PathBuf>,
    /// Restore the contents of this path of the snapshot into the target
    /// itself: a directory's entries (and its metadata) into the target
    /// directory, a file's data onto the target (a block device or file).
    /// How a volume mover restores `volumes/<namespace>/<claim>` of a
    /// cluster snapshot into a new volume. Excludes `include`.
    pub subtree: Option<PathBuf>,
    /// Read every restored file back and compare each chunk with the
    /// snapshot by keyed hash (holes must read as zeros).
    pub verify: bool,
    /// Create the snapshot's character and block device nodes (only as
    /// root). Off: each is skipped with a warning.
    pub restore_devices: bool,
    /// Keep set-user-id and set-group-id bits on files. Off: they are
    /// cleared, with a warning per file (directories keep set-group-id,
    /// which only passes their group on).
    pub restore_setuid: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreSummary {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub special: u64,
    pub bytes: u64,
    /// Metadata that could not be applied (ownership when not root), and
    /// what was left out (device nodes, set-id bits, sockets).
    pub warnings: Vec<String>,
    /// With `verify`: what was read back and whether it matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
}

/// A file whose data is to be written.
struct FileJob {
    place: Place,
    node: Node,
    attrs: Attrs,
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Restore snapshot `id` as `opts` says.
#[tracing::instrument(skip_all, fields(snapshot = %id.short()))]
pub async fn restore(
    repo: &Repository,
    id: &Id,
    opts: &RestoreOptions,
    progress: Arc<Progress>,
) -> Result<RestoreSummary, OpsError> {
    let snapshot: Snapshot = repo.load_file(FileKind::Snapshot, id).await?;
    progress.set_phase("loading index");
    let index = Arc::new(repo.load_index().await?);
    let root = load_checked_tree(repo, &index, &snapshot.tree).await?;
    let start = start(repo, &index, id, root, opts).await?;
    let shared = Shared::new(is_root());
    let mut walk = Walk {
        repo,
        index: &index,
        snapshot: id,
        opts,
        shared: &shared,
        stack: Vec::new(),
        first: None,
    };
    match start {
        Start::Nodes {
            parents,
            nodes,
            attrs,
        } => {
            let mut dir = Dir::open_target(&opts.target, attrs, &shared)
                .map_err(|e| OpsError::io(&opts.target, e))?;
            for p in parents {
                // An included path keeps its parents under the target.
                dir = dir
                    .child_dir(&p, None)
                    .map_err(|e| OpsError::io(dir.path().join(&p), e))?;
            }
            walk.stack = nodes.into_iter().map(|n| (dir.clone(), n)).collect();
        }
        Start::File(node) => walk.first = Some(file_onto_target(opts, node, &shared)?),
    }

    let mut summary = RestoreSummary::default();
    let mut restored = Vec::new();
    progress.set_phase("restoring");
    let mut set: JoinSet<Result<u64, OpsError>> = JoinSet::new();
    let budget = contents::Budget::new();
    // Directories are created as the walk reaches them and files written a
    // few at a time meanwhile; the walk goes on only as files finish, so
    // only the directories on its path and those of files in flight stay
    // open, and each gets its metadata once all below it is done.
    let outcome = loop {
        while set.len() < FILES_IN_FLIGHT {
            let job = match walk.next_file(&mut summary).await {
                Ok(Some(job)) => job,
                Ok(None) => break,
                Err(e) => return Err(abandon(e, &shared, set).await),
            };
            if opts.verify {
                restored.push((job.place.path(), job.node.clone()));
            }
            Progress::add(&progress.items_total, 1);
            set.spawn(restore_file(
                repo.clone(),
                index.clone(),
                job,
                budget.clone(),
                progress.clone(),
            ));
        }
        match set.join_next().await {
            Some(r) => match r
                .map_err(|e| OpsError::Pipeline(e.to_string()))
                .and_then(|r| r)
            {
                Ok(bytes) => {
                    summary.files += 1;
                    summary.bytes += bytes;
                    Progress::add(&progress.items_done, 1);
                }
                Err(e) => break Err(e),
            },
            None => break Ok(()),
        }
    };
    if let Err(e) = outcome {
        return Err(abandon(e, &shared, set).await);
    }
    // The last handles on the directories: their metadata is set now.
    drop(walk);
    summary.warnings = shared.take_warnings();
    if opts.verify {
        progress.set_phase("verifying");
        summary.verification = Some(verify::verify_files(repo, &index, restored, progress).await?);
    }
    Ok(summary)
}

/// Stop a failed restore: wait for the files in flight to stop (each
/// removes its temporary), leaving directories with the modes they were
/// created with.
async fn abandon(
    e: OpsError,
    shared: &Shared,
    mut set: JoinSet<Result<u64, OpsError>>,
) -> OpsError {
    shared.fail();
    set.shutdown().await;
    e
}

/// A tree whose names are unique: a tampered tree with a symlink and a
/// directory of the same name could otherwise lead the restore outside the target.
async fn load_checked_tree(repo: &Repository, index: &Index, id: &Id) -> Result<Tree, OpsError> {
    let tree = repo.load_tree(index, id).await?;
    if let Some(n) = tree.duplicate_name() {
        return Err(OpsError::InvalidInput(format!(
            "tree {} lists {:?} twice; refusing to restore it",
            id.short(),
            n.name
        )));
    }
    Ok(tree)
}

async fn restore_file(
    repo: Repository,
    index: Arc<Index>,
    job: FileJob,
    budget: contents::Budget,
    progress: Arc<Progress>,
) -> Result<u64, OpsError> {
    let FileJob {
        place,
        mut node,
        attrs,
    } = job;
    let path = place.path();
    let size = node.size;
    let blockdev = node.node_type == NodeType::Blockdev;
    let output = blocking(&path, move || contents::open_output(place, blockdev, size)).await?;
    // On an error the output is dropped here, which removes its temporary.
    contents::write_chunks(
        &repo,
        &index,
        output.file(),
        &path,
        std::mem::take(&mut node.content),
        &budget,
        &progress,
    )
    .await?;
    // No fsync per file: an interrupted restore is simply run again, and a
    // flush per file would cost more than the restore itself on many small files.
    // Every write is done when write_chunks returns, so the times set now stay.
    blocking(&path, move || output.finish(&attrs)).await?;
    Ok(size)
}

/// Run `f` on a blocking thread; its error names `path`.
async fn blocking<T: Send + 'static>(
    path: &std::path::Path,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, OpsError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| OpsError::Pipeline(e.to_string()))?
        .map_err(|e| OpsError::io(path, e))
}
