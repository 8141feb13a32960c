//! The S3 store through the real binary, against moto on 127.0.0.1
//! (started by tests/run): Object Lock on every object, check of locks,
//! extend-locks, and prune refusing to delete what is locked.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::{assert_identical, make_data, Env};

fn endpoint(env: &[(String, String)]) -> String {
    env.iter()
        .find(|(k, _)| k == "AWS_ENDPOINT_URL")
        .unwrap()
        .1
        .clone()
}

fn create_bucket(_endpoint: &str, name: &str, object_lock: bool) {
    lifeboat_tests::s3_admin::create_bucket(name, object_lock).unwrap();
}

fn s3_env(bucket: &str) -> Env {
    let aws = lifeboat_tests::aws_env();
    let mut env = Env::new();
    env.repo = format!("s3://{bucket}/backups/prod");
    env.extra_env = aws;
    env
}

#[test]
fn locked_repository_in_s3() {
    let aws = lifeboat_tests::aws_env();
    let bucket = format!("lb-locked-{}", std::process::id());
    create_bucket(&endpoint(&aws), &bucket, true);
    let env = s3_env(&bucket);
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
    make_data(&data, 8);
    let first = env.backup(&data);

    let check = env.json(&["repo", "check", "--read-data"]);
    assert!(check["problems"].as_array().unwrap().is_empty(), "{check}");
    let locked = check["objects_lock_checked"].as_u64().unwrap();
    assert!(locked >= 5, "only {locked} objects had their lock checked");

    // Freshly written objects are locked for the full period already.
    let ext = env.json(&["repo", "extend-locks"]);
    assert_eq!(ext["objects"].as_u64().unwrap(), locked);
    assert_eq!(ext["extended"], 0, "{ext}");

    // Shorten one lock behind Lifeboat's back (moto allows it; AWS would need
    // governance bypass): check reports it, extend-locks repairs it.
    let soon = chrono::Utc::now() + chrono::Duration::hours(1);
    lifeboat_tests::s3_admin::force_governance_retention(&bucket, "backups/prod/config", soon)
        .unwrap();
    let check = env.run(&["repo", "check", "--json"]);
    assert!(!check.status.success());
    let report: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    let p = &report["problems"][0];
    assert_eq!(p["object"], "config", "{report}");
    assert!(
        p["message"]
            .as_str()
            .unwrap()
            .contains("shorter than the policy"),
        "{p}"
    );
    let ext = env.json(&["repo", "extend-locks"]);
    assert_eq!(ext["extended"], 1, "{ext}");
    let check = env.json(&["repo", "check"]);
    assert!(check["problems"].as_array().unwrap().is_empty(), "{check}");

    lifeboat_ops::sample_data::mutate(&data, 0.1, 3).unwrap();
    env.backup(&data);
    // The first snapshot is past retention by policy, but its lock holds.
    let pruned = env.json(&["repo", "prune", "--keep-last", "1"]);
    assert_eq!(
        pruned["snapshots_removed"].as_array().unwrap().len(),
        0,
        "{pruned}"
    );
    assert_eq!(pruned["snapshots_locked"][0], first.as_str());
    assert_eq!(pruned["packs_deleted"], 0);

    let out = env.path("restore");
    env.ok(&["volume", "restore", "latest", out.to_str().unwrap()]);
    assert_identical(&data, &out.join("data"));
    let check = env.json(&["repo", "check"]);
    assert!(check["problems"].as_array().unwrap().is_empty(), "{check}");
}

#[test]
fn bucket_without_object_lock_is_refused_clearly() {
    let aws = lifeboat_tests::aws_env();
    let bucket = format!("lb-plain-{}", std::process::id());
    create_bucket(&endpoint(&aws), &bucket, false);
    let env = s3_env(&bucket);
    let err = env.fails(&[
        "repo",
        "init",
        "--lock-mode",
        "compliance",
        "--lock-days",
        "1",
    ]);
    assert!(
        err.contains("does not have S3 Object Lock enabled"),
        "{err}"
    );
    // Without a lock policy the same bucket works.
    env.ok(&["repo", "init"]);
    let data = env.path("d");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("f"), b"hello").unwrap();
    env.backup(&data);

    let missing = s3_env("lb-no-such-bucket");
    let err = missing.fails(&["snapshots"]);
    assert!(err.contains("lb-no-such-bucket"), "{err}");
}
