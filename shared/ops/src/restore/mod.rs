//! `volume restore`: recreate a snapshot's files byte for byte, with their
//! metadata, under a target directory (or onto a block device), and on
//! request read them back and compare them with the snapshot ([`verify`]).

mod contents;
#[cfg(test)]
mod tests;
mod verify;

pub use verify::Verification;

use crate::{OpsError, Progress};
use lifeboat_repo::{FileKind, Id, Index, Node, NodeType, Repository, Snapshot, Tree};
use serde::Serialize;
use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use tokio::task::JoinSet;

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
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreSummary {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub special: u64,
    pub bytes: u64,
    /// Metadata that could not be applied (ownership when not root, device nodes).
    pub warnings: Vec<String>,
    /// With `verify`: what was read back and whether it matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
}

#[derive(Clone)]
struct FileJob {
    path: PathBuf,
    node: Node,
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

    let mut summary = RestoreSummary::default();

    // Walk down to the included subpath, if any.
    let mut tree = root;
    let mut base = opts.target.clone();
    let mut start_nodes: Option<Vec<Node>> = None;
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    if opts.include.is_some() && opts.subtree.is_some() {
        return Err(OpsError::InvalidInput(
            "restore either a path (include) or a path's contents (subtree), not both".into(),
        ));
    }
    if let Some(include) = opts.include.as_ref().or(opts.subtree.as_ref()) {
        let parts: Vec<_> = include
            .components()
            .filter_map(|c| match c {
                Component::Normal(s) => Some(s.to_os_string()),
                _ => None,
            })
            .collect();
        if parts.is_empty() {
            return Err(OpsError::InvalidInput(format!(
                "{} names no path inside the snapshot",
                include.display()
            )));
        }
        for (i, part) in parts.iter().enumerate() {
            let node = tree
                .nodes
                .iter()
                .find(|n| n.os_name() == *part)
                .cloned()
                .ok_or_else(|| {
                    OpsError::InvalidInput(format!(
                        "{} is not in snapshot {}",
                        include.display(),
                        id.short()
                    ))
                })?;
            let last = i + 1 == parts.len();
            if last && opts.subtree.is_some() {
                // The contents go into the target itself.
                match (node.node_type, node.subtree) {
                    (NodeType::Dir, Some(sub)) => {
                        start_nodes = Some(load_checked_tree(repo, &index, &sub).await?.nodes);
                        base = opts.target.clone();
                        dirs.push((opts.target.clone(), node));
                    }
                    (NodeType::Dir, None) => {
                        start_nodes = Some(vec![]);
                        base = opts.target.clone();
                        dirs.push((opts.target.clone(), node));
                    }
                    (NodeType::File | NodeType::Blockdev, _) => {
                        start_nodes = Some(vec![]);
                        files.push(FileJob {
                            path: opts.target.clone(),
                            node,
                        });
                    }
                    _ => {
                        return Err(OpsError::InvalidInput(format!(
                            "{} is a {:?}: only a directory's or a file's contents can be restored into a target",
                            include.display(),
                            node.node_type
                        )))
                    }
                }
            } else if last {
                start_nodes = Some(vec![node]);
            } else {
                let sub = node.subtree.ok_or_else(|| {
                    OpsError::InvalidInput(format!("{} is not a directory", part.to_string_lossy()))
                })?;
                if opts.subtree.is_none() {
                    // An included path keeps its parents under the target.
                    base = base.join(part);
                    fs::create_dir_all(&base).map_err(|e| OpsError::io(&base, e))?;
                }
                tree = load_checked_tree(repo, &index, &sub).await?;
            }
        }
    }
    if files.is_empty() || opts.subtree.is_none() {
        // A file's contents go onto the target; anything else lands under
        // it, so it is a directory.
        fs::create_dir_all(&opts.target).map_err(|e| OpsError::io(&opts.target, e))?;
    }
    let nodes = start_nodes.unwrap_or(tree.nodes);

    // Pass 1: directories, links and special files; collect files.
    progress.set_phase("creating directories");
    let mut stack: Vec<(PathBuf, Node)> = nodes.into_iter().map(|n| (base.clone(), n)).collect();
    while let Some((parent, node)) = stack.pop() {
        if !node.has_safe_name() {
            return Err(OpsError::InvalidInput(format!(
                "snapshot {} holds an unsafe file name {:?}",
                id.short(),
                node.name
            )));
        }
        let path = parent.join(node.os_name());
        match node.node_type {
            NodeType::Dir => {
                fs::create_dir_all(&path).map_err(|e| OpsError::io(&path, e))?;
                if let Some(sub) = node.subtree {
                    let t = load_checked_tree(repo, &index, &sub).await?;
                    stack.extend(t.nodes.into_iter().map(|n| (path.clone(), n)));
                }
                summary.dirs += 1;
                dirs.push((path, node));
            }
            NodeType::File => files.push(FileJob { path, node }),
            NodeType::Blockdev if !node.content.is_empty() || node.size > 0 => {
                files.push(FileJob { path, node })
            }
            NodeType::Symlink => {
                let target = node.os_target().unwrap_or_default();
                let _ = fs::remove_file(&path);
                std::os::unix::fs::symlink(&target, &path).map_err(|e| OpsError::io(&path, e))?;
                apply_metadata(&path, &node, &mut summary.warnings);
                summary.symlinks += 1;
            }
            NodeType::Fifo | NodeType::Chardev | NodeType::Blockdev | NodeType::Socket => {
                if let Err(e) = make_special(&path, &node) {
                    summary.warnings.push(format!("{}: {e}", path.display()));
                } else {
                    apply_metadata(&path, &node, &mut summary.warnings);
                }
                summary.special += 1;
            }
        }
    }

    // Pass 2: file contents, a few files at a time.
    progress.set_phase("restoring files");
    progress
        .items_total
        .store(files.len() as u64, std::sync::atomic::Ordering::Relaxed);
    let restored = if opts.verify { files.clone() } else { vec![] };
    let mut set: JoinSet<Result<(u64, Vec<String>), OpsError>> = JoinSet::new();
    let mut pending = files.into_iter();
    let budget = contents::Budget::new();
    loop {
        while set.len() < FILES_IN_FLIGHT {
            let Some(job) = pending.next() else { break };
            set.spawn(restore_file(
                repo.clone(),
                index.clone(),
                job,
                budget.clone(),
                progress.clone(),
            ));
        }
        match set.join_next().await {
            Some(r) => {
                let (bytes, warnings) = r.map_err(|e| OpsError::Pipeline(e.to_string()))??;
                summary.files += 1;
                summary.bytes += bytes;
                summary.warnings.extend(warnings);
                Progress::add(&progress.items_done, 1);
            }
            None => break,
        }
    }

    // Pass 3: directory metadata, deepest first, so writing children does not
    // change a parent's mtime afterwards.
    dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
    for (path, node) in &dirs {
        apply_metadata(path, node, &mut summary.warnings);
    }
    if opts.verify {
        progress.set_phase("verifying");
        let jobs = restored.into_iter().map(|j| (j.path, j.node)).collect();
        summary.verification = Some(verify::verify_files(repo, &index, jobs, progress).await?);
    }
    Ok(summary)
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
    mut job: FileJob,
    budget: contents::Budget,
    progress: Arc<Progress>,
) -> Result<(u64, Vec<String>), OpsError> {
    let path = job.path.clone();
    let size = job.node.size;
    let p = path.clone();
    let file = tokio::task::spawn_blocking(move || contents::open_target(&p, size))
        .await
        .map_err(|e| OpsError::Pipeline(e.to_string()))?
        .map_err(|e| OpsError::io(&path, e))?;
    contents::write_chunks(
        &repo,
        &index,
        Arc::new(file),
        &path,
        std::mem::take(&mut job.node.content),
        &budget,
        &progress,
    )
    .await?;
    // No fsync per file: an interrupted restore is simply run again, and a
    // flush per file would cost more than the restore itself on many small files.
    // Every write is done (and the file closed) when write_chunks returns, so
    // the times set below stay.
    let mut warnings = Vec::new();
    let node = job.node;
    let p = path.clone();
    let warnings = tokio::task::spawn_blocking(move || {
        // A block device keeps its own mode and owner: only its data is restored.
        let device = fs::metadata(&p).is_ok_and(|m| m.file_type().is_block_device());
        if !device {
            apply_metadata(&p, &node, &mut warnings);
        }
        warnings
    })
    .await
    .map_err(|e| OpsError::Pipeline(e.to_string()))?;
    Ok((size, warnings))
}

fn make_special(path: &Path, node: &Node) -> Result<(), String> {
    use rustix::fs::{mknodat, FileType, Mode, CWD};
    let kind = match node.node_type {
        NodeType::Fifo => FileType::Fifo,
        NodeType::Chardev => FileType::CharacterDevice,
        NodeType::Blockdev => FileType::BlockDevice,
        NodeType::Socket => return Err("sockets are not restored".into()),
        _ => return Ok(()),
    };
    let _ = fs::remove_file(path);
    mknodat(
        CWD,
        path,
        kind,
        Mode::from_raw_mode(node.mode & 0o7777),
        node.rdev,
    )
    .map_err(|e| format!("mknod: {e}"))
}

/// Ownership (when root), permissions and times; problems become warnings.
fn apply_metadata(path: &Path, node: &Node, warnings: &mut Vec<String>) {
    let symlink = node.node_type == NodeType::Symlink;
    if is_root() {
        let r = if symlink {
            std::os::unix::fs::lchown(path, Some(node.uid), Some(node.gid))
        } else {
            std::os::unix::fs::chown(path, Some(node.uid), Some(node.gid))
        };
        if let Err(e) = r {
            warnings.push(format!("{}: chown: {e}", path.display()));
        }
    }
    if !symlink {
        if let Err(e) = fs::set_permissions(path, fs::Permissions::from_mode(node.mode)) {
            warnings.push(format!("{}: chmod: {e}", path.display()));
        }
    }
    // utimensat on the path itself: never opens the file (which would block on a FIFO).
    use rustix::fs::{utimensat, AtFlags, Timespec, Timestamps, CWD};
    let t = Timespec {
        tv_sec: node.mtime_ns.div_euclid(1_000_000_000),
        tv_nsec: node.mtime_ns.rem_euclid(1_000_000_000),
    };
    let times = Timestamps {
        last_access: t,
        last_modification: t,
    };
    if let Err(e) = utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW) {
        warnings.push(format!("{}: set times: {e}", path.display()));
    }
}
