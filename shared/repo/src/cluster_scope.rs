//! The scope of a `cluster` snapshot as part of its identity: a canonical
//! form of the recorded scope, its id, and whether it is the cluster's
//! whole configured scope ("full").
//!
//! Snapshots of one cluster taken with different scopes (the scheduled
//! backup of everything, a CI backup of one namespace before a deploy) are
//! different series: `latest` for a restore, retention groups and anomaly
//! detection compare a snapshot only with snapshots of its own series.

use crate::snapshot::ClusterSource;
use serde_json::Value;

/// Hex digits of a scope id (64 bits of BLAKE3).
const SCOPE_ID_LEN: usize = 16;

/// `scope` with object keys sorted, empty lists, empty objects and nulls
/// removed, and lists of strings sorted and deduplicated, so that two
/// spellings of one scope (`["b", "a"]` and `["a", "b", "a"]`, an absent
/// list and an empty one) are one value.
pub fn canonical_scope(scope: &Value) -> Value {
    match scope {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), canonical_scope(v)))
                .filter(|(_, v)| !is_empty(v))
                .collect(),
        ),
        Value::Array(items) => {
            let mut items: Vec<Value> = items.iter().map(canonical_scope).collect();
            if items.iter().all(Value::is_string) {
                items.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
                items.dedup();
            }
            Value::Array(items)
        }
        other => other.clone(),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// The id of a scope: the first 16 hex digits of the BLAKE3 hash of its
/// canonical JSON ([`canonical_scope`]; object keys in sorted order).
pub fn scope_id(scope: &Value) -> String {
    let text = canonical_scope(scope).to_string();
    let mut hex = blake3::hash(text.as_bytes()).to_hex().to_string();
    hex.truncate(SCOPE_ID_LEN);
    hex
}

/// Whether a recorded scope takes everything: no namespace, resource or
/// label filter, and cluster-scoped objects not turned off
/// (`cluster_resources` absent, `auto` or `true`).
pub fn scope_takes_everything(scope: &Value) -> bool {
    let Value::Object(map) = canonical_scope(scope) else {
        return false;
    };
    map.iter()
        .all(|(k, v)| k == "cluster_resources" && matches!(v.as_str(), Some("auto") | Some("true")))
}

impl ClusterSource {
    /// Whether this snapshot holds the cluster's whole configured scope.
    /// Snapshots written before `full` was recorded count as full only when
    /// their recorded scope takes everything ([`scope_takes_everything`]).
    pub fn is_full(&self) -> bool {
        self.full
            .unwrap_or_else(|| scope_takes_everything(&self.scope))
    }

    /// The id of this snapshot's scope: the recorded `scope_id`, else (older
    /// snapshots) computed from the recorded scope.
    pub fn scope_id(&self) -> String {
        self.scope_id
            .clone()
            .unwrap_or_else(|| scope_id(&self.scope))
    }

    /// The series this snapshot belongs to among the cluster's snapshots:
    /// `full` for full-scope snapshots (whatever the configured scope was at
    /// the time), else `scope <id>`.
    pub fn series(&self) -> String {
        if self.is_full() {
            "full".into()
        } else {
            format!("scope {}", self.scope_id())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn spellings_of_one_scope_have_one_id() {
        let a = json!({"include_namespaces": ["shop", "pay"], "cluster_resources": "auto"});
        let b = json!({"cluster_resources": "auto", "include_namespaces": ["pay", "shop", "pay"],
                       "exclude_namespaces": [], "selector": null});
        assert_eq!(scope_id(&a), scope_id(&b));
        assert_eq!(scope_id(&a).len(), SCOPE_ID_LEN);
        let c = json!({"include_namespaces": ["shop"], "cluster_resources": "auto"});
        assert_ne!(scope_id(&a), scope_id(&c));
    }

    #[test]
    fn only_an_unfiltered_scope_takes_everything() {
        assert!(scope_takes_everything(
            &json!({"cluster_resources": "auto"})
        ));
        assert!(scope_takes_everything(
            &json!({"cluster_resources": "true"})
        ));
        assert!(scope_takes_everything(&json!({"include_namespaces": []})));
        assert!(scope_takes_everything(&json!({})));
        assert!(!scope_takes_everything(
            &json!({"cluster_resources": "false"})
        ));
        assert!(!scope_takes_everything(
            &json!({"include_namespaces": ["shop"]})
        ));
        assert!(!scope_takes_everything(&json!({"selector": "app=web"})));
        assert!(!scope_takes_everything(
            &json!({"exclude_resources": ["secrets"]})
        ));
        assert!(!scope_takes_everything(&json!("everything")));
    }
}
