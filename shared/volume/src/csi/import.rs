//! Bringing an existing driver snapshot into a namespace: a pre-provisioned
//! VolumeSnapshotContent (`spec.source.snapshotHandle`) and a VolumeSnapshot
//! bound to it. Restores use it to give a claim its data as a dataSource;
//! the movers use it to expose an application's snapshot in Lifeboat's own
//! namespace (as Velero's and kopia's data movers do), where a staging claim
//! is made from it, and to hand a volume they filled there to the
//! application's namespace.

use super::claim::str_at;
use super::owned::{self, NONCE_ANNOTATION};
use super::snapshot::{contents, read_snapshot, snapshots, wait_ready};
use super::{CsiSnapshot, Wait, MANAGED_LABEL};
use crate::VolumeError;
use lifeboat_kube::{api, Cluster, KubeError};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// What happens to the driver's snapshot when its imported content goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletionPolicy {
    /// Kept: the content is only a view of a snapshot that belongs to
    /// someone else (the application's VolumeSnapshot, or the restore).
    Retain,
    /// Deleted with the content: the snapshot belongs to the importer.
    Delete,
}

impl DeletionPolicy {
    fn as_str(self) -> &'static str {
        match self {
            DeletionPolicy::Retain => "Retain",
            DeletionPolicy::Delete => "Delete",
        }
    }
}

/// One driver snapshot to bring into a namespace.
#[derive(Debug, Clone)]
pub struct SnapshotImport {
    /// Where the VolumeSnapshot goes.
    pub namespace: String,
    pub name: String,
    pub driver: String,
    /// The driver's snapshot id.
    pub handle: String,
    /// The VolumeSnapshotClass to name on the content, if any.
    pub class: Option<String>,
    pub deletion_policy: DeletionPolicy,
    /// Annotations on the VolumeSnapshot (what the importer wants to find
    /// again, see [`find_ready`]).
    pub annotations: BTreeMap<String, String>,
    /// Stamped on both objects; existing ones without it are refused.
    pub nonce: String,
}

/// The cluster-scoped VolumeSnapshotContent's name for VolumeSnapshot
/// `namespace/name`.
pub fn imported_content_name(namespace: &str, name: &str) -> String {
    format!(
        "{name}-{}",
        &blake3::hash(namespace.as_bytes()).to_hex()[..8]
    )
}

impl SnapshotImport {
    /// The pre-provisioned VolumeSnapshotContent.
    pub fn content(&self) -> Value {
        let mut spec = json!({
            "deletionPolicy": self.deletion_policy.as_str(),
            "driver": self.driver,
            "source": { "snapshotHandle": self.handle },
            "volumeSnapshotRef": { "name": self.name, "namespace": self.namespace },
        });
        if let Some(c) = &self.class {
            spec["volumeSnapshotClassName"] = json!(c);
        }
        json!({
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshotContent",
            "metadata": {
                "name": imported_content_name(&self.namespace, &self.name),
                "labels": { MANAGED_LABEL: "lifeboat" },
                "annotations": { NONCE_ANNOTATION: self.nonce },
            },
            "spec": spec,
        })
    }

    /// The VolumeSnapshot bound to [`Self::content`].
    pub fn snapshot(&self) -> Value {
        let mut annotations = self.annotations.clone();
        annotations.insert(NONCE_ANNOTATION.into(), self.nonce.clone());
        json!({
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshot",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": { MANAGED_LABEL: "lifeboat" },
                "annotations": annotations,
            },
            "spec": {
                "source": {
                    "volumeSnapshotContentName": imported_content_name(&self.namespace, &self.name),
                },
            },
        })
    }
}

/// Bring the driver snapshot into the cluster as described and wait until
/// the VolumeSnapshot is ready: a claim in its namespace can then name it
/// as its dataSource. Idempotent for the same nonce; objects of those names
/// without it are refused ([`VolumeError::NotOurs`]).
pub async fn import_snapshot(
    cluster: &Cluster,
    import: &SnapshotImport,
    wait: Wait,
) -> Result<CsiSnapshot, VolumeError> {
    owned::create_or_get(cluster, &contents(), &import.content(), &import.nonce).await?;
    owned::create_or_get(cluster, &snapshots(), &import.snapshot(), &import.nonce).await?;
    wait_ready(cluster, &import.namespace, &import.name, wait).await
}

/// Delete VolumeSnapshot `namespace/name` and the VolumeSnapshotContent
/// bound to it (imported or provisioned), if the snapshot carries `nonce`;
/// the content goes only if it names that very snapshot. Whether the
/// driver's snapshot goes too is the content's deletion policy.
pub async fn delete_snapshot_and_content(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    nonce: &str,
) -> Result<(), VolumeError> {
    let Some(vs) = api::get(cluster, &snapshots(), Some(namespace), name).await? else {
        return Ok(());
    };
    let what = format!("volumesnapshot {namespace}/{name}");
    if let Err(e) = owned::check_ours(&vs, nonce, &what) {
        tracing::warn!(object = %what, error = %e, "not deleted: not Lifeboat's");
        return Ok(());
    }
    let mut content = str_at(&vs, "/status/boundVolumeSnapshotContentName").to_string();
    if content.is_empty() {
        content = str_at(&vs, "/spec/source/volumeSnapshotContentName").to_string();
    }
    api::delete(cluster, &snapshots(), Some(namespace), name).await?;
    if content.is_empty() {
        return Ok(());
    }
    if let Some(c) = api::get(cluster, &contents(), None, &content).await? {
        let bound_to_it = str_at(&c, "/spec/volumeSnapshotRef/namespace") == namespace
            && str_at(&c, "/spec/volumeSnapshotRef/name") == name;
        if bound_to_it {
            api::delete(cluster, &contents(), None, &content).await?;
        } else {
            tracing::warn!(content = %content, snapshot = %what, "content not deleted: it names another snapshot");
        }
    }
    Ok(())
}

/// Set the deletion policy of VolumeSnapshotContent `name` to Retain, so
/// that deleting its VolumeSnapshot keeps the driver's snapshot (which an
/// imported content elsewhere now refers to). Retried on a write conflict
/// with the snapshot controller.
pub async fn retain_content(cluster: &Cluster, name: &str) -> Result<(), VolumeError> {
    let mut attempts = 0;
    loop {
        let content = api::get(cluster, &contents(), None, name)
            .await?
            .ok_or_else(|| VolumeError::Failed {
                what: format!("volumesnapshotcontent {name}"),
                message: "it is gone before its deletion policy was set to Retain".into(),
            })?;
        if str_at(&content, "/spec/deletionPolicy") == "Retain" {
            return Ok(());
        }
        let mut updated = content.clone();
        updated["spec"]["deletionPolicy"] = json!("Retain");
        match api::replace(cluster, &contents(), &updated, &content).await {
            Ok(_) => return Ok(()),
            Err(KubeError::Api { code: 409, .. }) if attempts < 5 => attempts += 1,
            Err(e) => return Err(e.into()),
        }
    }
}

/// VolumeSnapshot `namespace/name` and its annotations, if it exists and is
/// ready to use; `None` if it does not exist or is not ready (yet).
pub async fn find_ready(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
) -> Result<Option<(CsiSnapshot, BTreeMap<String, String>)>, VolumeError> {
    let Some(vs) = api::get(cluster, &snapshots(), Some(namespace), name).await? else {
        return Ok(None);
    };
    if vs.pointer("/status/readyToUse").and_then(Value::as_bool) != Some(true) {
        return Ok(None);
    }
    let annotations = vs
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    Ok(Some((read_snapshot(cluster, &vs).await?, annotations)))
}

/// [`find_ready`] for a VolumeSnapshot Lifeboat imported with `nonce`: one
/// of that name without it is refused ([`VolumeError::NotOurs`]).
pub async fn find_ours(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    nonce: &str,
) -> Result<Option<(CsiSnapshot, BTreeMap<String, String>)>, VolumeError> {
    let found = find_ready(cluster, namespace, name).await?;
    if let Some((_, annotations)) = &found {
        let obj = json!({ "metadata": { "annotations": annotations } });
        owned::check_ours(&obj, nonce, &format!("volumesnapshot {namespace}/{name}"))?;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn import(policy: DeletionPolicy) -> SnapshotImport {
        SnapshotImport {
            namespace: "lifeboat-system".into(),
            name: "lifeboat-backup-0123456789ab".into(),
            driver: "hostpath.csi.k8s.io".into(),
            handle: "snap-1".into(),
            class: Some("csi-hostpath-snapclass".into()),
            deletion_policy: policy,
            annotations: BTreeMap::from([("lifeboat.dev/claim".into(), "shop/db".into())]),
            nonce: "n1".into(),
        }
    }

    #[test]
    fn an_imported_view_of_someone_elses_snapshot_retains_it() {
        let i = import(DeletionPolicy::Retain);
        let c = i.content();
        assert_eq!(c["spec"]["deletionPolicy"], "Retain");
        assert_eq!(c["spec"]["source"]["snapshotHandle"], "snap-1");
        assert!(c["spec"]["source"].get("volumeHandle").is_none());
        assert_eq!(c["spec"]["driver"], "hostpath.csi.k8s.io");
        assert_eq!(
            c["spec"]["volumeSnapshotClassName"],
            "csi-hostpath-snapclass"
        );
        assert_eq!(
            c["spec"]["volumeSnapshotRef"],
            json!({"name": "lifeboat-backup-0123456789ab", "namespace": "lifeboat-system"})
        );
        assert_eq!(c["metadata"]["annotations"][NONCE_ANNOTATION], "n1");
        let vs = i.snapshot();
        assert_eq!(vs["metadata"]["namespace"], "lifeboat-system");
        assert_eq!(
            vs["spec"]["source"]["volumeSnapshotContentName"],
            c["metadata"]["name"]
        );
        assert_eq!(vs["metadata"]["annotations"][NONCE_ANNOTATION], "n1");
        assert_eq!(
            vs["metadata"]["annotations"]["lifeboat.dev/claim"],
            "shop/db"
        );
        assert_eq!(
            import(DeletionPolicy::Delete).content()["spec"]["deletionPolicy"],
            "Delete"
        );
    }

    #[test]
    fn content_names_differ_by_namespace() {
        assert_ne!(
            imported_content_name("a", "lifeboat-restore-1"),
            imported_content_name("b", "lifeboat-restore-1")
        );
        assert!(imported_content_name("a", "x").starts_with("x-"));
    }
}
