use super::*;
use serde_json::json;

fn rt(group: &str, kind: &str) -> ResourceType {
    ResourceType {
        group: group.into(),
        version: "v1".into(),
        resource: format!("{}s", kind.to_lowercase()),
        kind: kind.into(),
        namespaced: true,
    }
}

fn rules(doc: Value) -> Result<Modifiers, ModifierError> {
    let doc: ModifierDocument =
        serde_json::from_value(doc).map_err(|e| ModifierError(e.to_string()))?;
    Modifiers::new(&doc)
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"tier": "front"}},
        "spec": {
            "replicas": 3,
            "template": {"spec": {
                "initContainers": [{"name": "migrate", "image": "registry.example.com/shop/migrate:7"}],
                "containers": [
                    {"name": "app", "image": "registry.example.com/shop/web:2"},
                    {"name": "proxy", "image": "envoyproxy/envoy:v1.31"},
                    {"name": "cache", "image": "redis:7"}
                ]
            }}
        }
    })
}

/// Applies `m` to `obj` as a Deployment `shop/web` labelled `tier=front`.
fn apply(m: &Modifiers, kind: (&str, &str), obj: &mut Value) -> Result<Vec<Applied>, RuleFailure> {
    let resource = rt(kind.0, kind.1);
    let labels = obj
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned();
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .map(str::to_string);
    let source = Source {
        resource: &resource,
        namespace: ns.as_deref(),
        name: &name,
        labels: labels.as_ref(),
    };
    m.apply(source, obj)
}

#[test]
fn image_registry_moves_every_container_of_the_template() {
    let m = rules(json!({"version": 1, "rules": [{
        "name": "mirror",
        "image_registry": {"from": "registry.example.com", "to": "mirror.dr.example.com:5000"}
    }]}))
    .unwrap();
    let mut d = deployment();
    let applied = apply(&m, ("apps", "Deployment"), &mut d).unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "mirror.dr.example.com:5000/shop/web:2"
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["initContainers"][0]["image"],
        "mirror.dr.example.com:5000/shop/migrate:7"
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][1]["image"],
        "envoyproxy/envoy:v1.31"
    );
    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0].changes.len(), 2, "{:?}", applied[0].changes);
    assert!(
        applied[0].changes[0].contains("\"migrate\""),
        "{:?}",
        applied[0].changes
    );
}

#[test]
fn docker_hub_stands_for_images_named_without_a_registry() {
    let r = RegistryRewrite::new(&RegistrySpec {
        from: "docker.io".into(),
        to: "mirror.example.com/hub".into(),
    })
    .unwrap();
    assert_eq!(
        r.rewrite("redis:7").as_deref(),
        Some("mirror.example.com/hub/library/redis:7")
    );
    assert_eq!(
        r.rewrite("envoyproxy/envoy:v1.31").as_deref(),
        Some("mirror.example.com/hub/envoyproxy/envoy:v1.31")
    );
    assert_eq!(
        r.rewrite("docker.io/library/redis@sha256:ab").as_deref(),
        Some("mirror.example.com/hub/library/redis@sha256:ab")
    );
    assert_eq!(r.rewrite("localhost:5000/app:1"), None);
    assert_eq!(r.rewrite("quay.io/team/app:1"), None);
    // A prefix of a host is not the host.
    let r = RegistryRewrite::new(&RegistrySpec {
        from: "registry.example.com".into(),
        to: "m.example.com".into(),
    })
    .unwrap();
    assert_eq!(r.rewrite("registry.example.com.evil.io/app:1"), None);
}

#[test]
fn image_registry_reaches_pods_and_cron_jobs_too() {
    let m = rules(json!({"version": 1, "rules": [{"name": "hub", "image_registry": {"from": "docker.io", "to": "m.example.com"}}]})).unwrap();
    let mut pod = json!({"metadata": {"name": "p", "namespace": "shop"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    apply(&m, ("", "Pod"), &mut pod).unwrap();
    assert_eq!(
        pod["spec"]["containers"][0]["image"],
        "m.example.com/library/busybox"
    );
    let mut cron = json!({"metadata": {"name": "nightly", "namespace": "shop"}, "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}}}}});
    apply(&m, ("batch", "CronJob"), &mut cron).unwrap();
    assert_eq!(
        cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"],
        "m.example.com/library/busybox:1"
    );
}

#[test]
fn json_patch_changes_replicas_and_says_so() {
    let m = rules(json!({"version": 1, "rules": [{
        "name": "one-replica",
        "match": {"group": "apps", "kind": "Deployment"},
        "json_patch": [{"op": "replace", "path": "/spec/replicas", "value": 1}]
    }]}))
    .unwrap();
    let mut d = deployment();
    let applied = apply(&m, ("apps", "Deployment"), &mut d).unwrap();
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(
        applied,
        vec![Applied {
            rule: "one-replica".into(),
            changes: vec!["replace /spec/replicas".into()]
        }]
    );
    // Another kind is not selected.
    let mut cm = json!({"metadata": {"name": "web", "namespace": "shop"}, "data": {}});
    assert!(apply(&m, ("", "ConfigMap"), &mut cm).unwrap().is_empty());
}

#[test]
fn a_failing_test_operation_means_the_rule_does_not_concern_the_object() {
    let m = rules(json!({"version": 1, "rules": [{
        "name": "only-three",
        "json_patch": [
            {"op": "test", "path": "/spec/replicas", "value": 5},
            {"op": "replace", "path": "/spec/replicas", "value": 1}
        ]
    }]}))
    .unwrap();
    let mut d = deployment();
    let applied = apply(&m, ("apps", "Deployment"), &mut d).unwrap();
    assert_eq!(d, deployment());
    assert_eq!(
        applied,
        vec![Applied {
            rule: "only-three".into(),
            changes: vec![]
        }]
    );
}

#[test]
fn a_patch_that_cannot_apply_fails_the_object_and_names_the_rule() {
    let m = rules(json!({"version": 1, "rules": [{
        "name": "ingress-host",
        "json_patch": [{"op": "replace", "path": "/spec/rules/0/host", "value": "dr.example.com"}]
    }]}))
    .unwrap();
    let mut d = deployment();
    let err = apply(&m, ("apps", "Deployment"), &mut d).unwrap_err();
    assert_eq!(err.rule, "ingress-host");
    assert!(
        err.reason
            .starts_with("json_patch[0] (replace /spec/rules/0/host)"),
        "{}",
        err.reason
    );
    // All or nothing: nothing of the failed patch is left behind.
    assert_eq!(d, deployment());
}

#[test]
fn merge_patch_sets_node_selectors_and_lists_the_fields() {
    let m = rules(json!({"version": 1, "rules": [{
        "name": "dr-nodes",
        "match": {"namespaces": ["sh*"], "labels": {"tier": "front"}},
        "merge_patch": {"spec": {"template": {"spec": {"nodeSelector": {"topology.kubernetes.io/zone": "eu-west-1b"}}}},
                        "metadata": {"annotations": {"lifeboat.dev/dr": "true"}}}
    }]}))
    .unwrap();
    let mut d = deployment();
    let applied = apply(&m, ("apps", "Deployment"), &mut d).unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["nodeSelector"]["topology.kubernetes.io/zone"],
        "eu-west-1b"
    );
    assert_eq!(
        applied[0].changes,
        vec![
            "merge patch: metadata.annotations",
            "merge patch: spec.template.spec.nodeSelector"
        ]
    );
}

#[test]
fn conditions_all_hold_on_the_object_as_backed_up() {
    let m = rules(json!({"version": 1, "rules": [{
        "name": "r",
        "match": {"namespaces": ["shop"], "names": ["we*"], "labels": {"tier": "front"}, "kind": "Deployment"},
        "json_patch": [{"op": "replace", "path": "/spec/replicas", "value": 0}]
    }]}))
    .unwrap();
    for (ns, name, tier, selected) in [
        ("shop", "web", "front", true),
        ("other", "web", "front", false),
        ("shop", "api", "front", false),
        ("shop", "web", "back", false),
    ] {
        let mut d = deployment();
        d["metadata"]["namespace"] = json!(ns);
        d["metadata"]["name"] = json!(name);
        d["metadata"]["labels"]["tier"] = json!(tier);
        let applied = apply(&m, ("apps", "Deployment"), &mut d).unwrap();
        assert_eq!(!applied.is_empty(), selected, "{ns}/{name} tier={tier}");
    }
    // A cluster-scoped object never matches a namespace condition.
    let mut pv = json!({"metadata": {"name": "web"}, "spec": {"replicas": 1}});
    let resource = rt("", "PersistentVolume");
    let source = Source {
        resource: &resource,
        namespace: None,
        name: "web",
        labels: None,
    };
    assert!(m.apply(source, &mut pv).unwrap().is_empty());
}

#[test]
fn a_document_that_does_not_hold_together_is_refused_naming_rule_and_field() {
    let cases = [
        (
            json!({"version": 2, "rules": []}),
            "version 2 is not one this Lifeboat understands",
        ),
        (
            json!({"version": 1, "rules": [{"name": "a"}]}),
            "rules[0] (\"a\"): no action",
        ),
        (
            json!({"version": 1, "rules": [{"name": "a", "json_patch": [{"op": "rplace", "path": "/x", "value": 1}]}]}),
            "rules[0] (\"a\"): json_patch[0]: unknown variant `rplace`",
        ),
        (
            json!({"version": 1, "rules": [{"name": "a", "json_patch": [{"op": "replace", "path": "x", "value": 1}]}]}),
            "rules[0] (\"a\"): json_patch[0]:",
        ),
        (
            json!({"version": 1, "rules": [{"name": "a", "match": {"names": ["[web"]}, "merge_patch": {}}]}),
            "rules[0] (\"a\"): match.names: \"[web\" is not a glob",
        ),
        (
            json!({"version": 1, "rules": [{"name": "a", "merge_patch": [1]}]}),
            "merge_patch must be an object",
        ),
        (
            json!({"version": 1, "rules": [{"name": "a", "merge_patch": {}}, {"name": "a", "merge_patch": {}}]}),
            "rules[1] (\"a\"): another rule has the same name",
        ),
        (
            json!({"version": 1, "rules": [{"name": "a", "image_registry": {"from": "https://r.io", "to": "m.io"}}]}),
            "image_registry: `from` \"https://r.io\" is not a registry",
        ),
        (
            json!({"version": 1, "rules": [{"name": "a", "json_patch": []}]}),
            "json_patch: the list of operations is empty",
        ),
        (
            json!({"version": 1, "rules": [{"name": "", "merge_patch": {}}]}),
            "rules[0]: `name` is empty",
        ),
    ];
    for (doc, want) in cases {
        let err = rules(doc.clone()).unwrap_err().to_string();
        assert!(err.contains(want), "{doc}: got {err:?}, want {want:?}");
    }
    // Unknown fields are refused, so a misspelt one is not silently ignored.
    let err = serde_json::from_value::<ModifierDocument>(
        json!({"version": 1, "rules": [{"name": "a", "mege_patch": {}}]}),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("unknown field `mege_patch`"), "{err}");
}

#[test]
fn rules_apply_in_order_each_seeing_the_one_before() {
    let m = rules(json!({"version": 1, "rules": [
        {"name": "first", "json_patch": [{"op": "replace", "path": "/spec/replicas", "value": 2}]},
        {"name": "second", "json_patch": [
            {"op": "test", "path": "/spec/replicas", "value": 2},
            {"op": "add", "path": "/metadata/annotations", "value": {"seen": "2"}}
        ]}
    ]}))
    .unwrap();
    let mut d = deployment();
    let applied = apply(&m, ("apps", "Deployment"), &mut d).unwrap();
    assert_eq!(
        applied.iter().map(|a| a.rule.as_str()).collect::<Vec<_>>(),
        ["first", "second"]
    );
    assert_eq!(d["metadata"]["annotations"]["seen"], "2");
    assert_eq!(m.names().collect::<Vec<_>>(), ["first", "second"]);
}
