#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Killed backups, concurrent writers, corruption, and prune.

mod common;
use common::{assert_identical, make_data, Env};
use std::path::Path;
use std::time::{Duration, Instant};

fn pack_files(repo: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for d in std::fs::read_dir(Path::new(repo).join("data")).unwrap() {
        for f in std::fs::read_dir(d.unwrap().path()).unwrap() {
            out.push(f.unwrap().path());
        }
    }
    out.sort();
    out
}

fn check_json(env: &Env) -> (bool, serde_json::Value) {
    let out = env.run(&["repo", "check", "--read-data", "--json"]);
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.success(), v)
}

#[test]
fn sigkill_at_random_points_never_breaks_the_repository() {
    let env = Env::new();
    // Small packs so that a kill lands between pack, index and snapshot writes.
    env.ok(&["repo", "init", "--pack-size-mib", "1"]);
    let data = env.path("data");
    make_data(&data, 48);
    // Kill points are spread over the time a whole backup of this data takes
    // on this machine and build, timed into a repository of its own, so
    // they land inside the backup however fast it is.
    let timing = Env::new();
    timing.ok(&["repo", "init", "--pack-size-mib", "1"]);
    let started = Instant::now();
    timing.backup(&data);
    let whole = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut span = (whole * 9 / 10).saturating_sub(20).max(10);
    let mut rng = lifeboat_ops::sample_data::Rng::new(2026);
    let mut killed_midway = 0;
    // At least 12 rounds and 6 kills inside a running backup. The timed
    // backup is only a first guess (on a loaded machine the next ones may
    // run faster): a backup that finished before its kill narrows the span.
    let mut round = 0;
    while round < 12 || (killed_midway < 6 && round < 30) {
        let delay = Duration::from_millis(20 + rng.below(span));
        let mut child = env
            .cmd(&["volume", "backup", data.to_str().unwrap(), "--no-parent"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            killed_midway += 1;
        } else {
            let finished_within = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
            span = span.min((finished_within * 3 / 4).saturating_sub(20).max(10));
        }
        let _ = child.kill(); // SIGKILL
        child.wait().unwrap();
        let (ok, report) = check_json(&env);
        assert!(
            ok,
            "round {round} (killed after {delay:?}): check failed: {report}"
        );
        for p in report["problems"].as_array().unwrap() {
            assert_eq!(p["severity"], "warning", "round {round}: {p}");
        }
        round += 1;
    }
    assert!(
        killed_midway >= 6,
        "only {killed_midway} of {round} backups were killed while running (a whole one took {whole} ms)"
    );
    // The next backup succeeds and restores exactly; then prune clears the orphans.
    env.ok(&["repo", "unlock", "--all"]);
    let id = env.backup(&data);
    let out = env.path("restore");
    env.ok(&["volume", "restore", &id, out.to_str().unwrap()]);
    assert_identical(&data, &out.join("data"));
    env.ok(&["repo", "prune", "--keep-last", "1", "--grace", "0"]);
    let (ok, report) = check_json(&env);
    assert!(
        ok && report["problems"].as_array().unwrap().is_empty(),
        "{report}"
    );
}

#[test]
fn two_backups_at_once_both_succeed() {
    let env = Env::new();
    env.ok(&["repo", "init", "--pack-size-mib", "1"]);
    let a = env.path("a");
    let b = env.path("b");
    make_data(&a, 24);
    lifeboat_ops::sample_data::generate(&b, 24 << 20, 99).unwrap();
    let ca = env
        .cmd(&["volume", "backup", a.to_str().unwrap(), "--json"])
        .output();
    let cb = env
        .cmd(&["volume", "backup", b.to_str().unwrap(), "--json"])
        .spawn()
        .unwrap();
    let (ra, rb) = (ca.unwrap(), cb.wait_with_output().unwrap());
    assert!(ra.status.success() && rb.status.success());
    let ra = env.path("ra");
    env.ok(&["volume", "restore", "latest", ra.to_str().unwrap()]);
    let (ok, report) = check_json(&env);
    assert!(
        ok && report["problems"].as_array().unwrap().is_empty(),
        "{report}"
    );
    let snaps = env.json(&["snapshots"]);
    assert_eq!(snaps.as_array().unwrap().len(), 2);
}

#[test]
fn prune_beside_a_backup_never_deletes_what_the_backup_needs() {
    let env = Env::new();
    env.ok(&["repo", "init", "--pack-size-mib", "1"]);
    let data = env.path("data");
    make_data(&data, 32);
    env.backup(&data);
    env.backup(&data);
    lifeboat_ops::sample_data::mutate(&data, 0.2, 5).unwrap();
    let backup = env
        .cmd(&[
            "volume",
            "backup",
            data.to_str().unwrap(),
            "--no-parent",
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Prune repeatedly while the backup runs: each attempt either waits its turn
    // (refused with a lock message) or runs alone.
    let mut refused = 0;
    for _ in 0..20 {
        let out = env.run(&["repo", "prune", "--keep-last", "1"]);
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("repository is locked"), "{err}");
            refused += 1;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = backup.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(refused > 0, "prune never met the running backup");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = v["snapshot"].as_str().unwrap();
    let (ok, report) = check_json(&env);
    assert!(ok, "{report}");
    let r = env.path("r");
    env.ok(&["volume", "restore", id, r.to_str().unwrap()]);
    assert_identical(&data, &r.join("data"));
}

#[test]
fn corruption_is_found_and_named() {
    let env = Env::new();
    env.ok(&["repo", "init", "--pack-size-mib", "1"]);
    let data = env.path("data");
    make_data(&data, 8);
    let id = env.backup(&data);
    let short = &id[..8];
    // How many packs the backup makes depends on how the workers' packs fill,
    // so every step corrupts (and then repairs) the same, largest pack.
    let packs = pack_files(&env.repo);
    let target = packs
        .iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap()
        .clone();

    // A flipped byte.
    let p0 = &target;
    let mut bytes = std::fs::read(p0).unwrap();
    bytes[100] ^= 0x01;
    std::fs::write(p0, &bytes).unwrap();
    let (ok, report) = check_json(&env);
    assert!(!ok);
    let name = p0.file_name().unwrap().to_str().unwrap();
    let hit = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["object"].as_str().unwrap().contains(name))
        .unwrap_or_else(|| panic!("{report}"));
    assert!(
        hit["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == short),
        "{hit}"
    );
    bytes[100] ^= 0x01;
    std::fs::write(p0, &bytes).unwrap();
    assert!(check_json(&env).0);

    // A truncated pack: found even without --read-data.
    let p1 = &target;
    let orig = std::fs::read(p1).unwrap();
    std::fs::write(p1, &orig[..orig.len() / 2]).unwrap();
    let out = env.run(&["repo", "check"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("truncated") && text.contains(short), "{text}");
    std::fs::write(p1, &orig).unwrap();

    // A missing pack.
    std::fs::remove_file(&target).unwrap();
    let out = env.run(&["repo", "check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && text.contains("missing from the store"),
        "{text}"
    );
}

#[test]
fn prune_applies_retention_and_keeps_data_restorable() {
    let env = Env::new();
    env.ok(&["repo", "init", "--pack-size-mib", "1"]);
    let data = env.path("data");
    make_data(&data, 8);
    env.backup(&data);
    lifeboat_ops::sample_data::mutate(&data, 0.3, 1).unwrap();
    env.backup(&data);
    lifeboat_ops::sample_data::mutate(&data, 0.3, 2).unwrap();
    let last = env.backup(&data);
    let dry = env.json(&["repo", "prune", "--keep-last", "1", "--dry-run"]);
    assert_eq!(dry["snapshots_removed"].as_array().unwrap().len(), 2);
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), 3);
    let before = pack_files(&env.repo).len();
    // The snapshots go at once; their packs are younger than the grace
    // period (a backup under way might need them) and stay.
    let r = env.json(&["repo", "prune", "--keep-last", "1"]);
    assert_eq!(r["snapshots_removed"].as_array().unwrap().len(), 2);
    assert_eq!(r["packs_deleted"], 0, "{r}");
    assert!(r["packs_recent"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(pack_files(&env.repo).len(), before);
    let r = env.json(&["repo", "prune", "--keep-last", "1", "--grace", "0"]);
    assert!(r["packs_deleted"].as_u64().unwrap() > 0, "{r}");
    assert!(pack_files(&env.repo).len() < before);
    let (ok, report) = check_json(&env);
    assert!(
        ok && report["problems"].as_array().unwrap().is_empty(),
        "{report}"
    );
    let out = env.path("r");
    env.ok(&["volume", "restore", &last, out.to_str().unwrap()]);
    assert_identical(&data, &out.join("data"));
    let err = env.fails(&["repo", "prune"]);
    assert!(err.contains("--keep"), "{err}");
}
