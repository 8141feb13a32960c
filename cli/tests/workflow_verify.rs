//! The verify workflow (infra/statemachine/verify.asl.json) run locally by
//! `lifeboat workflow run`: the newest snapshot of a cluster re-read in this
//! region's repository and in the DR region's copy; damage in the DR copy
//! fails it and raises an alert on SNS (moto), which a subscribed queue
//! receives; an alert topic that does not exist fails the report step, named.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::workflow::{
    entered_tasks, kubectl, run_backup, run_definition, task_result, write_json, Cleanup,
};
use common::{kubeconfig, Env};
use lifeboat_tests::alert_inbox::AlertInbox;
use serde_json::{json, Value};
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
data: {{mode: production}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: app, namespace: {ns}}}
"#
    )
}

fn run_verify(env: &Env, input: &Path, fleet: &Path, replica: &str, name: &str) -> (i32, Value) {
    let extra = ["--name", name, "--time-scale", "0"];
    run_definition(env, "verify.asl.json", input, fleet, Some(replica), &extra)
}

/// The largest pack of a local repository.
fn largest_pack(repo: &Path) -> PathBuf {
    let mut packs: Vec<(u64, PathBuf)> = Vec::new();
    let mut stack = vec![repo.join("data")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                packs.push((std::fs::metadata(&p).unwrap().len(), p));
            }
        }
    }
    packs.into_iter().max().unwrap().1
}

#[test]
fn verify_workflow_proves_both_copies_and_alerts_on_damage() {
    if common::skip_clusters() {
        return;
    }
    let mut env = Env::new();
    // Repositories on local disk; SNS and SQS in moto.
    env.extra_env = lifeboat_tests::aws_env();
    env.ok(&["repo", "init"]);
    let dr_repo = env.path("dr-repo");
    std::fs::create_dir_all(&dr_repo).unwrap();
    let dr = dr_repo.to_str().unwrap();
    let ns = format!("wf-verify-{}", std::process::id());
    let _cleanup = Cleanup(ns.clone());
    let (ok, out) = kubectl("primary", &["apply", "-f", "-"], Some(&app(&ns)));
    assert!(ok, "{out}");
    let fleet = env.path("fleet.json");
    write_json(
        &fleet,
        &json!({"version": 1,
            "clusters": {"primary": {"access": {"kubeconfig": {"path": kubeconfig("primary")}}}}}),
    );
    let backup = env.path("backup.json");
    write_json(
        &backup,
        &json!({"version": 1, "action": "backup", "cluster": "primary",
            "scope": {"include_namespaces": [ns]}, "requested_by": "ci"}),
    );
    let (code, execution) = run_backup(&env, &backup, &fleet, dr);
    assert_eq!(code, 0, "{execution:#}");
    let snapshot = execution["output"]["report"]["snapshot"]
        .as_str()
        .unwrap()
        .to_string();

    let inbox = AlertInbox::create(&format!("lb-alerts-{}", std::process::id())).unwrap();
    env.extra_env
        .push(("LIFEBOAT_ALERT_TOPIC".into(), inbox.topic_arn.clone()));
    let verify = env.path("verify.json");
    write_json(
        &verify,
        &json!({"version": 1, "action": "verify", "cluster": "primary",
            "snapshot": "latest", "requested_by": "ci"}),
    );

    // Both copies intact: verified in each repository, no alert.
    let (code, execution) = run_verify(&env, &verify, &fleet, dr, "verify-1");
    assert_eq!(code, 0, "{execution:#}");
    assert_eq!(
        entered_tasks(&execution),
        ["Resolve", "Verify", "VerifyReplica", "Report"]
    );
    let report = &execution["output"]["report"];
    assert_eq!(report["action"], "verify", "{report:#}");
    assert_eq!(report["outcome"], "succeeded", "{report:#}");
    assert_eq!(report["snapshot"], snapshot.as_str());
    assert_eq!(report["verified"]["ok"], true);
    assert_eq!(report["verified"]["repository"], env.repo.as_str());
    assert!(report["verified"]["objects_decoded"].as_u64().unwrap() >= 3);
    assert_eq!(report["replica_verified"]["ok"], true);
    assert_eq!(report["replica_verified"]["repository"], dr);
    assert!(report.get("rpo_secs").is_none(), "{report:#}");
    assert!(report.get("alerts").is_none(), "{report:#}");
    assert!(inbox.drain().unwrap().is_empty());

    // A flipped byte in the DR copy: the verify fails, names the pack and
    // the repository, and the alert reaches the subscribed queue.
    let pack = largest_pack(&dr_repo);
    let mut bytes = std::fs::read(&pack).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&pack, &bytes).unwrap();
    let (code, execution) = run_verify(&env, &verify, &fleet, dr, "verify-2");
    assert_eq!(code, 5, "{execution:#}");
    let status = execution["status"].to_string();
    assert!(status.contains("Lifeboat.VerifyFailed"), "{status}");
    let report = task_result(&execution, "ReportFailure").unwrap();
    assert_eq!(report["outcome"], "failed", "{report:#}");
    assert_eq!(
        report["verified"]["ok"], true,
        "this region's copy is intact"
    );
    assert_eq!(report["failure"]["Error"], "Lifeboat.Failed");
    let cause = report["failure"]["Cause"].as_str().unwrap();
    assert!(
        cause.contains("failed verification") && cause.contains(dr),
        "{cause}"
    );
    let alerts = report["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{report:#}");
    assert_eq!(alerts[0]["kind"], "workflow-failed");
    let published = alerts[0]["published"].as_str().unwrap();
    let delivered = inbox.drain().unwrap();
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    assert_eq!(delivered[0].message_id, published);
    assert_eq!(
        delivered[0].subject,
        "Lifeboat: verify of cluster primary failed"
    );
    let message: Value = serde_json::from_str(&delivered[0].message).unwrap();
    assert_eq!(message["kind"], "workflow-failed");
    assert_eq!(message["cluster"], "primary");
    assert_eq!(message["action"], "verify");
    assert_eq!(message["snapshot"], snapshot.as_str());
    assert!(
        message["message"]
            .as_str()
            .unwrap()
            .contains("failed verification"),
        "{message:#}"
    );

    // An alert topic that does not exist: the report step fails and says
    // which topic; the execution still ends in VerifyFailed.
    let gone = format!("{}-gone", inbox.topic_arn);
    env.extra_env.retain(|(k, _)| k != "LIFEBOAT_ALERT_TOPIC");
    env.extra_env
        .push(("LIFEBOAT_ALERT_TOPIC".into(), gone.clone()));
    let (code, execution) = run_verify(&env, &verify, &fleet, dr, "verify-3");
    assert_eq!(code, 5, "{execution:#}");
    let failed: Vec<&Value> = execution["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["state"] == "ReportFailure" && e["event_type"] == "TaskFailed")
        .collect();
    assert!(!failed.is_empty(), "{execution:#}");
    let last = failed.last().unwrap();
    assert_eq!(last["error"], "Lifeboat.NotFound", "{last:#}");
    assert!(last["cause"].as_str().unwrap().contains(&gone), "{last:#}");
}
