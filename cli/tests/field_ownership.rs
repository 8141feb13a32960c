//! Restored objects stay manageable by their owners (issue 22), on the
//! local clusters (tests/substrate/clusters): objects applied to primary
//! server-side under a named field manager, client-side, and changed by a
//! controller are backed up, restored into dr, and then
//!
//! - the unchanged manifests re-applied server-side under the same manager,
//!   without `--force-conflicts`, raise no conflict;
//! - a changed value takes effect, and a removed label is removed;
//! - a client-side apply owner keeps working the same way;
//! - a field a controller changed conflicts in dr exactly as in primary,
//!   naming the controller (not Lifeboat).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::workflow::{kubectl, Cleanup};
use common::{kubeconfig, Env};
use serde_json::Value;

const MANAGER: &str = "gitops";

fn manifests(ns: &str, greeting: &str, tier: bool, image: &str) -> String {
    let tier = if tier { "\n    tier: frontend" } else { "" };
    format!(
        "apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
  namespace: {ns}
  labels:
    app: web{tier}
data:
  greeting: {greeting}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {ns}
  labels:
    app: web
spec:
  replicas: 0
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: {image}
"
    )
}

/// A ConfigMap whose `mode` a controller changes after it was applied.
fn tuned(ns: &str) -> String {
    format!(
        "apiVersion: v1
kind: ConfigMap
metadata:
  name: tuned
  namespace: {ns}
data:
  mode: manual
"
    )
}

fn legacy(ns: &str, colour: &str, owner_label: bool) -> String {
    let label = if owner_label {
        "\n  labels:\n    owner: ops"
    } else {
        ""
    };
    format!(
        "apiVersion: v1
kind: ConfigMap
metadata:
  name: legacy
  namespace: {ns}{label}
data:
  colour: {colour}
"
    )
}

/// Server-side apply as the GitOps tool would: (succeeded, output).
fn apply(cluster: &str, manifest: &str) -> (bool, String) {
    kubectl(
        cluster,
        &[
            "apply",
            "--server-side",
            "--field-manager",
            MANAGER,
            "-f",
            "-",
        ],
        Some(manifest),
    )
}

fn ok(cluster: &str, args: &[&str], stdin: Option<&str>) -> String {
    let (ok, out) = kubectl(cluster, args, stdin);
    assert!(ok, "kubectl {args:?} on {cluster}: {out}");
    out
}

fn get(cluster: &str, ns: &str, what: &str) -> Value {
    let args = ["get", what, "-n", ns, "-o", "json", "--show-managed-fields"];
    serde_json::from_str(&ok(cluster, &args, None)).unwrap()
}

/// The managers of an object, each as `manager/operation`, sorted.
fn managers(obj: &Value) -> Vec<String> {
    let mut out: Vec<String> = obj["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}/{}",
                e["manager"].as_str().unwrap(),
                e["operation"].as_str().unwrap()
            )
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[test]
fn restored_objects_keep_their_field_owners_so_their_owners_keep_applying() {
    if common::skip_clusters() {
        return;
    }
    let env = Env::new();
    env.ok(&["repo", "init"]);
    let ns = format!("owners-{}", std::process::id());
    let _cleanup = Cleanup(ns.clone());
    let image = "registry.example/web:1.0";

    // primary: a GitOps owner, a client-side owner, a controller's change.
    let (applied, out) = apply("primary", &manifests(&ns, "hello", true, image));
    assert!(applied, "{out}");
    let (applied, out) = apply("primary", &tuned(&ns));
    assert!(applied, "{out}");
    ok(
        "primary",
        &["apply", "-f", "-"],
        Some(&legacy(&ns, "blue", true)),
    );
    ok(
        "primary",
        &[
            "patch",
            "configmap",
            "tuned",
            "-n",
            &ns,
            "--field-manager",
            "tuning-controller",
            "--type",
            "merge",
            "-p",
            r#"{"data":{"mode":"auto"}}"#,
        ],
        None,
    );
    let source = managers(&get("primary", &ns, "configmap/tuned"));
    assert!(
        source.contains(&"tuning-controller/Update".to_string()),
        "{source:?}"
    );

    let backup = env.json(&[
        "backup",
        "--kubeconfig",
        kubeconfig("primary").to_str().unwrap(),
        "--include-namespaces",
        &ns,
    ]);
    let snap = backup["snapshot"].as_str().unwrap().to_string();
    let restore = env.json(&[
        "restore",
        &snap,
        "--kubeconfig",
        kubeconfig("dr").to_str().unwrap(),
    ]);
    let items = restore["report"]["items"].as_array().unwrap();
    for name in ["app-config", "tuned", "legacy", "web"] {
        let item = items
            .iter()
            .find(|i| i["object"]["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in {restore:#}"));
        assert_eq!(item["outcome"], "created", "{item}");
        assert_eq!(item["owners_restored"], true, "{item}");
    }

    // dr: the same owners as in primary, Lifeboat none of them.
    for what in [
        "configmap/app-config",
        "configmap/tuned",
        "configmap/legacy",
        "deployment/web",
    ] {
        let (p, d) = (get("primary", &ns, what), get("dr", &ns, what));
        let restored = managers(&d);
        assert!(
            !restored.iter().any(|m| m.starts_with("lifeboat/")),
            "{what}: {restored:?}"
        );
        let source: Vec<String> = managers(&p)
            .into_iter()
            // Controllers of dr write their own status entries.
            .filter(|m| !m.starts_with("kube-controller-manager/"))
            .collect();
        for m in &source {
            assert!(
                restored.contains(m),
                "{what}: {m} missing from {restored:?}"
            );
        }
    }

    // The unchanged manifests apply without a conflict, and without force.
    let (applied, out) = apply("dr", &manifests(&ns, "hello", true, image));
    assert!(applied, "{out}");
    // A changed value takes effect; a removed label is removed.
    let (applied, out) = apply(
        "dr",
        &manifests(&ns, "bye", false, "registry.example/web:2.0"),
    );
    assert!(applied, "{out}");
    let cm = get("dr", &ns, "configmap/app-config");
    assert_eq!(cm["data"]["greeting"], "bye");
    assert!(cm["metadata"]["labels"].get("tier").is_none(), "{cm}");
    let web = get("dr", &ns, "deployment/web");
    assert_eq!(
        web["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example/web:2.0"
    );

    // The client-side owner: a change applies, a removed label goes.
    ok(
        "dr",
        &["apply", "-f", "-"],
        Some(&legacy(&ns, "green", false)),
    );
    let legacy_cm = get("dr", &ns, "configmap/legacy");
    assert_eq!(legacy_cm["data"]["colour"], "green");
    assert!(
        legacy_cm["metadata"]
            .get("labels")
            .and_then(|l| l.get("owner"))
            .is_none(),
        "{legacy_cm}"
    );

    // The controller's field conflicts in dr as it does in primary, and
    // the conflict names the controller, not Lifeboat.
    let (p_ok, p_out) = apply("primary", &tuned(&ns));
    let (d_ok, d_out) = apply("dr", &tuned(&ns));
    assert!(!p_ok && p_out.contains("tuning-controller"), "{p_out}");
    assert!(!d_ok && d_out.contains("tuning-controller"), "{d_out}");
    assert!(!d_out.contains("lifeboat"), "{d_out}");

    // Restored again over what is there now (`--existing skip`, and its dry
    // run): the report says which copies differ from the backup, and where.
    let dr = kubeconfig("dr");
    let dr = dr.to_str().unwrap();
    let dry = env.json(&["restore", &snap, "--kubeconfig", dr, "--dry-run"]);
    let again = env.json(&["restore", &snap, "--kubeconfig", dr]);
    for (report, skipped) in [(&dry, "would-skip"), (&again, "skipped")] {
        let item = |name: &str| {
            report["report"]["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["object"]["name"] == name && i["object"]["kind"] == "ConfigMap")
                .unwrap_or_else(|| panic!("{name} not in {report:#}"))
                .clone()
        };
        let tuned = item("tuned");
        assert_eq!(tuned["outcome"], skipped, "{tuned}");
        assert_eq!(tuned["differs"], serde_json::json!([]), "{tuned}");
        assert!(
            tuned["reason"]
                .as_str()
                .unwrap()
                .contains("identical to the backup"),
            "{tuned}"
        );
        let changed = item("app-config");
        assert_eq!(changed["outcome"], skipped, "{changed}");
        let differs: Vec<&str> = changed["differs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap())
            .collect();
        assert_eq!(
            differs,
            ["data.greeting", "metadata.labels.tier"],
            "{changed}"
        );
        assert!(
            changed["reason"]
                .as_str()
                .unwrap()
                .contains("differs from the backup in data.greeting"),
            "{changed}"
        );
    }
}
