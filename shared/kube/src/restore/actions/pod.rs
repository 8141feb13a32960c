//! Pods (those restored on their own, without a restored controller): what
//! the source cluster's scheduler and admission filled in.

use std::collections::HashSet;

use serde_json::Value;

use super::json::{self, FieldError};

/// Name prefix of the projected volume that the ServiceAccount admission
/// plugin adds to every pod: token, CA bundle and namespace. Admission adds
/// it again in the target, and a backed-up copy next to the new one would
/// collide on the mount path.
const API_ACCESS_VOLUME_PREFIX: &str = "kube-api-access-";

const CONTAINER_LISTS: [&str; 3] = [
    "/spec/containers",
    "/spec/initContainers",
    "/spec/ephemeralContainers",
];

pub(super) fn apply(obj: &mut Value) -> Result<(), FieldError> {
    // No such node in the target; a set nodeName bypasses the scheduler and
    // the pod would wait for that node forever.
    json::remove(obj, "/spec/nodeName");
    // The Priority admission plugin computes both from the priority class
    // (named, or the cluster's default one when none is named) and rejects
    // a pod whose values differ, as they do when the target's classes do.
    json::remove(obj, "/spec/priority");
    json::remove(obj, "/spec/preemptionPolicy");
    remove_api_access_volumes(obj)
}

fn remove_api_access_volumes(obj: &mut Value) -> Result<(), FieldError> {
    let mut removed = HashSet::new();
    for i in 0..json::list_len(obj, "/spec/volumes")? {
        let volume = format!("/spec/volumes/{i}");
        let name = json::required_string(obj, &format!("{volume}/name"))?;
        // Only the projected one: a user's own volume may share the prefix.
        if name.starts_with(API_ACCESS_VOLUME_PREFIX)
            && json::object(obj, &format!("{volume}/projected"))?.is_some()
        {
            removed.insert(name.to_string());
        }
    }
    if removed.is_empty() {
        return Ok(());
    }
    retain_named(obj, "/spec/volumes", &removed)?;
    for list in CONTAINER_LISTS {
        for i in 0..json::list_len(obj, list)? {
            retain_named(obj, &format!("{list}/{i}/volumeMounts"), &removed)?;
        }
    }
    Ok(())
}

/// Drops the entries of the list at `pointer` whose `name` is in `names`.
fn retain_named(obj: &mut Value, pointer: &str, names: &HashSet<String>) -> Result<(), FieldError> {
    for i in 0..json::list_len(obj, pointer)? {
        // Names are checked up front so the error points at the entry.
        json::required_string(obj, &format!("{pointer}/{i}/name"))?;
    }
    if let Some(Value::Array(list)) = obj.pointer_mut(pointer) {
        list.retain(|entry| {
            let name = entry
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            !names.contains(name)
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scheduled_pod() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "debug", "namespace": "shop"},
            "spec": {
                "nodeName": "ip-10-0-3-17.ec2.internal",
                "priorityClassName": "high",
                "priority": 1000000,
                "preemptionPolicy": "PreemptLowerPriority",
                "serviceAccountName": "default",
                "initContainers": [{
                    "name": "init",
                    "image": "busybox",
                    "volumeMounts": [
                        {"name": "kube-api-access-x7k2p", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}
                    ]
                }],
                "containers": [{
                    "name": "app",
                    "image": "nginx:1.27",
                    "volumeMounts": [
                        {"name": "data", "mountPath": "/data"},
                        {"name": "kube-api-access-x7k2p", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}
                    ]
                }],
                "volumes": [
                    {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                    {"name": "kube-api-access-x7k2p", "projected": {"defaultMode": 420, "sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}
                    ]}}
                ]
            }
        })
    }

    #[test]
    fn scheduling_and_admission_results_are_dropped() {
        let mut pod = scheduled_pod();
        apply(&mut pod).unwrap();
        let spec = &pod["spec"];
        assert!(spec.get("nodeName").is_none());
        assert!(spec.get("priority").is_none());
        assert!(spec.get("preemptionPolicy").is_none());
        assert_eq!(spec["priorityClassName"], "high");
        assert_eq!(
            spec["volumes"],
            json!([{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}])
        );
        assert_eq!(
            spec["containers"][0]["volumeMounts"],
            json!([{"name": "data", "mountPath": "/data"}])
        );
        assert_eq!(spec["initContainers"][0]["volumeMounts"], json!([]));
    }

    #[test]
    fn users_own_volume_with_the_prefix_stays() {
        let mut pod = json!({
            "spec": {
                "containers": [{"name": "app", "volumeMounts": [{"name": "kube-api-access-config", "mountPath": "/cfg"}]}],
                "volumes": [{"name": "kube-api-access-config", "configMap": {"name": "cfg"}}]
            }
        });
        let before = pod.clone();
        apply(&mut pod).unwrap();
        assert_eq!(pod, before);
    }

    #[test]
    fn malformed_volumes_name_the_field() {
        let mut pod = scheduled_pod();
        pod["spec"]["volumes"][1]["name"] = json!(null);
        let err = apply(&mut pod).unwrap_err();
        assert_eq!(err.field, "spec.volumes[1].name");

        let mut pod = scheduled_pod();
        pod["spec"]["containers"][0]["volumeMounts"] = json!({"name": "data"});
        let err = apply(&mut pod).unwrap_err();
        assert_eq!(err.field, "spec.containers[0].volumeMounts");
    }
}
