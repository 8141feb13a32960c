//! Volume data joins the cluster state: `volumes/<namespace>/<claim>` in
//! the snapshot's tree, and a [`VolumeData`] record per volume.

use super::collector::{dir_node, save_tree};
use super::ExportedState;
use crate::backup::{lock_wait, BlobPipeline};
use crate::{OpsError, Progress};
use lifeboat_repo::{Id, Index, LockHandle, LockKind, Node, Repository, VolumeData};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The directory of volume data in a cluster snapshot's tree.
pub const VOLUMES_DIR: &str = "volumes";

/// A volume copied for a cluster snapshot: its record and its data's node
/// (a file node of chunks, or a directory).
#[derive(Debug, Clone)]
pub struct CopiedVolume {
    pub data: VolumeData,
    pub node: Node,
}

/// The path of a claim's data in the tree.
pub fn volume_path(namespace: &str, claim: &str) -> String {
    format!("{VOLUMES_DIR}/{namespace}/{claim}")
}

/// The node at `path` (`/`-separated names, e.g. `volumes/shop/data`) in the
/// tree `root`; `None` if some part is missing or not a directory.
pub async fn tree_node(
    repo: &Repository,
    index: &Index,
    root: &Id,
    path: &str,
) -> Result<Option<Node>, OpsError> {
    let mut tree = repo.load_tree(index, root).await?;
    let mut parts = path.split('/').peekable();
    while let Some(part) = parts.next() {
        let Some(node) = tree.nodes.into_iter().find(|n| n.name == part) else {
            return Ok(None);
        };
        if parts.peek().is_none() {
            return Ok(Some(node));
        }
        let Some(sub) = node.subtree else {
            return Ok(None);
        };
        tree = repo.load_tree(index, &sub).await?;
    }
    Ok(None)
}

/// `exported` with `volumes` added to its tree and records (replacing any
/// volumes it already had). Writes only tree blobs.
pub async fn attach_volumes(
    repo: &Repository,
    exported: &ExportedState,
    volumes: Vec<CopiedVolume>,
) -> Result<ExportedState, OpsError> {
    repo.with_lock(LockKind::Shared, "attach volumes", lock_wait(), |lock| {
        attach_volumes_locked(repo, exported, volumes, lock)
    })
    .await
}

async fn attach_volumes_locked(
    repo: &Repository,
    exported: &ExportedState,
    volumes: Vec<CopiedVolume>,
    lock: LockHandle,
) -> Result<ExportedState, OpsError> {
    let index = Arc::new(repo.load_index().await?);
    let root = repo.load_tree(&index, &exported.tree).await?;
    let mut records = Vec::new();
    let mut by_ns: BTreeMap<String, Vec<Node>> = BTreeMap::new();
    for v in volumes {
        let mut node = v.node;
        node.name = v.data.claim.clone();
        node.name_bytes = None;
        let mut data = v.data;
        data.path = volume_path(&data.namespace, &data.claim);
        by_ns.entry(data.namespace.clone()).or_default().push(node);
        records.push(data);
    }
    records.sort_by(|a, b| (&a.namespace, &a.claim).cmp(&(&b.namespace, &b.claim)));
    let (pipeline, saver) = BlobPipeline::start(repo, index, Arc::new(Progress::default()));
    let (tree, saver) = tokio::task::spawn_blocking(move || {
        let mut saver = saver;
        let built = (|| {
            let mut namespaces = Vec::new();
            for (ns, nodes) in by_ns {
                let id = save_tree(&mut saver, nodes)?;
                namespaces.push(dir_node(&ns, id));
            }
            let mut nodes: Vec<Node> = root
                .nodes
                .into_iter()
                .filter(|n| n.name != VOLUMES_DIR)
                .collect();
            if !namespaces.is_empty() {
                let id = save_tree(&mut saver, namespaces)?;
                nodes.push(dir_node(VOLUMES_DIR, id));
            }
            save_tree(&mut saver, nodes)
        })();
        (built, saver)
    })
    .await
    .map_err(|e| OpsError::Pipeline(e.to_string()))?;
    let tree = tree?;
    pipeline.finish(saver).await?;
    // The commit step relies on the trees written here.
    lock.ensure_held().await?;
    let mut out = exported.clone();
    out.tree = tree;
    // The summary stays about the objects; each volume's record carries its
    // own figures (a volume's logical size would drown the objects' ratio).
    out.cluster.volumes = records;
    Ok(out)
}
