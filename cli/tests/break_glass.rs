//! Break-glass recovery (docs/threat-model.md, docs/workflows.md): with the
//! primary region and the passphrase store gone, a fresh machine holding only
//! the replica bucket's credentials and the recovery key file made at
//! `repo init` (or the passphrase) lists, verifies and restores the latest
//! snapshot, and writes nothing to the replica while doing so, so
//! read-only credentials are enough. Against moto (started by tests/run).
//!
//! moto does not evaluate IAM policies, so "read-only" is proven by the
//! replica bucket's version listing being unchanged, not by a refused write.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::{assert_identical, make_data, Env};
use std::path::Path;
use std::process::{Command, Output};

/// The `lifeboat` binary on a "fresh machine": an empty HOME and working
/// directory, no Lifeboat settings, only what the caller passes.
fn fresh(home: &Path, env: &[(String, String)], args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lifeboat"));
    c.env_clear()
        .current_dir(home)
        .env("HOME", home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({:?}):\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn replica_restores_on_a_fresh_machine_with_only_read_credentials_and_the_recovery_key() {
    let aws = lifeboat_tests::aws_env();
    let primary = format!("lb-bg-primary-{}", std::process::id());
    let replica = format!("lb-bg-replica-{}", std::process::id());
    lifeboat_tests::s3_admin::create_bucket(&primary, true).unwrap();
    lifeboat_tests::s3_admin::create_bucket(&replica, true).unwrap();
    let mut env = Env::new();
    env.repo = format!("s3://{primary}/repo");
    env.extra_env = aws.clone();
    let recovery = env.path("recovery.key");
    env.ok(&[
        "repo",
        "init",
        "--lock-mode",
        "governance",
        "--lock-days",
        "2",
        "--pack-size-mib",
        "1",
        "--recovery-key-file",
        recovery.to_str().unwrap(),
    ]);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&recovery).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the recovery key file is {mode:o}");
    }
    // A second init never overwrites a recovery key.
    let again = env.fails(&[
        "repo",
        "init",
        "--recovery-key-file",
        recovery.to_str().unwrap(),
    ]);
    assert!(again.contains("must not exist yet"), "{again}");

    let data = env.path("data");
    make_data(&data, 8);
    env.backup(&data);
    lifeboat_ops::sample_data::mutate(&data, 0.1, 3).unwrap();
    let latest = env.backup(&data);
    let replica_url = format!("s3://{replica}/repo");
    env.ok(&["repo", "replicate", "--to", &replica_url]);

    // The disaster: only the replica, its credentials and the key file remain.
    let before = lifeboat_tests::s3_admin::object_versions(&replica).unwrap();
    assert!(before.len() >= 6, "{before:?}");
    let home = tempfile::tempdir().unwrap();
    let key = home.path().join("recovery.key");
    std::fs::copy(&recovery, &key).unwrap();
    let mut fresh_env: Vec<(String, String)> = aws
        .iter()
        .filter(|(k, _)| k.starts_with("AWS_"))
        .cloned()
        .collect();
    fresh_env.push(("LIFEBOAT_REPO".into(), replica_url.clone()));
    fresh_env.push(("LIFEBOAT_KEY_FILE".into(), key.display().to_string()));

    let list: serde_json::Value = serde_json::from_str(&ok(
        fresh(home.path(), &fresh_env, &["snapshots", "--json"]),
        "snapshots",
    ))
    .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    let check: serde_json::Value = serde_json::from_str(&ok(
        fresh(
            home.path(),
            &fresh_env,
            &["repo", "check", "--read-data", "--json"],
        ),
        "repo check --read-data",
    ))
    .unwrap();
    assert!(check["problems"].as_array().unwrap().is_empty(), "{check}");
    let target = home.path().join("restored");
    let restored: serde_json::Value = serde_json::from_str(&ok(
        fresh(
            home.path(),
            &fresh_env,
            &[
                "volume",
                "restore",
                "latest",
                target.to_str().unwrap(),
                "--restore-setuid",
                "--json",
            ],
        ),
        "volume restore latest",
    ))
    .unwrap();
    assert_eq!(
        restored["snapshot"].as_str(),
        Some(latest.as_str()),
        "{restored}"
    );
    assert_identical(&data, &target.join("data"));
    let after = lifeboat_tests::s3_admin::object_versions(&replica).unwrap();
    assert_eq!(
        before, after,
        "the break-glass restore wrote to the replica"
    );

    // The passphrase alone opens the replica too (the other credential).
    let mut by_passphrase: Vec<(String, String)> = fresh_env
        .iter()
        .filter(|(k, _)| k != "LIFEBOAT_KEY_FILE")
        .cloned()
        .collect();
    by_passphrase.push(("LIFEBOAT_PASSWORD".into(), common::PASSWORD.into()));
    ok(
        fresh(home.path(), &by_passphrase, &["snapshots"]),
        "snapshots with the passphrase",
    );
    // And nothing else does.
    let mut wrong = fresh_env.clone();
    let bad = home.path().join("other.key");
    std::fs::write(&bad, [7u8; 64]).unwrap();
    wrong.retain(|(k, _)| k != "LIFEBOAT_KEY_FILE");
    wrong.push(("LIFEBOAT_KEY_FILE".into(), bad.display().to_string()));
    let out = fresh(home.path(), &wrong, &["snapshots"]);
    assert!(!out.status.success());
}
