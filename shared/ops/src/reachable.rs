//! Which blobs and packs the snapshots need.

use crate::OpsError;
use lifeboat_repo::{FileKind, Id, Index, Repository, Snapshot};
use std::collections::HashSet;

/// Every blob (trees and data) reachable from `snapshots`. Fails on the first
/// tree that cannot be read: deciding what to delete on partial knowledge is unsafe.
pub(crate) async fn reachable_blobs(
    repo: &Repository,
    index: &Index,
    snapshots: &[&Snapshot],
) -> Result<HashSet<Id>, OpsError> {
    let mut seen = HashSet::new();
    let mut stack: Vec<Id> = snapshots.iter().map(|s| s.tree).collect();
    while let Some(tid) = stack.pop() {
        if !seen.insert(tid) {
            continue;
        }
        let tree = repo.load_tree(index, &tid).await?;
        for node in tree.nodes {
            seen.extend(node.content.iter().map(|c| c.id));
            if let Some(sub) = node.subtree {
                stack.push(sub);
            }
        }
    }
    Ok(seen)
}

/// The blobs under tree `root` (itself included) that `index` does not list.
/// A missing tree is reported and not descended into.
pub(crate) async fn unindexed_blobs(
    repo: &Repository,
    index: &Index,
    root: Id,
) -> Result<Vec<Id>, OpsError> {
    let mut missing = Vec::new();
    let mut seen = HashSet::new();
    let mut stack = vec![root];
    while let Some(tid) = stack.pop() {
        if !seen.insert(tid) {
            continue;
        }
        if !index.contains(&tid) {
            missing.push(tid);
            continue;
        }
        let tree = repo.load_tree(index, &tid).await?;
        for node in tree.nodes {
            for c in &node.content {
                if seen.insert(c.id) && !index.contains(&c.id) {
                    missing.push(c.id);
                }
            }
            if let Some(sub) = node.subtree {
                stack.push(sub);
            }
        }
    }
    Ok(missing)
}

/// The packs that hold any of `blobs`: every copy of a blob stored more than
/// once, so that extend-locks, verify and prune treat all copies alike and a
/// reader can fall back to any of them.
pub(crate) fn packs_of(index: &Index, blobs: &HashSet<Id>) -> HashSet<Id> {
    blobs
        .iter()
        .flat_map(|b| index.locations(b).map(|l| l.pack))
        .collect()
}

/// The keys of every object that must stay locked while `snapshots` are kept:
/// config, the key objects (but revoked ones: their locks are left to expire
/// so that they can be deleted), the live index files, the snapshots and `packs`.
pub(crate) async fn protected_keys(
    repo: &Repository,
    index: &Index,
    snapshots: impl Iterator<Item = &Id>,
    packs: impl Iterator<Item = &Id>,
) -> Result<Vec<String>, OpsError> {
    let revoked = repo.revoked_keys().await?;
    let mut keys = vec![FileKind::Config.prefix().to_string()];
    keys.extend(
        repo.store()
            .list(FileKind::Key.prefix())
            .await?
            .into_iter()
            .filter(|o| {
                FileKind::Key
                    .parse_key(&o.key)
                    .is_none_or(|id| !revoked.contains(&id))
            })
            .map(|o| o.key),
    );
    keys.extend(index.files.iter().map(|i| FileKind::Index.key(i)));
    keys.extend(snapshots.map(|s| FileKind::Snapshot.key(s)));
    keys.extend(packs.map(|p| FileKind::Pack.key(p)));
    Ok(keys)
}
