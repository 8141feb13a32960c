//! Turns exported objects into blobs and the snapshot's tree, on a blocking
//! thread that owns the [`BlobSaver`].

use crate::backup::BlobSaver;
use crate::OpsError;
use lifeboat_repo::{BlobType, ChunkRef, Id, Node, NodeType, Tree};
use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use tokio::sync::mpsc;

/// One cleaned object on its way into the repository.
#[derive(Debug)]
pub(crate) struct Exported {
    /// The resource key (`deployments.apps`).
    pub key: String,
    pub namespace: Option<String>,
    pub name: String,
    pub body: Vec<u8>,
    pub status: Option<Vec<u8>>,
    /// Its field ownership (`managedFields` without times), if any.
    pub fields: Option<Vec<u8>>,
}

/// What the collector built.
#[derive(Debug, Default)]
pub(crate) struct Collected {
    pub objects: u64,
    pub bytes: u64,
    pub duplicates: u64,
}

type Dirs = BTreeMap<String, BTreeMap<Option<String>, Vec<Node>>>;

/// Receives objects until the channel closes, then writes the trees.
/// Always hands the saver back, so the pipeline can be finished either way.
pub(crate) fn collect(
    mut saver: BlobSaver,
    mut rx: mpsc::Receiver<Exported>,
) -> (Result<(Id, Collected), OpsError>, BlobSaver) {
    let result = run(&mut saver, &mut rx);
    // Drain so that senders never block on a collector that gave up.
    rx.close();
    (result, saver)
}

fn run(
    saver: &mut BlobSaver,
    rx: &mut mpsc::Receiver<Exported>,
) -> Result<(Id, Collected), OpsError> {
    let mut objects: Dirs = BTreeMap::new();
    let mut status: Dirs = BTreeMap::new();
    let mut fields: Dirs = BTreeMap::new();
    let mut seen = HashSet::new();
    let mut stats = Collected::default();
    while let Some(o) = rx.blocking_recv() {
        if !seen.insert((o.key.clone(), o.namespace.clone(), o.name.clone())) {
            stats.duplicates += 1;
            continue;
        }
        stats.objects += 1;
        stats.bytes += o.body.len() as u64;
        let node = file_node(saver, &o.name, o.body)?;
        objects
            .entry(o.key.clone())
            .or_default()
            .entry(o.namespace.clone())
            .or_default()
            .push(node);
        for (extra, dirs) in [(o.status, &mut status), (o.fields, &mut fields)] {
            let Some(data) = extra else { continue };
            stats.bytes += data.len() as u64;
            let node = file_node(saver, &o.name, data)?;
            dirs.entry(o.key.clone())
                .or_default()
                .entry(o.namespace.clone())
                .or_default()
                .push(node);
        }
    }
    let mut top = vec![
        dir_node("objects", write_dirs(saver, objects)?),
        dir_node("status", write_dirs(saver, status)?),
    ];
    // Only when some object has owners, so that exports of servers without
    // managed fields keep the tree they always had.
    if !fields.is_empty() {
        top.push(dir_node("fields", write_dirs(saver, fields)?));
    }
    let root = save_tree(saver, top)?;
    Ok((root, stats))
}

fn file_node(saver: &mut BlobSaver, name: &str, data: Vec<u8>) -> Result<Node, OpsError> {
    let size = data.len() as u64;
    let id = saver.save(BlobType::Data, data)?;
    let mut n = Node::new(OsStr::new(name), NodeType::File);
    // No times or owners: an unchanged object must give an identical tree.
    n.mode = 0o600;
    n.size = size;
    n.content = vec![ChunkRef { id, offset: 0 }];
    Ok(n)
}

pub(super) fn dir_node(name: &str, subtree: Id) -> Node {
    let mut n = Node::new(OsStr::new(name), NodeType::Dir);
    n.mode = 0o700;
    n.subtree = Some(subtree);
    n
}

pub(super) fn save_tree(saver: &mut BlobSaver, nodes: Vec<Node>) -> Result<Id, OpsError> {
    let json = Tree { nodes }.to_json()?;
    saver.save(BlobType::Tree, json)
}

/// `<resource>/<namespace>/<name>`, or `<resource>/<name>` when cluster-scoped.
fn write_dirs(saver: &mut BlobSaver, dirs: Dirs) -> Result<Id, OpsError> {
    let mut resources = Vec::new();
    for (key, by_ns) in dirs {
        let mut entries = Vec::new();
        for (ns, nodes) in by_ns {
            match ns {
                Some(ns) => {
                    let id = save_tree(saver, nodes)?;
                    entries.push(dir_node(&ns, id));
                }
                None => entries.extend(nodes),
            }
        }
        let id = save_tree(saver, entries)?;
        resources.push(dir_node(&key, id));
    }
    save_tree(saver, resources)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::backup::BlobPipeline;
    use crate::Progress;
    use lifeboat_repo::{InitOptions, Repository};
    use std::sync::Arc;

    fn object(name: &str, fields: Option<&str>) -> Exported {
        Exported {
            key: "configmaps".into(),
            namespace: Some("shop".into()),
            name: name.into(),
            body: format!(r#"{{"metadata":{{"name":"{name}"}}}}"#).into_bytes(),
            status: None,
            fields: fields.map(|f| f.as_bytes().to_vec()),
        }
    }

    /// The names at `path` (directories from the root) of the tree `root`.
    async fn names(repo: &Repository, root: Id, path: &[&str]) -> Vec<String> {
        let index = repo.load_index().await.unwrap();
        let mut tree = repo.load_tree(&index, &root).await.unwrap();
        for p in path {
            let sub = tree
                .nodes
                .iter()
                .find(|n| n.name == *p)
                .unwrap()
                .subtree
                .unwrap();
            tree = repo.load_tree(&index, &sub).await.unwrap();
        }
        tree.nodes.into_iter().map(|n| n.name).collect()
    }

    async fn export(repo: &Repository, objects: Vec<Exported>) -> Id {
        let index = Arc::new(repo.load_index().await.unwrap());
        let (pipeline, saver) = BlobPipeline::start(repo, index, Arc::new(Progress::default()));
        let (tx, rx) = mpsc::channel(8);
        let collector = tokio::task::spawn_blocking(move || collect(saver, rx));
        for o in objects {
            tx.send(o).await.unwrap();
        }
        drop(tx);
        let (collected, saver) = collector.await.unwrap();
        pipeline.finish(saver).await.unwrap();
        collected.unwrap().0
    }

    #[tokio::test]
    async fn field_owners_go_under_fields_and_only_when_some_object_has_them() {
        let repo = crate::testing::memory_repo(InitOptions::default()).await;
        let owners = r#"[{"manager":"gitops","operation":"Apply"}]"#;
        let root = export(&repo, vec![object("a", Some(owners)), object("b", None)]).await;
        assert_eq!(
            names(&repo, root, &[]).await,
            ["fields", "objects", "status"]
        );
        assert_eq!(
            names(&repo, root, &["objects", "configmaps", "shop"]).await,
            ["a", "b"]
        );
        assert_eq!(
            names(&repo, root, &["fields", "configmaps", "shop"]).await,
            ["a"]
        );
        // Without managers anywhere, the tree is the one exports always had.
        let root = export(&repo, vec![object("b", None)]).await;
        assert_eq!(names(&repo, root, &[]).await, ["objects", "status"]);
    }
}
