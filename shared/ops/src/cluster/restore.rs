//! `lifeboat restore`: the objects of a `cluster` snapshot into a cluster,
//! with a per-object report stored beside the snapshot.

use crate::{OpsError, Progress};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use lifeboat_kube::restore::{
    check_storage_class_map, counts, restore_objects, rule_counts, ApplyOptions, ItemReport,
    Outcome, RestoreItem, RuleCount,
};
use lifeboat_kube::{Cluster, ResourceType};
use lifeboat_repo::{
    ClusterResource, ClusterSource, FileKind, Id, Index, NodeType, Repository, Snapshot,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

/// Blobs read at once.
const READ_PARALLELISM: usize = 16;

/// A restore's report: what happened to every object, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestoreReport {
    /// The snapshot restored.
    pub snapshot: Id,
    pub time: DateTime<Utc>,
    /// The target API server.
    pub server: String,
    pub dry_run: bool,
    pub counts: BTreeMap<Outcome, u64>,
    pub items: Vec<ItemReport>,
    pub duration_secs: f64,
    /// Each resource modifier rule and the objects it selected; a rule
    /// with none is reported to the user.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleCount>,
}

impl RestoreReport {
    /// Whether any object failed (or would fail).
    pub fn failed(&self) -> bool {
        self.items.iter().any(|i| i.outcome.is_failure())
    }

    /// The modifier rules that selected no object.
    pub fn unused_rules(&self) -> impl Iterator<Item = &str> {
        self.rules
            .iter()
            .filter(|r| r.objects == 0)
            .map(|r| r.rule.as_str())
    }
}

/// The result of a cluster restore.
#[derive(Debug, Clone)]
pub struct ClusterRestoreOutcome {
    pub report: RestoreReport,
    /// Where the report was stored (`reports/<id>`); none for a dry run.
    pub report_id: Option<Id>,
}

/// One object of a cluster snapshot, located in its tree.
#[derive(Debug, Clone)]
struct Located {
    resource: usize,
    body: Id,
    status: Option<Id>,
    fields: Option<Id>,
}

/// Restore the objects of snapshot `id` into `cluster`.
#[tracing::instrument(skip_all, fields(snapshot = %id.short(), server = %cluster.server))]
pub async fn restore_cluster(
    repo: &Repository,
    id: Id,
    snapshot: &Snapshot,
    cluster: &Cluster,
    opts: ApplyOptions,
    progress: Arc<Progress>,
) -> Result<ClusterRestoreOutcome, OpsError> {
    let started = Instant::now();
    let source = snapshot.cluster.as_ref().ok_or_else(|| {
        OpsError::InvalidInput(format!(
            "snapshot {} is a {} snapshot, not a cluster snapshot",
            id.short(),
            snapshot.kind
        ))
    })?;
    // A class the target lacks leaves claims Pending forever: refused
    // before anything is read or written.
    check_storage_class_map(cluster, &opts.transform.storage_class_map).await?;
    let items = load_objects(repo, source, snapshot.tree, &progress).await?;

    progress.set_phase(if opts.dry_run {
        "planning"
    } else {
        "restoring"
    });
    progress
        .items_total
        .store(items.len() as u64, std::sync::atomic::Ordering::Relaxed);
    progress
        .items_done
        .store(0, std::sync::atomic::Ordering::Relaxed);
    let on_done = |n: u64| Progress::add(&progress.items_done, n);
    let mut items_report = restore_objects(cluster, items, &opts, &on_done).await;
    items_report.sort_by(|a, b| a.object.cmp(&b.object));
    let rules = rule_counts(opts.transform.modifiers.names(), &items_report);
    let report = RestoreReport {
        snapshot: id,
        time: Utc::now(),
        server: cluster.server.clone(),
        dry_run: opts.dry_run,
        counts: counts(&items_report),
        items: items_report,
        duration_secs: started.elapsed().as_secs_f64(),
        rules,
    };
    let report_id = if opts.dry_run {
        None
    } else {
        progress.set_phase("saving report");
        Some(repo.save_file(FileKind::Report, &report).await?)
    };
    Ok(ClusterRestoreOutcome { report, report_id })
}

/// Read and parse every object of a cluster snapshot's tree.
pub async fn load_objects(
    repo: &Repository,
    source: &ClusterSource,
    tree: Id,
    progress: &Arc<Progress>,
) -> Result<Vec<RestoreItem>, OpsError> {
    progress.set_phase("loading index");
    let index = Arc::new(repo.load_index().await?);
    progress.set_phase("reading snapshot");
    let located = locate(repo, &index, tree, &source.resources).await?;
    let types: Vec<ResourceType> = source.resources.iter().map(resource_type).collect();
    read_items(repo, &index, located, &source.resources, &types, progress).await
}

fn resource_type(r: &ClusterResource) -> ResourceType {
    ResourceType {
        group: r.group.clone(),
        version: r.version.clone(),
        resource: r.resource.clone(),
        kind: r.kind.clone(),
        namespaced: r.namespaced,
    }
}

/// Walk `objects/`, `status/` and `fields/` of the snapshot tree.
async fn locate(
    repo: &Repository,
    index: &Index,
    root: Id,
    resources: &[ClusterResource],
) -> Result<Vec<Located>, OpsError> {
    let by_key: HashMap<String, usize> = resources
        .iter()
        .enumerate()
        .map(|(i, r)| (r.key(), i))
        .collect();
    let root = repo.load_tree(index, &root).await?;
    let mut objects = BTreeMap::new();
    let mut status = HashMap::new();
    let mut fields = HashMap::new();
    for top in &root.nodes {
        let Some(sub) = top.subtree else { continue };
        let mut into = match top.name.as_str() {
            "objects" => None,
            "status" => Some(&mut status),
            "fields" => Some(&mut fields),
            _ => continue,
        };
        for res in repo.load_tree(index, &sub).await?.nodes {
            let Some(&ri) = by_key.get(&res.name) else {
                return Err(OpsError::InvalidInput(format!(
                    "snapshot tree has objects of {} but its manifest does not list that resource",
                    res.name
                )));
            };
            let Some(res_tree) = res.subtree else {
                continue;
            };
            let mut files = Vec::new();
            for n in repo.load_tree(index, &res_tree).await?.nodes {
                match (n.node_type, n.subtree) {
                    (NodeType::Dir, Some(ns_tree)) => {
                        for f in repo.load_tree(index, &ns_tree).await?.nodes {
                            files.push((Some(n.name.clone()), f));
                        }
                    }
                    _ => files.push((None, n)),
                }
            }
            for (ns, f) in files {
                let Some(blob) = f.content.first().map(|c| c.id) else {
                    continue;
                };
                let key = (ri, ns, f.name.clone());
                match &mut into {
                    Some(extra) => {
                        extra.insert(key, blob);
                    }
                    None => {
                        objects.insert(key, blob);
                    }
                }
            }
        }
    }
    Ok(objects
        .into_iter()
        .map(|(key, body)| Located {
            resource: key.0,
            body,
            status: status.get(&key).copied(),
            fields: fields.get(&key).copied(),
        })
        .collect())
}

async fn read_json(repo: &Repository, index: &Index, id: &Id) -> Result<Value, OpsError> {
    let bytes = repo.read_blob(index, id).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| OpsError::InvalidInput(format!("object blob {}: not JSON: {e}", id.short())))
}

async fn read_items(
    repo: &Repository,
    index: &Arc<Index>,
    located: Vec<Located>,
    resources: &[ClusterResource],
    types: &[ResourceType],
    progress: &Arc<Progress>,
) -> Result<Vec<RestoreItem>, OpsError> {
    progress
        .items_total
        .store(located.len() as u64, std::sync::atomic::Ordering::Relaxed);
    let mut reads = futures::stream::iter(located)
        .map(|l| async move {
            let object = read_json(repo, index, &l.body).await?;
            let status = match &l.status {
                Some(s) => Some(read_json(repo, index, s).await?),
                None => None,
            };
            let fields = match &l.fields {
                Some(f) => Some(read_json(repo, index, f).await?),
                None => None,
            };
            Ok::<_, OpsError>((l.resource, object, status, fields))
        })
        .buffer_unordered(READ_PARALLELISM);
    let mut items = Vec::new();
    while let Some(r) = reads.next().await {
        let (ri, object, status, managed_fields) = r?;
        Progress::add(&progress.items_done, 1);
        let (Some(resource), Some(meta)) = (types.get(ri), resources.get(ri)) else {
            continue;
        };
        items.push(RestoreItem {
            resource: resource.clone(),
            has_status: meta.has_status,
            object,
            status,
            managed_fields,
        });
    }
    Ok(items)
}
