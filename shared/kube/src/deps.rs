//! Cluster-scoped objects that a selected object depends on, so that a
//! namespace-scoped backup restores on its own.

use crate::{ObjectRef, ResourceType};
use serde_json::Value;

fn cluster(group: &str, kind: &str, name: &str) -> ObjectRef {
    ObjectRef {
        group: group.into(),
        kind: kind.into(),
        namespace: None,
        name: name.into(),
    }
}

fn str_at<'a>(obj: &'a Value, ptr: &str) -> Option<&'a str> {
    obj.pointer(ptr)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The pod spec inside a workload object, wherever its kind keeps it.
fn pod_spec<'a>(resource: &ResourceType, obj: &'a Value) -> Option<&'a Value> {
    let ptr = match (resource.group.as_str(), resource.kind.as_str()) {
        ("", "Pod") => "/spec",
        ("", "ReplicationController")
        | ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet")
        | ("batch", "Job") => "/spec/template/spec",
        ("batch", "CronJob") => "/spec/jobTemplate/spec/template/spec",
        _ => return None,
    };
    obj.pointer(ptr)
}

/// Cluster-scoped objects `obj` (of `resource`) needs in order to work:
/// its PersistentVolume and StorageClasses, the ClusterRole of a binding,
/// PriorityClass, IngressClass, VolumeSnapshotClass, and the CRD of a custom
/// resource (named by the caller, which knows which resources are custom).
pub fn dependencies(resource: &ResourceType, obj: &Value) -> Vec<ObjectRef> {
    let mut out = Vec::new();
    let storage_class = |out: &mut Vec<ObjectRef>, name: Option<&str>| {
        if let Some(n) = name {
            out.push(cluster("storage.k8s.io", "StorageClass", n));
        }
    };
    match (resource.group.as_str(), resource.kind.as_str()) {
        ("", "PersistentVolumeClaim") => {
            if let Some(pv) = str_at(obj, "/spec/volumeName") {
                out.push(cluster("", "PersistentVolume", pv));
            }
            storage_class(&mut out, str_at(obj, "/spec/storageClassName"));
        }
        ("", "PersistentVolume") => storage_class(&mut out, str_at(obj, "/spec/storageClassName")),
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding")
            if str_at(obj, "/roleRef/kind") == Some("ClusterRole") =>
        {
            if let Some(role) = str_at(obj, "/roleRef/name") {
                out.push(cluster("rbac.authorization.k8s.io", "ClusterRole", role));
            }
        }
        ("networking.k8s.io", "Ingress") => {
            if let Some(c) = str_at(obj, "/spec/ingressClassName") {
                out.push(cluster("networking.k8s.io", "IngressClass", c));
            }
        }
        ("snapshot.storage.k8s.io", "VolumeSnapshot") => {
            if let Some(c) = str_at(obj, "/spec/volumeSnapshotClassName") {
                out.push(cluster("snapshot.storage.k8s.io", "VolumeSnapshotClass", c));
            }
        }
        ("apps", "StatefulSet") => {
            for t in obj
                .pointer("/spec/volumeClaimTemplates")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                storage_class(&mut out, str_at(t, "/spec/storageClassName"));
            }
        }
        _ => {}
    }
    if let Some(spec) = pod_spec(resource, obj) {
        if let Some(pc) = str_at(spec, "/priorityClassName") {
            out.push(cluster("scheduling.k8s.io", "PriorityClass", pc));
        }
    }
    out
}

/// Whether a ClusterRoleBinding grants something to a ServiceAccount in one
/// of the namespaces `selected` accepts (so it comes along with them).
pub fn binds_service_account_in(obj: &Value, selected: impl Fn(&str) -> bool) -> bool {
    obj.pointer("/subjects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|s| {
            str_at(s, "/kind") == Some("ServiceAccount")
                && str_at(s, "/namespace").is_some_and(&selected)
        })
}

/// The label selectors of an aggregated ClusterRole's `aggregationRule`, as
/// selector strings: the ClusterRoles they match supply its rules, so they
/// come along with it.
pub fn aggregation_selectors(obj: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for sel in obj
        .pointer("/aggregationRule/clusterRoleSelectors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let mut parts: Vec<String> = Vec::new();
        if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in m {
                parts.push(format!("{k}={}", v.as_str().unwrap_or_default()));
            }
        }
        for e in sel
            .get("matchExpressions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = str_at(e, "/key").unwrap_or_default();
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            match str_at(e, "/operator") {
                Some("In") => parts.push(format!("{key} in ({})", values.join(","))),
                Some("NotIn") => parts.push(format!("{key} notin ({})", values.join(","))),
                Some("Exists") => parts.push(key.to_string()),
                Some("DoesNotExist") => parts.push(format!("!{key}")),
                _ => {}
            }
        }
        // An empty selector would match every ClusterRole; Kubernetes
        // treats it as matching none.
        if !parts.is_empty() {
            out.push(parts.join(","));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rt(group: &str, kind: &str) -> ResourceType {
        ResourceType::test(group, kind)
    }

    fn names(v: Vec<ObjectRef>) -> Vec<String> {
        v.into_iter().map(|r| r.to_string()).collect()
    }

    #[test]
    fn claims_need_their_volume_and_class() {
        let pvc = json!({"spec": {"volumeName": "pv-1", "storageClassName": "fast"}});
        assert_eq!(
            names(dependencies(&rt("", "PersistentVolumeClaim"), &pvc)),
            ["PersistentVolume pv-1", "StorageClass.storage.k8s.io fast"]
        );
        let unbound = json!({"spec": {}});
        assert!(dependencies(&rt("", "PersistentVolumeClaim"), &unbound).is_empty());
    }

    #[test]
    fn workloads_need_priority_classes_and_claim_template_classes() {
        let sts = json!({"spec": {
            "template": {"spec": {"priorityClassName": "critical"}},
            "volumeClaimTemplates": [{"spec": {"storageClassName": "fast"}}, {"spec": {}}]
        }});
        assert_eq!(
            names(dependencies(&rt("apps", "StatefulSet"), &sts)),
            [
                "StorageClass.storage.k8s.io fast",
                "PriorityClass.scheduling.k8s.io critical"
            ]
        );
        let cron = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"priorityClassName": "batch"}}}}}});
        assert_eq!(
            names(dependencies(&rt("batch", "CronJob"), &cron)),
            ["PriorityClass.scheduling.k8s.io batch"]
        );
    }

    #[test]
    fn bindings_need_cluster_roles_but_not_roles() {
        let rb = rt("rbac.authorization.k8s.io", "RoleBinding");
        let to_cluster_role = json!({"roleRef": {"kind": "ClusterRole", "name": "view"}});
        let to_role = json!({"roleRef": {"kind": "Role", "name": "local"}});
        assert_eq!(
            names(dependencies(&rb, &to_cluster_role)),
            ["ClusterRole.rbac.authorization.k8s.io view"]
        );
        assert!(dependencies(&rb, &to_role).is_empty());
        let crb =
            json!({"subjects": [{"kind": "ServiceAccount", "name": "ci", "namespace": "shop"}]});
        assert!(binds_service_account_in(&crb, |ns| ns == "shop"));
        assert!(!binds_service_account_in(&crb, |ns| ns == "other"));
    }

    #[test]
    fn aggregated_cluster_roles_name_their_sources() {
        let role = json!({"aggregationRule": {"clusterRoleSelectors": [
            {"matchLabels": {"example.com/aggregate-to-admin": "true"}},
            {"matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["a", "b"]},
                {"key": "legacy", "operator": "DoesNotExist"}
            ]},
            {}
        ]}});
        assert_eq!(
            aggregation_selectors(&role),
            [
                "example.com/aggregate-to-admin=true",
                "tier in (a,b),!legacy"
            ]
        );
        assert!(aggregation_selectors(&json!({"rules": []})).is_empty());
    }

    #[test]
    fn ingresses_and_snapshots_need_their_classes() {
        let ing = json!({"spec": {"ingressClassName": "nginx"}});
        assert_eq!(
            names(dependencies(&rt("networking.k8s.io", "Ingress"), &ing)),
            ["IngressClass.networking.k8s.io nginx"]
        );
        let vs = json!({"spec": {"volumeSnapshotClassName": "csi"}});
        assert_eq!(
            names(dependencies(
                &rt("snapshot.storage.k8s.io", "VolumeSnapshot"),
                &vs
            )),
            ["VolumeSnapshotClass.snapshot.storage.k8s.io csi"]
        );
    }
}
