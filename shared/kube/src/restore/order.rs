//! The order in which a restore creates objects: what others depend on
//! comes first, and what calls into the cluster (webhooks) comes last.

use crate::ResourceType;

/// Restore phases, in order. Objects of one phase are created concurrently;
/// a phase starts when the one before it is done.
pub const PHASES: &[(&str, &[&str])] = &[
    // Custom resources cannot be created before their CRD is Established.
    (
        "custom resource definitions",
        &["customresourcedefinitions.apiextensions.k8s.io"],
    ),
    ("namespaces", &["namespaces"]),
    (
        "storage",
        &[
            "storageclasses.storage.k8s.io",
            "volumesnapshotclasses.snapshot.storage.k8s.io",
            "volumegroupsnapshotclasses.groupsnapshot.storage.k8s.io",
            "csidrivers.storage.k8s.io",
        ],
    ),
    (
        "volume snapshots",
        &[
            "volumesnapshotcontents.snapshot.storage.k8s.io",
            "volumesnapshots.snapshot.storage.k8s.io",
        ],
    ),
    // A PersistentVolume with a claimRef waits for its claim; a claim with a
    // volumeName binds to it.
    ("persistent volumes", &["persistentvolumes"]),
    ("persistent volume claims", &["persistentvolumeclaims"]),
    ("service accounts", &["serviceaccounts"]),
    (
        "roles",
        &[
            "clusterroles.rbac.authorization.k8s.io",
            "roles.rbac.authorization.k8s.io",
        ],
    ),
    (
        "role bindings",
        &[
            "clusterrolebindings.rbac.authorization.k8s.io",
            "rolebindings.rbac.authorization.k8s.io",
        ],
    ),
    ("priority classes", &["priorityclasses.scheduling.k8s.io"]),
    ("configuration", &["secrets", "configmaps", "limitranges"]),
    (
        "services",
        &["ingressclasses.networking.k8s.io", "services"],
    ),
    // Everything not named: workloads, ingresses, policies, custom resources.
    ("workloads and the rest", &[]),
    // Admission control goes last, so that it cannot block the restore of
    // what it guards: webhooks and API services call a Service (only once it
    // exists; a webhook that is not serving yet would refuse everything), and
    // a new ResourceQuota refuses every create it covers until the quota
    // controller has counted them, minutes for custom resources.
    (
        "admission: webhooks, policies, quotas, API services",
        &[
            "resourcequotas",
            "validatingwebhookconfigurations.admissionregistration.k8s.io",
            "mutatingwebhookconfigurations.admissionregistration.k8s.io",
            "validatingadmissionpolicies.admissionregistration.k8s.io",
            "validatingadmissionpolicybindings.admissionregistration.k8s.io",
            "mutatingadmissionpolicies.admissionregistration.k8s.io",
            "mutatingadmissionpolicybindings.admissionregistration.k8s.io",
            "apiservices.apiregistration.k8s.io",
        ],
    ),
];

/// The index into [`PHASES`] of the phase that restores `r`.
pub fn phase_of(r: &ResourceType) -> usize {
    let key = r.key();
    PHASES
        .iter()
        .position(|(_, keys)| keys.contains(&key.as_str()))
        .or_else(|| PHASES.iter().position(|(_, keys)| keys.is_empty()))
        .unwrap_or(PHASES.len())
}

/// The part of the restore to run. A workflow restores the foundations
/// first, then volumes (which need namespaces and storage classes), then the
/// workloads that mount them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Every phase.
    #[default]
    All,
    /// CRDs, namespaces, storage classes, service accounts, RBAC, priority
    /// classes, Secrets and ConfigMaps.
    Foundation,
    /// Everything else: volume snapshots, volumes and claims, services,
    /// workloads, custom resources, admission control.
    Workloads,
}

/// The phases of [`Stage::Foundation`].
const FOUNDATION: &[&str] = &[
    "custom resource definitions",
    "namespaces",
    "storage",
    "service accounts",
    "roles",
    "role bindings",
    "priority classes",
    "configuration",
];

impl Stage {
    /// Whether this stage restores objects of phase `phase` (an index into [`PHASES`]).
    pub fn includes(self, phase: usize) -> bool {
        let foundation = PHASES
            .get(phase)
            .is_some_and(|(name, _)| FOUNDATION.contains(name));
        match self {
            Stage::All => true,
            Stage::Foundation => foundation,
            Stage::Workloads => !foundation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(group: &str, resource: &str) -> ResourceType {
        ResourceType {
            group: group.into(),
            version: "v1".into(),
            resource: resource.into(),
            kind: String::new(),
            namespaced: true,
        }
    }

    #[test]
    fn foundations_first_webhooks_last() {
        let order = [
            rt("apiextensions.k8s.io", "customresourcedefinitions"),
            rt("", "namespaces"),
            rt("storage.k8s.io", "storageclasses"),
            rt("snapshot.storage.k8s.io", "volumesnapshots"),
            rt("", "persistentvolumes"),
            rt("", "persistentvolumeclaims"),
            rt("", "serviceaccounts"),
            rt("rbac.authorization.k8s.io", "roles"),
            rt("rbac.authorization.k8s.io", "rolebindings"),
            rt("", "secrets"),
            rt("", "services"),
            rt("apps", "deployments"),
            rt(
                "admissionregistration.k8s.io",
                "validatingwebhookconfigurations",
            ),
        ];
        let phases: Vec<usize> = order.iter().map(phase_of).collect();
        let mut sorted = phases.clone();
        sorted.sort();
        assert_eq!(phases, sorted, "{phases:?}");
        assert!(phases.windows(2).all(|w| w[0] < w[1]), "{phases:?}");
        assert_eq!(
            phase_of(&rt("", "resourcequotas")),
            PHASES.len() - 1,
            "quotas go last: they refuse creates until counted"
        );
        let foundation: Vec<bool> = order
            .iter()
            .map(|r| Stage::Foundation.includes(phase_of(r)))
            .collect();
        assert_eq!(
            foundation,
            [true, true, true, false, false, false, true, true, true, true, false, false, false]
        );
        for r in &order {
            let p = phase_of(r);
            assert_ne!(Stage::Foundation.includes(p), Stage::Workloads.includes(p));
            assert!(Stage::All.includes(p));
        }
        assert!(FOUNDATION
            .iter()
            .all(|f| PHASES.iter().any(|(name, _)| name == f)));
        assert_eq!(
            phase_of(&rt("fixtures.example.com", "widgets")),
            phase_of(&rt("apps", "deployments")),
            "custom resources go with the workloads"
        );
    }
}
