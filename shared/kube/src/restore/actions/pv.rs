//! PersistentVolumes: left out unless re-attached on request; then bound
//! again, to the restored claim, and never deleting the source's storage.
//!
//! A backed-up volume points at the source's storage (an EBS volume, an NFS
//! export, a Ceph image). Re-created in another cluster, the target's pods
//! would write the source's live disk, and with reclaim policy Delete,
//! deleting the restored claim would delete the source's disk. So a volume
//! whose data is not restored is left out, and its claim provisioned anew
//! (see `pvc`), unless the user asks (`--reattach-volumes`); then its reclaim
//! policy is forced to Retain and the report says so.
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

/// `namespace/claim` of the claim the volume is bound to, if any.
fn claim_key(obj: &Value) -> Result<Option<String>, FieldError> {
    Ok(
        match (
            json::string(obj, "/spec/claimRef/namespace")?,
            json::string(obj, "/spec/claimRef/name")?,
        ) {
            (Some(ns), Some(name)) => Some(format!("{ns}/{name}")),
            _ => None,
        },
    )
}

/// The source storage a volume points at, for messages: `csi
/// ebs.csi.aws.com vol-0abc`, `nfs 10.0.0.5:/export`, `hostPath /srv/x`,
/// or the name of its volume source field.
fn storage(obj: &Value) -> String {
    let text = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or("?");
    let spec = obj.get("spec").and_then(Value::as_object);
    if spec.is_some_and(|s| s.contains_key("csi")) {
        format!(
            "csi {} {}",
            text("/spec/csi/driver"),
            text("/spec/csi/volumeHandle")
        )
    } else if spec.is_some_and(|s| s.contains_key("nfs")) {
        format!(
            "nfs {}:{}",
            text("/spec/nfs/server"),
            text("/spec/nfs/path")
        )
    } else if spec.is_some_and(|s| s.contains_key("hostPath")) {
        format!("hostPath {}", text("/spec/hostPath/path"))
    } else if spec.is_some_and(|s| s.contains_key("local")) {
        format!("local {}", text("/spec/local/path"))
    } else {
        spec.and_then(|s| s.keys().find(|k| !NOT_A_SOURCE.contains(&k.as_str())))
            .map_or_else(|| "unknown storage".to_string(), |k| k.clone())
    }
}

/// PersistentVolume spec fields that are not a volume source.
const NOT_A_SOURCE: &[&str] = &[
    "accessModes",
    "capacity",
    "claimRef",
    "mountOptions",
    "nodeAffinity",
    "persistentVolumeReclaimPolicy",
    "storageClassName",
    "volumeAttributesClassName",
    "volumeMode",
];

/// A volume whose data is not restored is left out unless it is to be
/// re-attached ([`Transform::reattaches`]): the reason, or `None` to
/// re-create it. Call after [`restored_from_snapshot`].
pub(super) fn not_reattached(
    obj: &Value,
    transform: &Transform,
) -> Result<Option<String>, FieldError> {
    let claim = claim_key(obj)?;
    if transform.reattaches(claim.as_deref()) {
        return Ok(None);
    }
    let at = storage(obj);
    Ok(Some(match claim {
        Some(k) if transform.reattach_volumes => format!(
            "not re-attached although asked: the backup was to copy the data of its claim {k} and holds none of it now; \
             the claim is provisioned anew, empty, and the source's storage ({at}) is left alone"
        ),
        Some(k) => format!(
            "its data is not restored, and re-created it would point at the source's storage ({at}); \
             its claim {k} is provisioned anew, empty (--reattach-volumes re-creates it, with reclaim policy Retain)"
        ),
        None => format!(
            "bound to no claim; re-created it would point at the source's storage ({at}) \
             (--reattach-volumes re-creates it, with reclaim policy Retain)"
        ),
    }))
}

/// A volume re-created on request points at the source's storage: its
/// reclaim policy becomes Retain, so deleting the restored claim never
/// deletes the source's disk. Returns the note for the report.
pub(super) fn reattach(obj: &mut Value) -> Result<Option<String>, FieldError> {
    let was = json::string(obj, "/spec/persistentVolumeReclaimPolicy")?
        .unwrap_or("Delete")
        .to_string();
    let spec = json::object_or_insert(obj, "/spec")?;
    spec.insert(
        "persistentVolumeReclaimPolicy".into(),
        Value::String("Retain".into()),
    );
    let at = storage(obj);
    Ok(Some(if was == "Retain" {
        format!("re-attached to the source's storage ({at}) as asked; reclaim policy Retain")
    } else {
        format!(
            "re-attached to the source's storage ({at}) as asked; reclaim policy Retain (was {was})"
        )
    }))
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

    fn asked() -> Transform {
        Transform {
            reattach_volumes: true,
            ..Transform::default()
        }
    }

    #[test]
    fn volume_without_restored_data_is_left_out_by_default() {
        let reason = not_reattached(&bound_volume(), &Transform::default())
            .unwrap()
            .unwrap();
        assert!(
            reason.contains("csi ebs.csi.aws.com vol-0abc")
                && reason.contains("db/data-pg-0 is provisioned anew")
                && reason.contains("--reattach-volumes"),
            "{reason}"
        );
        let mut free = bound_volume();
        json::remove(&mut free, "/spec/claimRef");
        let reason = not_reattached(&free, &Transform::default())
            .unwrap()
            .unwrap();
        assert!(reason.contains("bound to no claim"), "{reason}");
    }

    #[test]
    fn reattached_volume_never_deletes_the_source_disk() {
        let mut pv = bound_volume();
        pv["spec"]["persistentVolumeReclaimPolicy"] = json!("Delete");
        assert_eq!(not_reattached(&pv, &asked()).unwrap(), None);
        let note = reattach(&mut pv).unwrap().unwrap();
        assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
        assert!(
            note.contains("vol-0abc") && note.contains("Retain (was Delete)"),
            "{note}"
        );
        // Without a policy the API server's default is Retain for static
        // volumes, but a provisioned one defaults to Delete: always set.
        let mut pv = bound_volume();
        json::remove(&mut pv, "/spec/persistentVolumeReclaimPolicy");
        reattach(&mut pv).unwrap();
        assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
    }

    #[test]
    fn volume_of_a_claim_whose_copy_failed_is_never_reattached() {
        let transform = Transform {
            never_reattach: std::collections::BTreeSet::from(["db/data-pg-0".to_string()]),
            ..asked()
        };
        let reason = not_reattached(&bound_volume(), &transform)
            .unwrap()
            .unwrap();
        assert!(
            reason.contains("not re-attached although asked"),
            "{reason}"
        );
    }

    #[test]
    fn storage_is_named_for_each_kind_of_source() {
        let nfs =
            json!({"spec": {"nfs": {"server": "10.0.0.5", "path": "/export"}, "capacity": {}}});
        assert_eq!(storage(&nfs), "nfs 10.0.0.5:/export");
        let rbd = json!({"spec": {"capacity": {}, "rbd": {"image": "x"}}});
        assert_eq!(storage(&rbd), "rbd");
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
