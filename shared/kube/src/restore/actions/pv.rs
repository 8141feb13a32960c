//! PersistentVolumes: bind again, to the restored claim.
//!
//! `spec.claimRef` names the claim and, through `uid`, the one instance of
//! it in the source cluster. Without `uid` (and `resourceVersion`) the
//! volume is pre-bound: reserved for a claim of that namespace and name, and
//! the PV controller binds it when the restored claim appears. Its
//! namespace is mapped with the rest (see `namespace_map`).

use serde_json::Value;

use super::json::{self, FieldError};
use super::storage_class_map::map_class;
use super::Transform;

/// The parts of `claimRef` that identify a claim in any cluster.
const CLAIM_REF_KEPT: [&str; 4] = ["apiVersion", "kind", "namespace", "name"];

/// Says the PV controller, not a user, made the binding. Removed: the
/// controller undoes bindings it made by clearing `claimRef` entirely, which
/// would release the volume (and its data) to any matching claim, while a
/// binding without the annotation counts as the user's and the volume stays
/// reserved for its claim. A restored binding is the user's choice.
const BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
// `pv.kubernetes.io/provisioned-by` stays: it names the provisioner that
// must delete the backing volume under reclaim policy Delete; without it
// the volume could never be cleaned up.

pub(super) fn apply(obj: &mut Value, transform: &Transform) -> Result<(), FieldError> {
    if let Some(claim_ref) = json::object_mut(obj, "/spec/claimRef")? {
        claim_ref.retain(|key, _| CLAIM_REF_KEPT.contains(&key.as_str()));
    }
    if let Some(annotations) = json::object_mut(obj, "/metadata/annotations")? {
        annotations.remove(BOUND_BY_CONTROLLER);
    }
    map_class(obj, "", &transform.storage_class_map)
}

/// A volume whose claim gets its data from a restored snapshot is not
/// restored: the claim is provisioned anew, and this volume's driver handle
/// belongs to the source cluster.
pub(super) fn restored_from_snapshot(
    obj: &Value,
    transform: &Transform,
) -> Result<Option<String>, FieldError> {
    let (Some(ns), Some(name)) = (
        json::string(obj, "/spec/claimRef/namespace")?,
        json::string(obj, "/spec/claimRef/name")?,
    ) else {
        return Ok(None);
    };
    Ok(transform
        .volume_sources
        .get(&format!("{ns}/{name}"))
        .map(|snap| {
            format!("its claim {ns}/{name} is provisioned from the restored volume snapshot {snap}")
        }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn bound_volume() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {
                "name": "pvc-5b1f0c2e",
                "annotations": {
                    "pv.kubernetes.io/bound-by-controller": "yes",
                    "pv.kubernetes.io/provisioned-by": "ebs.csi.aws.com",
                    "volume.kubernetes.io/provisioner-deletion-secret-name": ""
                },
                "finalizers": ["kubernetes.io/pv-protection"]
            },
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "capacity": {"storage": "10Gi"},
                "claimRef": {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "namespace": "db",
                    "name": "data-pg-0",
                    "uid": "5b1f0c2e-1111-2222-3333-444444444444",
                    "resourceVersion": "918273"
                },
                "csi": {"driver": "ebs.csi.aws.com", "volumeHandle": "vol-0abc"},
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "gp2",
                "volumeMode": "Filesystem"
            }
        })
    }

    #[test]
    fn claim_ref_keeps_only_the_claims_name() {
        let mut pv = bound_volume();
        apply(&mut pv, &Transform::default()).unwrap();
        assert_eq!(
            pv["spec"]["claimRef"],
            json!({
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": "db",
                "name": "data-pg-0"
            })
        );
        let annotations = &pv["metadata"]["annotations"];
        assert!(annotations.get(BOUND_BY_CONTROLLER).is_none());
        assert_eq!(
            annotations["pv.kubernetes.io/provisioned-by"],
            "ebs.csi.aws.com"
        );
        assert_eq!(pv["spec"]["csi"]["volumeHandle"], "vol-0abc");
        assert_eq!(pv["spec"]["storageClassName"], "gp2");
    }

    #[test]
    fn storage_class_is_mapped() {
        let transform = Transform {
            storage_class_map: BTreeMap::from([("gp2".into(), "gp3".into())]),
            ..Transform::default()
        };
        let mut pv = bound_volume();
        apply(&mut pv, &transform).unwrap();
        assert_eq!(pv["spec"]["storageClassName"], "gp3");
    }

    #[test]
    fn unbound_volume_is_fine() {
        let mut pv = json!({
            "metadata": {"name": "nfs-share"},
            "spec": {"capacity": {"storage": "1Ti"}, "nfs": {"server": "10.0.0.5", "path": "/export"}}
        });
        let before = pv.clone();
        apply(&mut pv, &Transform::default()).unwrap();
        assert_eq!(pv, before);
    }

    #[test]
    fn malformed_claim_ref_names_the_field() {
        let mut pv = json!({"metadata": {"name": "x"}, "spec": {"claimRef": "db/data"}});
        let err = apply(&mut pv, &Transform::default()).unwrap_err();
        assert_eq!(err.field, "spec.claimRef");
    }

    #[test]
    fn volume_of_a_claim_restored_from_a_snapshot_is_skipped() {
        let transform = Transform {
            volume_sources: std::collections::BTreeMap::from([(
                "db/data-pg-0".into(),
                "lifeboat-restore-data-pg-0".into(),
            )]),
            ..Transform::default()
        };
        let reason = restored_from_snapshot(&bound_volume(), &transform).unwrap();
        assert!(reason.unwrap().contains("lifeboat-restore-data-pg-0"));
        assert_eq!(
            restored_from_snapshot(&bound_volume(), &Transform::default()).unwrap(),
            None
        );
    }
}
