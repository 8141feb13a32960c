//! Cleaning an object of what the server owns, and its canonical bytes.

use crate::{KubeError, ObjectRef, ResourceType};
use serde_json::{Map, Value};

/// Metadata fields the API server sets; they mean nothing in another cluster
/// (or in the same one later) and change without the object changing.
const SERVER_OWNED_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "managedFields",
    "creationTimestamp",
    "generation",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// An object as stored: its cleaned body and, separately, its status.
#[derive(Debug, Clone, PartialEq)]
pub struct CleanObject {
    pub namespace: Option<String>,
    pub name: String,
    /// Canonical JSON of the object without status.
    pub body: Vec<u8>,
    /// Canonical JSON of `.status`, when the object has a non-empty one.
    pub status: Option<Vec<u8>>,
    /// Canonical JSON of `.metadata.managedFields` (who owns which field),
    /// each entry without its `time`, when the object has any: a restore
    /// gives the fields back to their owners ([`managed_fields`]).
    pub fields: Option<Vec<u8>>,
}

/// An object's field ownership as backed up: its `managedFields` entries
/// without their timestamps (which change whenever a manager writes, even
/// when the fields it owns do not, and which the API server sets anew on
/// restore anyway); `None` when it has none.
pub fn managed_fields(meta: &Map<String, Value>) -> Option<Value> {
    let entries = meta.get("managedFields")?.as_array()?;
    let kept: Vec<Value> = entries
        .iter()
        .filter_map(Value::as_object)
        .map(|e| {
            let mut e = e.clone();
            e.remove("time");
            Value::Object(e)
        })
        .collect();
    (!kept.is_empty()).then_some(Value::Array(kept))
}

/// Clean `obj` (an item of a list of `resource`) and serialize it canonically.
pub fn clean(resource: &ResourceType, mut obj: Value) -> Result<CleanObject, KubeError> {
    let what = || format!("a {} object", resource.key());
    let map = obj.as_object_mut().ok_or_else(|| KubeError::Malformed {
        what: what(),
        message: "not a JSON object".into(),
    })?;
    // List items may come without their type; the resource says what they are.
    map.insert("apiVersion".into(), Value::String(resource.api_version()));
    map.insert("kind".into(), Value::String(resource.kind.clone()));
    let status = map.remove("status").filter(|s| !is_empty(s));
    let meta = map
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| KubeError::Malformed {
            what: what(),
            message: "no metadata".into(),
        })?;
    let fields = managed_fields(meta);
    for f in SERVER_OWNED_METADATA {
        meta.remove(*f);
    }
    let name = meta
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| KubeError::Malformed {
            what: what(),
            message: "no metadata.name".into(),
        })?
        .to_string();
    let namespace = meta
        .get("namespace")
        .and_then(Value::as_str)
        .map(str::to_string);
    if resource.namespaced != namespace.is_some() {
        return Err(KubeError::Malformed {
            what: format!("{} {name}", resource.key()),
            message: if resource.namespaced {
                "namespaced resource without metadata.namespace".into()
            } else {
                "cluster-scoped resource with metadata.namespace".into()
            },
        });
    }
    Ok(CleanObject {
        namespace,
        name,
        body: canonical(&obj)?,
        status: status.map(|s| canonical(&s)).transpose()?,
        fields: fields.map(|f| canonical(&f)).transpose()?,
    })
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

/// Canonical JSON: keys sorted at every level, no insignificant whitespace.
/// Equal objects give equal bytes, so an unchanged object is the same blob.
pub fn canonical(v: &Value) -> Result<Vec<u8>, KubeError> {
    serde_json::to_vec(&sorted(v)).map_err(|e| KubeError::Malformed {
        what: "an object".into(),
        message: e.to_string(),
    })
}

// serde_json's map is ordered by key unless its `preserve_order` feature is
// on somewhere in the build; sorting explicitly keeps blobs stable either way.
fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                if let Some(x) = m.get(k) {
                    out.insert(k.clone(), sorted(x));
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// The version-independent reference of a cleaned object.
pub fn object_ref(resource: &ResourceType, namespace: Option<&str>, name: &str) -> ObjectRef {
    ObjectRef {
        group: resource.group.clone(),
        kind: resource.kind.clone(),
        namespace: namespace.map(str::to_string),
        name: name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployments() -> ResourceType {
        ResourceType {
            group: "apps".into(),
            version: "v1".into(),
            resource: "deployments".into(),
            kind: "Deployment".into(),
            namespaced: true,
        }
    }

    #[test]
    fn server_fields_go_and_status_is_kept_apart() {
        let obj = json!({
            "metadata": {
                "name": "web", "namespace": "shop", "uid": "u-1", "resourceVersion": "42",
                "generation": 3, "creationTimestamp": "2026-01-01T00:00:00Z",
                "managedFields": [{"manager": "kubectl"}], "labels": {"app": "web"}
            },
            "spec": {"replicas": 2},
            "status": {"readyReplicas": 2}
        });
        let c = clean(&deployments(), obj).unwrap();
        assert_eq!(c.name, "web");
        assert_eq!(c.namespace.as_deref(), Some("shop"));
        let body: Value = serde_json::from_slice(&c.body).unwrap();
        assert_eq!(
            body,
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
                   "spec": {"replicas": 2}})
        );
        assert_eq!(c.status.as_deref(), Some(&br#"{"readyReplicas":2}"#[..]));
        assert_eq!(
            c.fields.as_deref(),
            Some(&br#"[{"manager":"kubectl"}]"#[..])
        );
    }

    #[test]
    fn field_owners_are_kept_apart_without_their_times() {
        let entry = |time: &str| {
            json!({"manager": "gitops", "operation": "Apply", "apiVersion": "apps/v1",
                   "time": time, "fieldsType": "FieldsV1",
                   "fieldsV1": {"f:spec": {"f:replicas": {}}}})
        };
        let obj = |time: &str| {
            json!({"metadata": {"name": "web", "namespace": "shop", "managedFields": [entry(time)]},
                   "spec": {"replicas": 2}})
        };
        let a = clean(&deployments(), obj("2026-01-01T00:00:00Z")).unwrap();
        let b = clean(&deployments(), obj("2026-06-01T00:00:00Z")).unwrap();
        // A manager writing again changes nothing that is stored.
        assert_eq!((&a.body, &a.fields), (&b.body, &b.fields));
        let fields: Value = serde_json::from_slice(a.fields.as_deref().unwrap()).unwrap();
        assert_eq!(fields[0]["manager"], "gitops");
        assert_eq!(fields[0]["operation"], "Apply");
        assert!(fields[0].get("time").is_none(), "{fields}");
        assert_eq!(fields[0]["fieldsV1"]["f:spec"]["f:replicas"], json!({}));
        let none = clean(
            &deployments(),
            json!({"metadata": {"name": "x", "namespace": "n", "managedFields": []}}),
        );
        assert!(none.unwrap().fields.is_none(), "no owners, nothing stored");
    }

    #[test]
    fn same_object_same_bytes_whatever_the_server_fields() {
        let a = json!({"spec": {"b": 1, "a": [{"z": 1, "y": 2}]}, "metadata": {"name": "x", "namespace": "n", "resourceVersion": "1"}});
        let b = json!({"metadata": {"resourceVersion": "2", "namespace": "n", "name": "x"}, "spec": {"a": [{"y": 2, "z": 1}], "b": 1}, "status": {}});
        let ca = clean(&deployments(), a).unwrap();
        let cb = clean(&deployments(), b).unwrap();
        assert_eq!(ca.body, cb.body);
        assert!(cb.status.is_none(), "an empty status is not stored");
        let text = String::from_utf8(ca.body).unwrap();
        assert!(
            text.starts_with(r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata""#),
            "{text}"
        );
    }

    #[test]
    fn malformed_objects_are_named() {
        let e = clean(&deployments(), json!({"metadata": {"name": "x"}})).unwrap_err();
        assert!(e.to_string().contains("deployments.apps x"), "{e}");
        assert!(clean(&deployments(), json!([1])).is_err());
        assert!(clean(&deployments(), json!({"metadata": {"namespace": "n"}})).is_err());
    }
}
