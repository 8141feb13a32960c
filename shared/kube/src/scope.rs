//! What a backup takes: namespaces, resources, a label selector, and which
//! cluster-scoped objects come along.

use crate::{KubeError, ResourceType};
use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Which cluster-scoped objects a backup takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClusterResources {
    /// All of them when the whole cluster is in scope; otherwise only those
    /// the selected objects depend on.
    #[default]
    Auto,
    /// All of them (subject to the resource filters and the selector).
    True,
    /// None, apart from the selected namespaces themselves.
    False,
}

impl std::str::FromStr for ClusterResources {
    type Err = KubeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "true" => Ok(Self::True),
            "false" => Ok(Self::False),
            other => Err(KubeError::InvalidInput(format!(
                "--include-cluster-resources must be auto, true or false, not {other:?}"
            ))),
        }
    }
}

/// The scope of a backup as the user gave it; recorded in the snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// Namespace globs; empty means every namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_namespaces: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_namespaces: Vec<String>,
    /// Resource names or globs (`deployments`, `deployments.apps`, `Deployment`,
    /// `*.example.com`); empty means every resource not excluded by default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_resources: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_resources: Vec<String>,
    /// A label selector applied to every list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    #[serde(default)]
    pub cluster_resources: ClusterResources,
}

/// Resources left out unless named in `--include-resources`, with the reason.
pub const DEFAULT_EXCLUDED: &[(&str, &str)] = &[
    (
        "events",
        "a record of the past, not state; recreated by what happens next",
    ),
    (
        "events.events.k8s.io",
        "the same events under another group",
    ),
    (
        "leases.coordination.k8s.io",
        "leader election and node heartbeats; held by running processes",
    ),
    (
        "endpoints",
        "computed from Services and Pods by the endpoints controller",
    ),
    (
        "endpointslices.discovery.k8s.io",
        "computed from Services and Pods by the endpoint-slice controller",
    ),
    (
        "nodes",
        "registered by each node's kubelet; the target cluster has its own",
    ),
    (
        "csinodes.storage.k8s.io",
        "registered by each node's kubelet",
    ),
    (
        "volumeattachments.storage.k8s.io",
        "attach state of the source cluster's nodes",
    ),
    (
        "ipaddresses.networking.k8s.io",
        "Service IP allocations; the target cluster allocates its own",
    ),
    (
        "servicecidrs.networking.k8s.io",
        "the cluster's own Service IP ranges",
    ),
    (
        "certificatesigningrequests.certificates.k8s.io",
        "signed by the source cluster's CA and short-lived",
    ),
    ("componentstatuses", "a live health view, not state"),
    (
        "controllerrevisions.apps",
        "history kept by the StatefulSet and DaemonSet controllers, recreated by them",
    ),
];

/// Objects left out even when their resource is in scope.
pub fn excluded_object(resource: &ResourceType, obj: &Value) -> Option<&'static str> {
    let name = obj.pointer("/metadata/name").and_then(Value::as_str);
    let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str);
    if resource.is("", "ConfigMap") && name == Some("kube-root-ca.crt") {
        return Some("published into every namespace by the target cluster, with its own CA");
    }
    if resource.is("", "Service") && ns == Some("default") && name == Some("kubernetes") {
        return Some("the API server's own Service");
    }
    if resource.is("", "Secret")
        && obj.pointer("/type").and_then(Value::as_str)
            == Some("kubernetes.io/service-account-token")
    {
        return Some(
            "a token signed by the source cluster's key; the target cluster issues its own",
        );
    }
    let managed_by = obj
        .pointer("/metadata/labels/app.kubernetes.io~1managed-by")
        .and_then(Value::as_str);
    if (resource.group == "snapshot.storage.k8s.io"
        || resource.group == "groupsnapshot.storage.k8s.io")
        && managed_by == Some("lifeboat")
    {
        return Some(
            "Lifeboat's own snapshot, taken to copy the volume's data (the data is in the backup)",
        );
    }
    let mover = obj
        .pointer("/metadata/labels/lifeboat.dev~1mover")
        .and_then(Value::as_str);
    if managed_by == Some("lifeboat") && mover.is_some() {
        return Some(
            "part of a Lifeboat mover Job (the Job, its pods, Secret and staging claim), which lives only while it copies a volume",
        );
    }
    None
}

/// A [`Scope`] ready for matching.
#[derive(Debug, Clone)]
pub struct ScopeFilter {
    pub scope: Scope,
    include_ns: Option<GlobSet>,
    exclude_ns: GlobSet,
    include_res: Option<Vec<Pattern>>,
    exclude_res: Vec<Pattern>,
}

#[derive(Debug, Clone)]
struct Pattern {
    text: String,
    glob: globset::GlobMatcher,
}

impl Pattern {
    fn new(text: &str) -> Result<Self, KubeError> {
        let lower = text.to_ascii_lowercase();
        let glob = Glob::new(&lower)
            .map_err(|e| KubeError::InvalidInput(format!("bad resource pattern {text:?}: {e}")))?
            .compile_matcher();
        Ok(Pattern { text: lower, glob })
    }

    fn matches(&self, r: &ResourceType) -> bool {
        let kind = r.kind.to_ascii_lowercase();
        let names = [
            r.resource.clone(),
            r.key(),
            kind.clone(),
            if r.group.is_empty() {
                kind
            } else {
                format!("{kind}.{}", r.group)
            },
        ];
        names.iter().any(|n| self.glob.is_match(n))
    }

    /// Named exactly (not through a wildcard).
    fn names(&self, r: &ResourceType) -> bool {
        self.text == r.resource || self.text == r.key()
    }
}

fn globs(patterns: &[String], what: &str) -> Result<GlobSet, KubeError> {
    glob_set(patterns).map_err(|bad| {
        KubeError::InvalidInput(match bad.pattern {
            Some(p) => format!("bad {what} pattern {p:?}: {}", bad.error),
            None => format!("bad {what} patterns: {}", bad.error),
        })
    })
}

/// A glob that does not compile: the pattern (none: the set as a whole
/// failed) and why. Callers word the message for their field.
pub(crate) struct BadGlob<'a> {
    pub(crate) pattern: Option<&'a str>,
    pub(crate) error: globset::Error,
}

/// One matcher for all of `patterns` (the scope's namespace globs, a
/// restore modifier's namespace and name globs).
pub(crate) fn glob_set(patterns: &[String]) -> Result<GlobSet, BadGlob<'_>> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(Glob::new(p).map_err(|error| BadGlob {
            pattern: Some(p),
            error,
        })?);
    }
    b.build().map_err(|error| BadGlob {
        pattern: None,
        error,
    })
}

impl ScopeFilter {
    pub fn new(scope: Scope) -> Result<Self, KubeError> {
        let include_ns = if scope.include_namespaces.is_empty()
            || scope.include_namespaces.iter().any(|p| p == "*")
        {
            None
        } else {
            Some(globs(&scope.include_namespaces, "namespace")?)
        };
        let exclude_ns = globs(&scope.exclude_namespaces, "namespace")?;
        let include_res = if scope.include_resources.is_empty() {
            None
        } else {
            Some(
                scope
                    .include_resources
                    .iter()
                    .map(|p| Pattern::new(p))
                    .collect::<Result<_, _>>()?,
            )
        };
        let exclude_res = scope
            .exclude_resources
            .iter()
            .map(|p| Pattern::new(p))
            .collect::<Result<_, _>>()?;
        Ok(ScopeFilter {
            scope,
            include_ns,
            exclude_ns,
            include_res,
            exclude_res,
        })
    }

    /// Whether objects in namespace `ns` are in scope.
    pub fn namespace(&self, ns: &str) -> bool {
        self.include_ns.as_ref().is_none_or(|g| g.is_match(ns)) && !self.exclude_ns.is_match(ns)
    }

    /// Whether the whole cluster is in scope (no namespace filter, no selector).
    pub fn whole_cluster(&self) -> bool {
        self.include_ns.is_none()
            && self.scope.exclude_namespaces.is_empty()
            && self.scope.selector.is_none()
    }

    /// Whether objects of `r` are taken. Default exclusions apply unless the
    /// resource is named exactly in the include list.
    pub fn resource(&self, r: &ResourceType) -> bool {
        if self.exclude_res.iter().any(|p| p.matches(r)) {
            return false;
        }
        let default_excluded = DEFAULT_EXCLUDED.iter().any(|(k, _)| *k == r.key());
        match &self.include_res {
            None => !default_excluded,
            Some(inc) => {
                if default_excluded {
                    inc.iter().any(|p| p.names(r))
                } else {
                    inc.iter().any(|p| p.matches(r))
                }
            }
        }
    }

    /// Whether every cluster-scoped object of a taken resource is taken
    /// (otherwise only dependencies of the selected objects are).
    pub fn all_cluster_scoped(&self) -> bool {
        match self.scope.cluster_resources {
            ClusterResources::True => true,
            ClusterResources::False => false,
            ClusterResources::Auto => self.whole_cluster(),
        }
    }

    /// Whether cluster-scoped dependencies come along.
    pub fn dependencies(&self) -> bool {
        self.scope.cluster_resources != ClusterResources::False
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rt(group: &str, resource: &str, kind: &str) -> ResourceType {
        ResourceType {
            group: group.into(),
            version: "v1".into(),
            resource: resource.into(),
            kind: kind.into(),
            namespaced: true,
        }
    }

    #[test]
    fn namespace_globs() {
        let f = ScopeFilter::new(Scope {
            include_namespaces: vec!["shop-*".into(), "payments".into()],
            exclude_namespaces: vec!["shop-test".into()],
            ..Default::default()
        })
        .unwrap();
        assert!(f.namespace("shop-web"));
        assert!(f.namespace("payments"));
        assert!(!f.namespace("shop-test"));
        assert!(!f.namespace("kube-system"));
        assert!(!f.whole_cluster());
        assert!(!f.all_cluster_scoped());
        assert!(f.dependencies());
        let all = ScopeFilter::new(Scope::default()).unwrap();
        assert!(all.namespace("anything") && all.whole_cluster() && all.all_cluster_scoped());
    }

    #[test]
    fn resource_patterns_and_default_exclusions() {
        let deploy = rt("apps", "deployments", "Deployment");
        let events = rt("", "events", "Event");
        let widgets = rt("fixtures.example.com", "widgets", "Widget");
        let all = ScopeFilter::new(Scope::default()).unwrap();
        assert!(all.resource(&deploy) && all.resource(&widgets));
        assert!(!all.resource(&events), "events are excluded by default");

        for p in [
            "deployments",
            "deployments.apps",
            "Deployment",
            "deployment.apps",
            "deploy*",
        ] {
            let f = ScopeFilter::new(Scope {
                include_resources: vec![p.into()],
                ..Default::default()
            })
            .unwrap();
            assert!(f.resource(&deploy), "{p}");
            assert!(!f.resource(&widgets), "{p}");
        }
        let glob = ScopeFilter::new(Scope {
            include_resources: vec!["*".into()],
            exclude_resources: vec!["*.example.com".into()],
            ..Default::default()
        })
        .unwrap();
        assert!(glob.resource(&deploy) && !glob.resource(&widgets));
        assert!(
            !glob.resource(&events),
            "a wildcard does not bring back default exclusions"
        );
        let named = ScopeFilter::new(Scope {
            include_resources: vec!["events".into()],
            ..Default::default()
        })
        .unwrap();
        assert!(named.resource(&events));
    }

    #[test]
    fn bad_patterns_are_named() {
        let e = ScopeFilter::new(Scope {
            include_namespaces: vec!["shop-[".into()],
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("shop-["), "{e}");
        assert!("sometimes".parse::<ClusterResources>().is_err());
    }

    #[test]
    fn cluster_owned_objects_are_left_out() {
        let cm = rt("", "configmaps", "ConfigMap");
        let secret = rt("", "secrets", "Secret");
        assert!(excluded_object(
            &cm,
            &json!({"metadata": {"name": "kube-root-ca.crt", "namespace": "a"}})
        )
        .is_some());
        assert!(
            excluded_object(&cm, &json!({"metadata": {"name": "app", "namespace": "a"}})).is_none()
        );
        assert!(excluded_object(
            &secret,
            &json!({"metadata": {"name": "t"}, "type": "kubernetes.io/service-account-token"})
        )
        .is_some());
        assert!(excluded_object(
            &secret,
            &json!({"metadata": {"name": "t"}, "type": "Opaque"})
        )
        .is_none());
        let vs = ResourceType {
            group: "snapshot.storage.k8s.io".into(),
            ..rt("", "volumesnapshots", "VolumeSnapshot")
        };
        let ours = json!({"metadata": {"name": "lifeboat-data-1", "namespace": "a",
            "labels": {"app.kubernetes.io/managed-by": "lifeboat"}}});
        assert!(excluded_object(&vs, &ours).is_some());
        let users = json!({"metadata": {"name": "before-upgrade", "namespace": "a"}});
        assert!(excluded_object(&vs, &users).is_none());
        let vgs = ResourceType {
            group: "groupsnapshot.storage.k8s.io".into(),
            ..rt("", "volumegroupsnapshots", "VolumeGroupSnapshot")
        };
        assert!(excluded_object(&vgs, &ours).is_some());
        assert!(excluded_object(&vgs, &users).is_none());
        // A mover Job's parts; a claim that merely says Lifeboat manages it stays.
        let pvc = rt("", "persistentvolumeclaims", "PersistentVolumeClaim");
        let staging = json!({"metadata": {"name": "lifeboat-backup-1", "namespace": "a",
            "labels": {"app.kubernetes.io/managed-by": "lifeboat", "lifeboat.dev/mover": "backup"}}});
        assert!(excluded_object(&pvc, &staging).is_some());
        assert!(excluded_object(&pvc, &ours).is_none());
    }
}
