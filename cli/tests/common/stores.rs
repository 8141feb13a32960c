//! Helpers for the tests of repositories on cloud object stores, through the
//! real binary against the emulators `tests/run` starts (moto, Azurite,
//! fake-gcs-server; by hand: `tests/substrate/{aws,azure,gcs} up`). Each
//! test makes its own bucket or container, so tests and reruns never share
//! one.

use super::{assert_identical, Env};
use serde_json::Value;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

/// Azurite's well-known development account.
pub const AZURE_ACCOUNT: &str = "devstoreaccount1";

/// A bucket or container name no other test or earlier run used
/// (lowercase, digits and dashes, under 63 characters).
pub fn unique(tag: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "lb-{tag}-{}-{n}-{}",
        std::process::id(),
        nanos % 1_000_000_000
    )
}

/// `env` with these variables too (later ones win over earlier ones).
pub fn with_env(mut env: Env, vars: Vec<(String, String)>) -> Env {
    env.extra_env.extend(vars);
    env
}

/// A fresh container on Azurite and an `Env` whose repository is
/// `azure://devstoreaccount1/<container>/repo`.
pub fn azure(tag: &str) -> (Env, String) {
    let container = unique(tag);
    lifeboat_tests::azure_admin::create_container(&container).unwrap();
    let mut env = with_env(Env::new(), lifeboat_tests::azure_env());
    env.repo = format!("azure://{AZURE_ACCOUNT}/{container}/repo");
    (env, container)
}

/// A fresh bucket on fake-gcs-server and an `Env` whose repository is
/// `gs://<bucket>/repo`.
pub fn gcs(tag: &str) -> (Env, String) {
    let bucket = unique(tag);
    lifeboat_tests::gcs_admin::create_bucket(&bucket).unwrap();
    let mut env = with_env(Env::new(), lifeboat_tests::gcs_env());
    env.repo = format!("gs://{bucket}/repo");
    (env, bucket)
}

/// A fresh bucket on moto, with Object Lock or not, and an `Env` whose
/// repository is `s3://<bucket>/repo`.
pub fn s3(tag: &str, object_lock: bool) -> (Env, String) {
    let bucket = unique(tag);
    lifeboat_tests::s3_admin::create_bucket(&bucket, object_lock).unwrap();
    let mut env = with_env(Env::new(), lifeboat_tests::aws_env());
    env.repo = format!("s3://{bucket}/repo");
    (env, bucket)
}

/// Azurite's connection string with another Blob endpoint and account key,
/// and the endpoint override, so the CLI talks to `endpoint` with `key`.
pub fn azure_endpoint_vars(endpoint: &str, key: &str) -> Vec<(String, String)> {
    let cs = format!(
        "DefaultEndpointsProtocol=http;AccountName={AZURE_ACCOUNT};AccountKey={key};BlobEndpoint={endpoint};"
    );
    vec![
        ("AZURE_STORAGE_CONNECTION_STRING".into(), cs),
        ("AZURE_STORAGE_BLOB_ENDPOINT".into(), endpoint.into()),
    ]
}

/// The problems `repo check --json` reported with this severity.
pub fn problems<'a>(report: &'a Value, severity: &str) -> Vec<&'a Value> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["severity"] == severity)
        .collect()
}

/// `repo check` (with `--read-data` if asked) must succeed with no problem
/// at all; returns its report.
pub fn check_clean(env: &Env, read_data: bool) -> Value {
    let mut args = vec!["repo", "check"];
    if read_data {
        args.push("--read-data");
    }
    let report = env.json(&args);
    assert!(
        report["problems"].as_array().unwrap().is_empty(),
        "{}: {report:#}",
        env.repo
    );
    report
}

/// The ids of the snapshots `snapshots --json` lists.
pub fn snapshot_ids(env: &Env) -> Vec<String> {
    env.json(&["snapshots"])
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

/// Restore `latest` into a new directory of `env` and compare it with `data`
/// byte for byte.
pub fn restore_matches(env: &Env, data: &Path, into: &str) {
    let out = env.path(into);
    env.ok(&["volume", "restore", "latest", out.to_str().unwrap()]);
    assert_identical(data, &out.join("data"));
}
