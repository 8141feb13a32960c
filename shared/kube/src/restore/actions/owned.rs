//! Objects that a restored controller recreates, and owner references that
//! cannot survive the move to another cluster.
//!
//! An owner reference names its owner by uid, and every restored object gets
//! a new uid in the target cluster. So a reference from the backup either
//! dangles (owner not restored: the garbage collector would delete the
//! object as orphaned) or points at a uid we cannot know before the owner is
//! created. Either way the reference goes; the object is restored without
//! an owner, as if created by hand. The one exception is an object whose
//! *controller* is restored: the controller recreates it from its own spec
//! (ReplicaSets of Deployments, Pods of ReplicaSets, Jobs of CronJobs,
//! EndpointSlices of Services...), so restoring it too would make a
//! duplicate that the controller then deletes or fights.

use std::collections::HashSet;

use serde_json::Value;

use super::json::{self, FieldError};
use crate::{ObjectRef, ResourceType};

const OWNER_REFERENCES: &str = "/metadata/ownerReferences";

/// `Some(reason)` when the object must not be created because a restored
/// controller recreates it; the object is then left untouched. Otherwise
/// removes all owner references and returns `None`.
///
/// `namespace` is the object's own, before namespace mapping (as in
/// `restoring`).
pub(super) fn apply(
    resource: &ResourceType,
    obj: &mut Value,
    namespace: Option<&str>,
    restoring: &HashSet<ObjectRef>,
) -> Result<Option<String>, FieldError> {
    let mut restored_controller = None;
    for i in 0..json::list_len(obj, OWNER_REFERENCES)? {
        let entry = format!("{OWNER_REFERENCES}/{i}");
        // Read every entry, not just up to the controller: a malformed list
        // is reported the same way whatever its order.
        let api_version = json::required_string(obj, &format!("{entry}/apiVersion"))?;
        let kind = json::required_string(obj, &format!("{entry}/kind"))?;
        let name = json::required_string(obj, &format!("{entry}/name"))?;
        let controller = json::flag(obj, &format!("{entry}/controller"))?;
        if controller && restored_controller.is_none() {
            let group = ObjectRef::group_of(api_version);
            restored_controller = restored_owner(group, kind, name, namespace, restoring);
        }
    }
    if let Some(owner) = restored_controller {
        if !holds_data(resource) {
            return Ok(Some(format!(
                "owned by {owner}, which is restored and recreates it"
            )));
        }
    }
    json::remove(obj, OWNER_REFERENCES);
    Ok(None)
}

/// The owner as it appears in `restoring`, if it is there. A namespaced
/// object's owner is in the same namespace or cluster-scoped, and the owner
/// reference does not say which, so both are looked up. A cluster-scoped
/// object can only have cluster-scoped owners.
fn restored_owner(
    group: &str,
    kind: &str,
    name: &str,
    namespace: Option<&str>,
    restoring: &HashSet<ObjectRef>,
) -> Option<ObjectRef> {
    let owner = |namespace: Option<&str>| ObjectRef {
        group: group.to_string(),
        kind: kind.to_string(),
        namespace: namespace.map(str::to_string),
        name: name.to_string(),
    };
    [namespace.map(|ns| owner(Some(ns))), Some(owner(None))]
        .into_iter()
        .flatten()
        .find(|candidate| restoring.contains(candidate))
}

/// Volumes and claims are restored even when their controller is: the
/// controller would recreate them empty, and the backed-up claim is what
/// binds the restored data. Kubernetes' own StatefulSet retention policy
/// sets non-controller references, but operators may set controller ones.
fn holds_data(resource: &ResourceType) -> bool {
    resource.is("", "PersistentVolumeClaim") || resource.is("", "PersistentVolume")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rt(group: &str, kind: &str) -> ResourceType {
        ResourceType::test(group, kind)
    }

    fn obj_ref(group: &str, kind: &str, namespace: Option<&str>, name: &str) -> ObjectRef {
        ObjectRef {
            group: group.into(),
            kind: kind.into(),
            namespace: namespace.map(str::to_string),
            name: name.into(),
        }
    }

    fn replica_set(controller: bool) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": "web-7d4b9c",
                "namespace": "shop",
                "labels": {"app": "web", "pod-template-hash": "7d4b9c"},
                "ownerReferences": [{
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": "web",
                    "uid": "0f1e2d3c-aaaa-bbbb-cccc-000000000001",
                    "controller": controller,
                    "blockOwnerDeletion": true
                }]
            },
            "spec": {"replicas": 2}
        })
    }

    #[test]
    fn object_whose_controller_is_restored_is_skipped_untouched() {
        let restoring = HashSet::from([obj_ref("apps", "Deployment", Some("shop"), "web")]);
        let mut rs = replica_set(true);
        let before = rs.clone();
        let skip = apply(&rt("apps", "ReplicaSet"), &mut rs, Some("shop"), &restoring).unwrap();
        assert_eq!(
            skip.as_deref(),
            Some("owned by Deployment.apps shop/web, which is restored and recreates it")
        );
        assert_eq!(rs, before);
    }

    #[test]
    fn controller_not_restored_drops_the_reference() {
        let restoring = HashSet::from([obj_ref("apps", "Deployment", Some("other"), "web")]);
        let mut rs = replica_set(true);
        let skip = apply(&rt("apps", "ReplicaSet"), &mut rs, Some("shop"), &restoring).unwrap();
        assert_eq!(skip, None);
        assert!(rs["metadata"].get("ownerReferences").is_none());
        assert_eq!(rs["metadata"]["labels"]["app"], "web");
    }

    #[test]
    fn non_controller_reference_to_restored_owner_is_dropped_not_skipped() {
        let restoring = HashSet::from([obj_ref("apps", "Deployment", Some("shop"), "web")]);
        let mut rs = replica_set(false);
        let skip = apply(&rt("apps", "ReplicaSet"), &mut rs, Some("shop"), &restoring).unwrap();
        assert_eq!(skip, None);
        assert!(rs["metadata"].get("ownerReferences").is_none());
    }

    #[test]
    fn core_group_owner_of_endpoint_slice() {
        let restoring = HashSet::from([obj_ref("", "Service", Some("shop"), "web")]);
        let mut slice = json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "web-x7k2p",
                "namespace": "shop",
                "ownerReferences": [{
                    "apiVersion": "v1", "kind": "Service", "name": "web",
                    "uid": "1", "controller": true, "blockOwnerDeletion": true
                }]
            },
            "addressType": "IPv4"
        });
        let skip = apply(
            &rt("discovery.k8s.io", "EndpointSlice"),
            &mut slice,
            Some("shop"),
            &restoring,
        )
        .unwrap();
        assert_eq!(
            skip.as_deref(),
            Some("owned by Service shop/web, which is restored and recreates it")
        );
    }

    #[test]
    fn cluster_scoped_controller_of_namespaced_object() {
        let restoring = HashSet::from([obj_ref("example.com", "Cluster", None, "main")]);
        let mut secret = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": "main-credentials",
                "namespace": "infra",
                "ownerReferences": [{
                    "apiVersion": "example.com/v1beta1", "kind": "Cluster", "name": "main",
                    "uid": "2", "controller": true
                }]
            }
        });
        let skip = apply(&rt("", "Secret"), &mut secret, Some("infra"), &restoring).unwrap();
        assert_eq!(
            skip.as_deref(),
            Some("owned by Cluster.example.com main, which is restored and recreates it")
        );
    }

    #[test]
    fn claims_are_restored_even_when_their_controller_is() {
        let restoring = HashSet::from([obj_ref("apps", "StatefulSet", Some("db"), "pg")]);
        let mut pvc = json!({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {
                "name": "data-pg-0",
                "namespace": "db",
                "ownerReferences": [{
                    "apiVersion": "apps/v1", "kind": "StatefulSet", "name": "pg",
                    "uid": "3", "controller": true
                }]
            },
            "spec": {"volumeName": "pvc-123"}
        });
        let skip = apply(
            &rt("", "PersistentVolumeClaim"),
            &mut pvc,
            Some("db"),
            &restoring,
        )
        .unwrap();
        assert_eq!(skip, None);
        assert!(pvc["metadata"].get("ownerReferences").is_none());
    }

    #[test]
    fn object_without_owners_is_unchanged() {
        let mut cm = json!({"metadata": {"name": "cfg", "namespace": "shop"}, "data": {"a": "b"}});
        let before = cm.clone();
        let skip = apply(&rt("", "ConfigMap"), &mut cm, Some("shop"), &HashSet::new()).unwrap();
        assert_eq!(skip, None);
        assert_eq!(cm, before);
    }

    #[test]
    fn malformed_references_name_the_field() {
        let mut not_a_list = json!({"metadata": {"name": "x", "ownerReferences": "web"}});
        let err = apply(
            &rt("", "Pod"),
            &mut not_a_list,
            Some("shop"),
            &HashSet::new(),
        )
        .unwrap_err();
        assert_eq!(err.field, "metadata.ownerReferences");
        assert_eq!(err.expected, "a list");

        let mut nameless = replica_set(true);
        nameless["metadata"]["ownerReferences"][0]
            .as_object_mut()
            .unwrap()
            .remove("name");
        let err = apply(
            &rt("apps", "ReplicaSet"),
            &mut nameless,
            Some("shop"),
            &HashSet::new(),
        )
        .unwrap_err();
        assert_eq!(err.field, "metadata.ownerReferences[0].name");
        assert_eq!(err.found, "nothing");

        let mut odd_flag = replica_set(true);
        odd_flag["metadata"]["ownerReferences"][0]["controller"] = json!("true");
        let err = apply(
            &rt("apps", "ReplicaSet"),
            &mut odd_flag,
            Some("shop"),
            &HashSet::new(),
        )
        .unwrap_err();
        assert_eq!(err.field, "metadata.ownerReferences[0].controller");
    }
}
