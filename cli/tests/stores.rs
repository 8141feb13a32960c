//! Repositories on Azure Blob Storage (Azurite), Google Cloud Storage
//! (fake-gcs-server) and S3 (moto) through the real binary: round trips,
//! retention locks, and replication from one cloud to another.
//!
//! The emulators must be up (`tests/run` starts them; by hand:
//! `tests/substrate/aws up && tests/substrate/azure up && tests/substrate/gcs up`).
//! What they cannot show, and how the tests work around it, is in
//! docs/stores.md ("Through the CLI").
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::stores::{
    azure, azure_endpoint_vars, check_clean, gcs, problems, restore_matches, s3, snapshot_ids,
    with_env, AZURE_ACCOUNT,
};
use common::{make_data, Env};
use lifeboat_tests::fault_proxy::FaultProxy;
use lifeboat_tests::gcs_admin;
use serde_json::Value;

/// `volume backup --json` of `data`: the snapshot id and its summary.
fn backup(env: &Env, data: &std::path::Path) -> (String, Value) {
    let out = env.json(&["volume", "backup", data.to_str().unwrap()]);
    (
        out["snapshot"].as_str().unwrap().to_string(),
        out["summary"].clone(),
    )
}

/// Init, a first backup, a change, an incremental backup, a restore
/// compared byte for byte, and `repo check --read-data` with no problem.
fn round_trip(env: &Env) {
    env.ok(&["repo", "init", "--pack-size-mib", "1"]);
    let data = env.path("data");
    make_data(&data, 8);
    let (first, full) = backup(env, &data);
    lifeboat_ops::sample_data::mutate(&data, 0.02, 3).unwrap();
    let (second, incremental) = backup(env, &data);
    assert_ne!(first, second);
    // Incremental: the second backup names the first as its parent, and
    // stores much less than the first did.
    let listed = env.json(&["snapshots"]);
    let second_entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == second.as_str())
        .unwrap();
    assert_eq!(
        second_entry["snapshot"]["parent"],
        first.as_str(),
        "{listed:#}"
    );
    // It read only the changed files (about 3 MB of the 42 MB the tree
    // holds, sparse file included) and stored less than the first.
    let field = |s: &Value, f: &str| s[f].as_u64().unwrap();
    assert!(
        field(&incremental, "bytes_read") * 4 < field(&incremental, "bytes")
            && field(&incremental, "bytes_new") < field(&full, "bytes_new"),
        "the second backup is not incremental: {incremental} after {full}"
    );
    assert!(full["packs_written"].as_u64().unwrap() > 1, "{full}");

    restore_matches(env, &data, "restore");
    let report = check_clean(env, true);
    assert_eq!(report["snapshots"], 2, "{report}");
    assert!(report["packs_read"].as_u64().unwrap() > 1, "{report}");
    assert_eq!(report["packs_read"], report["packs"], "{report}");
}

#[test]
fn azure_repository_round_trip_on_azurite() {
    let (env, _) = azure("rt");
    round_trip(&env);
}

#[test]
fn gcs_repository_round_trip_on_fake_gcs_server() {
    let (env, _) = gcs("rt");
    round_trip(&env);
}

/// A runtime for the proxies these tests run beside the CLI.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// fake-gcs-server keeps no Object Retention Lock setting on buckets, so
/// `repo init --lock-mode` refuses its buckets as it would refuse a real
/// bucket without it; the locked tests reach it through a proxy that adds
/// the setting to the bucket's resource (test code only).
fn gcs_with_object_retention(tag: &str, rt: &tokio::runtime::Runtime) -> (Env, String, FaultProxy) {
    let (env, bucket) = gcs(tag);
    let err = env.fails(&[
        "repo",
        "init",
        "--lock-mode",
        "governance",
        "--lock-days",
        "1",
    ]);
    assert!(
        err.contains(&format!(
            "bucket {bucket} does not have Object Retention Lock enabled"
        )) && err.contains("--enable-per-object-retention"),
        "{err}"
    );
    let proxy = rt
        .block_on(FaultProxy::start_rewriting(
            &gcs_admin::emulator().unwrap(),
            gcs_admin::object_retention_enabled(),
        ))
        .unwrap();
    let env = with_env(
        env,
        vec![("STORAGE_EMULATOR_HOST".into(), proxy.url().to_string())],
    );
    (env, bucket, proxy)
}

/// Every object of the repository outside `locks/` carries `mode`, until
/// about `days` from now.
fn assert_objects_retained(bucket: &str, mode: &str, days: i64) -> usize {
    let objects = gcs_admin::list_objects(bucket, "repo/").unwrap();
    let now = chrono::Utc::now();
    let mut retained = 0;
    for o in &objects {
        let name = o["name"].as_str().unwrap();
        if name.starts_with("repo/locks/") {
            continue;
        }
        assert_eq!(o["retention"]["mode"], mode, "{name}: {o}");
        let until: chrono::DateTime<chrono::Utc> = o["retention"]["retainUntilTime"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let left = until - now;
        assert!(
            left > chrono::Duration::days(days) - chrono::Duration::hours(1)
                && left <= chrono::Duration::days(days) + chrono::Duration::minutes(1),
            "{name} is retained until {until}"
        );
        retained += 1;
    }
    retained
}

/// The warning `repo check` gives on an endpoint that cannot show that
/// retention is enforced (`ObjectStore::retention_caveat`).
fn assert_retention_caveat(env: &Env) {
    let text = env.ok(&["repo", "check"]);
    assert!(
        text.contains("warning:")
            && text.contains("retention is reported but not verified here")
            && text.contains("does not enforce"),
        "{text}"
    );
    assert!(text.contains("no errors found"), "{text}");
}

#[test]
fn gcs_governance_locks_are_written_checked_and_extended() {
    let rt = runtime();
    let (env, bucket, _proxy) = gcs_with_object_retention("gov", &rt);
    env.ok(&[
        "repo",
        "init",
        "--lock-mode",
        "governance",
        "--lock-days",
        "2",
        "--pack-size-mib",
        "1",
    ]);
    let data = env.path("data");
    make_data(&data, 4);
    env.backup(&data);
    let retained = assert_objects_retained(&bucket, "Unlocked", 2);

    let report = env.json(&["repo", "check", "--read-data"]);
    assert!(problems(&report, "error").is_empty(), "{report:#}");
    let warnings = problems(&report, "warning");
    assert_eq!(warnings.len(), 1, "{report:#}");
    let locked = report["objects_lock_checked"].as_u64().unwrap();
    assert!(locked >= 5, "only {locked} objects had their lock checked");
    assert!(
        locked as usize <= retained,
        "{locked} checked, {retained} retained"
    );
    assert_retention_caveat(&env);

    // Freshly written objects are locked for the full period already.
    let ext = env.json(&["repo", "extend-locks"]);
    assert_eq!(ext["objects"].as_u64().unwrap(), locked, "{ext}");
    assert_eq!(ext["extended"], 0, "{ext}");

    // Shorten one lock behind Lifeboat's back (fake-gcs-server allows it;
    // Cloud Storage would need overrideUnlockedRetention): check reports it,
    // extend-locks repairs it.
    let soon = chrono::Utc::now() + chrono::Duration::hours(1);
    gcs_admin::force_retention(&bucket, "repo/config", "Unlocked", soon).unwrap();
    let check = env.run(&["repo", "check", "--json"]);
    assert!(!check.status.success());
    let report: Value = serde_json::from_slice(&check.stdout).unwrap();
    let errors = problems(&report, "error");
    assert_eq!(errors.len(), 1, "{report:#}");
    assert_eq!(errors[0]["object"], "config", "{report:#}");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("shorter than the policy"),
        "{report:#}"
    );
    let ext = env.json(&["repo", "extend-locks"]);
    assert_eq!(ext["extended"], 1, "{ext}");
    assert_objects_retained(&bucket, "Unlocked", 2);
    let report = env.json(&["repo", "check"]);
    assert!(problems(&report, "error").is_empty(), "{report:#}");

    restore_matches(&env, &data, "restore");
}

#[test]
fn gcs_compliance_locks_are_written_and_checked() {
    let rt = runtime();
    let (env, bucket, _proxy) = gcs_with_object_retention("comp", &rt);
    env.ok(&[
        "repo",
        "init",
        "--lock-mode",
        "compliance",
        "--lock-days",
        "1",
    ]);
    let data = env.path("data");
    make_data(&data, 2);
    env.backup(&data);
    assert_objects_retained(&bucket, "Locked", 1);
    let report = env.json(&["repo", "check"]);
    assert!(problems(&report, "error").is_empty(), "{report:#}");
    assert!(
        report["objects_lock_checked"].as_u64().unwrap() >= 5,
        "{report}"
    );
    assert_retention_caveat(&env);
    // Locked for the full period already: nothing is sent (fake-gcs-server
    // would refuse any change to a Locked retention, docs/stores.md).
    let ext = env.json(&["repo", "extend-locks"]);
    assert_eq!(ext["extended"], 0, "{ext}");
    assert_eq!(ext["objects"], report["objects_lock_checked"], "{ext}");
}

#[test]
fn azure_locks_are_refused_where_the_container_has_no_immutability() {
    let (env, container) = azure("lock");
    for mode in ["governance", "compliance"] {
        let err = env.fails(&["repo", "init", "--lock-mode", mode, "--lock-days", "7"]);
        assert!(
            err.contains(&format!(
                "container {container} of storage account {AZURE_ACCOUNT} does not have \
                 version-level immutability enabled"
            )) && err.contains("--enable-vlw"),
            "{err}"
        );
    }
    // Nothing was written: the same container takes an unlocked repository.
    let err = env.fails(&["snapshots"]);
    assert!(err.contains("no Lifeboat repository"), "{err}");
    env.ok(&["repo", "init"]);
    let report = check_clean(&env, false);
    assert_eq!(report["objects_lock_checked"], 0, "{report}");
}

/// Replicate `from` into `replica` (unless `first_run` is false: already
/// done), then compare the snapshots, restore from the replica and compare
/// the files, and replicate again to find nothing to copy.
fn replicate_and_verify(from: &Env, data: &std::path::Path, replica: Env, first_run: bool) -> Env {
    if first_run {
        let out = from.json(&["repo", "replicate", "--to", &replica.repo]);
        assert_eq!(out["initialized"], true, "{out}");
        assert!(out["report"]["packs_copied"].as_u64().unwrap() > 0, "{out}");
    }
    assert_eq!(snapshot_ids(&replica), snapshot_ids(from));
    restore_matches(&replica, data, "from-replica");
    // A second run finds nothing to copy.
    let again = from.json(&["repo", "replicate", "--to", &replica.repo]);
    assert_eq!(again["initialized"], false, "{again}");
    assert_eq!(again["report"]["packs_copied"], 0, "{again}");
    replica
}

/// A replica takes the source's config, lock policy included, so a locked
/// replica on S3 needs a locked source. Azurite keeps no immutability: the
/// source reaches it through a proxy that makes its container claim
/// version-level immutability (test code only), so Lifeboat writes a locked
/// repository there whose blobs Azurite does not retain; the copies on moto,
/// which enforces Object Lock, are what is checked.
#[test]
fn azure_repository_replicates_to_s3_with_object_lock() {
    let rt = runtime();
    let (src, _) = azure("repl-src");
    let proxy = rt
        .block_on(FaultProxy::start_rewriting(
            &lifeboat_tests::azure_admin::connection_field("BlobEndpoint").unwrap(),
            lifeboat_tests::azure_admin::immutability_claimed(),
        ))
        .unwrap();
    let key = lifeboat_tests::azure_admin::connection_field("AccountKey").unwrap();
    let endpoint = format!("{}/{AZURE_ACCOUNT}", proxy.url());
    let src = with_env(src, azure_endpoint_vars(&endpoint, &key));
    let src = with_env(src, lifeboat_tests::aws_env());
    src.ok(&[
        "repo",
        "init",
        "--lock-mode",
        "compliance",
        "--lock-days",
        "1",
        "--pack-size-mib",
        "1",
    ]);
    let data = src.path("data");
    make_data(&data, 4);
    src.backup(&data);

    let (dst, _) = s3("repl-dst", true);
    let out = src.json(&["repo", "replicate", "--to", &dst.repo]);
    assert_eq!(out["initialized"], true, "{out}");
    assert!(out["report"]["packs_copied"].as_u64().unwrap() > 0, "{out}");
    let locks = &out["report"]["locks"];
    assert!(locks["objects"].as_u64().unwrap() >= 5, "{out:#}");
    let replica = replicate_and_verify(&src, &data, dst, false);
    // Every object a snapshot needs is locked on S3, for the policy's period.
    let report = check_clean(&replica, true);
    assert_eq!(report["snapshots"], 1, "{report}");
    assert_eq!(report["objects_lock_checked"], locks["objects"], "{report}");
    let ext = replica.json(&["repo", "extend-locks"]);
    assert_eq!(ext["extended"], 0, "{ext}");
}

#[test]
fn s3_repository_replicates_to_gcs() {
    let (src, _) = s3("repl-src", false);
    let (dst, _) = gcs("repl-dst");
    let src = with_env(src, lifeboat_tests::gcs_env());
    src.ok(&["repo", "init", "--pack-size-mib", "1"]);
    let data = src.path("data");
    make_data(&data, 4);
    src.backup(&data);
    lifeboat_ops::sample_data::mutate(&data, 0.1, 5).unwrap();
    src.backup(&data);
    let replica = replicate_and_verify(&src, &data, dst, true);
    let report = check_clean(&replica, true);
    assert_eq!(report["snapshots"], 2, "{report}");
}
