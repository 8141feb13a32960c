//! `lifeboat backup`: every API object in scope into a `cluster` snapshot.

use super::collector::{collect, Collected, Exported};
use crate::backup::{lock_wait, BlobPipeline};
use crate::{OpsError, Progress};
use chrono::Utc;
use futures::StreamExt;
use lifeboat_kube::api::{self, Lister};
use lifeboat_kube::clean::clean;
use lifeboat_kube::deps::{aggregation_selectors, binds_service_account_in, dependencies};
use lifeboat_kube::scope::excluded_object;
use lifeboat_kube::{
    discover, Cluster, KubeError, ObjectRef, ResourceType, Scope, ScopeFilter, ServedResource,
};
use lifeboat_repo::cluster_scope::{scope_id, scope_takes_everything};
use lifeboat_repo::{
    ClusterResource, ClusterSource, FileKind, Id, LockHandle, LockKind, Repository, Snapshot,
    SnapshotSummary,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// Resources listed at once.
const LIST_PARALLELISM: usize = 8;

#[derive(Debug, Clone, Default)]
pub struct ClusterBackupOptions {
    pub scope: Scope,
    pub tags: BTreeMap<String, String>,
    /// Recorded as the cluster's name; defaults to the kubeconfig context.
    pub cluster_name: Option<String>,
    /// Whether `scope` is the cluster's whole configured scope (recorded as
    /// the snapshot's `full`); `None`: when it takes everything.
    pub full: Option<bool>,
}

/// The result of a cluster backup.
#[derive(Debug, Clone)]
pub struct ClusterBackupOutcome {
    pub snapshot_id: Id,
    pub snapshot: Snapshot,
    /// What could not be read (the first 100), e.g. a resource the
    /// credentials may not list, or a dependency that does not exist.
    pub warnings: Vec<String>,
    pub warning_count: u64,
    /// Objects in scope that were left out on purpose (see `scope::excluded_object`).
    pub excluded: u64,
}

#[derive(Debug, Default)]
struct Findings {
    warnings: Vec<String>,
    warning_count: u64,
    excluded: u64,
    counts: HashMap<ResourceType, u64>,
    /// Cluster-scoped objects needed, with who needs them.
    deps: BTreeMap<ObjectRef, String>,
    /// Namespaces that hold selected objects.
    namespaces: BTreeSet<String>,
    /// Namespaces with a selected ServiceAccount.
    sa_namespaces: BTreeSet<String>,
}

impl Findings {
    fn warn(&mut self, w: String) {
        tracing::warn!(warning = %w, "backup warning");
        self.warning_count += 1;
        if self.warnings.len() < 100 {
            self.warnings.push(w);
        }
    }

    fn merge(&mut self, other: Findings) {
        self.warning_count += other.warning_count;
        for w in other.warnings {
            if self.warnings.len() < 100 {
                self.warnings.push(w);
            }
        }
        self.excluded += other.excluded;
        for (k, v) in other.counts {
            *self.counts.entry(k).or_default() += v;
        }
        for (k, v) in other.deps {
            self.deps.entry(k).or_insert(v);
        }
        self.namespaces.extend(other.namespaces);
        self.sa_namespaces.extend(other.sa_namespaces);
    }
}

/// The objects of a cluster, stored in the repository (packs and index
/// written) but not yet referenced by a snapshot: what a workflow's
/// export-state step hands to its commit step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportedState {
    /// The root of the object tree.
    pub tree: Id,
    pub cluster: ClusterSource,
    pub summary: SnapshotSummary,
    /// What could not be read (the first 100).
    pub warnings: Vec<String>,
    pub warning_count: u64,
    /// Objects in scope that were left out on purpose (see `scope::excluded_object`).
    pub excluded: u64,
}

/// Back up the objects of `cluster` that `opts.scope` selects.
#[tracing::instrument(skip_all, fields(server = %cluster.server))]
pub async fn backup_cluster(
    repo: &Repository,
    cluster: &Cluster,
    opts: ClusterBackupOptions,
    progress: Arc<Progress>,
) -> Result<ClusterBackupOutcome, OpsError> {
    repo.with_lock(
        LockKind::Shared,
        "cluster backup",
        lock_wait(),
        |lock| async move {
            let tags = opts.tags.clone();
            let exported = export_unlocked(repo, cluster, opts, &progress).await?;
            progress.set_phase("saving snapshot");
            let (snapshot_id, snapshot) =
                save_snapshot(repo, &lock, &exported, tags, Utc::now()).await?;
            Ok(ClusterBackupOutcome {
                snapshot_id,
                snapshot,
                warnings: exported.warnings,
                warning_count: exported.warning_count,
                excluded: exported.excluded,
            })
        },
    )
    .await
}

/// Store the objects of `cluster` that `opts.scope` selects without making a
/// snapshot of them yet; [`commit_cluster`] does that.
#[tracing::instrument(skip_all, fields(server = %cluster.server))]
pub async fn export_cluster(
    repo: &Repository,
    cluster: &Cluster,
    opts: ClusterBackupOptions,
    progress: Arc<Progress>,
) -> Result<ExportedState, OpsError> {
    repo.with_lock(
        LockKind::Shared,
        "cluster export",
        lock_wait(),
        |lock| async move {
            let exported = export_unlocked(repo, cluster, opts, &progress).await?;
            // The commit step relies on what this export deduplicated against.
            lock.ensure_held().await?;
            Ok(exported)
        },
    )
    .await
}

/// Write the snapshot of an export, once everything it references is durable.
pub async fn commit_cluster(
    repo: &Repository,
    exported: &ExportedState,
    tags: BTreeMap<String, String>,
    time: chrono::DateTime<Utc>,
) -> Result<(Id, Snapshot), OpsError> {
    repo.with_lock(
        LockKind::Shared,
        "cluster commit",
        lock_wait(),
        |lock| async move { save_checked_snapshot(repo, &lock, exported, tags, time).await },
    )
    .await
}

/// [`save_snapshot`], after checking that every blob the export (and the
/// volume copies attached to it) references is still indexed: the steps
/// before commit held no lock, so a prune may have run in between.
async fn save_checked_snapshot(
    repo: &Repository,
    lock: &LockHandle,
    exported: &ExportedState,
    tags: BTreeMap<String, String>,
    time: chrono::DateTime<Utc>,
) -> Result<(Id, Snapshot), OpsError> {
    // A prune that holds the repository now is a lost lock (retryable), not
    // data that went missing while it ran.
    lock.ensure_held().await?;
    let index = repo.load_index().await?;
    let missing = crate::reachable::unindexed_blobs(repo, &index, exported.tree).await?;
    if let Some(first) = missing.first() {
        return Err(OpsError::DataMissing {
            what: format!("cluster snapshot of {}", exported.cluster.name),
            count: missing.len(),
            first: *first,
        });
    }
    save_snapshot(repo, lock, exported, tags, time).await
}

async fn save_snapshot(
    repo: &Repository,
    lock: &LockHandle,
    exported: &ExportedState,
    tags: BTreeMap<String, String>,
    time: chrono::DateTime<Utc>,
) -> Result<(Id, Snapshot), OpsError> {
    let snapshot = Snapshot {
        version: 1,
        kind: "cluster".into(),
        time,
        hostname: exported.cluster.name.clone(),
        paths: vec![exported.cluster.server.clone()],
        tags,
        tree: exported.tree,
        parent: None,
        summary: exported.summary.clone(),
        cluster: Some(exported.cluster.clone()),
        repository: Some(repo.fingerprint().await?),
    };
    lock.ensure_held().await?;
    let id = repo.save_file(FileKind::Snapshot, &snapshot).await?;
    tracing::info!(snapshot = %id.short(), objects = snapshot.summary.files, new = snapshot.summary.bytes_new, "cluster snapshot saved");
    Ok((id, snapshot))
}

async fn export_unlocked(
    repo: &Repository,
    cluster: &Cluster,
    opts: ClusterBackupOptions,
    progress: &Arc<Progress>,
) -> Result<ExportedState, OpsError> {
    let started = Instant::now();
    let filter = ScopeFilter::new(opts.scope.clone())?;
    progress.set_phase("discovering");
    let served = discover(cluster).await?;
    let unserved = unserved_apis(cluster, &filter).await;
    progress.set_phase("loading index");
    let index = Arc::new(repo.load_index().await?);
    let (pipeline, saver) = BlobPipeline::start(repo, index, progress.clone());
    let (tx, rx) = mpsc::channel::<Exported>(256);
    let collector = tokio::task::spawn_blocking(move || collect(saver, rx));

    progress.set_phase("exporting");
    let exported = export(cluster, &served, &filter, &tx, progress).await;
    drop(tx);
    let (collected, saver) = collector
        .await
        .map_err(|e| OpsError::Pipeline(e.to_string()))?;
    let written = pipeline.finish(saver).await?;
    let mut findings = exported?;
    for w in unserved {
        findings.warn(w);
    }
    let (tree, stats): (Id, Collected) = collected?;

    let has_status: HashMap<&ResourceType, bool> =
        served.iter().map(|s| (&s.resource, s.has_status)).collect();
    let mut resources: Vec<ClusterResource> = findings
        .counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(r, n)| ClusterResource {
            group: r.group.clone(),
            version: r.version.clone(),
            resource: r.resource.clone(),
            kind: r.kind.clone(),
            namespaced: r.namespaced,
            has_status: has_status.get(r).copied().unwrap_or(false),
            objects: *n,
        })
        .collect();
    resources.sort_by_key(|r| r.key());
    let scope = serde_json::to_value(&opts.scope)
        .map_err(|e| OpsError::InvalidInput(format!("scope: {e}")))?;
    let name = opts
        .cluster_name
        .clone()
        .unwrap_or_else(|| cluster.context.clone());
    tracing::info!(
        objects = stats.objects,
        new = written.bytes_new,
        "cluster export done"
    );
    Ok(ExportedState {
        tree,
        summary: SnapshotSummary {
            files: stats.objects,
            dirs: resources.len() as u64,
            bytes: stats.bytes,
            bytes_read: stats.bytes,
            bytes_new: written.bytes_new,
            bytes_stored: written.bytes_stored,
            blobs_new: written.blobs,
            packs_written: written.packs,
            duration_secs: started.elapsed().as_secs_f64(),
        },
        cluster: ClusterSource {
            name,
            server: cluster.server.clone(),
            full: Some(opts.full.unwrap_or_else(|| scope_takes_everything(&scope))),
            scope_id: Some(scope_id(&scope)),
            scope,
            resources,
            volumes: Vec::new(),
            volumes_missing: Vec::new(),
            warnings: findings.warnings.clone(),
        },
        warnings: findings.warnings,
        warning_count: findings.warning_count,
        excluded: findings.excluded,
    })
}

async fn export(
    cluster: &Cluster,
    served: &[ServedResource],
    filter: &ScopeFilter,
    tx: &mpsc::Sender<Exported>,
    progress: &Arc<Progress>,
) -> Result<Findings, OpsError> {
    let all_cluster = filter.all_cluster_scoped();
    let listed: Vec<&ResourceType> = served
        .iter()
        .map(|s| &s.resource)
        .filter(|r| filter.resource(r))
        .filter(|r| r.namespaced || (all_cluster && !r.is("", "Namespace")))
        .collect();
    progress
        .items_total
        .store(listed.len() as u64, std::sync::atomic::Ordering::Relaxed);
    let selector = filter.scope.selector.as_deref();
    // The futures are made up front: a stream holding the closure would not
    // be Send for callers that need it (async traits).
    let exports: Vec<_> = listed
        .into_iter()
        .map(|r| export_resource(cluster, r, selector, filter, tx, progress))
        .collect();
    let mut results = futures::stream::iter(exports).buffer_unordered(LIST_PARALLELISM);
    let mut findings = Findings::default();
    while let Some(r) = results.next().await {
        findings.merge(r?);
    }
    drop(results);
    let by_kind: HashMap<(&str, &str), &ResourceType> = served
        .iter()
        .map(|s| {
            (
                (s.resource.group.as_str(), s.resource.kind.as_str()),
                &s.resource,
            )
        })
        .collect();
    export_namespaces(cluster, &by_kind, filter, tx, &mut findings).await?;
    if filter.dependencies() {
        if !all_cluster {
            bindings_of_service_accounts(cluster, &by_kind, filter, &mut findings).await?;
        }
        crds_of_custom_resources(&mut findings);
        export_dependencies(cluster, &by_kind, filter, all_cluster, tx, &mut findings).await?;
    }
    Ok(findings)
}

/// Warnings for the aggregated APIs the server does not serve now: their
/// objects cannot be listed, so the backup is incomplete, unless the scope
/// leaves the group out explicitly (`--exclude-resources '*.<group>'`). A
/// server that does not let us list APIServices is a warning too.
async fn unserved_apis(cluster: &Cluster, filter: &ScopeFilter) -> Vec<String> {
    let unavailable = match lifeboat_kube::unavailable_apis(cluster).await {
        Ok(u) => u,
        Err(e) => {
            return vec![format!(
                "cannot list APIServices to check that every aggregated API is served: {e}"
            )]
        }
    };
    unavailable
        .into_iter()
        .filter(|u| {
            let wildcard = format!("*.{}", u.group);
            !filter.scope.exclude_resources.contains(&wildcard)
        })
        .map(|u| {
            format!(
                "APIService {} is not available ({}): objects of {}/{} are not in this backup (leave the group out with --exclude-resources '*.{}')",
                u.name, u.why, u.group, u.version, u.group
            )
        })
        .collect()
}

/// List every object of one resource and send those in scope.
async fn export_resource(
    cluster: &Cluster,
    r: &ResourceType,
    selector: Option<&str>,
    filter: &ScopeFilter,
    tx: &mpsc::Sender<Exported>,
    progress: &Arc<Progress>,
) -> Result<Findings, OpsError> {
    let mut f = Findings::default();
    let mut lister = Lister::new(cluster, r, selector);
    loop {
        let page = match lister.next_page(cluster).await {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(e) if refusal(&e) => {
                f.warn(format!("{e}; its objects are not in the snapshot"));
                break;
            }
            Err(e) => return Err(e.into()),
        };
        for obj in page {
            let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str);
            if let Some(ns) = ns {
                if !filter.namespace(ns) {
                    continue;
                }
            }
            send(r, obj, &mut f, tx).await?;
            Progress::add(&progress.files, 1);
        }
    }
    Progress::add(&progress.items_done, 1);
    Ok(f)
}

/// Errors that leave one resource or object out rather than fail the backup:
/// the credentials may not read it, or it is not served after all.
fn refusal(e: &KubeError) -> bool {
    matches!(e.status(), Some(403..=405))
}

/// Clean one object, note what it depends on, and send it to the collector.
async fn send(
    r: &ResourceType,
    obj: Value,
    f: &mut Findings,
    tx: &mpsc::Sender<Exported>,
) -> Result<(), OpsError> {
    if excluded_object(r, &obj).is_some() {
        f.excluded += 1;
        return Ok(());
    }
    let deps = dependencies(r, &obj);
    let c = match clean(r, obj) {
        Ok(c) => c,
        Err(e) => {
            f.warn(e.to_string());
            return Ok(());
        }
    };
    let who = api::describe(r, c.namespace.as_deref(), &c.name);
    for d in deps {
        f.deps.entry(d).or_insert_with(|| who.clone());
    }
    if let Some(ns) = &c.namespace {
        f.namespaces.insert(ns.clone());
        if r.is("", "ServiceAccount") {
            f.sa_namespaces.insert(ns.clone());
        }
    }
    *f.counts.entry(r.clone()).or_default() += 1;
    tx.send(Exported {
        key: r.key(),
        namespace: c.namespace,
        name: c.name,
        body: c.body,
        status: c.status,
        fields: c.fields,
    })
    .await
    .map_err(|_| OpsError::Pipeline("the object collector stopped".into()))
}

/// The Namespace objects of the namespaces in scope.
async fn export_namespaces(
    cluster: &Cluster,
    by_kind: &HashMap<(&str, &str), &ResourceType>,
    filter: &ScopeFilter,
    tx: &mpsc::Sender<Exported>,
    f: &mut Findings,
) -> Result<(), OpsError> {
    let Some(ns_type) = by_kind.get(&("", "Namespace")).copied() else {
        return Ok(());
    };
    if !filter.resource(ns_type) {
        return Ok(());
    }
    let mut lister = Lister::new(cluster, ns_type, None);
    while let Some(page) = lister.next_page(cluster).await? {
        for obj in page {
            let name = obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            // With a selector, only the namespaces that hold selected objects.
            let wanted = filter.namespace(name)
                && (filter.scope.selector.is_none() || f.namespaces.contains(name));
            if wanted {
                send(ns_type, obj, f, tx).await?;
            }
        }
    }
    Ok(())
}

/// ClusterRoleBindings that grant something to a selected ServiceAccount.
async fn bindings_of_service_accounts(
    cluster: &Cluster,
    by_kind: &HashMap<(&str, &str), &ResourceType>,
    filter: &ScopeFilter,
    f: &mut Findings,
) -> Result<(), OpsError> {
    let Some(crb) = by_kind
        .get(&("rbac.authorization.k8s.io", "ClusterRoleBinding"))
        .copied()
    else {
        return Ok(());
    };
    if f.sa_namespaces.is_empty() || !filter.resource(crb) {
        return Ok(());
    }
    let mut lister = Lister::new(cluster, crb, None);
    loop {
        let page = match lister.next_page(cluster).await {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(e) if refusal(&e) => {
                f.warn(format!(
                    "{e}; bindings of the selected service accounts are not in the snapshot"
                ));
                break;
            }
            Err(e) => return Err(e.into()),
        };
        for obj in page {
            if binds_service_account_in(&obj, |ns| f.sa_namespaces.contains(ns)) {
                let (_, name) = api::ns_name(&obj);
                f.deps
                    .entry(ObjectRef {
                        group: crb.group.clone(),
                        kind: crb.kind.clone(),
                        namespace: None,
                        name,
                    })
                    .or_insert_with(|| "a selected ServiceAccount".into());
            }
        }
    }
    Ok(())
}

/// The CRD of every custom resource with selected objects.
fn crds_of_custom_resources(f: &mut Findings) {
    let custom: Vec<&ResourceType> = f.counts.keys().filter(|r| !r.is_builtin()).collect();
    let mut deps = Vec::new();
    for r in custom {
        deps.push((
            ObjectRef {
                group: "apiextensions.k8s.io".into(),
                kind: "CustomResourceDefinition".into(),
                namespace: None,
                name: format!("{}.{}", r.resource, r.group),
            },
            format!("the {} objects", r.key()),
        ));
    }
    for (d, who) in deps {
        f.deps.entry(d).or_insert(who);
    }
}

/// Fetch the cluster-scoped objects the selected ones need, and what those need.
async fn export_dependencies(
    cluster: &Cluster,
    by_kind: &HashMap<(&str, &str), &ResourceType>,
    filter: &ScopeFilter,
    all_cluster: bool,
    tx: &mpsc::Sender<Exported>,
    f: &mut Findings,
) -> Result<(), OpsError> {
    let mut done = BTreeSet::new();
    let mut pending: Vec<(ObjectRef, String)> = std::mem::take(&mut f.deps).into_iter().collect();
    while let Some((d, who)) = pending.pop() {
        if !done.insert(d.clone()) {
            continue;
        }
        let Some(r) = by_kind.get(&(d.group.as_str(), d.kind.as_str())).copied() else {
            continue;
        };
        // Already listed in full, or left out on purpose.
        if (all_cluster && filter.resource(r)) || !filter.resource(r) {
            continue;
        }
        let obj = match api::get(cluster, r, None, &d.name).await {
            Ok(Some(o)) => o,
            Ok(None) => {
                // Custom-resource groups that are not CRDs (aggregated APIs) have none.
                if d.kind != "CustomResourceDefinition" {
                    f.warn(format!(
                        "{d}, needed by {who}, does not exist in the cluster"
                    ));
                }
                continue;
            }
            Err(e) if refusal(&e) => {
                f.warn(format!("{e} (needed by {who})"));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if r.is("rbac.authorization.k8s.io", "ClusterRole") {
            for selector in aggregation_selectors(&obj) {
                let mut lister = Lister::new(cluster, r, Some(&selector));
                while let Some(page) = lister.next_page(cluster).await? {
                    for source in page {
                        let (_, name) = api::ns_name(&source);
                        pending.push((
                            ObjectRef { name, ..d.clone() },
                            format!("the aggregated {d}"),
                        ));
                    }
                }
            }
        }
        // `f.deps` was emptied before the loop: it now holds what this object needs.
        send(r, obj, f, tx).await?;
        pending.extend(std::mem::take(&mut f.deps));
    }
    Ok(())
}
