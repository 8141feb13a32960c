//! The request that starts a workflow: a CI pipeline's queue message, a
//! scheduled rule's input or a failover runbook's. Published as a JSON Schema
//! in docs/ci-message.schema.json; [`Request::parse`] checks every field and
//! names the first one that is wrong.

use lifeboat_kube::restore::modifiers::{ModifierDocument, Modifiers};
use lifeboat_kube::Scope;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The newest request version this build understands.
pub const REQUEST_VERSION: u64 = 1;

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Backup,
    Restore,
    Verify,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Backup => "backup",
            Action::Restore => "restore",
            Action::Verify => "verify",
        }
    }
}

/// Who asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestedBy {
    Schedule,
    Ci,
    Runbook,
    #[default]
    Cli,
}

/// A workflow's execution input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub version: u64,
    pub action: Action,
    /// The cluster to back up (backup, verify) or to restore into (restore).
    pub cluster: String,
    /// Overrides the fleet file's scope for this cluster (backup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Requests with the same key start one execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// An SQS queue URL that receives the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    #[serde(default)]
    pub requested_by: RequestedBy,
    /// The cluster whose snapshot to restore (restore; defaults to `cluster`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_cluster: Option<String>,
    /// A snapshot id, unique prefix or `latest` (restore, verify).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// Who sent the request, as the trigger authenticated it (an SQS
    /// `SenderId`, `invoke`, `schedule`). Set by the trigger only: it is not
    /// one of [`FIELDS`], so a message that carries it is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    /// Restore: re-create the PersistentVolumes of claims the policy left
    /// out of the backup (not CSI: NFS, hostPath, ...) as they were,
    /// pointing at the source's storage, with reclaim policy Retain.
    /// Without it (the default) such claims are provisioned anew, empty.
    /// Claims whose copy failed are never re-attached.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reattach_volumes: bool,
    /// Restore: objects (and volume data) of namespace `a` go to `b`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub namespace_map: BTreeMap<String, String>,
    /// Restore: claims and volumes of storage class `x` use class `y`,
    /// which must exist in the target cluster.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub storage_class_map: BTreeMap<String, String>,
    /// Restore: resource modifier rules, the same document as
    /// `lifeboat restore --modifiers` reads (docs/cluster-state.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modifiers: Option<ModifierDocument>,
}

/// Every field of a request, with its JSON type, whether it is required, and
/// a description. The JSON Schema in docs/ is checked against this list.
pub const FIELDS: &[(&str, &str, bool)] = &[
    ("version", "integer", true),
    ("action", "string", true),
    ("cluster", "string", true),
    ("scope", "object", false),
    ("tags", "object", false),
    ("idempotency_key", "string", false),
    ("reply_to", "string", false),
    ("requested_by", "string", false),
    ("source_cluster", "string", false),
    ("snapshot", "string", false),
    ("reattach_volumes", "boolean", false),
    ("namespace_map", "object", false),
    ("storage_class_map", "object", false),
    ("modifiers", "object", false),
];

/// A request field that is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {reason}")]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

fn bad(field: &str, reason: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        reason: reason.into(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Request {
    /// Parse and check a message body.
    pub fn parse(text: &str) -> Result<Request, FieldError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| bad("(message)", format!("not valid JSON: {e}")))?;
        Request::from_value(value)
    }

    /// Check a request already parsed as JSON. Unknown fields are refused,
    /// so that a misspelt optional field is not silently ignored.
    pub fn from_value(value: Value) -> Result<Request, FieldError> {
        let Value::Object(map) = value else {
            return Err(bad(
                "(message)",
                format!("must be a JSON object, not {}", type_name(&value)),
            ));
        };
        check_fields(&map)?;
        let request: Request = serde_json::from_value(Value::Object(map.clone()))
            .map_err(|e| bad(&first_bad_field(&map), e.to_string()))?;
        request.validate()?;
        Ok(request)
    }

    fn validate(&self) -> Result<(), FieldError> {
        if self.version == 0 || self.version > REQUEST_VERSION {
            return Err(bad(
                "version",
                format!(
                    "{} is not supported (this Lifeboat understands up to {REQUEST_VERSION})",
                    self.version
                ),
            ));
        }
        if self.cluster.trim().is_empty() {
            return Err(bad("cluster", "must not be empty"));
        }
        if let Some(k) = &self.idempotency_key {
            if k.is_empty() || k.len() > 256 {
                return Err(bad("idempotency_key", "must be 1 to 256 characters"));
            }
        }
        if let Some(q) = &self.reply_to {
            if !q.starts_with("https://") && !q.starts_with("http://") {
                return Err(bad("reply_to", format!("{q:?} is not an SQS queue URL")));
            }
        }
        match self.action {
            Action::Backup if self.snapshot.is_some() => Err(bad(
                "snapshot",
                "a backup makes a new snapshot; leave it out",
            )),
            Action::Backup | Action::Verify if self.source_cluster.is_some() => Err(bad(
                "source_cluster",
                "only a restore reads another cluster's snapshots; leave it out",
            )),
            Action::Backup | Action::Verify if self.reattach_volumes => Err(bad(
                "reattach_volumes",
                "only a restore re-creates volumes; leave it out",
            )),
            Action::Backup | Action::Verify => match self.restore_only_field() {
                Some(field) => Err(bad(
                    field,
                    "only a restore changes objects on the way in; leave it out",
                )),
                None => Ok(()),
            },
            Action::Restore => self.validate_restore(),
        }
    }

    /// The first restore-only transformation field a request sets.
    fn restore_only_field(&self) -> Option<&'static str> {
        if !self.namespace_map.is_empty() {
            Some("namespace_map")
        } else if !self.storage_class_map.is_empty() {
            Some("storage_class_map")
        } else if self.modifiers.is_some() {
            Some("modifiers")
        } else {
            None
        }
    }

    fn validate_restore(&self) -> Result<(), FieldError> {
        for (from, to) in &self.namespace_map {
            for name in [from, to] {
                if !is_dns_label(name) {
                    return Err(bad(
                        "namespace_map",
                        format!("{name:?} is not a namespace name (lowercase letters, digits and '-', at most 63)"),
                    ));
                }
            }
        }
        let mut targets = BTreeMap::new();
        for (from, to) in &self.namespace_map {
            if let Some(other) = targets.insert(to, from) {
                return Err(bad(
                    "namespace_map",
                    format!(
                        "{other:?} and {from:?} both go to {to:?}; their objects would collide"
                    ),
                ));
            }
        }
        if let Some((from, to)) = self
            .storage_class_map
            .iter()
            .find(|(f, t)| f.trim().is_empty() || t.trim().is_empty())
        {
            return Err(bad(
                "storage_class_map",
                format!("{from:?} -> {to:?}: a storage class name is empty"),
            ));
        }
        self.modifiers()?;
        Ok(())
    }

    /// The request's resource modifiers, checked (none: no rules).
    pub fn modifiers(&self) -> Result<Modifiers, FieldError> {
        match &self.modifiers {
            None => Ok(Modifiers::default()),
            Some(doc) => Modifiers::new(doc).map_err(|e| bad("modifiers", e.0)),
        }
    }

    /// The cluster whose snapshots a restore reads.
    pub fn source(&self) -> &str {
        self.source_cluster.as_deref().unwrap_or(&self.cluster)
    }
}

/// A Kubernetes namespace name (RFC 1123 label).
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Refuse unknown fields and fields of the wrong JSON type, by name.
fn check_fields(map: &Map<String, Value>) -> Result<(), FieldError> {
    for (key, value) in map {
        let Some((_, ty, _)) = FIELDS.iter().find(|(f, _, _)| f == key) else {
            let known: Vec<&str> = FIELDS.iter().map(|(f, _, _)| *f).collect();
            return Err(bad(
                key,
                format!("unknown field (known: {})", known.join(", ")),
            ));
        };
        let ok = match *ty {
            "integer" => value.as_u64().is_some(),
            "string" => value.is_string(),
            "object" => value.is_object(),
            "boolean" => value.is_boolean(),
            _ => true,
        };
        if !ok {
            return Err(bad(key, format!("must be {ty}, not {}", type_name(value))));
        }
    }
    for (field, _, required) in FIELDS {
        if *required && !map.contains_key(*field) {
            return Err(bad(field, "missing"));
        }
    }
    Ok(())
}

/// Which field serde refused: the first one that does not parse on its own.
fn first_bad_field(map: &Map<String, Value>) -> String {
    let probe = |field: &str, v: &Value| -> bool {
        match field {
            "action" => serde_json::from_value::<Action>(v.clone()).is_err(),
            "requested_by" => serde_json::from_value::<RequestedBy>(v.clone()).is_err(),
            "scope" => serde_json::from_value::<Scope>(v.clone()).is_err(),
            "tags" | "namespace_map" | "storage_class_map" => {
                serde_json::from_value::<BTreeMap<String, String>>(v.clone()).is_err()
            }
            "modifiers" => serde_json::from_value::<ModifierDocument>(v.clone()).is_err(),
            _ => false,
        }
    };
    map.iter()
        .find(|(k, v)| probe(k, v))
        .map_or_else(|| "(message)".into(), |(k, _)| k.clone())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn err(text: &str) -> FieldError {
        Request::parse(text).unwrap_err()
    }

    #[test]
    fn a_ci_backup_message_parses() {
        let r = Request::parse(
            r#"{"version":1,"action":"backup","cluster":"shop","scope":{"include_namespaces":["shop"]},
                "tags":{"reason":"deploy"},"idempotency_key":"d-1","requested_by":"ci",
                "reply_to":"https://sqs.us-east-1.amazonaws.com/1/q"}"#,
        )
        .unwrap();
        assert_eq!(r.action, Action::Backup);
        assert_eq!(r.requested_by, RequestedBy::Ci);
        assert_eq!(
            r.scope.unwrap().include_namespaces,
            vec!["shop".to_string()]
        );
    }

    #[test]
    fn each_mistake_names_its_field() {
        assert_eq!(err(r#"{"version":1,"action":"backup"}"#).field, "cluster");
        assert_eq!(
            err(r#"{"version":1,"action":"bakup","cluster":"c"}"#).field,
            "action"
        );
        assert_eq!(
            err(r#"{"version":2,"action":"backup","cluster":"c"}"#).field,
            "version"
        );
        assert_eq!(
            err(r#"{"version":"1","action":"backup","cluster":"c"}"#).field,
            "version"
        );
        assert_eq!(
            err(r#"{"version":1,"action":"backup","cluster":"c","clustr":"x"}"#).field,
            "clustr"
        );
        assert_eq!(
            err(r#"{"version":1,"action":"backup","cluster":"c","tags":{"a":1}}"#).field,
            "tags"
        );
        assert_eq!(
            err(r#"{"version":1,"action":"backup","cluster":"c","scope":{"nope":1}}"#).field,
            "scope"
        );
        assert_eq!(
            err(r#"{"version":1,"action":"backup","cluster":" "}"#).field,
            "cluster"
        );
        assert_eq!(
            err(r#"{"version":1,"action":"backup","cluster":"c","reply_to":"q"}"#).field,
            "reply_to"
        );
        assert_eq!(err("[1]").field, "(message)");
        assert!(err("{").reason.contains("not valid JSON"));
        let e = err(r#"{"version":1,"action":"backup"}"#).to_string();
        assert_eq!(e, "field `cluster`: missing");
    }

    #[test]
    fn a_restore_reads_the_source_cluster() {
        let r = Request::parse(
            r#"{"version":1,"action":"restore","cluster":"dr","source_cluster":"prod","snapshot":"latest"}"#,
        )
        .unwrap();
        assert_eq!(r.source(), "prod");
    }

    #[test]
    fn a_migration_restore_carries_maps_and_modifiers_checked_on_arrival() {
        let r = Request::parse(
            r#"{"version":1,"action":"restore","cluster":"dr","source_cluster":"prod",
                "namespace_map":{"shop":"shop-dr"},"storage_class_map":{"gp3":"standard-rwo"},
                "modifiers":{"version":1,"rules":[{"name":"mirror",
                  "image_registry":{"from":"123.dkr.ecr.eu-west-1.amazonaws.com","to":"europe-docker.pkg.dev/p/r"}}]}}"#,
        )
        .unwrap();
        assert_eq!(r.namespace_map["shop"], "shop-dr");
        assert_eq!(
            r.modifiers().unwrap().names().collect::<Vec<_>>(),
            ["mirror"]
        );
        let e = err(r#"{"version":1,"action":"restore","cluster":"dr",
                "modifiers":{"version":1,"rules":[{"name":"r","json_patch":[{"op":"rplace","path":"/a"}]}]}}"#);
        assert_eq!(e.field, "modifiers");
        assert!(e.reason.contains("rules[0] (\"r\"): json_patch[0]"), "{e}");
        let e = err(
            r#"{"version":1,"action":"restore","cluster":"dr","namespace_map":{"shop":"Shop_DR"}}"#,
        );
        assert_eq!(e.field, "namespace_map");
        let e =
            err(r#"{"version":1,"action":"restore","cluster":"dr","namespace_map":{"shop":1}}"#);
        assert_eq!(e.field, "namespace_map");
        let e = err(
            r#"{"version":1,"action":"restore","cluster":"dr","modifiers":{"version":1,"rules":[{"nme":"r"}]}}"#,
        );
        assert_eq!(e.field, "modifiers");
        let e =
            err(r#"{"version":1,"action":"backup","cluster":"c","storage_class_map":{"a":"b"}}"#);
        assert_eq!(e.field, "storage_class_map");
    }
}
