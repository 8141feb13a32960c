//! Resource modifiers: the user's declarative rules for changing objects on
//! their way into the target cluster (a migration's registry mirror, DR
//! ingress hosts, fewer replicas, other node selectors, bigger claims).
//!
//! A rules document (a file for the CLI, the same object in a workflow
//! request; format in docs/cluster-state.md) is checked whole before a
//! restore writes anything: [`Modifiers::new`] refuses an unknown field, a
//! bad glob, a JSON Patch operation that does not parse or a rule without
//! an action, naming the rule and the field. Each rule selects objects by
//! group, kind, namespace, name and labels *as backed up* (so a namespace
//! map does not change what a rule means) and changes them by any of:
//!
//! - `image_registry`: every container image of a pod template from one
//!   registry moves to another (JSON Patch cannot rewrite a prefix);
//! - `json_patch`: RFC 6902 operations, applied all or nothing; a failing
//!   `test` operation means the rule does not concern this object;
//! - `merge_patch`: an RFC 7386 merge patch.
//!
//! A rule whose patch cannot be applied to an object it selects (a
//! `replace` of a field the object lacks) fails that object, with the rule
//! and the reason: creating it unchanged could, for example, point a DR
//! copy at the primary's ingress host. What each rule changed is reported
//! per object, and a rule that selected nothing is reported by the restore.

mod image;
mod select;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use json_patch::{PatchErrorKind, PatchOperation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ResourceType;
pub use image::RegistryRewrite;
use select::Selector;

/// The newest rules-document version this build understands.
pub const MODIFIERS_VERSION: u64 = 1;

/// A rules document as written by the user.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModifierDocument {
    /// Always 1 for now; a newer document is refused, not half-understood.
    pub version: u64,
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
}

/// One rule as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Names the rule in errors and reports; unique in the document.
    pub name: String,
    /// Which objects the rule changes; empty: every object.
    #[serde(default, rename = "match")]
    pub selects: MatchSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_registry: Option<RegistrySpec>,
    /// RFC 6902 operations (kept as JSON here so that one that does not
    /// parse is reported with the rule's name and its index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_patch: Option<Vec<Value>>,
    /// An RFC 7386 merge patch (an object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_patch: Option<Value>,
}

/// Conditions a rule's objects meet, all of them; each absent one holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    /// API group: `apps`, `networking.k8s.io`; `""` is the core group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind, as in the object: `Deployment`, `Ingress`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Namespace globs, as backed up. Cluster-scoped objects never match a
    /// rule that names namespaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Object name globs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Labels the object has (as backed up), each with exactly this value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// `image_registry` as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySpec {
    /// A registry host (with port or path prefix): `registry.example.com`,
    /// `docker.io` (which also stands for images named without a registry).
    pub from: String,
    pub to: String,
}

/// A rules document that does not hold together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("resource modifiers: {0}")]
pub struct ModifierError(pub String);

/// A checked rules document, ready to apply.
#[derive(Debug, Clone, Default)]
pub struct Modifiers {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    name: String,
    selector: Selector,
    registry: Option<RegistryRewrite>,
    json_patch: Vec<PatchOperation>,
    merge_patch: Option<Value>,
}

/// The object as backed up, which rules select on.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub resource: &'a ResourceType,
    pub namespace: Option<&'a str>,
    pub name: &'a str,
    pub labels: Option<&'a serde_json::Map<String, Value>>,
}

/// What one rule did to an object it selected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub rule: String,
    /// What it changed, for the report (empty: the object was already as
    /// the rule wants it, or its `test` did not hold).
    pub changes: Vec<String>,
}

/// A rule that selected an object but could not be applied to it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("modifier rule {rule:?} could not be applied: {reason}")]
pub struct RuleFailure {
    pub rule: String,
    pub reason: String,
}

impl Modifiers {
    /// Check every rule of `doc`; the first problem is the error, naming
    /// the rule (by position and name) and the field.
    pub fn new(doc: &ModifierDocument) -> Result<Self, ModifierError> {
        if doc.version != MODIFIERS_VERSION {
            return Err(ModifierError(format!(
                "version {} is not one this Lifeboat understands (it reads version {MODIFIERS_VERSION})",
                doc.version
            )));
        }
        let mut names = BTreeSet::new();
        let mut rules = Vec::with_capacity(doc.rules.len());
        for (i, spec) in doc.rules.iter().enumerate() {
            let at = |msg: String| ModifierError(format!("rules[{i}] ({:?}): {msg}", spec.name));
            if spec.name.trim().is_empty() {
                return Err(ModifierError(format!("rules[{i}]: `name` is empty")));
            }
            if !names.insert(spec.name.as_str()) {
                return Err(at("another rule has the same name".into()));
            }
            let selector = Selector::new(&spec.selects).map_err(at)?;
            let registry = spec
                .image_registry
                .as_ref()
                .map(RegistryRewrite::new)
                .transpose()
                .map_err(|e| at(format!("image_registry: {e}")))?;
            let json_patch = match &spec.json_patch {
                None => Vec::new(),
                Some(ops) if ops.is_empty() => {
                    return Err(at("json_patch: the list of operations is empty".into()))
                }
                Some(ops) => ops
                    .iter()
                    .enumerate()
                    .map(|(j, op)| {
                        serde_json::from_value::<PatchOperation>(op.clone())
                            .map_err(|e| at(format!("json_patch[{j}]: {e}")))
                    })
                    .collect::<Result<_, _>>()?,
            };
            if let Some(m) = &spec.merge_patch {
                if !m.is_object() {
                    return Err(at("merge_patch must be an object".into()));
                }
            }
            if registry.is_none() && json_patch.is_empty() && spec.merge_patch.is_none() {
                return Err(at(
                    "no action: give image_registry, json_patch or merge_patch".into(),
                ));
            }
            rules.push(Rule {
                name: spec.name.clone(),
                selector,
                registry,
                json_patch,
                merge_patch: spec.merge_patch.clone(),
            });
        }
        Ok(Modifiers { rules })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules' names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.name.as_str())
    }

    /// Apply, in order, every rule that selects `source` to `obj` (the
    /// object as it will be created). Returns the rules that selected it
    /// and what each changed; on a failure `obj` keeps the changes of the
    /// rules before the failing one, and must not be created.
    pub fn apply(&self, source: Source<'_>, obj: &mut Value) -> Result<Vec<Applied>, RuleFailure> {
        let mut out = Vec::new();
        for rule in &self.rules {
            if !rule.selector.selects(&source) {
                continue;
            }
            let fail = |reason: String| RuleFailure {
                rule: rule.name.clone(),
                reason,
            };
            let mut changes = Vec::new();
            if let Some(r) = &rule.registry {
                changes.extend(r.apply(obj).map_err(fail)?);
            }
            if !rule.json_patch.is_empty() {
                match json_patch::patch(obj, &rule.json_patch) {
                    Ok(()) => changes.extend(rule.json_patch.iter().filter_map(describe_op)),
                    // The rule's own guard: not this object's rule after all.
                    Err(e) if matches!(e.kind, PatchErrorKind::TestFailed) => {}
                    Err(e) => {
                        return Err(fail(format!(
                            "json_patch[{}] ({}): {}",
                            e.operation,
                            describe_op(&rule.json_patch[e.operation])
                                .unwrap_or_else(|| format!("test {}", e.path)),
                            e.kind
                        )))
                    }
                }
            }
            if let Some(m) = &rule.merge_patch {
                let before = obj.clone();
                json_patch::merge(obj, m);
                let mut changed = Vec::new();
                super::drift::paths(&before, obj, "", &mut changed);
                changes.extend(changed.into_iter().map(|f| format!("merge patch: {f}")));
            }
            out.push(Applied {
                rule: rule.name.clone(),
                changes,
            });
        }
        Ok(out)
    }
}

/// `replace /spec/replicas`; `None` for a `test`, which changes nothing.
fn describe_op(op: &PatchOperation) -> Option<String> {
    Some(match op {
        PatchOperation::Add(o) => format!("add {}", o.path),
        PatchOperation::Remove(o) => format!("remove {}", o.path),
        PatchOperation::Replace(o) => format!("replace {}", o.path),
        PatchOperation::Move(o) => format!("move {} to {}", o.from, o.path),
        PatchOperation::Copy(o) => format!("copy {} to {}", o.from, o.path),
        PatchOperation::Test(_) => return None,
    })
}
