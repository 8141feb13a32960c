//! A cluster reached only through a kubeconfig exec credential plugin that
//! hands out short-lived tokens (tests/substrate/oidc/exec-plugin, whose
//! tokens the local primary's JWT authenticator accepts), as kubelogin,
//! gke-gcloud-auth-plugin and `aws eks get-token` do: a backup that
//! outlives several of its credentials completes, and an expired
//! credential is refused by the API server (so the lifetimes are real).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::workflow::kubectl;
use common::{kubeconfig, Env};
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

const USER: &str = "lifeboat-exec-test";
/// Seconds each token lives.
const LIFETIME: u64 = 2;

/// A kubeconfig for primary whose user is the exec plugin, or (with
/// `token`) a fixed token.
fn write_kubeconfig(path: &Path, vars: &HashMap<String, String>, user: &str) {
    let ca = lifeboat_tests::substrate_dir().join("primary/pki/ca.crt");
    std::fs::write(
        path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: primary\n  cluster:\n    \
             server: {}\n    certificate-authority: {}\nusers:\n- name: u\n  user:\n{user}\
             contexts:\n- name: primary\n  context: {{cluster: primary, user: u}}\n\
             current-context: primary\n",
            vars["LIFEBOAT_PRIMARY_APISERVER"],
            ca.display()
        ),
    )
    .unwrap();
}

fn exec_user(vars: &HashMap<String, String>, lifetime: i64, log: &Path) -> String {
    let plugin = lifeboat_tests::repo_root().join("tests/substrate/oidc/exec-plugin");
    let env = [
        ("LIFEBOAT_OIDC_ISSUER", vars["OIDC_ISSUER_PRIMARY"].clone()),
        (
            "LIFEBOAT_OIDC_KEY",
            vars["OIDC_SIGNING_KEY_PRIMARY"].clone(),
        ),
        ("LIFEBOAT_OIDC_SUBJECT", USER.to_string()),
        ("LIFEBOAT_OIDC_LIFETIME", lifetime.to_string()),
        ("LIFEBOAT_OIDC_LOG", log.display().to_string()),
    ]
    .iter()
    .map(|(k, v)| format!("      - {{name: {k}, value: \"{v}\"}}\n"))
    .collect::<String>();
    format!(
        "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {}\n      \
         interactiveMode: Never\n      env:\n{env}",
        plugin.display()
    )
}

/// Each token's (issued at, expires at), in the order they were minted.
fn tokens(log: &Path) -> Vec<(u64, u64)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(a, b)| (a.parse().unwrap(), b.parse().unwrap()))
        .collect()
}

#[test]
fn a_backup_outlives_several_short_lived_exec_credentials() {
    if common::skip_clusters() {
        return;
    }
    let vars = common::clusters_env();
    // What the plugin's user may do: read everything (a backup's needs).
    let rbac = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {{name: {USER}}}\n\
         rules: [{{apiGroups: ['*'], resources: ['*'], verbs: [get, list, watch]}}]\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {{name: {USER}}}\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {USER}}}\n\
         subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: 'oidc:{USER}'}}]\n"
    );
    let (ok, out) = kubectl("primary", &["apply", "-f", "-"], Some(&rbac));
    assert!(ok, "{out}");
    let _ = kubeconfig("primary");
    let env = Env::new();
    env.ok(&["repo", "init"]);

    // An expired credential is refused: the lifetimes below are real.
    let expired_log = env.path("expired.log");
    let expired = env.path("expired.kubeconfig");
    write_kubeconfig(&expired, &vars, &exec_user(&vars, -5, &expired_log));
    let err = env.fails(&["backup", "--kubeconfig", expired.to_str().unwrap()]);
    assert!(err.contains("401") || err.contains("Unauthorized"), "{err}");
    assert!(
        env.json(&["snapshots"]).as_array().unwrap().is_empty(),
        "a refused backup wrote a snapshot"
    );

    // Tokens of LIFETIME seconds: the client asks the plugin again whenever
    // its token is about to expire.
    let log = env.path("tokens.log");
    let config = env.path("exec.kubeconfig");
    write_kubeconfig(&config, &vars, &exec_user(&vars, LIFETIME as i64, &log));
    let started = Instant::now();
    let backup = env.json(&["backup", "--kubeconfig", config.to_str().unwrap()]);
    let took = started.elapsed();
    assert!(
        backup["summary"]["files"].as_u64().unwrap() > 50,
        "{backup}"
    );
    // Generations: a token minted after the one before had expired.
    let minted = tokens(&log);
    let mut generations = 0;
    let mut valid_until = 0;
    for (issued, expires) in &minted {
        if *issued > valid_until {
            generations += 1;
            valid_until = *expires;
        }
    }
    eprintln!(
        "backup took {took:?}: {} tokens of {LIFETIME} s, {generations} generations",
        minted.len()
    );
    // At least one credential expired mid-backup and the backup went on
    // with later ones (locally: 13 s, 59 tokens, 5 generations).
    assert!(
        generations >= 2 && minted.len() >= 3,
        "the backup ({took:?}) used {} tokens in {generations} generations; it must outlive \
         its first {LIFETIME}-second credential",
        minted.len()
    );
    kubectl(
        "primary",
        &[
            "delete",
            "clusterrolebinding,clusterrole",
            USER,
            "--ignore-not-found",
        ],
        None,
    );
}
