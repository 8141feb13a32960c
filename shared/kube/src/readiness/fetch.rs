//! Listing what the readiness rules look at.

use super::*;
use crate::api::PAGE_SIZE;
use crate::{Cluster, KubeError};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, ListParams};
use kube::Resource;
use serde::de::DeserializeOwned;
use std::collections::BTreeSet;
use std::fmt::Debug;

/// Fetch everything one poll looks at.
pub(super) async fn observe(
    cluster: &Cluster,
    opts: &ReadinessOptions,
) -> Result<Observed, KubeError> {
    let named: BTreeSet<&str> = opts.namespaces.iter().map(String::as_str).collect();
    if named.is_empty() {
        let mut o = observe_in(cluster, None).await?;
        retain_user_namespaces(&mut o);
        return Ok(o);
    }
    let mut all = Observed::default();
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    for ns in named {
        let found = namespaces
            .get_opt(ns)
            .await
            .map_err(|e| cluster.err(format!("get namespace {ns}"), e))?;
        all.namespaces.push((ns.to_string(), found));
        let o = observe_in(cluster, Some(ns)).await?;
        all.deployments.extend(o.deployments);
        all.stateful_sets.extend(o.stateful_sets);
        all.daemon_sets.extend(o.daemon_sets);
        all.replica_sets.extend(o.replica_sets);
        all.claims.extend(o.claims);
        all.jobs.extend(o.jobs);
        all.pods.extend(o.pods);
        all.services.extend(o.services);
    }
    Ok(all)
}

/// Every checked kind in `namespace` (all namespaces if `None`).
pub(super) async fn observe_in(
    cluster: &Cluster,
    namespace: Option<&str>,
) -> Result<Observed, KubeError> {
    let (deployments, stateful_sets, daemon_sets, replica_sets, claims, jobs, pods, services) = futures::try_join!(
        list::<Deployment>(cluster, namespace),
        list::<StatefulSet>(cluster, namespace),
        list::<DaemonSet>(cluster, namespace),
        list::<ReplicaSet>(cluster, namespace),
        list::<PersistentVolumeClaim>(cluster, namespace),
        list::<Job>(cluster, namespace),
        list::<Pod>(cluster, namespace),
        list::<Service>(cluster, namespace),
    )?;
    Ok(Observed {
        namespaces: Vec::new(),
        deployments,
        stateful_sets,
        daemon_sets,
        replica_sets,
        claims,
        jobs,
        pods,
        services,
    })
}

pub(super) fn retain_user_namespaces(o: &mut Observed) {
    fn keep<K: Resource>(items: &mut Vec<K>) {
        items.retain(|k| {
            !SYSTEM_NAMESPACES.contains(&k.meta().namespace.as_deref().unwrap_or_default())
        });
    }
    keep(&mut o.deployments);
    keep(&mut o.stateful_sets);
    keep(&mut o.daemon_sets);
    keep(&mut o.replica_sets);
    keep(&mut o.claims);
    keep(&mut o.jobs);
    keep(&mut o.pods);
    keep(&mut o.services);
}

/// Every object of kind `K` in `namespace` (all namespaces if `None`), page
/// by page. An expired continue token (HTTP 410) restarts the listing.
pub(super) async fn list<K>(cluster: &Cluster, namespace: Option<&str>) -> Result<Vec<K>, KubeError>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    const RESTARTS: usize = 3;
    let api: Api<K> = match namespace {
        Some(ns) => Api::namespaced(cluster.client.clone(), ns),
        None => Api::all(cluster.client.clone()),
    };
    let plural = K::plural(&K::DynamicType::default()).into_owned();
    let what = match namespace {
        Some(ns) => format!("list {plural} in namespace {ns}"),
        None => format!("list {plural}"),
    };
    let mut params = ListParams::default().limit(PAGE_SIZE);
    let mut items = Vec::new();
    let mut restarts = 0;
    loop {
        let page = match api.list(&params).await {
            Ok(page) => page,
            Err(kube::Error::Api(s))
                if s.code == 410 && params.continue_token.is_some() && restarts < RESTARTS =>
            {
                restarts += 1;
                params.continue_token = None;
                items.clear();
                continue;
            }
            Err(e) => return Err(cluster.err(&what, e)),
        };
        items.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params.continue_token = Some(token),
            None => return Ok(items),
        }
    }
}
