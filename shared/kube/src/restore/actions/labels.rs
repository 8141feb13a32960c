//! `--add-label` / `--add-annotation`: marks on every restored object, e.g.
//! to find (or delete) everything one restore created.

use std::collections::BTreeMap;

use serde_json::Value;

use super::json::{self, FieldError};

/// Adds `labels` and `annotations` to the object's metadata; a key it
/// already has takes the requested value.
pub(super) fn apply(
    obj: &mut Value,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> Result<(), FieldError> {
    for (pointer, entries) in [
        ("/metadata/labels", labels),
        ("/metadata/annotations", annotations),
    ] {
        if entries.is_empty() {
            continue;
        }
        json::object_or_insert(obj, "/metadata")?;
        let map = json::object_or_insert(obj, pointer)?;
        for (key, value) in entries {
            map.insert(key.clone(), Value::String(value.clone()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn marks() -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        (
            BTreeMap::from([
                ("lifeboat.dev/restore".to_string(), "r-20250101".to_string()),
                ("app".to_string(), "web-restored".to_string()),
            ]),
            BTreeMap::from([("lifeboat.dev/snapshot".to_string(), "5f3a9c".to_string())]),
        )
    }

    #[test]
    fn added_and_overwritten() {
        let (labels, annotations) = marks();
        let mut cm = json!({
            "metadata": {"name": "cfg", "namespace": "shop", "labels": {"app": "web", "tier": "front"}},
            "data": {"k": "v"}
        });
        apply(&mut cm, &labels, &annotations).unwrap();
        assert_eq!(
            cm["metadata"]["labels"],
            json!({"app": "web-restored", "tier": "front", "lifeboat.dev/restore": "r-20250101"})
        );
        assert_eq!(
            cm["metadata"]["annotations"],
            json!({"lifeboat.dev/snapshot": "5f3a9c"})
        );
        assert_eq!(cm["data"], json!({"k": "v"}));
    }

    #[test]
    fn created_when_missing() {
        let (labels, annotations) = marks();
        let mut obj = json!({"kind": "ConfigMap"});
        apply(&mut obj, &labels, &annotations).unwrap();
        assert_eq!(obj["metadata"]["labels"]["app"], "web-restored");
        assert_eq!(
            obj["metadata"]["annotations"]["lifeboat.dev/snapshot"],
            "5f3a9c"
        );
    }

    #[test]
    fn nothing_requested_changes_nothing() {
        let mut obj = json!({"kind": "ConfigMap", "metadata": {"name": "cfg"}});
        let before = obj.clone();
        apply(&mut obj, &BTreeMap::new(), &BTreeMap::new()).unwrap();
        assert_eq!(obj, before);
    }

    #[test]
    fn malformed_labels_name_the_field() {
        let (labels, annotations) = marks();
        let mut obj = json!({"metadata": {"name": "cfg", "labels": ["app=web"]}});
        let err = apply(&mut obj, &labels, &annotations).unwrap_err();
        assert_eq!(err.field, "metadata.labels");
        assert_eq!(err.found, "a list");
    }
}
