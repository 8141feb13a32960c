//! `--namespace-map a=b`: every place an object names a namespace, so that
//! what lived in `a` lives in `b` and still finds its neighbours there.
//!
//! References to namespaces outside the map stay as they are. Namespaces
//! named inside free-form fields (container arguments, DNS names such as
//! `db.a.svc`) are not rewritten: Lifeboat cannot tell them from text.

use std::collections::BTreeMap;

use serde_json::Value;

use super::json::{self, FieldError};
use crate::ResourceType;

const RBAC: &str = "rbac.authorization.k8s.io";
const ADMISSION: &str = "admissionregistration.k8s.io";

pub(super) fn apply(
    resource: &ResourceType,
    obj: &mut Value,
    map: &BTreeMap<String, String>,
) -> Result<(), FieldError> {
    if map.is_empty() {
        return Ok(());
    }
    json::map_string(obj, "/metadata/namespace", map)?;
    if resource.is("", "Namespace") {
        json::map_string(obj, "/metadata/name", map)?;
    } else if resource.is("", "PersistentVolume") {
        // The claim the volume is pre-bound to (see `pv`) moves with it.
        json::map_string(obj, "/spec/claimRef/namespace", map)?;
    } else if resource.is(RBAC, "RoleBinding") || resource.is(RBAC, "ClusterRoleBinding") {
        // Only ServiceAccount subjects have a namespace; users and groups
        // are cluster-wide names.
        for i in 0..json::list_len(obj, "/subjects")? {
            json::map_string(obj, &format!("/subjects/{i}/namespace"), map)?;
        }
    } else if resource.is(ADMISSION, "ValidatingWebhookConfiguration")
        || resource.is(ADMISSION, "MutatingWebhookConfiguration")
    {
        // A webhook left pointing at the old namespace has no endpoint, and
        // with failurePolicy Fail it blocks every request it intercepts.
        for i in 0..json::list_len(obj, "/webhooks")? {
            json::map_string(
                obj,
                &format!("/webhooks/{i}/clientConfig/service/namespace"),
                map,
            )?;
        }
    } else if resource.is("apiextensions.k8s.io", "CustomResourceDefinition") {
        let service = "/spec/conversion/webhook/clientConfig/service/namespace";
        json::map_string(obj, service, map)?;
    } else if resource.is("apiregistration.k8s.io", "APIService") {
        json::map_string(obj, "/spec/service/namespace", map)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rt(group: &str, kind: &str) -> ResourceType {
        ResourceType::test(group, kind)
    }

    fn map() -> BTreeMap<String, String> {
        BTreeMap::from([("shop".to_string(), "shop-restored".to_string())])
    }

    #[test]
    fn namespaced_object_moves_and_others_stay() {
        let mut cm = json!({"metadata": {"name": "cfg", "namespace": "shop"}});
        apply(&rt("", "ConfigMap"), &mut cm, &map()).unwrap();
        assert_eq!(cm["metadata"]["namespace"], "shop-restored");

        let mut other = json!({"metadata": {"name": "cfg", "namespace": "billing"}});
        apply(&rt("", "ConfigMap"), &mut other, &map()).unwrap();
        assert_eq!(other["metadata"]["namespace"], "billing");
    }

    #[test]
    fn namespace_object_is_renamed() {
        let mut ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"team": "web"}}});
        apply(&rt("", "Namespace"), &mut ns, &map()).unwrap();
        assert_eq!(ns["metadata"]["name"], "shop-restored");
        assert!(ns["metadata"].get("namespace").is_none());

        // Only a Namespace's name is a namespace.
        let mut cm = json!({"metadata": {"name": "shop", "namespace": "billing"}});
        apply(&rt("", "ConfigMap"), &mut cm, &map()).unwrap();
        assert_eq!(cm["metadata"]["name"], "shop");
    }

    #[test]
    fn binding_subjects_follow_their_service_accounts() {
        let mut crb = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "shop-reader"},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "view"},
            "subjects": [
                {"kind": "ServiceAccount", "name": "web", "namespace": "shop"},
                {"kind": "ServiceAccount", "name": "ci", "namespace": "tools"},
                {"kind": "Group", "apiGroup": RBAC, "name": "shop"}
            ]
        });
        apply(&rt(RBAC, "ClusterRoleBinding"), &mut crb, &map()).unwrap();
        assert_eq!(crb["subjects"][0]["namespace"], "shop-restored");
        assert_eq!(crb["subjects"][1]["namespace"], "tools");
        assert_eq!(
            crb["subjects"][2],
            json!({"kind": "Group", "apiGroup": RBAC, "name": "shop"})
        );

        let mut rb = json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "subjects": [{"kind": "ServiceAccount", "name": "web", "namespace": "shop"}]
        });
        apply(&rt(RBAC, "RoleBinding"), &mut rb, &map()).unwrap();
        assert_eq!(rb["metadata"]["namespace"], "shop-restored");
        assert_eq!(rb["subjects"][0]["namespace"], "shop-restored");
    }

    #[test]
    fn volume_claim_ref_moves_with_the_claim() {
        let mut pv = json!({
            "metadata": {"name": "pvc-1"},
            "spec": {"claimRef": {"kind": "PersistentVolumeClaim", "namespace": "shop", "name": "data"}}
        });
        apply(&rt("", "PersistentVolume"), &mut pv, &map()).unwrap();
        assert_eq!(pv["spec"]["claimRef"]["namespace"], "shop-restored");
    }

    #[test]
    fn webhook_services_follow() {
        let mut hook = json!({
            "metadata": {"name": "shop-defaults"},
            "webhooks": [
                {"name": "defaults.shop.example.com", "clientConfig": {"service": {"namespace": "shop", "name": "hooks", "path": "/mutate"}}},
                {"name": "ext.example.com", "clientConfig": {"url": "https://hooks.example.com/"}}
            ]
        });
        apply(
            &rt(ADMISSION, "MutatingWebhookConfiguration"),
            &mut hook,
            &map(),
        )
        .unwrap();
        assert_eq!(
            hook["webhooks"][0]["clientConfig"]["service"]["namespace"],
            "shop-restored"
        );
        assert_eq!(
            hook["webhooks"][1]["clientConfig"],
            json!({"url": "https://hooks.example.com/"})
        );
    }

    #[test]
    fn malformed_subject_names_the_field() {
        let mut rb = json!({"metadata": {"name": "web"}, "subjects": [{"kind": "ServiceAccount", "namespace": 3}]});
        let err = apply(&rt(RBAC, "RoleBinding"), &mut rb, &map()).unwrap_err();
        assert_eq!(err.field, "subjects[0].namespace");
    }
}
