//! Whether an object that already exists in the target cluster is the one
//! in the backup: what a responder needs to know when a restore skips,
//! updates or refuses it.
//!
//! Both sides get the same normalisation: the target's copy is cleaned as a
//! backup cleans (server-owned metadata and status removed) and goes
//! through the same fix-ups as the backed-up object did, so only real
//! differences remain.

use super::actions::{prepare, FixupContext};
use crate::clean::clean;
use crate::ResourceType;
use serde_json::Value;

/// Field paths named at most; more are counted.
const MAX_PATHS: usize = 20;

/// The fields in which `existing` (as read from the target) differs from
/// `backup` (the backed-up object after its fix-ups), as dotted paths
/// (`spec.replicas`, `data.greeting`); empty when they are identical.
pub(super) fn differences(
    resource: &ResourceType,
    backup: &Value,
    existing: Value,
    ctx: &FixupContext,
) -> Vec<String> {
    let mut theirs = match clean(resource, existing)
        .ok()
        .and_then(|c| serde_json::from_slice::<Value>(&c.body).ok())
    {
        Some(v) => v,
        None => return vec!["(the target's copy could not be read)".into()],
    };
    // The fix-ups' verdict does not matter here, only what they change.
    let _ = prepare(resource, &mut theirs, ctx);
    let mut ours = backup.clone();
    if let Some(meta) = ours.get_mut("metadata").and_then(Value::as_object_mut) {
        // A backed-up object is written without these; the target's has them.
        for f in [
            "uid",
            "resourceVersion",
            "managedFields",
            "creationTimestamp",
            "generation",
        ] {
            meta.remove(f);
        }
    }
    let mut out = Vec::new();
    paths(&ours, &theirs, "", &mut out);
    if out.len() > MAX_PATHS {
        let more = out.len() - MAX_PATHS;
        out.truncate(MAX_PATHS);
        out.push(format!("and {more} more"));
    }
    out
}

/// The dotted paths at which `a` and `b` differ (lists as a whole), in
/// key order; used for existing objects and for what a merge patch changed.
pub(super) fn paths(a: &Value, b: &Value, prefix: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(v), Some(w)) => paths(v, w, &path, out),
                    _ => out.push(path),
                }
            }
        }
        _ if a == b => {}
        _ => out.push(if prefix.is_empty() {
            "(the whole object)".into()
        } else {
            prefix.to_string()
        }),
    }
}

/// The report's words for an existing object: identical, or which fields differ.
pub(super) fn describe(differs: &[String]) -> String {
    if differs.is_empty() {
        "identical to the backup".into()
    } else {
        format!("differs from the backup in {}", differs.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::actions::Transform;
    use serde_json::json;
    use std::collections::HashSet;

    fn configmaps() -> ResourceType {
        ResourceType {
            group: String::new(),
            version: "v1".into(),
            resource: "configmaps".into(),
            kind: "ConfigMap".into(),
            namespaced: true,
        }
    }

    fn diff(backup: Value, existing: Value) -> Vec<String> {
        let transform = Transform::default();
        let restoring = HashSet::new();
        let ctx = FixupContext {
            transform: &transform,
            restoring: &restoring,
        };
        differences(&configmaps(), &backup, existing, &ctx)
    }

    #[test]
    fn the_same_object_read_back_from_a_server_is_identical() {
        let backup = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "n", "labels": {"a": "1"}}, "data": {"k": "v"}});
        let mut live = backup.clone();
        live["metadata"]["uid"] = json!("u-1");
        live["metadata"]["resourceVersion"] = json!("7");
        live["metadata"]["managedFields"] = json!([{"manager": "kubectl"}]);
        live["metadata"]["creationTimestamp"] = json!("2026-12-07T00:00:00Z");
        assert_eq!(diff(backup, live), Vec::<String>::new());
    }

    #[test]
    fn changed_added_and_removed_fields_are_named() {
        let backup = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "n", "labels": {"a": "1", "gone": "x"}},
            "data": {"k": "v"}});
        let live = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "n", "labels": {"a": "2"}},
            "data": {"k": "v", "new": "y"}});
        assert_eq!(
            diff(backup, live),
            ["data.new", "metadata.labels.a", "metadata.labels.gone"]
        );
        assert_eq!(describe(&[]), "identical to the backup");
    }
}
