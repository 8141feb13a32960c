//! Faults in the backup workflow run locally (`lifeboat workflow run` with
//! `--time-scale`, so the definitions' retry intervals pass quickly): a
//! cluster that does not answer is retried and then reported; credentials
//! the cluster refuses are reported at once; a repository held by a prune is
//! waited for and the backup goes on once the prune is gone, or is reported
//! when it never goes. Each failure is named in the history and in the
//! stored report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::workflow::{kubectl, run_definition, task_result, write_json, Cleanup};
use common::{kubeconfig, Env};
use serde_json::{json, Value};
use std::path::Path;

fn run_backup_scaled(env: &Env, input: &Path, fleet: &Path, scale: &str) -> (i32, Value) {
    let replica = env.path("dr-repo");
    std::fs::create_dir_all(&replica).unwrap();
    let extra = ["--time-scale", scale];
    run_definition(
        env,
        "backup.asl.json",
        input,
        fleet,
        replica.to_str(),
        &extra,
    )
}

/// `(state, error)` of every failed Task invocation, in order.
fn task_failures(execution: &Value) -> Vec<(String, String)> {
    execution["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event_type"] == "TaskFailed")
        .map(|e| {
            (
                e["state"].as_str().unwrap_or("").to_string(),
                e["error"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn fleet_with(env: &Env, kubeconfig: &Path) -> std::path::PathBuf {
    let fleet = env.path("fleet.json");
    write_json(
        &fleet,
        &json!({"version": 1,
            "clusters": {"faulty": {"access": {"kubeconfig": {"path": kubeconfig}}}}}),
    );
    fleet
}

fn backup_request(env: &Env, scope_ns: &str) -> std::path::PathBuf {
    let input = env.path("backup.json");
    write_json(
        &input,
        &json!({"version": 1, "action": "backup", "cluster": "faulty",
            "scope": {"include_namespaces": [scope_ns]}, "requested_by": "ci"}),
    );
    input
}

/// The report ReportFailure stored, with the failure's error and cause.
fn failure_report(execution: &Value) -> (Value, String, String) {
    let report = task_result(execution, "ReportFailure")
        .unwrap_or_else(|| panic!("ReportFailure did not run: {execution:#}"));
    assert_eq!(report["outcome"], "failed", "{report:#}");
    assert!(report["report"].is_string(), "stored: {report:#}");
    let error = report["failure"]["Error"].as_str().unwrap().to_string();
    let cause = report["failure"]["Cause"].as_str().unwrap().to_string();
    (report, error, cause)
}

#[test]
fn an_unreachable_cluster_is_retried_then_reported() {
    let env = Env::new();
    env.ok(&["repo", "init"]);
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kc = env.path("unreachable.kubeconfig");
    std::fs::write(
        &kc,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: gone\n\
             clusters: [{{name: gone, cluster: {{server: \"https://127.0.0.1:{port}\", insecure-skip-tls-verify: true}}}}]\n\
             users: [{{name: u, user: {{token: not-a-real-token}}}}]\n\
             contexts: [{{name: gone, context: {{cluster: gone, user: u}}}}]\n"
        ),
    )
    .unwrap();
    let fleet = fleet_with(&env, &kc);
    let input = backup_request(&env, "shop");
    let (code, execution) = run_backup_scaled(&env, &input, &fleet, "0");
    assert_eq!(code, 5, "{execution:#}");
    let failures = task_failures(&execution);
    // ExportState: the first try and its five retries, each Lifeboat.Retryable.
    let export: Vec<&(String, String)> = failures
        .iter()
        .filter(|(s, _)| s == "ExportState")
        .collect();
    assert_eq!(export.len(), 6, "{failures:?}");
    assert!(
        export.iter().all(|(_, e)| e == "Lifeboat.Retryable"),
        "{failures:?}"
    );
    let retries = execution["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event_type"] == "RetryScheduled" && e["state"] == "ExportState")
        .count();
    assert_eq!(retries, 5);
    let (_, error, cause) = failure_report(&execution);
    assert_eq!(error, "Lifeboat.Retryable");
    assert!(cause.contains(&format!("127.0.0.1:{port}")), "{cause}");
    assert!(execution["status"]
        .to_string()
        .contains("Lifeboat.BackupFailed"));
}

#[test]
fn credentials_the_cluster_refuses_are_reported_without_retries() {
    if common::skip_clusters() {
        return;
    }
    let env = Env::new();
    env.ok(&["repo", "init"]);
    let ns = format!("wf-denied-{}", std::process::id());
    let _cleanup = Cleanup(ns.clone());
    let (ok, out) = kubectl("primary", &["create", "namespace", &ns], None);
    assert!(ok, "{out}");
    let (ok, out) = kubectl(
        "primary",
        &["create", "serviceaccount", "nobody", "-n", &ns],
        None,
    );
    assert!(ok, "{out}");
    // A valid token of an account that no role binds: authenticated, and
    // refused everything.
    let (ok, token) = kubectl("primary", &["create", "token", "nobody", "-n", &ns], None);
    assert!(ok, "{token}");
    let (ok, server) = kubectl(
        "primary",
        &[
            "config",
            "view",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ],
        None,
    );
    assert!(ok && server.starts_with("https://127.0.0.1"), "{server}");
    let kc = env.path("nobody.kubeconfig");
    std::fs::write(
        &kc,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: p\n\
             clusters: [{{name: p, cluster: {{server: \"{server}\", insecure-skip-tls-verify: true}}}}]\n\
             users: [{{name: nobody, user: {{token: \"{}\"}}}}]\n\
             contexts: [{{name: p, context: {{cluster: p, user: nobody}}}}]\n",
            token.trim()
        ),
    )
    .unwrap();
    assert!(kubeconfig("primary").exists());
    let fleet = fleet_with(&env, &kc);
    let input = backup_request(&env, &ns);
    let (code, execution) = run_backup_scaled(&env, &input, &fleet, "0");
    assert_eq!(code, 5, "{execution:#}");
    let failures = task_failures(&execution);
    assert_eq!(
        failures,
        [(
            "ExportState".to_string(),
            "Lifeboat.PermissionDenied".to_string()
        )],
        "refused once, not retried"
    );
    let (_, error, cause) = failure_report(&execution);
    assert_eq!(error, "Lifeboat.PermissionDenied");
    assert!(
        cause.contains("system:serviceaccount:") && cause.contains("nobody"),
        "the cause names who was refused: {cause}"
    );
}

/// An exclusive lock as a running prune holds it (a plaintext record under
/// `locks/`, docs/format.md), refreshed now.
fn hold_prune_lock(repo: &str) -> std::path::PathBuf {
    let now = chrono::Utc::now().to_rfc3339();
    let path = Path::new(repo)
        .join("locks")
        .join(format!("{:064x}", std::process::id()));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        &path,
        json!({"kind": "exclusive", "operation": "prune", "hostname": "drill-host",
            "pid": 4242, "created": now, "refreshed": now})
        .to_string(),
    )
    .unwrap();
    path
}

#[test]
fn a_repository_locked_by_a_prune_is_waited_for_then_reported() {
    if common::skip_clusters() {
        return;
    }
    let mut env = Env::new();
    env.ok(&["repo", "init"]);
    // Each step gives up on the lock at once; the definitions' Retry waits.
    env.extra_env
        .push(("LIFEBOAT_LOCK_WAIT".into(), "0".into()));
    let ns = format!("wf-locked-{}", std::process::id());
    let _cleanup = Cleanup(ns.clone());
    let (ok, out) = kubectl("primary", &["create", "namespace", &ns], None);
    assert!(ok, "{out}");
    let fleet = fleet_with(&env, &kubeconfig("primary"));
    let input = backup_request(&env, &ns);

    // The prune never finishes: ten retries, then the failure is reported.
    let lock = hold_prune_lock(&env.repo);
    let (code, execution) = run_backup_scaled(&env, &input, &fleet, "0");
    assert_eq!(code, 5, "{execution:#}");
    let failures = task_failures(&execution);
    assert_eq!(failures.len(), 11, "{failures:?}");
    assert!(
        failures
            .iter()
            .all(|(s, e)| s == "ExportState" && e == "Lifeboat.RepositoryLocked"),
        "{failures:?}"
    );
    let (_, error, cause) = failure_report(&execution);
    assert_eq!(error, "Lifeboat.RepositoryLocked");
    assert!(
        cause.contains("exclusive lock held by prune on host drill-host"),
        "{cause}"
    );

    // The prune ends while the workflow waits (60 s x 0.02 = 1.2 s, then
    // 1.8 s...): the backup goes on and succeeds.
    let gone = lock.clone();
    let remover = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        std::fs::remove_file(gone).unwrap();
    });
    let (code, execution) = run_backup_scaled(&env, &input, &fleet, "0.02");
    remover.join().unwrap();
    assert_eq!(code, 0, "{execution:#}");
    let failures = task_failures(&execution);
    assert!(
        !failures.is_empty()
            && failures
                .iter()
                .all(|(s, e)| s == "ExportState" && e == "Lifeboat.RepositoryLocked"),
        "{failures:?}"
    );
    assert_eq!(execution["output"]["report"]["outcome"], "succeeded");
}
