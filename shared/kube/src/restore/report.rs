//! What a restore did to each object, and why.

use crate::ObjectRef;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The outcome of one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Created,
    Updated,
    Skipped,
    Failed,
    WouldCreate,
    WouldUpdate,
    WouldSkip,
    WouldFail,
}

impl Outcome {
    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::Failed | Outcome::WouldFail)
    }

    pub fn name(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Updated => "updated",
            Outcome::Skipped => "skipped",
            Outcome::Failed => "failed",
            Outcome::WouldCreate => "would create",
            Outcome::WouldUpdate => "would update",
            Outcome::WouldSkip => "would skip",
            Outcome::WouldFail => "would fail",
        }
    }
}

/// One object's line in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemReport {
    /// The object as it was backed up.
    pub object: ObjectRef,
    /// Its namespace in the target cluster, when a namespace map moved it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_namespace: Option<String>,
    pub outcome: Outcome,
    /// Why: the API server's message for a failure, the rule for a skip.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Whether its status was written too (`--restore-status`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub status_restored: bool,
    /// Whether its fields were given back to the managers that owned them
    /// in the source (`managedFields`), so that they can keep applying.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub owners_restored: bool,
    /// For an object that already existed in the target: the fields in
    /// which the target's copy differs from the backup (empty: identical),
    /// after the same normalisation as a backup. Absent for new objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub differs: Option<Vec<String>>,
    /// What the storage class map and the resource modifiers changed on the
    /// way in, one line each (the namespace map is `target_namespace`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
    /// The resource modifier rules that selected the object.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
}

/// Count the outcomes of `items`.
pub fn counts(items: &[ItemReport]) -> BTreeMap<Outcome, u64> {
    let mut out = BTreeMap::new();
    for i in items {
        *out.entry(i.outcome).or_default() += 1;
    }
    out
}

/// How many objects one resource modifier rule selected in a restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleCount {
    pub rule: String,
    /// Objects it selected (changed, left as they were, or failed).
    pub objects: u64,
}

/// For each rule of `rules` (in order), the objects of `items` it selected:
/// a rule with none is one the user expected to apply and did not.
pub fn rule_counts<'a>(
    rules: impl IntoIterator<Item = &'a str>,
    items: &[ItemReport],
) -> Vec<RuleCount> {
    rules
        .into_iter()
        .map(|rule| RuleCount {
            rule: rule.to_string(),
            objects: items
                .iter()
                .filter(|i| i.rules.iter().any(|r| r == rule))
                .count() as u64,
        })
        .collect()
}
