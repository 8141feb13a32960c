//! Where a restore starts: the whole snapshot, an included path (with its
//! parents), or a path's contents restored into the target itself.

use super::contents::Place;
use super::target::{Attrs, Dir, Shared};
use super::walk::{attrs, file_attrs};
use super::{load_checked_tree, FileJob, RestoreOptions};
use crate::OpsError;
use lifeboat_repo::{Id, Index, Node, NodeType, Repository, Tree};
use std::ffi::OsString;
use std::path::{Component, Path};
use std::sync::Arc;

/// Where the restore starts.
pub(super) enum Start {
    /// `nodes` go into the directory `parents` (created as needed) below
    /// the target; with `attrs`, the target takes them (a directory's
    /// contents restored into it).
    Nodes {
        parents: Vec<OsString>,
        nodes: Vec<Node>,
        attrs: Option<Attrs>,
    },
    /// A file's data goes onto the target itself.
    File(Node),
}

/// Resolve `include` or `subtree` (if any) to where the restore starts.
pub(super) async fn start(
    repo: &Repository,
    index: &Index,
    id: &Id,
    root: Tree,
    opts: &RestoreOptions,
) -> Result<Start, OpsError> {
    if opts.include.is_some() && opts.subtree.is_some() {
        return Err(OpsError::InvalidInput(
            "restore either a path (include) or a path's contents (subtree), not both".into(),
        ));
    }
    let Some(include) = opts.include.as_ref().or(opts.subtree.as_ref()) else {
        return Ok(Start::Nodes {
            parents: vec![],
            nodes: root.nodes,
            attrs: None,
        });
    };
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
    let mut tree = root;
    let mut parents = Vec::new();
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
        if i + 1 < parts.len() {
            let sub = node.subtree.ok_or_else(|| {
                OpsError::InvalidInput(format!("{} is not a directory", part.to_string_lossy()))
            })?;
            parents.push(part.clone());
            tree = load_checked_tree(repo, index, &sub).await?;
            continue;
        }
        if opts.subtree.is_none() {
            return Ok(Start::Nodes {
                parents,
                nodes: vec![node],
                attrs: None,
            });
        }
        // The contents go into the target itself.
        return match (node.node_type, node.subtree) {
            (NodeType::Dir, sub) => Ok(Start::Nodes {
                parents: vec![],
                nodes: match sub {
                    Some(sub) => load_checked_tree(repo, index, &sub).await?.nodes,
                    None => vec![],
                },
                attrs: Some(attrs(&node)),
            }),
            (NodeType::File | NodeType::Blockdev, _) => Ok(Start::File(node)),
            _ => Err(OpsError::InvalidInput(format!(
                "{} is a {:?}: only a directory's or a file's contents can be restored into a target",
                include.display(),
                node.node_type
            ))),
        };
    }
    Err(OpsError::InvalidInput(format!(
        "{} names no path inside the snapshot",
        include.display()
    )))
}

/// The job for a file's data restored onto the target itself: a block
/// device there (the operator's path, symlinks followed) is written in
/// place, anything else is replaced by the file.
pub(super) fn file_onto_target(
    opts: &RestoreOptions,
    node: Node,
    shared: &Arc<Shared>,
) -> Result<FileJob, OpsError> {
    use std::os::unix::fs::FileTypeExt;
    let target = &opts.target;
    let attrs = file_attrs(&node, opts, shared, target);
    let device = std::fs::metadata(target).is_ok_and(|m| m.file_type().is_block_device());
    let place = if device {
        Place::Device(target.clone())
    } else {
        let name = target
            .file_name()
            .ok_or_else(|| OpsError::InvalidInput(format!("{} names no file", target.display())))?;
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let dir = Dir::open_target(parent, None, shared).map_err(|e| OpsError::io(parent, e))?;
        Place::In {
            dir,
            name: name.to_os_string(),
        }
    };
    Ok(FileJob { place, node, attrs })
}
