//! Services: addresses and ports the source cluster allocated.
//!
//! Cluster IPs come from the target's service CIDR and node ports from its
//! node-port range; the backed-up values are likely outside them or already
//! taken, and the create would fail. They are kept only when the user asks
//! (e.g. a restore into a rebuilt cluster with the same ranges, where clients
//! have the addresses configured).

use serde_json::Value;

use super::json::{self, FieldError};
use super::Transform;

/// `clusterIP: None` marks a headless Service; dropping it would give the
/// Service an address and change its DNS from per-pod records to one VIP.
const HEADLESS: &str = "None";

pub(super) fn apply(obj: &mut Value, transform: &Transform) -> Result<(), FieldError> {
    // An ExternalName Service is a DNS alias: no cluster IP, no node ports.
    if json::string(obj, "/spec/type")? == Some("ExternalName") {
        return Ok(());
    }
    if !transform.keep_cluster_ips && !is_headless(obj)? {
        json::remove(obj, "/spec/clusterIP");
        json::remove(obj, "/spec/clusterIPs");
    }
    if !transform.keep_node_ports {
        for i in 0..json::list_len(obj, "/spec/ports")? {
            if let Some(port) = json::object_mut(obj, &format!("/spec/ports/{i}"))? {
                port.remove("nodePort");
            }
        }
        json::remove(obj, "/spec/healthCheckNodePort");
    }
    Ok(())
}

fn is_headless(obj: &Value) -> Result<bool, FieldError> {
    if json::string(obj, "/spec/clusterIP")? == Some(HEADLESS) {
        return Ok(true);
    }
    for i in 0..json::list_len(obj, "/spec/clusterIPs")? {
        if json::string(obj, &format!("/spec/clusterIPs/{i}"))? == Some(HEADLESS) {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn load_balancer() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {
                "type": "LoadBalancer",
                "clusterIP": "10.96.14.7",
                "clusterIPs": ["10.96.14.7"],
                "ipFamilies": ["IPv4"],
                "externalTrafficPolicy": "Local",
                "healthCheckNodePort": 31577,
                "ports": [
                    {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP", "nodePort": 30080},
                    {"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP", "nodePort": 30443}
                ],
                "selector": {"app": "web"}
            }
        })
    }

    #[test]
    fn allocated_ips_and_ports_are_dropped_by_default() {
        let mut svc = load_balancer();
        apply(&mut svc, &Transform::default()).unwrap();
        let spec = &svc["spec"];
        assert!(spec.get("clusterIP").is_none());
        assert!(spec.get("clusterIPs").is_none());
        assert!(spec.get("healthCheckNodePort").is_none());
        assert!(spec["ports"][0].get("nodePort").is_none());
        assert!(spec["ports"][1].get("nodePort").is_none());
        assert_eq!(spec["ports"][1]["port"], 443);
        assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
        assert_eq!(spec["selector"], json!({"app": "web"}));
    }

    #[test]
    fn kept_on_request() {
        let transform = Transform {
            keep_cluster_ips: true,
            keep_node_ports: true,
            ..Transform::default()
        };
        let mut svc = load_balancer();
        apply(&mut svc, &transform).unwrap();
        assert_eq!(svc, load_balancer());

        let only_ips = Transform {
            keep_cluster_ips: true,
            ..Transform::default()
        };
        let mut svc = load_balancer();
        apply(&mut svc, &only_ips).unwrap();
        assert_eq!(svc["spec"]["clusterIP"], "10.96.14.7");
        assert!(svc["spec"]["ports"][0].get("nodePort").is_none());
    }

    #[test]
    fn headless_stays_headless() {
        let headless = json!({
            "metadata": {"name": "pg", "namespace": "db"},
            "spec": {
                "clusterIP": "None",
                "clusterIPs": ["None"],
                "ports": [{"port": 5432}],
                "selector": {"app": "pg"}
            }
        });
        let mut svc = headless.clone();
        apply(&mut svc, &Transform::default()).unwrap();
        assert_eq!(svc, headless);

        // clusterIPs alone also marks it headless.
        let mut svc = json!({"spec": {"clusterIPs": ["None"]}});
        apply(&mut svc, &Transform::default()).unwrap();
        assert_eq!(svc["spec"]["clusterIPs"], json!(["None"]));
    }

    #[test]
    fn external_name_is_left_alone() {
        let alias = json!({
            "metadata": {"name": "db", "namespace": "shop"},
            "spec": {"type": "ExternalName", "externalName": "db.example.com", "clusterIP": "", "ports": [{"port": 5432, "nodePort": 1}]}
        });
        let mut svc = alias.clone();
        apply(&mut svc, &Transform::default()).unwrap();
        assert_eq!(svc, alias);
    }

    #[test]
    fn malformed_ports_name_the_field() {
        let mut svc = json!({"spec": {"clusterIP": "10.0.0.1", "ports": {"port": 80}}});
        let err = apply(&mut svc, &Transform::default()).unwrap_err();
        assert_eq!(err.field, "spec.ports");
        let mut svc = json!({"spec": {"ports": [80]}});
        let err = apply(&mut svc, &Transform::default()).unwrap_err();
        assert_eq!(err.field, "spec.ports[0]");
        assert_eq!(err.found, "a number");
    }
}
