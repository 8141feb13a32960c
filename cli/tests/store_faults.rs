//! Bad input and failing object stores through the real binary: a bucket or
//! container that does not exist, a wrong Azure account key, and an
//! emulator that goes away in the middle of a backup (a
//! `lifeboat_tests::fault_proxy::FaultProxy` between the CLI and the
//! emulator, run in this test process).
//!
//! The emulators must be up (`tests/run` starts them; by hand:
//! `tests/substrate/aws up && tests/substrate/azure up && tests/substrate/gcs up`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::stores::{
    azure, azure_endpoint_vars, gcs, problems, restore_matches, s3, snapshot_ids, unique, with_env,
    AZURE_ACCOUNT,
};
use common::{make_data, Env};
use lifeboat_tests::azure_admin::connection_field;
use lifeboat_tests::fault_proxy::{FaultProxy, Outage};
use std::time::{Duration, Instant};

/// The one `lifeboat: error:` line of a failed command's stderr.
fn error_line(stderr: &str) -> &str {
    let lines: Vec<_> = stderr
        .lines()
        .filter(|l| l.starts_with("lifeboat: error:"))
        .collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {stderr}");
    lines[0]
}

#[test]
fn a_missing_container_or_bucket_is_named() {
    // Azure: the container was never created.
    let container = unique("none");
    let mut env = with_env(Env::new(), lifeboat_tests::azure_env());
    env.repo = format!("azure://{AZURE_ACCOUNT}/{container}/repo");
    let location = format!("azure://{AZURE_ACCOUNT}/{container}/repo");
    for args in [
        &["repo", "init"][..],
        &["snapshots"],
        &["volume", "backup", "/etc/hostname"],
    ] {
        let err = env.fails(args);
        let line = error_line(&err);
        assert!(
            line.contains(&format!("repository store {location} does not exist")),
            "{args:?}: {err}"
        );
    }

    // Cloud Storage: the bucket was never created.
    let bucket = unique("none");
    let mut env = with_env(Env::new(), lifeboat_tests::gcs_env());
    env.repo = format!("gs://{bucket}/repo");
    let err = env.fails(&["repo", "init"]);
    assert!(
        error_line(&err).contains(&format!(
            "repository store gs://{bucket}/repo does not exist"
        )),
        "{err}"
    );
    // Cloud Storage says "The specified bucket does not exist" when an object
    // of a missing bucket is read, which the store reports as a missing
    // store; fake-gcs-server answers a bare "Not Found", the same as for a
    // missing object, so here the bucket is named as holding no repository.
    let err = env.fails(&["snapshots"]);
    assert!(
        error_line(&err).contains(&format!("no Lifeboat repository at gs://{bucket}/repo")),
        "{err}"
    );

    // S3: the bucket was never created.
    let bucket = unique("none");
    let mut env = with_env(Env::new(), lifeboat_tests::aws_env());
    env.repo = format!("s3://{bucket}/repo");
    for args in [&["repo", "init"][..], &["snapshots"]] {
        let err = env.fails(args);
        assert!(error_line(&err).contains(&bucket), "{args:?}: {err}");
    }
}

#[test]
fn a_wrong_azure_account_key_is_refused_naming_account_and_container_without_the_key() {
    let (good, container) = azure("badkey");
    good.ok(&["repo", "init"]);
    // Valid base64 of the right length, not the account's key.
    let wrong_key =
        "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXlXcm9uZ0tleQ==";
    let real_key = connection_field("AccountKey").unwrap();
    let endpoint = connection_field("BlobEndpoint").unwrap();
    let bad = with_env(
        Env {
            dir: tempfile::tempdir().unwrap(),
            repo: good.repo.clone(),
            extra_env: good.extra_env.clone(),
        },
        azure_endpoint_vars(&endpoint, wrong_key),
    );
    let data = good.path("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("f"), b"hello").unwrap();
    for args in [
        &["snapshots"][..],
        &["repo", "init"],
        &["volume", "backup", data.to_str().unwrap()],
    ] {
        let out = bad.run(args);
        assert!(!out.status.success(), "{args:?} succeeded with a wrong key");
        let err = String::from_utf8_lossy(&out.stderr);
        let line = error_line(&err);
        assert!(
            line.contains("access denied")
                && line.contains(&format!("storage account {AZURE_ACCOUNT}"))
                && line.contains(&format!("container {container}")),
            "{args:?}: {err}"
        );
        for secret in [wrong_key, real_key.as_str()] {
            assert!(
                !err.contains(secret) && !err.contains(&secret[..20]),
                "{args:?}: the account key appears in: {err}"
            );
        }
    }
    // The right key still opens it, untouched.
    assert!(snapshot_ids(&good).is_empty());
}

/// A runtime for the proxy the CLI talks through.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Start a backup through `proxy`, make the emulator look gone once
/// `started` has seen `writes` requests that write packs, and check: the
/// backup fails with a clear error naming `location`, no snapshot is listed,
/// and once the emulator is back `repo check` finds nothing wrong but the
/// interrupted backup's orphan packs, and a new backup succeeds and restores.
fn backup_survives_an_outage(
    env: &Env,
    proxy: &FaultProxy,
    outage: Outage,
    is_pack_write: fn(&str) -> bool,
    location: &str,
) {
    env.ok(&["repo", "init", "--pack-size-mib", "1"]);
    let data = env.path("data");
    make_data(&data, 16);
    let seen_before = proxy.request_lines().len();
    let child = env
        .cmd(&["volume", "backup", data.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let writes = proxy.request_lines()[seen_before..]
            .iter()
            .filter(|l| is_pack_write(l))
            .count();
        if writes >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the backup wrote no packs in 120 s"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    proxy.fail_all(outage);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the backup succeeded although the store went away: {stderr}"
    );
    let line = error_line(&stderr);
    assert!(
        line.contains(location) && line.contains("(after retries)"),
        "{stderr}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).trim().is_empty(),
        "a snapshot id was printed: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    // While the store is away, commands fail clearly too.
    let err = env.fails(&["snapshots"]);
    assert!(error_line(&err).contains(location), "{err}");

    proxy.heal();
    assert!(
        snapshot_ids(env).is_empty(),
        "a failed backup left a snapshot"
    );
    let check = env.run(&["repo", "check", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert!(check.status.success(), "{report:#}");
    assert!(problems(&report, "error").is_empty(), "{report:#}");
    assert!(
        problems(&report, "warning")
            .iter()
            .all(|p| p["message"].as_str().unwrap().starts_with("orphan")),
        "{report:#}"
    );
    let id = env.backup(&data);
    assert_eq!(snapshot_ids(env), vec![id]);
    restore_matches(env, &data, "restore");
    let report = env.json(&["repo", "check", "--read-data"]);
    assert!(problems(&report, "error").is_empty(), "{report:#}");
}

#[test]
fn azure_going_away_mid_backup_fails_it_cleanly() {
    let rt = runtime();
    let (env, container) = azure("outage");
    let endpoint = connection_field("BlobEndpoint").unwrap();
    let proxy = rt.block_on(FaultProxy::start(&endpoint)).unwrap();
    let key = connection_field("AccountKey").unwrap();
    let env = with_env(
        env,
        azure_endpoint_vars(&format!("{}/{AZURE_ACCOUNT}", proxy.url()), &key),
    );
    // Every request answered 503 (retried, then given up) from then on.
    backup_survives_an_outage(
        &env,
        &proxy,
        Outage::Status(503),
        |l| l.starts_with("PUT ") && l.contains("/repo/data/"),
        &format!("azure://{AZURE_ACCOUNT}/{container}/repo"),
    );
}

#[test]
fn gcs_going_away_mid_backup_fails_it_cleanly() {
    let rt = runtime();
    let (env, bucket) = gcs("outage");
    let upstream = lifeboat_tests::gcs_admin::emulator().unwrap();
    let proxy = rt.block_on(FaultProxy::start(&upstream)).unwrap();
    let env = with_env(
        env,
        vec![("STORAGE_EMULATOR_HOST".into(), proxy.url().to_string())],
    );
    // Every connection closed unanswered from then on, as a server that died.
    backup_survives_an_outage(
        &env,
        &proxy,
        Outage::Hangup,
        // Objects other than lock records are created only if absent.
        |l| l.starts_with("POST /upload/") && l.contains("ifGenerationMatch=0"),
        &format!("gs://{bucket}/repo"),
    );
}

#[test]
fn s3_going_away_mid_backup_fails_it_cleanly() {
    let rt = runtime();
    let (env, bucket) = s3("outage", false);
    let upstream = env
        .extra_env
        .iter()
        .find(|(k, _)| k == "AWS_ENDPOINT_URL")
        .unwrap()
        .1
        .clone();
    let proxy = rt.block_on(FaultProxy::start(&upstream)).unwrap();
    let env = with_env(
        env,
        vec![("AWS_ENDPOINT_URL".into(), proxy.url().to_string())],
    );
    backup_survives_an_outage(
        &env,
        &proxy,
        Outage::Status(503),
        |l| l.starts_with("PUT ") && l.contains("/repo/data/"),
        &format!("s3://{bucket}/repo"),
    );
}
