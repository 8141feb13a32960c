//! The backup and restore workflows (infra/statemachine/*.asl.json) run
//! locally by `lifeboat workflow run` and `lifeboat failover`, each Task in
//! process, against the two real local clusters: an application backed up
//! from primary (exported, committed, verified, replicated to the DR
//! repository and verified there), then restored from the DR copy alone into
//! dr, with RPO and RTO reported. Also: a workflow that fails is reported
//! with the step's error name, and the report is stored.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::workflow::{kubectl, run_backup, run_definition, run_failover, write_json, Cleanup};
use common::{kubeconfig, Env};
use serde_json::json;
use std::path::{Path, PathBuf};

fn app(ns: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Namespace
metadata: {{name: {ns}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings, namespace: {ns}}}
data: {{mode: production, replicas: "2"}}
---
apiVersion: v1
kind: Secret
metadata: {{name: db, namespace: {ns}}}
stringData: {{password: s3cr3t-value}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {ns}}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {ns}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: web, image: "registry.example/web:1.4"}}]
"#
    )
}

#[test]
fn backup_workflow_then_failover_from_the_dr_copy() {
    if common::skip_clusters() {
        return;
    }
    let env = Env::new();
    env.ok(&["repo", "init"]);
    let dr_repo = env.path("dr-repo");
    std::fs::create_dir_all(&dr_repo).unwrap();
    scenario(&env, "wf-local", dr_repo.to_str().unwrap(), false);
}

/// The same in moto: a bucket with Object Lock per region, so every object
/// is locked, the lock is verified in both, and the replica is written in
/// the DR region.
#[test]
fn backup_workflow_in_s3_with_locks_and_a_replica_region() {
    if common::skip_clusters() {
        return;
    }
    let mut env = Env::new();
    env.extra_env = lifeboat_tests::aws_env();
    let id = std::process::id();
    let (primary, dr) = (format!("lb-wf-east-{id}"), format!("lb-wf-west-{id}"));
    lifeboat_tests::s3_admin::create_bucket(&primary, true).unwrap();
    lifeboat_tests::s3_admin::create_bucket(&dr, true).unwrap();
    env.repo = format!("s3://{primary}/prod");
    env.extra_env
        .push(("LIFEBOAT_REPLICA_REGION".into(), "us-west-2".into()));
    env.ok(&[
        "repo",
        "init",
        "--lock-mode",
        "governance",
        "--lock-days",
        "2",
    ]);
    scenario(&env, "wf-s3", &format!("s3://{dr}/prod"), true);
}

fn scenario(env: &Env, prefix: &str, dr_repo: &str, locked: bool) {
    let ns = format!("{prefix}-{}", std::process::id());
    let _cleanup = Cleanup(ns.clone());
    let (ok, out) = kubectl("primary", &["apply", "-f", "-"], Some(&app(&ns)));
    assert!(ok, "{out}");
    let fleet = env.path("fleet.json");
    write_json(
        &fleet,
        &json!({"version": 1,
            "clusters": {
                "primary": {"access": {"kubeconfig": {"path": kubeconfig("primary")}},
                            "scope": {"include_namespaces": [ns]}},
                "dr": {"access": {"kubeconfig": {"path": kubeconfig("dr")}}}},
            "regions": {
                "us-east-1": {"repository": env.repo},
                "us-west-2": {"repository": dr_repo}}}),
    );
    let input = env.path("backup.json");
    write_json(
        &input,
        &json!({"version": 1, "action": "backup", "cluster": "primary",
            "idempotency_key": format!("test-{ns}"), "requested_by": "schedule"}),
    );
    let (code, execution) = run_backup(env, &input, &fleet, dr_repo);
    assert_eq!(code, 0, "{execution:#}");
    let output = &execution["output"];
    let report = &output["report"];
    assert_eq!(report["outcome"], "succeeded", "{report:#}");
    assert!(
        report["stored"]["objects"].as_u64().unwrap() >= 5,
        "{report:#}"
    );
    assert_eq!(report["verified"]["ok"], true);
    assert!(report["verified"]["objects_decoded"].as_u64().unwrap() >= 5);
    assert_eq!(report["replica"]["initialized"], true);
    assert!(report["replica"]["packs_copied"].as_u64().unwrap() >= 1);
    assert_eq!(report["replica_verified"]["ok"], true);
    assert_eq!(report["locks"]["locked"], locked, "{report:#}");
    if locked {
        assert!(report["verified"]["objects_lock_checked"].as_u64().unwrap() >= 5);
        assert!(
            report["replica_verified"]["objects_lock_checked"]
                .as_u64()
                .unwrap()
                >= 5
        );
    }
    let snapshot = report["snapshot"].as_str().unwrap().to_string();
    // The history names every step, in order.
    let entered: Vec<&str> = execution["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event_type"] == "TaskStateEntered")
        .filter_map(|e| e["state"].as_str())
        .collect();
    assert_eq!(entered.first().copied(), Some("Prepare"), "{entered:?}");
    assert!(
        entered.contains(&"VerifyReplica") && entered.last() == Some(&"Report"),
        "{entered:?}"
    );
    // The secret is not in plaintext anywhere in either repository.
    let dirs: Vec<PathBuf> = if locked {
        vec![]
    } else {
        vec![PathBuf::from(&env.repo), PathBuf::from(dr_repo)]
    };
    for dir in dirs {
        for f in walk(&dir) {
            let bytes = std::fs::read(&f).unwrap();
            assert!(
                !bytes.windows(12).any(|w| w == b"s3cr3t-value"),
                "{} holds the secret in plaintext",
                f.display()
            );
        }
    }

    // The disaster: primary's repository and cluster are gone; restore from
    // the DR region's copy alone into dr.
    if !locked {
        std::fs::rename(&env.repo, env.path("lost-primary")).unwrap();
    }
    let (code, execution) = run_failover(env, &fleet);
    assert_eq!(code, 0, "{execution:#}");
    let report = &execution["output"]["report"];
    assert_eq!(report["outcome"], "succeeded", "{report:#}");
    assert_eq!(
        report["snapshot"].as_str().unwrap(),
        snapshot,
        "restores the snapshot just backed up"
    );
    assert_eq!(report["ready"], true, "{report:#}");
    let rpo = report["rpo_secs"].as_f64().unwrap();
    let rto = report["rto_secs"].as_f64().unwrap();
    assert!(rpo > 0.0 && rpo < 3600.0, "{rpo}");
    assert!(rto > 0.0 && rto < 900.0, "{rto}");
    assert!(
        report["restored"]["created"].as_u64().unwrap() >= 4,
        "{report:#}"
    );
    let (ok, mode) = kubectl(
        "dr",
        &[
            "get",
            "configmap",
            "settings",
            "-n",
            &ns,
            "-o",
            "jsonpath={.data.mode}",
        ],
        None,
    );
    assert!(ok, "{mode}");
    assert_eq!(mode, "production");
    let (ok, replicas) = kubectl(
        "dr",
        &[
            "get",
            "deployment",
            "web",
            "-n",
            &ns,
            "-o",
            "jsonpath={.spec.replicas}",
        ],
        None,
    );
    assert!(ok && replicas == "2", "{replicas}");
}

#[test]
fn a_failing_step_is_caught_reported_and_named() {
    if common::skip_clusters() {
        return;
    }
    let env = Env::new();
    env.ok(&["repo", "init"]);
    let fleet = env.path("fleet.json");
    write_json(&fleet, &json!({"version": 1, "clusters": {}}));
    let input = env.path("backup.json");
    write_json(
        &input,
        &json!({"version": 1, "action": "backup", "cluster": "nowhere"}),
    );
    let (code, execution) = run_definition(&env, "backup.asl.json", &input, &fleet, None, &[]);
    assert_eq!(code, 5, "{execution:#}");
    let status = execution["status"].to_string();
    assert!(status.contains("Lifeboat.BackupFailed"), "{status}");
    assert!(
        status.contains("cluster \\\"nowhere\\\" is not in the fleet file"),
        "{status}"
    );
    // The failure was reported (ReportFailure ran) and stored in the repository.
    let reports = std::fs::read_dir(PathBuf::from(&env.repo).join("reports"))
        .unwrap()
        .count();
    assert_eq!(reports, 1, "one workflow report stored");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}
