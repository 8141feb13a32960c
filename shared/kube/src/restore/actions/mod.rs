//! Per-kind fix-ups and transformations applied to each object before it is
//! created in the target cluster.
//!
//! A backed-up object describes the source cluster: its owners' uids, the
//! addresses and nodes it was given, the volume it was bound to. Each action
//! here (one file each, after Velero's restore item actions) removes or
//! rewrites one such thing so the object can be created in another
//! cluster, then the user's transformations (namespace and storage class
//! maps, extra labels and annotations, and last the resource modifiers of
//! [`crate::restore::modifiers`]) are applied. [`prepare`] runs them in a
//! fixed order and says what the maps and modifiers changed.

mod error;
mod job;
mod json;
mod labels;
mod namespace_map;
mod owned;
mod pod;
mod pv;
mod pvc;
mod service;
mod storage_class_map;

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde_json::Value;

pub use error::FixupError;

use crate::restore::modifiers::{Modifiers, Source};
use crate::{ObjectRef, ResourceType};

/// What the user asked to change on the way in.
#[derive(Debug, Clone, Default)]
pub struct Transform {
    /// `--namespace-map a=b`: objects of namespace `a` go to `b`.
    pub namespace_map: BTreeMap<String, String>,
    /// `--storage-class-map x=y`: claims and volumes of class `x` use `y`.
    pub storage_class_map: BTreeMap<String, String>,
    /// Added to every restored object, replacing a value it already has.
    pub add_labels: BTreeMap<String, String>,
    /// Added to every restored object, replacing a value it already has.
    pub add_annotations: BTreeMap<String, String>,
    /// Keep Services' node ports (otherwise the target allocates new ones).
    pub keep_node_ports: bool,
    /// Keep Services' cluster IPs (otherwise the target allocates new ones).
    pub keep_cluster_ips: bool,
    /// Claims whose data comes back through a snapshot restored into the
    /// target: `namespace/claim` as backed up -> the VolumeSnapshot's name
    /// (in the claim's target namespace). Such a claim is provisioned from
    /// the snapshot, and its old volume is not restored.
    pub volume_sources: BTreeMap<String, String>,
    /// `--reattach-volumes`: re-create the PersistentVolumes whose data is
    /// not restored as they were, pointing at the source's storage (its
    /// EBS volume, NFS export, ...), with reclaim policy Retain. Without
    /// it they are left out, and their claims are provisioned anew, empty:
    /// a restored claim must never write, or delete, the source's disk.
    pub reattach_volumes: bool,
    /// Claims (`namespace/claim` as backed up) whose volume is never
    /// re-attached, even with `reattach_volumes`: the backup was asked to
    /// copy their data and did (or could not). They are provisioned anew.
    pub never_reattach: BTreeSet<String>,
    /// Resource modifiers, applied last (after the maps and labels).
    pub modifiers: Modifiers,
}

impl Transform {
    /// Whether the volume bound to claim `key` (`namespace/claim`, as backed
    /// up; `None` for a volume bound to no claim) is re-created pointing at
    /// the source's storage.
    pub fn reattaches(&self, key: Option<&str>) -> bool {
        self.reattach_volumes
            && key.is_none_or(|k| {
                !self.volume_sources.contains_key(k) && !self.never_reattach.contains(k)
            })
    }
}

/// Everything a fix-up may consult.
#[derive(Debug)]
pub struct FixupContext<'a> {
    pub transform: &'a Transform,
    /// Every object in the restore set (as backed up, i.e. before namespace
    /// mapping).
    pub restoring: &'a HashSet<ObjectRef>,
}

/// What to do with one object.
#[derive(Debug, Clone, PartialEq)]
pub enum Fixup {
    /// Create the (possibly modified) object.
    Restore,
    /// Create it; the note, shown in the report, says what was changed
    /// that the user must know, e.g. "provisioned anew: its volume ... is
    /// not restored".
    RestoreNoted(String),
    /// Do not create it; the reason is shown to the user, e.g. "owned by
    /// Deployment.apps shop/web, which is restored and recreates it".
    Skip(String),
}

/// An object after [`prepare`].
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub fixup: Fixup,
    /// What the storage class map and the modifiers changed, one line each
    /// (`storage class gp2 -> gp3`, `rule "mirror": image of ...`); the
    /// namespace map shows as the report's target namespace instead.
    pub changes: Vec<String>,
    /// The modifier rules that selected the object (whether or not they
    /// changed it), so a restore can name the rules that selected nothing.
    pub rules: Vec<String>,
}

/// Applies every fix-up and transformation to one backed-up object of kind
/// `resource`, changing `obj` in place. A skipped object is left as it was.
///
/// Order: ownership first (a skipped object needs nothing else), then the
/// kind's own fix-ups, which read the object as backed up (e.g. a claim's
/// namespace as in `ctx.restoring`), then the namespace map, then labels
/// and annotations, so nothing removes what the user asked to add, then
/// the resource modifiers, which select on the object as backed up and see
/// it as it will be created.
pub fn prepare(
    resource: &ResourceType,
    obj: &mut Value,
    ctx: &FixupContext,
) -> Result<Prepared, FixupError> {
    let object = identify(resource, obj);
    let transform = ctx.transform;
    // Read before the fix-ups change them, and only when something uses
    // them: the labels rules select on, the classes a map may change.
    let labels = if transform.modifiers.is_empty() {
        None
    } else {
        obj.pointer("/metadata/labels")
            .and_then(Value::as_object)
            .cloned()
    };
    let classes = if transform.storage_class_map.is_empty() {
        Vec::new()
    } else {
        storage_class_map::classes(obj)
    };
    let fixup = apply_all(resource, obj, ctx, object.namespace.as_deref()).map_err(|e| {
        FixupError::Malformed {
            object: object.to_string(),
            field: e.field,
            expected: e.expected,
            found: e.found,
        }
    })?;
    if let Fixup::Skip(_) = fixup {
        return Ok(Prepared {
            fixup,
            changes: Vec::new(),
            rules: Vec::new(),
        });
    }
    let mut changes = if classes.is_empty() {
        Vec::new()
    } else {
        storage_class_map::describe_changes(&classes, &storage_class_map::classes(obj))
    };
    let source = Source {
        resource,
        namespace: object.namespace.as_deref(),
        name: &object.name,
        labels: labels.as_ref(),
    };
    let applied = transform
        .modifiers
        .apply(source, obj)
        .map_err(|f| FixupError::Modifier {
            object: object.to_string(),
            rule: f.rule,
            reason: f.reason,
        })?;
    let mut rules = Vec::with_capacity(applied.len());
    for a in applied {
        changes.extend(a.changes.iter().map(|c| format!("rule {:?}: {c}", a.rule)));
        rules.push(a.rule);
    }
    Ok(Prepared {
        fixup,
        changes,
        rules,
    })
}

fn apply_all(
    resource: &ResourceType,
    obj: &mut Value,
    ctx: &FixupContext,
    namespace: Option<&str>,
) -> Result<Fixup, json::FieldError> {
    let transform = ctx.transform;
    if let Some(reason) = owned::apply(resource, obj, namespace, ctx.restoring)? {
        return Ok(Fixup::Skip(reason));
    }
    let mut note = None;
    if resource.is("", "Service") {
        service::apply(obj, transform)?;
    } else if resource.is("", "PersistentVolume") {
        if let Some(reason) = pv::restored_from_snapshot(obj, transform)? {
            return Ok(Fixup::Skip(reason));
        }
        if let Some(reason) = pv::not_reattached(obj, transform)? {
            return Ok(Fixup::Skip(reason));
        }
        pv::apply(obj, transform)?;
        note = pv::reattach(obj)?;
    } else if resource.is("", "PersistentVolumeClaim") {
        note = pvc::apply(obj, transform, ctx.restoring, namespace)?;
        pvc::from_snapshot(obj, transform, namespace)?;
    } else if resource.is("", "Pod") {
        pod::apply(obj)?;
    } else if resource.is("batch", "Job") {
        job::apply(obj)?;
    } else if resource.is("apps", "StatefulSet") {
        storage_class_map::stateful_set(obj, &transform.storage_class_map)?;
    }
    namespace_map::apply(resource, obj, &transform.namespace_map)?;
    labels::apply(obj, &transform.add_labels, &transform.add_annotations)?;
    Ok(note.map_or(Fixup::Restore, Fixup::RestoreNoted))
}

/// The object as `ctx.restoring` and error messages name it. A missing or
/// odd name is not this module's concern (the API server reports it), so it
/// only shows as empty.
fn identify(resource: &ResourceType, obj: &Value) -> ObjectRef {
    let text = |pointer: &str| obj.pointer(pointer).and_then(Value::as_str);
    ObjectRef {
        group: resource.group.clone(),
        kind: resource.kind.clone(),
        namespace: text("/metadata/namespace").map(str::to_string),
        name: text("/metadata/name").unwrap_or_default().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rt(group: &str, version: &str, resource: &str, kind: &str) -> ResourceType {
        ResourceType {
            group: group.into(),
            version: version.into(),
            resource: resource.into(),
            kind: kind.into(),
            namespaced: true,
        }
    }

    fn transform() -> Transform {
        Transform {
            namespace_map: BTreeMap::from([("shop".into(), "shop-dr".into())]),
            storage_class_map: BTreeMap::from([("gp2".into(), "gp3".into())]),
            add_labels: BTreeMap::from([("lifeboat.dev/restore".into(), "r1".into())]),
            add_annotations: BTreeMap::from([("lifeboat.dev/from".into(), "prod".into())]),
            keep_node_ports: false,
            keep_cluster_ips: false,
            volume_sources: BTreeMap::new(),
            reattach_volumes: false,
            never_reattach: BTreeSet::new(),
            modifiers: Modifiers::default(),
        }
    }

    fn owned_pod() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "web-7d4b9c-x2k8q",
                "namespace": "shop",
                "labels": {"app": "web"},
                "ownerReferences": [{
                    "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c",
                    "uid": "a1", "controller": true, "blockOwnerDeletion": true
                }]
            },
            "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": "web:2"}]}
        })
    }

    #[test]
    fn skipped_object_is_not_modified() {
        let restoring = HashSet::from([ObjectRef {
            group: "apps".into(),
            kind: "ReplicaSet".into(),
            namespace: Some("shop".into()),
            name: "web-7d4b9c".into(),
        }]);
        let transform = transform();
        let ctx = FixupContext {
            transform: &transform,
            restoring: &restoring,
        };
        let mut pod = owned_pod();
        let fixup = prepare(&rt("", "v1", "pods", "Pod"), &mut pod, &ctx)
            .unwrap()
            .fixup;
        assert_eq!(
            fixup,
            Fixup::Skip(
                "owned by ReplicaSet.apps shop/web-7d4b9c, which is restored and recreates it"
                    .into()
            )
        );
        assert_eq!(pod, owned_pod());
    }

    #[test]
    fn restored_object_gets_every_step_in_order() {
        let restoring = HashSet::new();
        let transform = transform();
        let ctx = FixupContext {
            transform: &transform,
            restoring: &restoring,
        };
        // Same Pod, but its ReplicaSet is not restored: it is created alone.
        let mut pod = owned_pod();
        let fixup = prepare(&rt("", "v1", "pods", "Pod"), &mut pod, &ctx)
            .unwrap()
            .fixup;
        assert_eq!(fixup, Fixup::Restore);
        assert_eq!(
            pod,
            json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": "web-7d4b9c-x2k8q",
                    "namespace": "shop-dr",
                    "labels": {"app": "web", "lifeboat.dev/restore": "r1"},
                    "annotations": {"lifeboat.dev/from": "prod"}
                },
                "spec": {"containers": [{"name": "app", "image": "web:2"}]}
            })
        );
    }

    #[test]
    fn claim_is_checked_against_its_volume_before_the_namespace_moves() {
        let restoring = HashSet::from([ObjectRef {
            group: String::new(),
            kind: "PersistentVolume".into(),
            namespace: None,
            name: "pvc-9".into(),
        }]);
        // Re-attached on request: the claim keeps its volume.
        let transform = Transform {
            reattach_volumes: true,
            ..transform()
        };
        let ctx = FixupContext {
            transform: &transform,
            restoring: &restoring,
        };
        let mut pvc = json!({
            "metadata": {"name": "data", "namespace": "shop",
                         "annotations": {"pv.kubernetes.io/bind-completed": "yes"}},
            "spec": {"storageClassName": "gp2", "volumeName": "pvc-9"}
        });
        let claims = rt("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim");
        assert_eq!(
            prepare(&claims, &mut pvc, &ctx).unwrap().fixup,
            Fixup::Restore
        );
        assert_eq!(
            pvc,
            json!({
                "metadata": {"name": "data", "namespace": "shop-dr",
                             "labels": {"lifeboat.dev/restore": "r1"},
                             "annotations": {"lifeboat.dev/from": "prod"}},
                "spec": {"storageClassName": "gp3", "volumeName": "pvc-9"}
            })
        );
    }

    fn source_volume() -> Value {
        json!({
            "metadata": {"name": "pvc-9"},
            "spec": {
                "claimRef": {"kind": "PersistentVolumeClaim", "namespace": "shop", "name": "data",
                             "uid": "u1"},
                "csi": {"driver": "ebs.csi.aws.com", "volumeHandle": "vol-0abc"},
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": "gp2"
            }
        })
    }

    #[test]
    fn volume_without_restored_data_is_left_out_and_its_claim_provisioned_anew() {
        let restoring = HashSet::from([ObjectRef {
            group: String::new(),
            kind: "PersistentVolume".into(),
            namespace: None,
            name: "pvc-9".into(),
        }]);
        let transform = transform();
        let ctx = FixupContext {
            transform: &transform,
            restoring: &restoring,
        };
        let volumes = rt("", "v1", "persistentvolumes", "PersistentVolume");
        let mut pv = source_volume();
        let Fixup::Skip(reason) = prepare(&volumes, &mut pv, &ctx).unwrap().fixup else {
            panic!("a volume pointing at the source's disk was restored");
        };
        assert!(reason.contains("vol-0abc"), "{reason}");
        let claims = rt("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim");
        let mut pvc = json!({
            "metadata": {"name": "data", "namespace": "shop"},
            "spec": {"storageClassName": "gp2", "volumeName": "pvc-9"}
        });
        let Fixup::RestoreNoted(note) = prepare(&claims, &mut pvc, &ctx).unwrap().fixup else {
            panic!("the claim's report line does not say it is provisioned anew");
        };
        assert!(note.starts_with("provisioned anew, empty"), "{note}");
        assert!(pvc["spec"].get("volumeName").is_none());
    }

    #[test]
    fn reattached_volume_gets_retain_and_a_note() {
        let restoring = HashSet::new();
        let transform = Transform {
            reattach_volumes: true,
            ..transform()
        };
        let ctx = FixupContext {
            transform: &transform,
            restoring: &restoring,
        };
        let volumes = rt("", "v1", "persistentvolumes", "PersistentVolume");
        let mut pv = source_volume();
        let Fixup::RestoreNoted(note) = prepare(&volumes, &mut pv, &ctx).unwrap().fixup else {
            panic!("re-attached without a note");
        };
        assert!(note.contains("Retain (was Delete)"), "{note}");
        assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
        assert_eq!(pv["spec"]["claimRef"]["namespace"], "shop-dr");
        assert_eq!(pv["spec"]["storageClassName"], "gp3");
    }

    #[test]
    fn errors_name_the_object_and_the_field() {
        let restoring = HashSet::new();
        let transform = transform();
        let ctx = FixupContext {
            transform: &transform,
            restoring: &restoring,
        };
        let mut deploy = json!({
            "metadata": {"name": "web", "namespace": "shop", "ownerReferences": {"kind": "Thing"}}
        });
        let err = prepare(
            &rt("apps", "v1", "deployments", "Deployment"),
            &mut deploy,
            &ctx,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Deployment.apps shop/web: metadata.ownerReferences should be a list, found an object"
        );
        assert!(!err.is_retryable());

        let mut svc = json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"ports": [{"port": 80, "nodePort": 30080}, "443"]}
        });
        let err = prepare(&rt("", "v1", "services", "Service"), &mut svc, &ctx).unwrap_err();
        // Named as backed up, not as mapped.
        assert_eq!(
            err.to_string(),
            "Service shop/web: spec.ports[1] should be an object, found a string"
        );
    }

    #[test]
    fn maps_and_modifiers_say_what_they_changed_and_select_as_backed_up() {
        use crate::restore::modifiers::ModifierDocument;
        let doc: ModifierDocument = serde_json::from_value(json!({"version": 1, "rules": [
            // Selects on the label the restore adds: never matches.
            {"name": "by-added-label", "match": {"labels": {"lifeboat.dev/restore": "r1"}},
             "merge_patch": {"metadata": {"annotations": {"x": "y"}}}},
            // Selects on the namespace as backed up, not as mapped.
            {"name": "bigger", "match": {"namespaces": ["shop"], "kind": "PersistentVolumeClaim"},
             "json_patch": [{"op": "replace", "path": "/spec/resources/requests/storage", "value": "20Gi"}]}
        ]}))
        .unwrap();
        let transform = Transform {
            modifiers: Modifiers::new(&doc).unwrap(),
            ..transform()
        };
        let restoring = HashSet::new();
        let ctx = FixupContext {
            transform: &transform,
            restoring: &restoring,
        };
        let claims = rt("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim");
        let mut pvc = json!({
            "metadata": {"name": "data", "namespace": "shop"},
            "spec": {"storageClassName": "gp2", "resources": {"requests": {"storage": "10Gi"}}}
        });
        let prepared = prepare(&claims, &mut pvc, &ctx).unwrap();
        assert_eq!(prepared.rules, vec!["bigger"]);
        assert_eq!(
            prepared.changes,
            vec![
                "storage class gp2 -> gp3",
                "rule \"bigger\": replace /spec/resources/requests/storage"
            ]
        );
        assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "20Gi");
        assert_eq!(pvc["metadata"]["namespace"], "shop-dr");

        // A rule that selects an object but cannot change it fails the object.
        let mut odd = json!({"metadata": {"name": "odd", "namespace": "shop"}, "spec": {}});
        let err = prepare(&claims, &mut odd, &ctx).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "PersistentVolumeClaim shop/odd: modifier rule \"bigger\" could not be applied: \
                 json_patch[0] (replace /spec/resources/requests/storage)"
            ),
            "{err}"
        );
    }
}
