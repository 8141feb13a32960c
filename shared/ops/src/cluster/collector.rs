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
        if let Some(s) = o.status {
            stats.bytes += s.len() as u64;
            let node = file_node(saver, &o.name, s)?;
            status
                .entry(o.key)
                .or_default()
                .entry(o.namespace)
                .or_default()
                .push(node);
        }
    }
    let objects_dir = write_dirs(saver, objects)?;
    let status_dir = write_dirs(saver, status)?;
    let root = save_tree(
        saver,
        vec![
            dir_node("objects", objects_dir),
            dir_node("status", status_dir),
        ],
    )?;
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
