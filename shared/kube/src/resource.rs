//! Names for kinds of API objects and for single objects.

use serde::{Deserialize, Serialize};

/// Groups served by kube-apiserver itself; a resource in any other group may
/// be a custom resource whose CRD comes along.
const BUILTIN_GROUPS: &[&str] = &[
    "",
    "apps",
    "batch",
    "autoscaling",
    "policy",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "certificates.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "flowcontrol.apiserver.k8s.io",
    "internal.apiserver.k8s.io",
    "networking.k8s.io",
    "node.k8s.io",
    "rbac.authorization.k8s.io",
    "resource.k8s.io",
    "scheduling.k8s.io",
    "storage.k8s.io",
    "storagemigration.k8s.io",
];

/// One served kind of API object: where it lives in the API and what it is called.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ResourceType {
    /// API group; empty for the core group.
    pub group: String,
    pub version: String,
    /// Plural resource name as in the URL, e.g. `deployments`.
    pub resource: String,
    pub kind: String,
    pub namespaced: bool,
}

impl ResourceType {
    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps`, or `configmaps` for the core group: the name users
    /// write in `--include-resources` and the directory name in a snapshot.
    pub fn key(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    /// A namespaced `v1` resource of `group`/`kind` named by its lower-case
    /// plural, for tests.
    #[cfg(test)]
    pub(crate) fn test(group: &str, kind: &str) -> Self {
        ResourceType {
            group: group.into(),
            version: "v1".into(),
            resource: format!("{}s", kind.to_ascii_lowercase()),
            kind: kind.into(),
            namespaced: true,
        }
    }

    /// Whether kube-apiserver serves this resource itself (its group is
    /// built in); otherwise it may be a custom resource with a CRD.
    pub fn is_builtin(&self) -> bool {
        BUILTIN_GROUPS.contains(&self.group.as_str())
    }

    /// The same kind as `group`/`kind` (version-independent).
    pub fn is(&self, group: &str, kind: &str) -> bool {
        self.group == group && self.kind == kind
    }
}

/// One object, independent of API version: group, kind, namespace, name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectRef {
    pub group: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    /// The group part of an `apiVersion` (`apps/v1` -> `apps`, `v1` -> ``).
    pub fn group_of(api_version: &str) -> &str {
        api_version
            .rsplit_once('/')
            .map(|(g, _)| g)
            .unwrap_or_default()
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        };
        match &self.namespace {
            Some(ns) => write!(f, "{kind} {ns}/{}", self.name),
            None => write!(f, "{kind} {}", self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let d = ResourceType {
            group: "apps".into(),
            version: "v1".into(),
            resource: "deployments".into(),
            kind: "Deployment".into(),
            namespaced: true,
        };
        assert_eq!(d.api_version(), "apps/v1");
        assert_eq!(d.key(), "deployments.apps");
        let c = ResourceType {
            group: String::new(),
            version: "v1".into(),
            resource: "configmaps".into(),
            kind: "ConfigMap".into(),
            namespaced: true,
        };
        assert_eq!(c.api_version(), "v1");
        assert_eq!(c.key(), "configmaps");
        assert!(d.is_builtin() && c.is_builtin());
        assert!(!ResourceType::test("snapshot.storage.k8s.io", "VolumeSnapshot").is_builtin());
        assert!(!ResourceType::test("fixtures.example.com", "Widget").is_builtin());
        assert_eq!(ObjectRef::group_of("apps/v1"), "apps");
        assert_eq!(ObjectRef::group_of("v1"), "");
        let r = ObjectRef {
            group: "apps".into(),
            kind: "Deployment".into(),
            namespace: Some("shop".into()),
            name: "web".into(),
        };
        assert_eq!(r.to_string(), "Deployment.apps shop/web");
    }
}
