#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Volume backup and restore through the real binary.

mod common;
use common::{assert_identical, make_data, Env};

#[test]
fn backup_restore_is_byte_identical_with_metadata() {
    let env = Env::new();
    env.ok(&["repo", "init"]);
    let data = env.path("data");
    make_data(&data, 16);
    let id1 = env.backup(&data);
    assert_eq!(id1.len(), 64);

    let out = env.path("restore1");
    env.ok(&["volume", "restore", &id1[..10], out.to_str().unwrap()]);
    assert_identical(&data, &out.join("data"));

    // The sparse file stays sparse.
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(out.join("data/odd/sparse.dat")).unwrap();
    assert_eq!(m.len(), 32 << 20);
    assert!(
        m.blocks() * 512 < 1 << 20,
        "restored sparse file occupies {} blocks",
        m.blocks()
    );

    // An unchanged second backup stores almost nothing and reads nothing.
    let second = env.json(&["volume", "backup", data.to_str().unwrap()]);
    assert_eq!(second["summary"]["bytes_read"], 0);
    assert!(second["summary"]["bytes_stored"].as_u64().unwrap() < 4096);

    // Change, back up, restore the latest, compare again.
    lifeboat_ops::sample_data::mutate(&data, 0.05, 9).unwrap();
    let third = env.json(&["volume", "backup", data.to_str().unwrap()]);
    let id3 = third["snapshot"].as_str().unwrap().to_string();
    let read = third["summary"]["bytes_read"].as_u64().unwrap();
    let total = third["summary"]["bytes"].as_u64().unwrap();
    assert!(read < total / 2, "incremental read {read} of {total}");
    let out3 = env.path("restore3");
    env.ok(&["volume", "restore", "latest", out3.to_str().unwrap()]);
    assert_identical(&data, &out3.join("data"));

    // Listing, show and diff.
    let snaps = env.json(&["snapshots"]);
    assert_eq!(snaps.as_array().unwrap().len(), 3);
    let show = env.json(&["snapshot", "show", &id3[..12]]);
    assert_eq!(show["id"], id3.as_str());
    let diff = env.json(&["snapshot", "diff", &id1, &id3]);
    let changes = diff["changes"].as_array().unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c["path"] == "data/random/large/new-upload.bin" && c["change"] == "added"),
        "{changes:?}"
    );
    assert!(changes
        .iter()
        .any(|c| c["path"] == "data/db/volume.img" && c["change"] == "modified"));

    // Partial restore.
    let part = env.path("part");
    env.ok(&[
        "volume",
        "restore",
        &id1,
        part.to_str().unwrap(),
        "--include",
        "data/odd",
    ]);
    assert_identical(&data.join("odd"), &part.join("data/odd"));
    assert!(!part.join("data/logs").exists());

    let s = env.json(&["repo", "stats"]);
    assert_eq!(s["snapshots"], 3);
    assert!(s["dedup_ratio"].as_f64().unwrap() > 2.0);
    let c = env.json(&["repo", "check", "--read-data"]);
    assert!(c["problems"].as_array().unwrap().is_empty(), "{c}");
}

/// Backup, restore and check say what they asked of the store: `store` in
/// `--json`, one line on stderr otherwise.
#[test]
fn commands_report_what_they_asked_of_the_store() {
    let env = Env::new();
    env.ok(&["repo", "init"]);
    let data = env.path("data");
    make_data(&data, 4);

    let backup = env.json(&["volume", "backup", data.to_str().unwrap()]);
    let store = &backup["store"];
    let stored = backup["summary"]["bytes_stored"].as_u64().unwrap();
    let up = store["bytes_up"].as_u64().unwrap();
    assert!(up >= stored, "{store} for {stored} bytes stored");
    assert!(store["requests"]["put"].as_u64().unwrap() >= 3, "{store}");
    let kinds = store["requests"].as_object().unwrap();
    let total: u64 = kinds.values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(store["requests_total"], total);

    let out = env.path("restore");
    let restore = env.json(&["volume", "restore", "latest", out.to_str().unwrap()]);
    let down = restore["store"]["bytes_down"].as_u64().unwrap();
    assert!(down >= stored / 2, "{}", restore["store"]);
    assert_eq!(restore["store"]["requests"]["put"], 0);

    let check = env.json(&["repo", "check"]);
    assert!(check["problems"].as_array().unwrap().is_empty(), "{check}");
    assert!(check["store"]["requests"]["list"].as_u64().unwrap() > 0);

    let human = env.run(&["repo", "check"]);
    let stderr = String::from_utf8_lossy(&human.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("store: ") && last.contains(" requests (") && last.ends_with(" down"),
        "{stderr}"
    );
}

#[test]
fn snapshot_references_are_resolved_or_explained() {
    let env = Env::new();
    env.ok(&["repo", "init"]);
    let err = env.fails(&[
        "volume",
        "restore",
        "latest",
        env.path("x").to_str().unwrap(),
    ]);
    assert!(err.contains("has no snapshots yet"), "{err}");
    let data = env.path("d");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("f"), b"x").unwrap();
    env.backup(&data);
    let err = env.fails(&["snapshot", "show", "ffffffffffff"]);
    assert!(err.contains("no snapshot matches"), "{err}");
    let err = env.fails(&["snapshot", "show", "not-an-id"]);
    assert!(err.contains("is not a snapshot id"), "{err}");
    let err = env.fails(&["snapshot", "show", ""]);
    assert!(err.contains("snapshot"), "{err}");
}

#[test]
fn block_image_changes_cost_small_chunks() {
    use std::os::unix::fs::FileExt;
    let env = Env::new();
    env.ok(&["repo", "init"]);
    let data = env.path("vol");
    std::fs::create_dir_all(&data).unwrap();
    let img = data.join("disk.img");
    let f = std::fs::File::create(&img).unwrap();
    let mut rng = lifeboat_ops::sample_data::Rng::new(1);
    let mut page = vec![0u8; 4096];
    // 64 MiB, fully written with random data.
    for i in 0..(64 << 20) / 4096u64 {
        rng.fill(&mut page);
        f.write_at(&page, i * 4096).unwrap();
    }
    env.backup(&data);
    // Change ten scattered 4 KiB pages.
    for i in 0..10u64 {
        rng.fill(&mut page);
        f.write_at(&page, (i * 1_000_003 % ((64 << 20) / 4096)) * 4096)
            .unwrap();
    }
    let second = env.json(&["volume", "backup", data.to_str().unwrap()]);
    let new = second["summary"]["bytes_new"].as_u64().unwrap();
    let blobs = second["summary"]["blobs_new"].as_u64().unwrap();
    // Ten 64 KiB chunks plus two trees (the image's chunk list is ~100 KB of
    // JSON); one 1 MiB chunk per changed page would have been 10 MiB.
    assert!(blobs <= 12, "a 10-page change added {blobs} blobs");
    assert!(
        new <= 10 * 65536 + 160 * 1024,
        "a 10-page change added {new} bytes"
    );
    let out = env.path("r");
    env.ok(&["volume", "restore", "latest", out.to_str().unwrap()]);
    assert_identical(&data, &out.join("vol"));
}

#[test]
fn the_main_job_runs_end_to_end() {
    let env = Env::new();
    let dir = env.path("demo");
    let report = env.json(&["demo", "--size-mib", "16", "--dir", dir.to_str().unwrap()]);
    assert_eq!(report["restore_identical"], true, "{report}");
    assert_eq!(report["check_errors"], 0, "{report}");
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 4);
    // The incremental backup reads less and stores far less than the full one
    // (at this small size the appended log is a large share of the data).
    let read = |i: usize, k: &str| steps[i][k].as_u64().unwrap();
    assert!(read(1, "bytes_read") < read(0, "bytes_read"), "{steps:?}");
    assert!(
        read(1, "bytes_stored") * 4 < read(0, "bytes_stored"),
        "{steps:?}"
    );
}
