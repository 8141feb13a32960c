//! How mover Jobs run (`LIFEBOAT_MOVER_*`), and Lifeboat's own namespace,
//! where they run.

use crate::csi::MANAGED_LABEL;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Lifeboat's namespace when `LIFEBOAT_MOVER_NAMESPACE` does not name one.
pub const DEFAULT_NAMESPACE: &str = "lifeboat-system";

fn default_namespace() -> String {
    DEFAULT_NAMESPACE.into()
}

/// How mover Jobs run; from `LIFEBOAT_MOVER_*` in the environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoverSettings {
    /// The Lifeboat image (`LIFEBOAT_MOVER_IMAGE`).
    pub image: String,
    /// Lifeboat's own namespace (`LIFEBOAT_MOVER_NAMESPACE`, default
    /// `lifeboat-system`): every mover Job, its Secret and its staging
    /// claim are there, never in an application's namespace.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// A service account in that namespace for the pod
    /// (`LIFEBOAT_MOVER_SERVICE_ACCOUNT`): on EKS, one bound to an IAM role
    /// that may use the repository bucket.
    pub service_account: Option<String>,
    /// Memory request and limit (`LIFEBOAT_MOVER_MEMORY`, default 512Mi:
    /// a backup stays well under 256 MiB).
    pub memory: String,
    /// The Job's activeDeadlineSeconds (`LIFEBOAT_MOVER_DEADLINE`, default 6 h).
    pub deadline_secs: u64,
}

impl Default for MoverSettings {
    fn default() -> Self {
        MoverSettings {
            image: format!(
                "ghcr.io/lifeboat-dev/lifeboat:{}",
                env!("CARGO_PKG_VERSION")
            ),
            namespace: default_namespace(),
            service_account: None,
            memory: "512Mi".into(),
            deadline_secs: 6 * 3600,
        }
    }
}

impl MoverSettings {
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let d = MoverSettings::default();
        MoverSettings {
            image: var("LIFEBOAT_MOVER_IMAGE").unwrap_or(d.image),
            namespace: var("LIFEBOAT_MOVER_NAMESPACE").unwrap_or(d.namespace),
            service_account: var("LIFEBOAT_MOVER_SERVICE_ACCOUNT"),
            memory: var("LIFEBOAT_MOVER_MEMORY").unwrap_or(d.memory),
            deadline_secs: var("LIFEBOAT_MOVER_DEADLINE")
                .and_then(|v| v.parse().ok())
                .unwrap_or(d.deadline_secs),
        }
    }

    /// Why the namespace cannot be one, if it cannot: a DNS-1123 label.
    pub fn namespace_problem(&self) -> Option<String> {
        let ns = &self.namespace;
        let ok = !ns.is_empty()
            && ns.len() <= 63
            && ns
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !ns.starts_with('-')
            && !ns.ends_with('-');
        (!ok).then(|| {
            format!(
                "LIFEBOAT_MOVER_NAMESPACE {ns:?} is not a namespace name (lowercase letters, digits and '-', at most 63)"
            )
        })
    }

    /// The namespace as Lifeboat creates it when it is missing: Pod Security
    /// "baseline" enforced (what the mover's pod needs and no more).
    pub fn namespace_manifest(&self) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": self.namespace,
                "labels": {
                    MANAGED_LABEL: "lifeboat",
                    "pod-security.kubernetes.io/enforce": "baseline",
                },
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn movers_run_in_lifeboat_system_unless_told_otherwise() {
        let d = MoverSettings::default();
        assert_eq!(d.namespace, "lifeboat-system");
        assert_eq!(d.namespace_problem(), None);
        // Settings serialised before the namespace existed read back with it.
        let old = serde_json::json!({"image": "i", "service_account": null,
            "memory": "1Gi", "deadline_secs": 5});
        let s: MoverSettings = serde_json::from_value(old).unwrap();
        assert_eq!(s.namespace, "lifeboat-system");
        let ns = d.namespace_manifest();
        assert_eq!(ns["metadata"]["name"], "lifeboat-system");
        assert_eq!(
            ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
            "baseline"
        );
        for bad in ["", "Lifeboat", "a_b", "-a", &"x".repeat(64)] {
            let s = MoverSettings {
                namespace: bad.into(),
                ..MoverSettings::default()
            };
            assert!(s.namespace_problem().is_some(), "{bad:?}");
        }
    }
}
