//! `--storage-class-map`: the storage class of every claim and volume, in
//! PersistentVolumes, PersistentVolumeClaims and StatefulSet claim
//! templates. Each of those calls [`map_class`] exactly once.
//!
//! A claim without a class uses the target's default class and is left
//! alone; the map names classes, not their absence.

use std::collections::BTreeMap;

use serde_json::Value;

use super::json::{self, FieldError};

/// The class annotation from before `spec.storageClassName`. The API server
/// still honours it, and ahead of the field, so mapping only the field would
/// leave the claim in the old class.
const BETA_CLASS_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";

/// Maps the class of the claim or volume at `base` (`""` for the object
/// itself, a JSON pointer for a template inside it).
pub(super) fn map_class(
    obj: &mut Value,
    base: &str,
    map: &BTreeMap<String, String>,
) -> Result<(), FieldError> {
    if map.is_empty() {
        return Ok(());
    }
    json::map_string(obj, &format!("{base}/spec/storageClassName"), map)?;
    let annotation = format!(
        "{base}/metadata/annotations/{}",
        escape(BETA_CLASS_ANNOTATION)
    );
    json::map_string(obj, &annotation, map)
}

/// A key as a JSON pointer segment.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// StatefulSet: the class of each `spec.volumeClaimTemplates[]`, from which
/// the controller creates claims for pods whose claims were not restored.
pub(super) fn stateful_set(
    obj: &mut Value,
    map: &BTreeMap<String, String>,
) -> Result<(), FieldError> {
    for i in 0..json::list_len(obj, "/spec/volumeClaimTemplates")? {
        map_class(obj, &format!("/spec/volumeClaimTemplates/{i}"), map)?;
    }
    Ok(())
}

/// Every storage class the object names (its own, its claim templates'),
/// by JSON pointer: read before and after the map to report what it changed.
pub(super) fn classes(obj: &Value) -> Vec<(String, String)> {
    let templates = obj
        .pointer("/spec/volumeClaimTemplates")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let bases = std::iter::once(String::new())
        .chain((0..templates).map(|i| format!("/spec/volumeClaimTemplates/{i}")));
    let mut out = Vec::new();
    for base in bases {
        for pointer in [
            format!("{base}/spec/storageClassName"),
            format!(
                "{base}/metadata/annotations/{}",
                escape(BETA_CLASS_ANNOTATION)
            ),
        ] {
            if let Some(class) = obj.pointer(&pointer).and_then(Value::as_str) {
                out.push((pointer, class.to_string()));
            }
        }
    }
    out
}

/// `storage class gp2 -> gp3`, once per pair, for the classes that the map
/// changed between `before` and `after` (both from [`classes`]).
pub(super) fn describe_changes(
    before: &[(String, String)],
    after: &[(String, String)],
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (pointer, old) in before {
        let new = after.iter().find(|(p, _)| p == pointer).map(|(_, c)| c);
        if let Some(new) = new.filter(|new| *new != old) {
            let line = format!("storage class {old} -> {new}");
            if !out.contains(&line) {
                out.push(line);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map() -> BTreeMap<String, String> {
        BTreeMap::from([("gp2".to_string(), "gp3".to_string())])
    }

    #[test]
    fn claim_templates_are_mapped() {
        let mut sts = json!({
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "pg", "namespace": "db"},
            "spec": {
                "serviceName": "pg",
                "volumeClaimTemplates": [
                    {"metadata": {"name": "data"},
                     "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "gp2",
                              "resources": {"requests": {"storage": "10Gi"}}}},
                    {"metadata": {"name": "wal"},
                     "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "fast",
                              "resources": {"requests": {"storage": "1Gi"}}}},
                    {"metadata": {"name": "scratch"},
                     "spec": {"accessModes": ["ReadWriteOnce"],
                              "resources": {"requests": {"storage": "1Gi"}}}}
                ]
            }
        });
        stateful_set(&mut sts, &map()).unwrap();
        let templates = &sts["spec"]["volumeClaimTemplates"];
        assert_eq!(templates[0]["spec"]["storageClassName"], "gp3");
        assert_eq!(templates[1]["spec"]["storageClassName"], "fast");
        assert!(templates[2]["spec"].get("storageClassName").is_none());
    }

    #[test]
    fn beta_annotation_is_mapped_with_the_field() {
        let mut pvc = json!({
            "metadata": {"name": "data", "annotations": {BETA_CLASS_ANNOTATION: "gp2"}},
            "spec": {"storageClassName": "gp2"}
        });
        map_class(&mut pvc, "", &map()).unwrap();
        assert_eq!(pvc["metadata"]["annotations"][BETA_CLASS_ANNOTATION], "gp3");
        assert_eq!(pvc["spec"]["storageClassName"], "gp3");
    }

    #[test]
    fn malformed_class_names_the_field() {
        let mut sts =
            json!({"spec": {"volumeClaimTemplates": [{"spec": {"storageClassName": 7}}]}});
        let err = stateful_set(&mut sts, &map()).unwrap_err();
        assert_eq!(
            err.field,
            "spec.volumeClaimTemplates[0].spec.storageClassName"
        );
    }
}
