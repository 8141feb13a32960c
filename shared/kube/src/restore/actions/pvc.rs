//! PersistentVolumeClaims: bind again, statically or by provisioning.
//!
//! The annotations below record the source cluster's binding and
//! provisioning progress; left on the claim, the PV controller would take
//! the new claim for one it already bound or provisioned and skip steps.
//! `spec.volumeName` is kept when that volume is restored too, i.e.
//! re-attached on request (it is pre-bound to this claim, see `pv`), and
//! dropped otherwise, so the claim gets a fresh volume from its storage
//! class: an empty one, unless it is provisioned from a restored snapshot
//! (`from_snapshot`). The report says so for each claim.

use std::collections::HashSet;

use serde_json::Value;

use super::json::{self, FieldError};
use super::storage_class_map::map_class;
use super::Transform;
use crate::ObjectRef;

const BINDING_ANNOTATIONS: [&str; 5] = [
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
    "volume.beta.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/storage-provisioner",
    // The node the scheduler picked for a WaitForFirstConsumer volume; no
    // such node in the target, and provisioning would wait for it forever.
    "volume.kubernetes.io/selected-node",
];

/// `namespace` is the claim's namespace as backed up. Returns the note for
/// the report when the claim is provisioned anew, empty.
pub(super) fn apply(
    obj: &mut Value,
    transform: &Transform,
    restoring: &HashSet<ObjectRef>,
    namespace: Option<&str>,
) -> Result<Option<String>, FieldError> {
    if let Some(annotations) = json::object_mut(obj, "/metadata/annotations")? {
        for key in BINDING_ANNOTATIONS {
            annotations.remove(key);
        }
    }
    let mut note = None;
    if let Some(volume) = json::string(obj, "/spec/volumeName")?.map(str::to_string) {
        let name = json::string(obj, "/metadata/name")?.unwrap_or_default();
        let key = format!("{}/{name}", namespace.unwrap_or_default());
        let in_restore = restoring.contains(&ObjectRef {
            group: String::new(),
            kind: "PersistentVolume".to_string(),
            namespace: None,
            name: volume.clone(),
        });
        if !(in_restore && transform.reattaches(Some(&key))) {
            json::remove(obj, "/spec/volumeName");
            // From a restored snapshot: not empty, `from_snapshot` says so.
            if !transform.volume_sources.contains_key(&key) {
                let why = if !in_restore {
                    "is not in the restore"
                } else if transform.reattach_volumes {
                    "is not re-attached: the backup was to copy this claim's data and holds none of it"
                } else {
                    "is not re-created: its data is not restored (--reattach-volumes re-attaches it)"
                };
                note = Some(format!(
                    "provisioned anew, empty: its volume {volume} {why}"
                ));
            }
        }
    }
    map_class(obj, "", &transform.storage_class_map)?;
    Ok(note)
}

/// A claim whose data comes back through a restored snapshot: provisioned
/// from it (`dataSource`, and `dataSourceRef`, which the API server would
/// otherwise derive), never bound to its old volume. `namespace` is the
/// claim's namespace as backed up.
pub(super) fn from_snapshot(
    obj: &mut Value,
    transform: &Transform,
    namespace: Option<&str>,
) -> Result<(), FieldError> {
    let name = json::string(obj, "/metadata/name")?.unwrap_or_default();
    let key = format!("{}/{name}", namespace.unwrap_or_default());
    let Some(snapshot) = transform.volume_sources.get(&key) else {
        return Ok(());
    };
    json::remove(obj, "/spec/volumeName");
    let source = serde_json::json!({
        "apiGroup": "snapshot.storage.k8s.io",
        "kind": "VolumeSnapshot",
        "name": snapshot,
    });
    let spec = json::object_or_insert(obj, "/spec")?;
    spec.insert("dataSource".into(), source.clone());
    spec.insert("dataSourceRef".into(), source);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn bound_claim() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {
                "name": "data-pg-0",
                "namespace": "db",
                "labels": {"app": "pg"},
                "annotations": {
                    "pv.kubernetes.io/bind-completed": "yes",
                    "pv.kubernetes.io/bound-by-controller": "yes",
                    "volume.beta.kubernetes.io/storage-provisioner": "ebs.csi.aws.com",
                    "volume.kubernetes.io/storage-provisioner": "ebs.csi.aws.com",
                    "volume.kubernetes.io/selected-node": "ip-10-0-3-17.ec2.internal",
                    "backup.example.com/tier": "gold"
                },
                "finalizers": ["kubernetes.io/pvc-protection"]
            },
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "10Gi"}},
                "storageClassName": "gp2",
                "volumeMode": "Filesystem",
                "volumeName": "pvc-5b1f0c2e"
            }
        })
    }

    fn volume(name: &str) -> ObjectRef {
        ObjectRef {
            group: String::new(),
            kind: "PersistentVolume".into(),
            namespace: None,
            name: name.into(),
        }
    }

    #[test]
    fn binding_annotations_go_and_others_stay() {
        let mut pvc = bound_claim();
        apply(&mut pvc, &Transform::default(), &HashSet::new(), Some("db")).unwrap();
        assert_eq!(
            pvc["metadata"]["annotations"],
            json!({"backup.example.com/tier": "gold"})
        );
        assert_eq!(pvc["metadata"]["labels"], json!({"app": "pg"}));
    }

    fn reattach() -> Transform {
        Transform {
            reattach_volumes: true,
            ..Transform::default()
        }
    }

    #[test]
    fn volume_name_kept_when_the_volume_is_reattached() {
        let mut pvc = bound_claim();
        let restoring = HashSet::from([volume("pvc-5b1f0c2e")]);
        let note = apply(&mut pvc, &reattach(), &restoring, Some("db")).unwrap();
        assert_eq!(pvc["spec"]["volumeName"], "pvc-5b1f0c2e");
        assert_eq!(note, None);
    }

    #[test]
    fn claim_is_provisioned_anew_when_its_volume_is_not_reattached() {
        // The volume is in the backup, but its data is not restored.
        let mut pvc = bound_claim();
        let restoring = HashSet::from([volume("pvc-5b1f0c2e")]);
        let note = apply(&mut pvc, &Transform::default(), &restoring, Some("db"))
            .unwrap()
            .unwrap();
        assert!(pvc["spec"].get("volumeName").is_none());
        assert!(
            note.starts_with("provisioned anew, empty: its volume pvc-5b1f0c2e is not re-created"),
            "{note}"
        );
        // Asked to re-attach, but the backup failed to copy this claim.
        let transform = Transform {
            never_reattach: std::collections::BTreeSet::from(["db/data-pg-0".to_string()]),
            ..reattach()
        };
        let mut pvc = bound_claim();
        let note = apply(&mut pvc, &transform, &restoring, Some("db"))
            .unwrap()
            .unwrap();
        assert!(pvc["spec"].get("volumeName").is_none());
        assert!(note.contains("is not re-attached"), "{note}");
    }

    #[test]
    fn volume_name_dropped_when_the_volume_is_not_restored() {
        let mut pvc = bound_claim();
        let restoring = HashSet::from([volume("pvc-other")]);
        let note = apply(&mut pvc, &reattach(), &restoring, Some("db")).unwrap();
        assert!(pvc["spec"].get("volumeName").is_none());
        assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "10Gi");
        assert!(note.unwrap().contains("is not in the restore"));
    }

    #[test]
    fn storage_class_is_mapped() {
        let transform = Transform {
            storage_class_map: BTreeMap::from([("gp2".into(), "standard-rwo".into())]),
            ..Transform::default()
        };
        let mut pvc = bound_claim();
        apply(&mut pvc, &transform, &HashSet::new(), Some("db")).unwrap();
        assert_eq!(pvc["spec"]["storageClassName"], "standard-rwo");
    }

    #[test]
    fn malformed_volume_name_names_the_field() {
        let mut pvc = json!({"spec": {"volumeName": ["pv-1"]}});
        let err = apply(&mut pvc, &Transform::default(), &HashSet::new(), None).unwrap_err();
        assert_eq!(err.field, "spec.volumeName");
        assert_eq!(err.found, "a list");
    }

    #[test]
    fn claim_restored_from_a_snapshot_takes_it_as_data_source() {
        let transform = Transform {
            volume_sources: BTreeMap::from([("db/data-pg-0".into(), "snap-r".into())]),
            ..Transform::default()
        };
        let mut pvc = bound_claim();
        // Even with its old volume in the restore set, the snapshot wins.
        let note = apply(
            &mut pvc,
            &transform,
            &HashSet::from([volume("pvc-5b1f0c2e")]),
            Some("db"),
        )
        .unwrap();
        assert_eq!(note, None, "not empty: provisioned from the snapshot");
        from_snapshot(&mut pvc, &transform, Some("db")).unwrap();
        assert!(pvc["spec"].get("volumeName").is_none());
        assert_eq!(pvc["spec"]["dataSource"]["kind"], "VolumeSnapshot");
        assert_eq!(pvc["spec"]["dataSource"]["name"], "snap-r");
        assert_eq!(pvc["spec"]["dataSourceRef"], pvc["spec"]["dataSource"]);
        let mut other = bound_claim();
        from_snapshot(&mut other, &transform, Some("elsewhere")).unwrap();
        assert!(other["spec"].get("dataSource").is_none());
    }
}
