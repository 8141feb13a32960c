//! The in-cluster install (infra/kubernetes/base) on the real local primary
//! cluster: the manifests pass the API server's own validation (server-side
//! dry run), the ServiceAccount can read but not write, and the
//! controller-manager's CronJob controller starts a backup Job that the
//! kubelet stand-in runs as the `lifeboat` binary, as the ServiceAccount,
//! whose snapshot then appears in the repository.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::workflow::kubectl;
use common::Env;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

const NAMESPACE: &str = "lifeboat-incluster-test";
const PREFIX: &str = "t-";
const CLUSTER_NAME: &str = "primary-in-cluster";

/// An overlay of the shipped base, as a user writes one: the image, a
/// namespace and name prefix of its own (so it cannot disturb the movers'
/// lifeboat-system), the repository Secret, a schedule of every minute.
fn write_overlay(dir: &Path, repo: &str) {
    let base = lifeboat_tests::repo_root().join("infra/kubernetes/base");
    let copy = dir.join("base");
    std::fs::create_dir_all(&copy).unwrap();
    for entry in std::fs::read_dir(&base).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
    }
    let overlay = dir.join("overlay");
    std::fs::create_dir_all(&overlay).unwrap();
    std::fs::write(
        overlay.join("kustomization.yaml"),
        format!(
            r#"apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namePrefix: {PREFIX}
resources: [../base]
# Another namespace: with the binding's subject moved too.
transformers: [namespace.yaml]
images:
  - name: lifeboat
    newName: lifeboat.test/lifeboat
    newTag: dev
patches:
  # The test makes its own namespace; lifeboat-system is the movers'.
  - patch: |
      $patch: delete
      apiVersion: v1
      kind: Namespace
      metadata: {{name: lifeboat-system}}
  - target: {{kind: ConfigMap, name: lifeboat-config}}
    patch: |
      - {{op: replace, path: /data/cluster-name, value: {CLUSTER_NAME}}}
  - target: {{kind: CronJob, name: lifeboat-backup}}
    patch: |
      - {{op: replace, path: /spec/schedule, value: "* * * * *"}}
secretGenerator:
  - name: lifeboat-repository
    options: {{disableNameSuffixHash: true}}
    literals:
      - LIFEBOAT_REPO={repo}
      - LIFEBOAT_PASSWORD={password}
"#,
            password = common::PASSWORD
        ),
    )
    .unwrap();
    std::fs::write(
        overlay.join("namespace.yaml"),
        format!(
            "apiVersion: builtin\nkind: NamespaceTransformer\nmetadata:\n  name: namespace\n  \
             namespace: {NAMESPACE}\nsetRoleBindingSubjects: allServiceAccounts\n"
        ),
    )
    .unwrap();
}

fn cluster_snapshots(env: &Env) -> Vec<Value> {
    let list = env.json(&["snapshots"]);
    list.as_array()
        .unwrap()
        .iter()
        .map(|s| s["snapshot"].clone())
        .filter(|s| s["hostname"] == CLUSTER_NAME && s["kind"] == "cluster")
        .collect()
}

/// Remove what the test installed; with `wait`, until the namespace is
/// gone (one still terminating refuses new objects).
fn cleanup(wait: bool) {
    let wait = if wait { "--wait=true" } else { "--wait=false" };
    for args in [
        vec![
            "delete",
            "cronjobs",
            "--all",
            "-n",
            NAMESPACE,
            "--ignore-not-found",
        ],
        vec![
            "delete",
            "namespace",
            NAMESPACE,
            "--ignore-not-found",
            wait,
            "--timeout=180s",
        ],
        vec![
            "delete",
            "clusterrolebinding",
            "t-lifeboat-backup",
            "--ignore-not-found",
        ],
        vec![
            "delete",
            "clusterrole",
            "t-lifeboat-backup",
            "--ignore-not-found",
        ],
    ] {
        kubectl("primary", &args, None);
    }
}

#[test]
fn the_cronjob_backs_up_the_cluster_as_its_read_only_service_account() {
    if common::skip_clusters() {
        return;
    }
    cleanup(true);
    let env = Env::new();
    env.ok(&["repo", "init"]);
    write_overlay(env.dir.path(), &env.repo);
    let overlay = env.dir.path().join("overlay");
    let overlay = overlay.to_str().unwrap();

    // The manifests as the API server validates them, before anything is made.
    let (ok, out) = kubectl("primary", &["create", "namespace", NAMESPACE], None);
    assert!(ok || out.contains("AlreadyExists"), "{out}");
    let (ok, out) = kubectl(
        "primary",
        &["apply", "--dry-run=server", "-k", overlay],
        None,
    );
    assert!(ok, "server-side dry run refused the manifests:\n{out}");
    let (ok, out) = kubectl("primary", &["apply", "-k", overlay], None);
    assert!(ok, "{out}");

    // Least privilege: reads everything, writes nothing.
    let sa = format!("system:serviceaccount:{NAMESPACE}:{PREFIX}lifeboat");
    for (verb, resource, allowed) in [
        ("list", "secrets", "yes"),
        ("get", "widgets.fixtures.lifeboat.dev", "yes"),
        ("create", "deployments.apps", "no"),
        ("delete", "namespaces", "no"),
        ("patch", "configmaps", "no"),
        ("create", "pods/exec", "no"),
    ] {
        let (_, answer) = kubectl(
            "primary",
            &[
                "auth",
                "can-i",
                verb,
                resource,
                "--all-namespaces",
                "--as",
                &sa,
            ],
            None,
        );
        assert_eq!(
            answer.lines().next().unwrap_or_default().trim(),
            allowed,
            "{sa} {verb} {resource}: {answer}"
        );
    }

    // The CronJob controller starts a Job within a minute or so; the
    // kubelet stand-in runs it. Waited for through the repository itself.
    let started = Instant::now();
    let snapshots = loop {
        let found = cluster_snapshots(&env);
        if !found.is_empty() {
            break found;
        }
        if started.elapsed() > Duration::from_secs(240) {
            let (_, state) = kubectl(
                "primary",
                &["get", "cronjobs,jobs,pods", "-n", NAMESPACE, "-o", "wide"],
                None,
            );
            let (_, pods) = kubectl(
                "primary",
                &[
                    "get",
                    "pods",
                    "-n",
                    NAMESPACE,
                    "-o",
                    "jsonpath={.items[*].status}",
                ],
                None,
            );
            cleanup(false);
            panic!("no in-cluster snapshot after 240 s:\n{state}\n{pods}");
        }
        std::thread::sleep(Duration::from_secs(5));
    };
    let snap = &snapshots[0];
    assert_eq!(snap["tags"]["by"], "lifeboat-in-cluster", "{snap}");
    // The Job was the CronJob's, not one made by hand.
    let (ok, owners) = kubectl(
        "primary",
        &[
            "get",
            "jobs",
            "-n",
            NAMESPACE,
            "-o",
            "jsonpath={.items[*].metadata.ownerReferences[*].kind}",
        ],
        None,
    );
    assert!(ok && owners.contains("CronJob"), "{owners}");
    // A whole-cluster snapshot: every namespace's objects, Secrets too.
    let resources: Vec<&str> = snap["cluster"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["resource"].as_str())
        .collect();
    for r in ["configmaps", "secrets", "deployments", "widgets"] {
        assert!(resources.contains(&r), "{r} not in {resources:?}");
    }
    assert!(snap["summary"]["files"].as_u64().unwrap() > 80, "{snap}");
    cleanup(false);
}
