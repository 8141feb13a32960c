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

/// An aggregated API (an APIService backed by a Service) that the API
/// server does not serve right now: discovery leaves its resources out
/// without an error, so a backup would silently miss its objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnavailableApi {
    /// The APIService's name (`v1beta1.metrics.k8s.io`).
    pub name: String,
    pub group: String,
    pub version: String,
    /// Its Available condition's reason and message, or why there is none.
    pub why: String,
}

/// The APIServices whose `Available` condition is not `True`. Local ones
/// (no `spec.service`: served by the API server itself) are never counted.
pub async fn unavailable_apis(cluster: &Cluster) -> Result<Vec<UnavailableApi>, KubeError> {
    let apiservices = ResourceType {
        group: "apiregistration.k8s.io".into(),
        version: "v1".into(),
        resource: "apiservices".into(),
        kind: "APIService".into(),
        namespaced: false,
    };
    let items = crate::api::list(cluster, &apiservices, None).await?;
    Ok(items.iter().filter_map(unavailable).collect())
}

fn unavailable(item: &serde_json::Value) -> Option<UnavailableApi> {
    let spec = item.get("spec")?;
    if spec.get("service").is_none_or(serde_json::Value::is_null) {
        return None;
    }
    let available = item
        .pointer("/status/conditions")
        .and_then(serde_json::Value::as_array)
        .and_then(|c| c.iter().find(|c| c["type"] == "Available"));
    let why = match available {
        Some(c) if c["status"] == "True" => return None,
        Some(c) => format!(
            "{}: {}",
            c["reason"].as_str().unwrap_or("not available"),
            c["message"].as_str().unwrap_or("")
        ),
        None => "no Available condition yet".into(),
    };
    let text = |k: &str| {
        spec.get(k)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    Some(UnavailableApi {
        name: item
            .pointer("/metadata/name")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_string(),
        group: text("group"),
        version: text("version"),
        why,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn apiservice(service: bool, condition: Option<(&str, &str)>) -> serde_json::Value {
        let mut item = json!({"metadata": {"name": "v1beta1.metrics.k8s.io"},
            "spec": {"group": "metrics.k8s.io", "version": "v1beta1"}});
        if service {
            item["spec"]["service"] = json!({"namespace": "kube-system", "name": "metrics-server"});
        }
        if let Some((status, reason)) = condition {
            item["status"] = json!({"conditions": [{"type": "Available", "status": status,
                "reason": reason, "message": "endpoints for service/metrics-server have no addresses"}]});
        }
        item
    }

    #[test]
    fn an_aggregated_api_that_is_not_available_is_named_with_the_reason() {
        let u = unavailable(&apiservice(true, Some(("False", "MissingEndpoints")))).unwrap();
        assert_eq!(
            (u.name.as_str(), u.group.as_str(), u.version.as_str()),
            ("v1beta1.metrics.k8s.io", "metrics.k8s.io", "v1beta1")
        );
        assert!(
            u.why.starts_with("MissingEndpoints: endpoints for"),
            "{}",
            u.why
        );
        assert!(unavailable(&apiservice(true, None)).is_some());
        assert!(unavailable(&apiservice(true, Some(("True", "Passed")))).is_none());
        // Local APIServices are the API server's own groups.
        assert!(unavailable(&apiservice(false, Some(("False", "x")))).is_none());
    }
}
