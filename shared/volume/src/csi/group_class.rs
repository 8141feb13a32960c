//! The VolumeGroupSnapshotClass of an application group, or why the
//! cluster or driver cannot take group snapshots.

use super::claim::{annotation, default_classes, storage_classes, str_at, Claim};
use super::group::group_api;
use crate::VolumeError;
use lifeboat_kube::{api, Cluster, KubeError, ResourceType};
use serde_json::Value;

/// On a StorageClass: the VolumeGroupSnapshotClass for its volumes.
pub const GROUP_CLASS_ANNOTATION: &str = "lifeboat.dev/group-snapshot-class";
const DEFAULT_GROUP_CLASS_ANNOTATION: &str = "groupsnapshot.storage.kubernetes.io/is-default-class";

fn group_classes() -> ResourceType {
    group_api(
        "volumegroupsnapshotclasses",
        "VolumeGroupSnapshotClass",
        false,
    )
}

/// The VolumeGroupSnapshotClass for a group, or why there is none (the
/// claims are then snapshotted one by one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupClass {
    Class(String),
    Unsupported(String),
}

/// The VolumeGroupSnapshotClass for the claims `members` (one driver): the
/// one their StorageClasses name in `lifeboat.dev/group-snapshot-class`,
/// else the driver's default. No group API or no class for the driver is
/// [`GroupClass::Unsupported`]; a named class that is missing or for
/// another driver, classes named differently, or several defaults are
/// errors.
pub async fn group_snapshot_class(
    cluster: &Cluster,
    driver: &str,
    members: &[Claim],
) -> Result<GroupClass, VolumeError> {
    let all = match api::list(cluster, &group_classes(), None).await {
        Ok(all) => all,
        Err(KubeError::Api { code: 404, .. }) => {
            return Ok(GroupClass::Unsupported(
                "the cluster does not serve groupsnapshot.storage.k8s.io/v1 (the VolumeGroupSnapshot CRDs are not installed)".into(),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    let mut named = Vec::new();
    for sc in members.iter().filter_map(|c| c.storage_class.as_deref()) {
        if let Some(obj) = api::get(cluster, &storage_classes(), None, sc).await? {
            if let Some(name) = annotation(&obj, GROUP_CLASS_ANNOTATION) {
                named.push((sc.to_string(), name.to_string()));
            }
        }
    }
    choose_class(&all, driver, &named)
}

/// [`group_snapshot_class`] on the classes `all` and the `(storage class,
/// group class)` pairs the members' StorageClasses name.
pub(crate) fn choose_class(
    all: &[Value],
    driver: &str,
    named: &[(String, String)],
) -> Result<GroupClass, VolumeError> {
    let unsupported = |m: String| Err(VolumeError::Unsupported(m));
    if let Some((sc, name)) = named.first() {
        if let Some((other_sc, other)) = named.iter().find(|(_, n)| n != name) {
            return unsupported(format!(
                "storageclasses {sc} and {other_sc} name different volumegroupsnapshotclasses ({name}, {other}) for claims of one group"
            ));
        }
        return match all.iter().find(|c| str_at(c, "/metadata/name") == name) {
            Some(c) if str_at(c, "/driver") == driver => Ok(GroupClass::Class(name.clone())),
            Some(c) => unsupported(format!(
                "volumegroupsnapshotclass {name} (named by storageclass {sc}) is for driver {}, not {driver}",
                str_at(c, "/driver")
            )),
            None => unsupported(format!(
                "volumegroupsnapshotclass {name} (named by storageclass {sc}) does not exist"
            )),
        };
    }
    let for_driver: Vec<&Value> = all
        .iter()
        .filter(|c| str_at(c, "/driver") == driver)
        .collect();
    let defaults = default_classes(&for_driver, DEFAULT_GROUP_CLASS_ANNOTATION);
    match defaults.as_slice() {
        [one] => Ok(GroupClass::Class(one.to_string())),
        [] if for_driver.is_empty() => Ok(GroupClass::Unsupported(format!(
            "no volumegroupsnapshotclass for driver {driver}"
        ))),
        [] => Ok(GroupClass::Unsupported(format!(
            "no default volumegroupsnapshotclass for driver {driver} (classes for it: {}; mark one with the annotation {DEFAULT_GROUP_CLASS_ANNOTATION}: \"true\" or name one on the storageclass with {GROUP_CLASS_ANNOTATION})",
            for_driver
                .iter()
                .map(|c| str_at(c, "/metadata/name"))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        many => unsupported(format!(
            "several default volumegroupsnapshotclasses for driver {driver}: {}; keep one default or name one on the storageclass with {GROUP_CLASS_ANNOTATION}",
            many.join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn class(name: &str, driver: &str, default: bool) -> Value {
        let mut c =
            json!({"metadata": {"name": name}, "driver": driver, "deletionPolicy": "Delete"});
        if default {
            c["metadata"]["annotations"] = json!({DEFAULT_GROUP_CLASS_ANNOTATION: "true"});
        }
        c
    }

    #[test]
    fn the_driver_default_class_or_why_there_is_none() {
        let all = [
            class("hp", "hostpath.csi.k8s.io", true),
            class("hp-slow", "hostpath.csi.k8s.io", false),
            class("ebs", "ebs.csi.aws.com", true),
        ];
        let driver = "hostpath.csi.k8s.io";
        assert_eq!(
            choose_class(&all, driver, &[]).unwrap(),
            GroupClass::Class("hp".into())
        );
        let named = [("fast".to_string(), "hp-slow".to_string())];
        assert_eq!(
            choose_class(&all, driver, &named).unwrap(),
            GroupClass::Class("hp-slow".into())
        );
        match choose_class(&all, "other.csi", &[]).unwrap() {
            GroupClass::Unsupported(why) => assert!(
                why.contains("no volumegroupsnapshotclass for driver other.csi"),
                "{why}"
            ),
            c => panic!("{c:?}"),
        }
        match choose_class(&all[1..2], driver, &[]).unwrap() {
            GroupClass::Unsupported(why) => assert!(
                why.contains("no default") && why.contains("hp-slow"),
                "{why}"
            ),
            c => panic!("{c:?}"),
        }
        let two = [class("a", driver, true), class("b", driver, true)];
        let e = choose_class(&two, driver, &[]).unwrap_err().to_string();
        assert!(e.contains("several default") && e.contains("a, b"), "{e}");
        let missing = [("fast".to_string(), "nope".to_string())];
        let e = choose_class(&all, driver, &missing)
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope") && e.contains("does not exist"), "{e}");
        let wrong = [("fast".to_string(), "ebs".to_string())];
        let e = choose_class(&all, driver, &wrong).unwrap_err().to_string();
        assert!(e.contains("for driver ebs.csi.aws.com"), "{e}");
        let differ = [
            ("fast".to_string(), "hp".to_string()),
            ("slow".to_string(), "hp-slow".to_string()),
        ];
        let e = choose_class(&all, driver, &differ).unwrap_err().to_string();
        assert!(e.contains("different"), "{e}");
    }
}
