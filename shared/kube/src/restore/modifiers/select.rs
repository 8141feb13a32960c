//! Which objects a rule selects: group, kind, namespace and name globs,
//! labels, all on the object as backed up.

use std::collections::BTreeMap;

use globset::GlobSet;
use serde_json::Value;

use super::{MatchSpec, Source};
use crate::scope::glob_set;

#[derive(Debug, Clone)]
pub(super) struct Selector {
    group: Option<String>,
    kind: Option<String>,
    namespaces: Option<GlobSet>,
    names: Option<GlobSet>,
    labels: BTreeMap<String, String>,
}

impl Selector {
    pub(super) fn new(spec: &MatchSpec) -> Result<Self, String> {
        if spec.kind.as_deref().is_some_and(|k| k.trim().is_empty()) {
            return Err("match.kind is empty (leave it out to match every kind)".into());
        }
        Ok(Selector {
            group: spec.group.clone(),
            kind: spec.kind.clone(),
            namespaces: globs(&spec.namespaces, "match.namespaces")?,
            names: globs(&spec.names, "match.names")?,
            labels: spec.labels.clone(),
        })
    }

    pub(super) fn selects(&self, s: &Source<'_>) -> bool {
        if self.group.as_ref().is_some_and(|g| *g != s.resource.group)
            || self.kind.as_ref().is_some_and(|k| *k != s.resource.kind)
        {
            return false;
        }
        if let Some(ns) = &self.namespaces {
            match s.namespace {
                Some(n) if ns.is_match(n) => {}
                _ => return false,
            }
        }
        if self.names.as_ref().is_some_and(|n| !n.is_match(s.name)) {
            return false;
        }
        self.labels.iter().all(|(k, v)| {
            s.labels
                .and_then(|l| l.get(k))
                .and_then(Value::as_str)
                .is_some_and(|have| have == v)
        })
    }
}

/// `None` for no patterns (anything matches).
fn globs(patterns: &[String], field: &str) -> Result<Option<GlobSet>, String> {
    if patterns.is_empty() {
        return Ok(None);
    }
    glob_set(patterns)
        .map(Some)
        .map_err(|bad| match bad.pattern {
            Some(p) => format!("{field}: {p:?} is not a glob: {}", bad.error),
            None => format!("{field}: {}", bad.error),
        })
}
