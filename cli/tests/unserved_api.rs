//! A backup of a cluster with an aggregated API that is down says so
//! (issue 22), on the local clusters: an APIService whose Service does not
//! exist is registered on primary (the real kube-aggregator marks it not
//! Available); a backup then exits 3 and names it, in its output and in
//! the snapshot; a backup whose scope leaves the group out says nothing of
//! it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::workflow::kubectl;
use common::{kubeconfig, Env};
use std::time::{Duration, Instant};

struct Remove(String);

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = kubectl(
            "primary",
            &["delete", "apiservice", &self.0, "--ignore-not-found"],
            None,
        );
    }
}

#[test]
fn an_aggregated_api_that_is_down_makes_the_backup_incomplete_and_is_named() {
    if common::skip_clusters() {
        return;
    }
    let env = Env::new();
    env.ok(&["repo", "init"]);
    let group = format!("down{}.lifeboat.test", std::process::id());
    let name = format!("v1beta1.{group}");
    let _remove = Remove(name.clone());
    let manifest = format!(
        "apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata:
  name: {name}
spec:
  group: {group}
  version: v1beta1
  groupPriorityMinimum: 100
  versionPriority: 100
  insecureSkipTLSVerify: true
  service:
    namespace: default
    name: nothing-serves-{group}
"
    );
    let (ok, out) = kubectl("primary", &["apply", "-f", "-"], Some(&manifest));
    assert!(ok, "{out}");
    // The aggregator's availability controller judges it within seconds.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let path = "jsonpath={.status.conditions[?(@.type==\"Available\")].status}";
        let (_, status) = kubectl("primary", &["get", "apiservice", &name, "-o", path], None);
        if status == "False" {
            break;
        }
        assert!(Instant::now() < deadline, "{name} never judged: {status:?}");
        std::thread::sleep(Duration::from_millis(500));
    }

    let primary = kubeconfig("primary");
    let primary = primary.to_str().unwrap();
    let args = [
        "backup",
        "--kubeconfig",
        primary,
        "--include-namespaces",
        "default",
        "--json",
    ];
    let out = env.run(&args);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let backup: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let named = |warnings: &serde_json::Value| {
        warnings.as_array().unwrap().iter().any(|w| {
            w.as_str()
                .unwrap()
                .contains(&format!("APIService {name} is not available"))
        })
    };
    assert!(named(&backup["warnings"]), "{backup:#}");
    let snap = backup["snapshot"].as_str().unwrap();
    let shown = env.json(&["snapshot", "show", snap]);
    assert!(
        named(&shown["snapshot"]["cluster"]["warnings"]),
        "{shown:#}"
    );

    // Left out on purpose: not a warning.
    let exclude = format!("*.{group}");
    let mut args = args.to_vec();
    args.extend(["--exclude-resources", &exclude]);
    let out = env.run(&args);
    let backup: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!named(&backup["warnings"]), "{backup:#}");
}
