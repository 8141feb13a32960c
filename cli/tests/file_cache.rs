//! The local cache of snapshot and index files, through the real binary
//! on an S3 repository (moto, started by tests/run): filled by the first
//! command, used by the next, bypassed by --no-cache and by `repo check`,
//! never used for a local repository.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::{make_data, Env};

fn s3_env(bucket: &str) -> Env {
    lifeboat_tests::s3_admin::create_bucket(bucket, false).unwrap();
    let mut env = Env::new();
    env.repo = format!("s3://{bucket}/repo");
    env.extra_env = lifeboat_tests::aws_env();
    env
}

fn cached_files(env: &Env, kind: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(repos) = std::fs::read_dir(env.path("cache")) else {
        return out;
    };
    for repo in repos {
        let Ok(files) = std::fs::read_dir(repo.unwrap().path().join(kind)) else {
            continue;
        };
        for f in files {
            out.push(f.unwrap().file_name().to_string_lossy().into_owned());
        }
    }
    out.sort();
    out
}

#[test]
fn remote_snapshot_and_index_files_are_cached_and_check_reads_the_store() {
    let bucket = format!("lb-cache-{}", std::process::id());
    let env = s3_env(&bucket);
    env.ok(&["repo", "init", "--pack-size-mib", "1"]);
    let data = env.path("data");
    make_data(&data, 2);
    let first = env.backup(&data);
    let second = env.backup(&data);

    // The second backup looked for its parent: the first snapshot and the
    // index are in the cache, as they are in the store.
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), 2);
    let cached = cached_files(&env, "snapshots");
    assert!(cached.contains(&first), "{cached:?}");
    assert!(cached.contains(&second), "{cached:?}");
    assert!(!cached_files(&env, "index").is_empty());

    // The store's copy of the first snapshot rots. The listing still reads
    // it from the cache; without the cache it is named as unreadable; and
    // check, which never uses the cache, reports it.
    let key = format!("repo/snapshots/{first}");
    lifeboat_tests::s3_admin::overwrite_object(&bucket, &key, b"rot").unwrap();
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), 2);
    let uncached = env.run(&["snapshots", "--no-cache", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&uncached.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert!(
        String::from_utf8_lossy(&uncached.stderr).contains(&first),
        "the unreadable snapshot is named"
    );
    let check = env.run(&["repo", "check", "--json"]);
    assert!(!check.status.success());
    let report: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert!(report.to_string().contains(&first), "{report}");
}

#[test]
fn a_local_repository_is_not_cached() {
    let env = Env::new();
    env.ok(&["repo", "init"]);
    let data = env.path("data");
    make_data(&data, 1);
    env.backup(&data);
    env.json(&["snapshots"]);
    assert!(!env.path("cache").exists());
}
