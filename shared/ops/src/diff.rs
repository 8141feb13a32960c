//! `snapshot diff`: what changed between two snapshots.

use crate::OpsError;
use lifeboat_repo::{Id, Index, Node, Repository, Snapshot, Tree};
use serde::Serialize;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Added,
    Removed,
    /// Content changed.
    Modified,
    /// Only metadata (mode, owner, times) changed.
    Metadata,
}

#[derive(Debug, Clone, Serialize)]
pub struct DiffEntry {
    pub change: Change,
    pub path: String,
}

fn by_name(t: Tree) -> BTreeMap<OsString, Node> {
    t.nodes.into_iter().map(|n| (n.os_name(), n)).collect()
}

async fn tree(
    repo: &Repository,
    index: &Index,
    id: Option<Id>,
) -> Result<BTreeMap<OsString, Node>, OpsError> {
    match id {
        Some(id) => Ok(by_name(repo.load_tree(index, &id).await?)),
        None => Ok(BTreeMap::new()),
    }
}

/// Paths that differ between `a` and `b`, in path order.
pub async fn diff(
    repo: &Repository,
    a: &Snapshot,
    b: &Snapshot,
) -> Result<Vec<DiffEntry>, OpsError> {
    let index = repo.load_index().await?;
    let mut out = Vec::new();
    let mut stack = vec![(PathBuf::new(), Some(a.tree), Some(b.tree))];
    while let Some((base, ta, tb)) = stack.pop() {
        if ta == tb {
            continue;
        }
        let na = tree(repo, &index, ta).await?;
        let nb = tree(repo, &index, tb).await?;
        let mut names: Vec<&OsString> = na.keys().chain(nb.keys()).collect();
        names.sort();
        names.dedup();
        for name in names {
            let path = base.join(name);
            let shown = path.display().to_string();
            match (na.get(name), nb.get(name)) {
                (Some(x), None) => {
                    out.push(DiffEntry {
                        change: Change::Removed,
                        path: shown,
                    });
                    if x.subtree.is_some() {
                        stack.push((path, x.subtree, None));
                    }
                }
                (None, Some(y)) => {
                    out.push(DiffEntry {
                        change: Change::Added,
                        path: shown,
                    });
                    if y.subtree.is_some() {
                        stack.push((path, None, y.subtree));
                    }
                }
                (Some(x), Some(y)) => {
                    if x.subtree.is_some() || y.subtree.is_some() {
                        stack.push((path.clone(), x.subtree, y.subtree));
                    }
                    if x.node_type != y.node_type
                        || x.content != y.content
                        || x.target != y.target
                        || x.size != y.size
                    {
                        if x.subtree.is_none() || y.subtree.is_none() {
                            out.push(DiffEntry {
                                change: Change::Modified,
                                path: shown,
                            });
                        }
                    } else if x.mode != y.mode
                        || x.uid != y.uid
                        || x.gid != y.gid
                        || x.mtime_ns != y.mtime_ns
                    {
                        out.push(DiffEntry {
                            change: Change::Metadata,
                            path: shown,
                        });
                    }
                }
                (None, None) => {}
            }
        }
    }
    out.sort_by(|x, y| x.path.cmp(&y.path));
    Ok(out)
}
