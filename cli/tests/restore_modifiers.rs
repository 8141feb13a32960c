//! `lifeboat restore --modifiers` and `--storage-class-map` against the real
//! local primary cluster: rules change the objects on the way in and the
//! report says what each changed; a rule that selects nothing is reported;
//! bad rules and a class the cluster lacks are refused before anything is
//! written.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::workflow::kubectl;
use common::{kubeconfig, Env};
use serde_json::Value;

const SOURCE_NAMESPACES: &str = "shop,payments";

fn namespace_exists(name: &str) -> bool {
    kubectl("primary", &["get", "namespace", name, "-o", "name"], None).0
}

/// Delete the namespaces; with `wait`, until they are gone (a namespace
/// still terminating from an earlier run would look restored). The
/// fixture's objects carry a finalizer nobody serves: taken off first.
fn delete_namespaces(names: &[&str], wait: bool) {
    let wait = if wait { "--wait=true" } else { "--wait=false" };
    for n in names {
        for kind in ["configmaps", "secrets", "widgets.fixtures.lifeboat.dev"] {
            let (_, objects) = kubectl("primary", &["get", kind, "-n", n, "-o", "name"], None);
            for o in objects.lines().filter(|l| l.contains('/')) {
                kubectl(
                    "primary",
                    &[
                        "patch",
                        o,
                        "-n",
                        n,
                        "--type=merge",
                        "-p",
                        r#"{"metadata":{"finalizers":null}}"#,
                    ],
                    None,
                );
            }
        }
        kubectl(
            "primary",
            &[
                "delete",
                "namespace",
                n,
                "--ignore-not-found",
                wait,
                "--timeout=180s",
            ],
            None,
        );
    }
}

const GOOD_RULES: &str = r#"
# Rules a DR copy of the shop needs: the DR region's registry mirror, no
# replicas until traffic moves, an annotation on claims, and one rule whose
# kind is in no backup (reported as selecting nothing).
version: 1
rules:
  - name: mirror
    image_registry: {from: registry.k8s.io, to: mirror.dr.example.com/k8s}
  - name: parked
    match: {group: apps, kind: Deployment, namespaces: [shop, payments]}
    json_patch:
      - {op: test, path: /metadata/namespace, value: shop-mod}
      - {op: replace, path: /spec/replicas, value: 0}
  - name: claims-marked
    match: {kind: PersistentVolumeClaim}
    merge_patch:
      metadata:
        annotations: {lifeboat.dev/migrated: "true"}
  - name: nothing
    match: {kind: NoSuchKind}
    merge_patch: {metadata: {labels: {x: y}}}
"#;

#[test]
fn modifiers_and_class_map_change_objects_and_the_report_says_what() {
    if common::skip_clusters() {
        return;
    }
    common::fixture("apply", "primary");
    let targets = ["shop-mod", "payments-mod"];
    delete_namespaces(&targets, true);
    let env = Env::new();
    env.ok(&["repo", "init"]);
    let primary = kubeconfig("primary").display().to_string();
    let backup = env.json(&[
        "backup",
        "--kubeconfig",
        &primary,
        "--include-namespaces",
        SOURCE_NAMESPACES,
    ]);
    let snap = backup["snapshot"].as_str().unwrap().to_string();
    let restore = |extra: &[&str]| {
        let mut args = vec![
            "restore",
            &snap,
            "--kubeconfig",
            &primary,
            "--namespace-map",
            "shop=shop-mod",
            "--namespace-map",
            "payments=payments-mod",
        ];
        args.extend_from_slice(extra);
        env.run(&args)
    };

    // Bad input: each refused with its reason before anything is written.
    let bad = env.path("bad.yaml");
    std::fs::write(
        &bad,
        "version: 1\nrules:\n  - name: typo\n    json_patch: [{op: rplace, path: /spec/replicas, value: 0}]\n",
    )
    .unwrap();
    let out = restore(&["--modifiers", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("rules[0] (\"typo\"): json_patch[0]: unknown variant `rplace`"),
        "{err}"
    );
    let out = restore(&["--storage-class-map", "lifeboat-fixture-csi=no-such-class"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("storage class map lifeboat-fixture-csi=no-such-class")
            && err.contains("lifeboat-fixture-static"),
        "{err}"
    );
    for t in targets {
        assert!(!namespace_exists(t), "{t} was created by a refused restore");
    }

    // The real thing.
    let rules = env.path("rules.yaml");
    std::fs::write(&rules, GOOD_RULES).unwrap();
    let out = restore(&[
        "--modifiers",
        rules.to_str().unwrap(),
        "--storage-class-map",
        "lifeboat-fixture-csi=lifeboat-fixture-static",
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: modifier rule \"nothing\" selected no object"),
        "{stderr}"
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let report = &report["report"];
    let items = report["items"].as_array().unwrap();
    let failed: Vec<&Value> = items.iter().filter(|i| i["outcome"] == "failed").collect();
    assert!(failed.is_empty(), "{failed:#?}");
    let counts: Vec<(String, u64)> = report["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["rule"].as_str().unwrap().to_string(),
                r["objects"].as_u64().unwrap(),
            )
        })
        .collect();
    let count = |name: &str| counts.iter().find(|(n, _)| n == name).unwrap().1;
    assert!(count("mirror") >= 2 && count("parked") == 2, "{counts:?}");
    assert_eq!(count("nothing"), 0, "{counts:?}");

    let item = |kind: &str, ns: &str, name: &str| {
        items
            .iter()
            .find(|i| {
                i["object"]["kind"] == kind
                    && i["object"]["namespace"] == ns
                    && i["object"]["name"] == name
            })
            .unwrap_or_else(|| panic!("{kind} {ns}/{name} not in the report"))
    };
    let web = item("Deployment", "shop", "web");
    let changes: Vec<&str> = web["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(
        changes
            .iter()
            .any(|c| c.starts_with("rule \"mirror\": image of container"))
            && changes.contains(&"rule \"parked\": replace /spec/replicas"),
        "{changes:?}"
    );
    let ledger = item("PersistentVolumeClaim", "payments", "ledger");
    assert!(
        ledger["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "storage class lifeboat-fixture-csi -> lifeboat-fixture-static"),
        "{ledger}"
    );

    // And the cluster has what the report says.
    let (ok, images) = kubectl(
        "primary",
        &[
            "get",
            "deployment",
            "web",
            "-n",
            "shop-mod",
            "-o",
            "jsonpath={.spec.replicas} {.spec.template.spec.containers[*].image}",
        ],
        None,
    );
    assert!(ok, "{images}");
    let mut words = images.split_whitespace();
    assert_eq!(words.next(), Some("0"), "{images}");
    assert!(
        words.all(|i| i.starts_with("mirror.dr.example.com/k8s/")),
        "{images}"
    );
    let (ok, claim) = kubectl(
        "primary",
        &[
            "get",
            "pvc",
            "ledger",
            "-n",
            "payments-mod",
            "-o",
            "jsonpath={.spec.storageClassName} {.metadata.annotations.lifeboat\\.dev/migrated}",
        ],
        None,
    );
    assert!(ok, "{claim}");
    assert_eq!(claim.trim(), "lifeboat-fixture-static true");
    // The source is untouched.
    let (_, source) = kubectl(
        "primary",
        &[
            "get",
            "deployment",
            "web",
            "-n",
            "shop",
            "-o",
            "jsonpath={.spec.replicas}",
        ],
        None,
    );
    assert_ne!(source.trim(), "0", "the source deployment was changed");
    delete_namespaces(&targets, false);
}
