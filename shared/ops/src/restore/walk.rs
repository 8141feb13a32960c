//! The walk over a snapshot's trees that lays out the target: directories,
//! symlinks and special files as it reaches them, files handed out as jobs.

use super::contents::Place;
use super::target::{Attrs, Dir, Shared};
use super::{load_checked_tree, FileJob, RestoreOptions, RestoreSummary};
use crate::OpsError;
use lifeboat_repo::{Id, Index, Node, NodeType, Repository};
use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::sync::Arc;

/// Set-user-id and set-group-id bits.
const SET_ID: u32 = 0o6000;

pub(super) fn attrs(node: &Node) -> Attrs {
    Attrs {
        mode: node.mode,
        uid: node.uid,
        gid: node.gid,
        mtime_ns: node.mtime_ns,
    }
}

/// A file's owner, mode and times; set-id bits only when asked.
pub(super) fn file_attrs(
    node: &Node,
    opts: &RestoreOptions,
    shared: &Shared,
    path: &Path,
) -> Attrs {
    let mut a = attrs(node);
    if a.mode & SET_ID != 0 && !opts.restore_setuid {
        a.mode &= !SET_ID;
        shared.warn(
            path,
            format_args!(
                "set-user-id/set-group-id bits ({:04o}) not restored (--restore-setuid keeps them)",
                node.mode & 0o7777
            ),
        );
    }
    a
}

/// Walks the snapshot's trees depth first, creating directories, symlinks
/// and special files as it goes, and stops at each file to hand it out.
pub(super) struct Walk<'a> {
    pub(super) repo: &'a Repository,
    pub(super) index: &'a Index,
    pub(super) snapshot: &'a Id,
    pub(super) opts: &'a RestoreOptions,
    pub(super) shared: &'a Arc<Shared>,
    pub(super) stack: Vec<(Arc<Dir>, Node)>,
    /// A file's data restored onto the target itself: the only job.
    pub(super) first: Option<FileJob>,
}

impl Walk<'_> {
    pub(super) async fn next_file(
        &mut self,
        summary: &mut RestoreSummary,
    ) -> Result<Option<FileJob>, OpsError> {
        if let Some(job) = self.first.take() {
            return Ok(Some(job));
        }
        while let Some((dir, node)) = self.stack.pop() {
            if !node.has_safe_name() {
                return Err(OpsError::InvalidInput(format!(
                    "snapshot {} holds an unsafe file name {:?}",
                    self.snapshot.short(),
                    node.name
                )));
            }
            let name = node.os_name();
            let path = dir.path().join(&name);
            match node.node_type {
                NodeType::Dir => {
                    let child = dir
                        .child_dir(&name, Some(attrs(&node)))
                        .map_err(|e| OpsError::io(&path, e))?;
                    if let Some(sub) = node.subtree {
                        let t = load_checked_tree(self.repo, self.index, &sub).await?;
                        self.stack
                            .extend(t.nodes.into_iter().map(|n| (child.clone(), n)));
                    }
                    summary.dirs += 1;
                }
                NodeType::File => return Ok(Some(self.file_job(dir, name, node, &path))),
                NodeType::Blockdev if !node.content.is_empty() || node.size > 0 => {
                    return Ok(Some(self.file_job(dir, name, node, &path)))
                }
                NodeType::Symlink => {
                    let target = node.os_target().unwrap_or_default();
                    dir.symlink(&name, &target, &attrs(&node))
                        .map_err(|e| OpsError::io(&path, e))?;
                    summary.symlinks += 1;
                }
                NodeType::Fifo | NodeType::Chardev | NodeType::Blockdev | NodeType::Socket => {
                    if self.special(&dir, &name, &node, &path) {
                        summary.special += 1;
                    }
                }
            }
        }
        Ok(None)
    }

    fn file_job(&self, dir: Arc<Dir>, name: OsString, node: Node, path: &Path) -> FileJob {
        let attrs = file_attrs(&node, self.opts, self.shared, path);
        FileJob {
            place: Place::In { dir, name },
            node,
            attrs,
        }
    }

    /// Create a FIFO or (when allowed) a device node; whether it was created.
    fn special(&self, dir: &Dir, name: &OsStr, node: &Node, path: &Path) -> bool {
        use rustix::fs::FileType;
        let kind = match node.node_type {
            NodeType::Fifo => FileType::Fifo,
            NodeType::Chardev => FileType::CharacterDevice,
            NodeType::Blockdev => FileType::BlockDevice,
            _ => {
                self.shared.warn(path, "sockets are not restored");
                return false;
            }
        };
        if kind != FileType::Fifo {
            if !self.opts.restore_devices {
                self.shared.warn(
                    path,
                    "device node not restored (--restore-devices creates device nodes, as root)",
                );
                return false;
            }
            if !self.shared.root {
                self.shared.warn(
                    path,
                    "device node not restored: only root creates device nodes",
                );
                return false;
            }
        }
        let a = file_attrs(node, self.opts, self.shared, path);
        match dir.special(name, kind, node.rdev, &a) {
            Ok(()) => true,
            Err(e) => {
                self.shared.warn(path, e);
                false
            }
        }
    }
}
