//! Reading and changing fields of an object by JSON pointer, with errors that
//! name the field. Absent and `null` fields are treated alike, as the API
//! server does.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// A field that does not have the shape the Kubernetes API defines. The
/// object it belongs to is added by [`super::prepare`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FieldError {
    /// Dotted path, e.g. `metadata.ownerReferences[0].kind`.
    pub field: String,
    pub expected: &'static str,
    pub found: &'static str,
}

impl FieldError {
    fn new(pointer: &str, expected: &'static str, found: Option<&Value>) -> Self {
        FieldError {
            field: field_name(pointer),
            expected,
            found: describe(found),
        }
    }
}

/// `/spec/ports/0/nodePort` -> `spec.ports[0].nodePort`: the way users write
/// field paths. Keys with dots or slashes (annotation keys) are quoted so the
/// path stays unambiguous: `metadata.annotations["example.com/a"]`.
pub(super) fn field_name(pointer: &str) -> String {
    let mut name = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = unescape(segment);
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            name.push('[');
            name.push_str(&segment);
            name.push(']');
        } else if segment.contains(['.', '/']) {
            name.push_str("[\"");
            name.push_str(&segment);
            name.push_str("\"]");
        } else {
            if !name.is_empty() {
                name.push('.');
            }
            name.push_str(&segment);
        }
    }
    if name.is_empty() {
        "the object".to_string()
    } else {
        name
    }
}

fn unescape(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}

fn describe(value: Option<&Value>) -> &'static str {
    match value {
        None => "nothing",
        Some(Value::Null) => "null",
        Some(Value::Bool(_)) => "a boolean",
        Some(Value::Number(_)) => "a number",
        Some(Value::String(_)) => "a string",
        Some(Value::Array(_)) => "a list",
        Some(Value::Object(_)) => "an object",
    }
}

/// The object at `pointer`; `None` when absent or null.
pub(super) fn object<'a>(
    root: &'a Value,
    pointer: &str,
) -> Result<Option<&'a Map<String, Value>>, FieldError> {
    match root.pointer(pointer) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(other) => Err(FieldError::new(pointer, "an object", Some(other))),
    }
}

/// The object at `pointer`, to change; `None` when absent or null.
pub(super) fn object_mut<'a>(
    root: &'a mut Value,
    pointer: &str,
) -> Result<Option<&'a mut Map<String, Value>>, FieldError> {
    match root.pointer_mut(pointer) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(other) => Err(FieldError::new(pointer, "an object", Some(other))),
    }
}

/// The object at `pointer`, created empty when absent or null; its parent
/// must exist.
pub(super) fn object_or_insert<'a>(
    root: &'a mut Value,
    pointer: &str,
) -> Result<&'a mut Map<String, Value>, FieldError> {
    let Some((parent, key)) = pointer.rsplit_once('/') else {
        return match root {
            Value::Object(map) => Ok(map),
            other => Err(FieldError::new(pointer, "an object", Some(other))),
        };
    };
    let Some(parent_map) = object_mut(root, parent)? else {
        return Err(FieldError::new(parent, "an object", None));
    };
    let slot = parent_map
        .entry(unescape(key))
        .or_insert_with(|| Value::Object(Map::new()));
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(map) => Ok(map),
        other => Err(FieldError::new(pointer, "an object", Some(other))),
    }
}

/// Number of entries of the list at `pointer`; 0 when absent or null.
pub(super) fn list_len(root: &Value, pointer: &str) -> Result<usize, FieldError> {
    match root.pointer(pointer) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Array(list)) => Ok(list.len()),
        Some(other) => Err(FieldError::new(pointer, "a list", Some(other))),
    }
}

/// The string at `pointer`; `None` when absent or null.
pub(super) fn string<'a>(root: &'a Value, pointer: &str) -> Result<Option<&'a str>, FieldError> {
    match root.pointer(pointer) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(FieldError::new(pointer, "a string", Some(other))),
    }
}

/// The string at `pointer`, which must be there.
pub(super) fn required_string<'a>(root: &'a Value, pointer: &str) -> Result<&'a str, FieldError> {
    string(root, pointer)?.ok_or_else(|| FieldError::new(pointer, "a string", None))
}

/// The boolean at `pointer`; `false` when absent or null, the API default for
/// every flag read here.
pub(super) fn flag(root: &Value, pointer: &str) -> Result<bool, FieldError> {
    match root.pointer(pointer) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(FieldError::new(pointer, "a boolean", Some(other))),
    }
}

/// Removes the field at `pointer` if its parent is an object holding it.
pub(super) fn remove(root: &mut Value, pointer: &str) -> Option<Value> {
    let (parent, key) = pointer.rsplit_once('/')?;
    root.pointer_mut(parent)?
        .as_object_mut()?
        .remove(&unescape(key))
}

/// Replaces the string at `pointer` by its entry in `map`, if it has one.
pub(super) fn map_string(
    root: &mut Value,
    pointer: &str,
    map: &BTreeMap<String, String>,
) -> Result<(), FieldError> {
    let Some(old) = string(root, pointer)? else {
        return Ok(());
    };
    if let Some(new) = map.get(old) {
        let new = Value::String(new.clone());
        if let Some(slot) = root.pointer_mut(pointer) {
            *slot = new;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_names_read_like_kubectl_paths() {
        assert_eq!(
            field_name("/metadata/ownerReferences/0/kind"),
            "metadata.ownerReferences[0].kind"
        );
        assert_eq!(
            field_name("/metadata/annotations/pv.kubernetes.io~1bound-by-controller"),
            r#"metadata.annotations["pv.kubernetes.io/bound-by-controller"]"#
        );
        assert_eq!(field_name(""), "the object");
    }

    #[test]
    fn wrong_types_are_errors_and_null_is_absent() {
        let mut v = json!({"spec": {"ports": "80", "selector": null, "flag": "yes"}});
        let err = list_len(&v, "/spec/ports").unwrap_err();
        assert_eq!(
            err,
            FieldError {
                field: "spec.ports".into(),
                expected: "a list",
                found: "a string"
            }
        );
        assert!(object_mut(&mut v, "/spec/selector").unwrap().is_none());
        assert!(object_mut(&mut v, "/spec/missing").unwrap().is_none());
        assert!(flag(&v, "/spec/flag").is_err());
        assert!(!flag(&v, "/spec/missing").unwrap());
        assert_eq!(
            required_string(&v, "/spec/name").unwrap_err().found,
            "nothing"
        );
    }

    #[test]
    fn object_or_insert_creates_missing_and_null_objects() {
        let mut v = json!({"metadata": {"labels": null}});
        object_or_insert(&mut v, "/metadata/labels")
            .unwrap()
            .insert("a".into(), json!("b"));
        object_or_insert(&mut v, "/metadata/annotations")
            .unwrap()
            .insert("c".into(), json!("d"));
        assert_eq!(
            v,
            json!({"metadata": {"labels": {"a": "b"}, "annotations": {"c": "d"}}})
        );
        let mut v = json!({"metadata": {"labels": []}});
        assert!(object_or_insert(&mut v, "/metadata/labels").is_err());
    }

    #[test]
    fn map_string_replaces_only_mapped_values() {
        let map = BTreeMap::from([("gp2".to_string(), "gp3".to_string())]);
        let mut v = json!({"spec": {"storageClassName": "gp2"}});
        map_string(&mut v, "/spec/storageClassName", &map).unwrap();
        assert_eq!(v["spec"]["storageClassName"], "gp3");
        map_string(&mut v, "/spec/storageClassName", &map).unwrap();
        assert_eq!(v["spec"]["storageClassName"], "gp3");
        map_string(&mut v, "/spec/missing", &map).unwrap();
        assert!(v["spec"].get("missing").is_none());
    }

    #[test]
    fn remove_takes_escaped_keys() {
        let mut v = json!({"metadata": {"annotations": {"a/b": "x", "c": "y"}}});
        assert_eq!(
            remove(&mut v, "/metadata/annotations/a~1b"),
            Some(json!("x"))
        );
        assert_eq!(remove(&mut v, "/metadata/annotations/a~1b"), None);
        assert_eq!(v, json!({"metadata": {"annotations": {"c": "y"}}}));
    }
}
