//! What a cluster serves: every group/version/resource that can be listed
//! and created, at the preferred version of its group.

use crate::{Cluster, KubeError, ResourceType};
use kube::discovery::{verbs, ApiCapabilities, Discovery, Scope};
use std::collections::BTreeSet;

/// A served resource and what can be done with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedResource {
    pub resource: ResourceType,
    /// Whether the resource has a `status` subresource (status is then written
    /// separately from the object).
    pub has_status: bool,
}

/// Discover every resource of `cluster` that supports get, list and create.
///
/// Each group contributes its preferred version; a resource that only exists
/// in another version of its group is taken at its most stable version, so
/// nothing the server serves is missed.
#[tracing::instrument(skip_all, fields(server = %cluster.server))]
pub async fn discover(cluster: &Cluster) -> Result<Vec<ServedResource>, KubeError> {
    // Aggregated discovery is two requests instead of one per group version;
    // servers older than 1.26 do not have it.
    let discovery = match Discovery::new(cluster.client.clone())
        .run_aggregated()
        .await
    {
        Ok(d) => d,
        Err(e) => {
            tracing::debug!(error = %e, "aggregated discovery failed; discovering per group");
            Discovery::new(cluster.client.clone())
                .run()
                .await
                .map_err(|e| cluster.err("API discovery", e))?
        }
    };
    let mut out = Vec::new();
    for group in discovery.groups() {
        let mut seen = BTreeSet::new();
        let preferred = group.recommended_resources();
        let rest = group.resources_by_stability();
        for (ar, caps) in preferred.into_iter().chain(rest) {
            if !seen.insert(ar.plural.clone()) || !usable(&caps) {
                continue;
            }
            out.push(ServedResource {
                has_status: caps.subresources.iter().any(|(s, _)| s.plural == "status"),
                resource: ResourceType {
                    group: ar.group,
                    version: ar.version,
                    resource: ar.plural,
                    kind: ar.kind,
                    namespaced: caps.scope == Scope::Namespaced,
                },
            });
        }
    }
    out.sort_by(|a, b| a.resource.cmp(&b.resource));
    tracing::info!(resources = out.len(), "discovered");
    Ok(out)
}

fn usable(caps: &ApiCapabilities) -> bool {
    [verbs::GET, verbs::LIST, verbs::CREATE]
        .iter()
        .all(|v| caps.supports_operation(v))
}
