//! The requests Lifeboat makes, on any resource, as JSON.

use crate::{Cluster, KubeError, ResourceType};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use serde_json::Value;

/// Objects per list page: large enough for few round trips, small enough
/// that a page of big objects stays a few MiB.
pub const PAGE_SIZE: u32 = 500;

/// Field manager recorded on everything Lifeboat writes.
pub const FIELD_MANAGER: &str = "lifeboat";

fn api_resource(r: &ResourceType) -> ApiResource {
    ApiResource {
        group: r.group.clone(),
        version: r.version.clone(),
        api_version: r.api_version(),
        kind: r.kind.clone(),
        plural: r.resource.clone(),
    }
}

fn api(cluster: &Cluster, r: &ResourceType, namespace: Option<&str>) -> Api<DynamicObject> {
    let ar = api_resource(r);
    match namespace {
        Some(ns) if r.namespaced => Api::namespaced_with(cluster.client.clone(), ns, &ar),
        _ => Api::all_with(cluster.client.clone(), &ar),
    }
}

fn to_value(what: &str, obj: DynamicObject) -> Result<Value, KubeError> {
    serde_json::to_value(obj).map_err(|e| KubeError::Malformed {
        what: what.to_string(),
        message: e.to_string(),
    })
}

fn from_value(what: &str, obj: &Value) -> Result<DynamicObject, KubeError> {
    serde_json::from_value(obj.clone()).map_err(|e| KubeError::Malformed {
        what: what.to_string(),
        message: e.to_string(),
    })
}

/// Pages through every object of one resource, across all namespaces.
#[derive(Debug)]
pub struct Lister {
    api: Api<DynamicObject>,
    params: ListParams,
    what: String,
    done: bool,
}

impl Lister {
    pub fn new(cluster: &Cluster, r: &ResourceType, selector: Option<&str>) -> Self {
        let mut params = ListParams::default().limit(PAGE_SIZE);
        if let Some(s) = selector {
            params = params.labels(s);
        }
        Lister {
            api: api(cluster, r, None),
            params,
            what: format!("list {}", r.key()),
            done: false,
        }
    }

    /// The next page, or `None` after the last.
    pub async fn next_page(&mut self, cluster: &Cluster) -> Result<Option<Vec<Value>>, KubeError> {
        if self.done {
            return Ok(None);
        }
        let list = self
            .api
            .list(&self.params)
            .await
            .map_err(|e| cluster.err(&self.what, e))?;
        match list.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => self.params.continue_token = Some(token),
            None => self.done = true,
        }
        let items = list
            .items
            .into_iter()
            .map(|o| to_value(&self.what, o))
            .collect::<Result<_, _>>()?;
        Ok(Some(items))
    }
}

/// Describe one object for messages: `deployments.apps shop/web`.
pub fn describe(r: &ResourceType, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{} {ns}/{name}", r.key()),
        None => format!("{} {name}", r.key()),
    }
}

/// Fetch one object; `None` when it does not exist.
pub async fn get(
    cluster: &Cluster,
    r: &ResourceType,
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<Value>, KubeError> {
    let what = format!("get {}", describe(r, namespace, name));
    match api(cluster, r, namespace).get_opt(name).await {
        Ok(Some(o)) => Ok(Some(to_value(&what, o)?)),
        Ok(None) => Ok(None),
        // A 404 that is not a NotFound status: the resource type itself is
        // not served (yet), so the object is not there either.
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
        Err(e) => Err(cluster.err(what, e)),
    }
}

/// Create `obj`; with `dry_run` the server validates it and stores nothing.
pub async fn create(
    cluster: &Cluster,
    r: &ResourceType,
    obj: &Value,
    dry_run: bool,
) -> Result<Value, KubeError> {
    let (ns, name) = ns_name(obj);
    let what = format!("create {}", describe(r, ns.as_deref(), &name));
    let pp = PostParams {
        dry_run,
        field_manager: Some(FIELD_MANAGER.into()),
    };
    let created = api(cluster, r, ns.as_deref())
        .create(&pp, &from_value(&what, obj)?)
        .await
        .map_err(|e| cluster.err(&what, e))?;
    to_value(&what, created)
}

/// Replace the existing object with `obj` (its resourceVersion is taken from
/// `existing`, so a concurrent change makes this fail instead of being lost).
pub async fn replace(
    cluster: &Cluster,
    r: &ResourceType,
    obj: &Value,
    existing: &Value,
) -> Result<Value, KubeError> {
    let (ns, name) = ns_name(obj);
    let what = format!("update {}", describe(r, ns.as_deref(), &name));
    let mut obj = obj.clone();
    if let (Some(meta), Some(rv)) = (
        obj.pointer_mut("/metadata").and_then(Value::as_object_mut),
        existing.pointer("/metadata/resourceVersion"),
    ) {
        meta.insert("resourceVersion".into(), rv.clone());
    }
    let pp = PostParams {
        dry_run: false,
        field_manager: Some(FIELD_MANAGER.into()),
    };
    let updated = api(cluster, r, ns.as_deref())
        .replace(&name, &pp, &from_value(&what, &obj)?)
        .await
        .map_err(|e| cluster.err(&what, e))?;
    to_value(&what, updated)
}

/// Write `status` through the status subresource.
pub async fn patch_status(
    cluster: &Cluster,
    r: &ResourceType,
    namespace: Option<&str>,
    name: &str,
    status: &Value,
) -> Result<(), KubeError> {
    let what = format!("update status of {}", describe(r, namespace, name));
    let patch = serde_json::json!({ "status": status });
    let pp = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    api(cluster, r, namespace)
        .patch_status(name, &pp, &Patch::Merge(&patch))
        .await
        .map_err(|e| cluster.err(what, e))?;
    Ok(())
}

/// Give an object's fields back to their owners: replace its
/// `metadata.managedFields` with `fields` (as backed up). A request that
/// changes nothing but managedFields is the one way the API server takes
/// them as given; a create or update would make Lifeboat the owner of
/// every field it wrote.
pub async fn patch_managed_fields(
    cluster: &Cluster,
    r: &ResourceType,
    namespace: Option<&str>,
    name: &str,
    fields: &Value,
) -> Result<(), KubeError> {
    let what = format!(
        "restore the field owners of {}",
        describe(r, namespace, name)
    );
    let metadata = serde_json::json!({ "managedFields": fields });
    merge_metadata(cluster, r, namespace, name, what, &metadata).await
}

/// Merge `metadata` (labels, annotations) into an object's metadata.
pub async fn patch_metadata(
    cluster: &Cluster,
    r: &ResourceType,
    namespace: Option<&str>,
    name: &str,
    metadata: &Value,
) -> Result<(), KubeError> {
    let what = format!("update metadata of {}", describe(r, namespace, name));
    merge_metadata(cluster, r, namespace, name, what, metadata).await
}

async fn merge_metadata(
    cluster: &Cluster,
    r: &ResourceType,
    namespace: Option<&str>,
    name: &str,
    what: String,
    metadata: &Value,
) -> Result<(), KubeError> {
    let patch = serde_json::json!({ "metadata": metadata });
    let pp = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    api(cluster, r, namespace)
        .patch(name, &pp, &Patch::Merge(&patch))
        .await
        .map_err(|e| cluster.err(what, e))?;
    Ok(())
}

/// Delete one object; `false` when it was already gone.
pub async fn delete(
    cluster: &Cluster,
    r: &ResourceType,
    namespace: Option<&str>,
    name: &str,
) -> Result<bool, KubeError> {
    delete_with(
        cluster,
        r,
        namespace,
        name,
        &kube::api::DeleteParams::default(),
    )
    .await
}

/// Delete one object and, in the background, what it owns (a Job's pods:
/// the API's default for Jobs is to orphan them).
pub async fn delete_owned(
    cluster: &Cluster,
    r: &ResourceType,
    namespace: Option<&str>,
    name: &str,
) -> Result<bool, KubeError> {
    delete_with(
        cluster,
        r,
        namespace,
        name,
        &kube::api::DeleteParams::background(),
    )
    .await
}

async fn delete_with(
    cluster: &Cluster,
    r: &ResourceType,
    namespace: Option<&str>,
    name: &str,
    params: &kube::api::DeleteParams,
) -> Result<bool, KubeError> {
    let what = format!("delete {}", describe(r, namespace, name));
    match api(cluster, r, namespace).delete(name, params).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(cluster.err(what, e)),
    }
}

/// The objects of one resource in `namespace` that the field selector
/// `fields` and the label selector `labels` match (one page: for small
/// answers, like an object's events or a Job's pods).
pub async fn list_in(
    cluster: &Cluster,
    r: &ResourceType,
    namespace: &str,
    fields: Option<&str>,
    labels: Option<&str>,
) -> Result<Vec<Value>, KubeError> {
    let mut params = ListParams::default().limit(PAGE_SIZE);
    if let Some(f) = fields {
        params = params.fields(f);
    }
    if let Some(l) = labels {
        params = params.labels(l);
    }
    let filter = [fields, labels]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ");
    let what = format!("list {} in {namespace} ({filter})", r.resource);
    let list = api(cluster, r, Some(namespace))
        .list(&params)
        .await
        .map_err(|e| cluster.err(&what, e))?;
    list.items.into_iter().map(|o| to_value(&what, o)).collect()
}

/// Every object of one resource (all namespaces) that `selector` matches.
pub async fn list(
    cluster: &Cluster,
    r: &ResourceType,
    selector: Option<&str>,
) -> Result<Vec<Value>, KubeError> {
    let mut lister = Lister::new(cluster, r, selector);
    let mut out = Vec::new();
    while let Some(page) = lister.next_page(cluster).await? {
        out.extend(page);
    }
    Ok(out)
}

/// Namespace and name of an object (empty name if it has none).
pub fn ns_name(obj: &Value) -> (Option<String>, String) {
    (
        obj.pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_string),
        obj.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    )
}
