//! Volume data end to end, through the workflows run locally by `lifeboat
//! workflow run` and `lifeboat failover`, on the real local clusters with
//! the upstream CSI sidecars (tests/substrate/clusters) and the test EBS CSI
//! driver backed by moto's EBS direct APIs:
//!
//! 1. a Block claim on the `ebs` class in primary (us-east-1) gets known
//!    data: scattered pages and a run of random bytes;
//! 2. the backup workflow snapshots it through the CSI snapshot API and
//!    copies the snapshot's blocks into the repository;
//! 3. pages change and the second backup reads only the changed blocks;
//! 4. failover into dr (us-west-2) writes a new EBS snapshot there from the
//!    DR copy, compares it with the backup, and the restored claim is
//!    provisioned from it: its data is byte-identical to primary's at the
//!    second backup.
//!
//! Beside it, two claims on the hostpath driver are copied by mover Jobs
//! (run by the substrate's kubelet stand-in): `files` (Filesystem: files,
//! a symlink, a sparse file) by the filesystem mover, `raw` (Block) by the
//! block mover; the second backup rereads only the changed file, and the
//! failover restores both through restore Jobs that verify what they wrote.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::workflow::{
    kubectl, run, run_backup, run_failover, run_failover_with, task_result, write_json, Cleanup,
};
use common::{kubeconfig, Env};
use serde_json::{json, Value};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn app(ns: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Namespace
metadata: {{name: {ns}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: data, namespace: {ns}}}
spec:
  storageClassName: ebs
  volumeMode: Block
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 1Gi}}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: files, namespace: {ns}}}
spec:
  storageClassName: hostpath
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 64Mi}}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: raw, namespace: {ns}}}
spec:
  storageClassName: hostpath
  volumeMode: Block
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 16Mi}}}}
"#
    )
}

/// Wait for claim `ns/name` to be bound; its PV's volume handle.
fn bound_handle(cluster: &str, ns: &str, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, phase) = kubectl(
            cluster,
            &[
                "get",
                "pvc",
                name,
                "-n",
                ns,
                "-o",
                "jsonpath={.status.phase}/{.spec.volumeName}",
            ],
            None,
        );
        if let Some(pv) = phase.strip_prefix("Bound/") {
            let (ok, handle) = kubectl(
                cluster,
                &["get", "pv", pv, "-o", "jsonpath={.spec.csi.volumeHandle}"],
                None,
            );
            assert!(ok && !handle.is_empty(), "{handle}");
            return handle;
        }
        assert!(
            Instant::now() < deadline,
            "{cluster}: claim {ns}/{name} not bound: {phase}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The names of the VolumeSnapshots in `ns` on `cluster`.
fn snapshot_names(cluster: &str, ns: &str) -> Vec<String> {
    let (ok, names) = kubectl(
        cluster,
        &[
            "get",
            "volumesnapshots",
            "-n",
            ns,
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ],
        None,
    );
    assert!(ok, "{names}");
    names.split_whitespace().map(str::to_string).collect()
}

fn pseudo(n: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; n];
    let mut h = blake3::Hasher::new();
    h.update(&seed.to_le_bytes());
    h.finalize_xof().fill(&mut out);
    out
}

/// Known files in a Filesystem volume: text, random data, a symlink, a
/// sparse file with two islands of data, a private file.
fn write_files(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir.join("app/db")).unwrap();
    std::fs::write(dir.join("app/config.yaml"), "replicas: 3\nmode: primary\n").unwrap();
    std::fs::write(dir.join("app/db/pages.bin"), pseudo(300_000, 3)).unwrap();
    std::os::unix::fs::symlink("app", dir.join("current")).unwrap();
    let sparse = std::fs::File::create(dir.join("sparse.img")).unwrap();
    sparse.set_len(32 << 20).unwrap();
    sparse.write_all_at(&pseudo(4096, 4), 0).unwrap();
    sparse.write_all_at(&pseudo(4096, 5), 20 << 20).unwrap();
    std::fs::write(dir.join("app/secret.key"), pseudo(64, 6)).unwrap();
    std::fs::set_permissions(
        dir.join("app/secret.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
}

/// The mover's leftovers in `ns` on primary: Jobs, Secrets and claims it
/// made (none ever in an application's namespace; in Lifeboat's, none once
/// a run is over).
fn mover_leftovers(ns: &str) -> String {
    let (ok, out) = kubectl(
        "primary",
        &[
            "get",
            "jobs,secrets,pvc",
            "-n",
            ns,
            "-l",
            "lifeboat.dev/mover",
            "-o",
            "name",
        ],
        None,
    );
    assert!(ok, "{out}");
    out.trim().to_string()
}

fn volume<'a>(report: &'a Value, claim: &str) -> &'a Value {
    report["stored"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["claim"] == claim)
        .unwrap_or_else(|| panic!("no volume {claim} in {report:#}"))
}

fn backup(env: &Env, input: &Path, fleet: &Path, dr_repo: &str) -> Value {
    let (code, execution) = run_backup(env, input, fleet, dr_repo);
    assert_eq!(code, 0, "{execution:#}");
    let report = execution["output"]["report"].clone();
    assert_eq!(report["outcome"], "succeeded", "{report:#}");
    report
}

#[test]
fn volumes_backed_up_incrementally_and_restored_into_another_region() {
    if common::skip_clusters() {
        return;
    }
    let cenv = common::clusters_env();
    assert_eq!(
        cenv.get("CSI_EBS_PRIMARY").map_or("", String::as_str),
        "1",
        "the ebs CSI driver is not running on primary: start moto (tests/substrate/aws up) before the clusters"
    );
    let csi_primary = PathBuf::from(cenv["CSI_DIR_PRIMARY"].as_str());
    let csi_dr = PathBuf::from(cenv["CSI_DIR_DR"].as_str());

    let mut env = Env::new();
    env.extra_env = lifeboat_tests::aws_env();
    env.ok(&["repo", "init"]);
    let dr_repo = env.path("dr-repo");
    std::fs::create_dir_all(&dr_repo).unwrap();
    let dr_repo = dr_repo.to_str().unwrap().to_string();

    let ns = format!("vol-{}", std::process::id());
    let _cleanup = Cleanup(ns.clone());
    let (ok, out) = kubectl("primary", &["apply", "-f", "-"], Some(&app(&ns)));
    assert!(ok, "{out}");
    let handle = bound_handle("primary", &ns, "data");
    let files_dir = csi_primary
        .join("hostpath/volumes")
        .join(bound_handle("primary", &ns, "files"));
    let raw_image = csi_primary
        .join("hostpath/volumes")
        .join(bound_handle("primary", &ns, "raw"));
    write_files(&files_dir);
    let raw = std::fs::OpenOptions::new()
        .write(true)
        .open(&raw_image)
        .unwrap();
    for page in [1u64, 1000, 4095] {
        raw.write_all_at(&pseudo(4096, 50 + page), page * 4096)
            .unwrap();
    }
    drop(raw);
    let image = csi_primary.join("ebs/volumes").join(&handle);
    assert!(
        image.is_file(),
        "{} is not the claim's image",
        image.display()
    );

    // Known data: a run of random bytes and scattered 4 KiB pages.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&image)
        .unwrap();
    f.write_all_at(&pseudo(200_000, 1), 1 << 20).unwrap();
    for (i, page) in [0u64, 7, 400, 5000, 200_000].iter().enumerate() {
        f.write_all_at(&pseudo(4096, 10 + i as u64), page * 4096)
            .unwrap();
    }
    f.sync_all().unwrap();
    drop(f);

    let fleet = env.path("fleet.json");
    write_json(
        &fleet,
        &json!({"version": 1,
            "clusters": {
                "primary": {"access": {"kubeconfig": {"path": kubeconfig("primary")}},
                            "region": "us-east-1",
                            "scope": {"include_namespaces": [ns]}},
                "dr": {"access": {"kubeconfig": {"path": kubeconfig("dr")}},
                       "region": "us-west-2"}},
            "regions": {
                "us-east-1": {"repository": env.repo},
                "us-west-2": {"repository": dr_repo}}}),
    );
    // The fleet's scope: full-scope snapshots, which the failover's
    // `latest` takes.
    let input = env.path("backup.json");
    write_json(
        &input,
        &json!({"version": 1, "action": "backup", "cluster": "primary",
            "requested_by": "schedule"}),
    );

    // Full copy.
    let first = backup(&env, &input, &fleet, &dr_repo);
    let vols = first["stored"]["volumes"].as_array().unwrap();
    assert_eq!(vols.len(), 3, "{first:#}");
    let v = volume(&first, "data");
    assert_eq!(v["claim"], "data");
    assert_eq!(v["mover"], "ebs");
    assert_eq!(v["driver"], "ebs.csi.aws.com");
    assert!(v.get("base").is_none(), "{v:#}");
    let full_read = v["bytes_read"].as_u64().unwrap();
    assert!(
        (200_000 + 5 * 4096..1 << 20).contains(&full_read),
        "only the blocks with data are read: {full_read}"
    );
    assert!(first.get("volumes_not_copied").is_none(), "{first:#}");
    let f1 = volume(&first, "files");
    assert_eq!(f1["mover"], "filesystem", "{f1:#}");
    assert_eq!(f1["driver"], "hostpath.csi.k8s.io");
    let files_read = f1["bytes_read"].as_u64().unwrap();
    assert!(files_read >= 300_000 + 8192, "{f1:#}");
    let r1 = volume(&first, "raw");
    assert_eq!(r1["mover"], "block", "{r1:#}");
    assert!(r1["bytes_stored"].as_u64().unwrap() < 1 << 20, "{r1:#}");
    assert_eq!(
        mover_leftovers(&ns),
        "",
        "movers never run in the claim's namespace"
    );
    assert_eq!(
        mover_leftovers("lifeboat-system"),
        "",
        "the mover Jobs clean up after themselves"
    );

    // Change two pages; the second backup reads only their blocks. (Both
    // pages held data before: moto's ListChangedBlocks misses blocks that
    // exist only in the newer snapshot, a gap of the emulator.)
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&image)
        .unwrap();
    f.write_all_at(&pseudo(4096, 99), 7 * 4096).unwrap();
    f.write_all_at(&pseudo(4096, 98), 400 * 4096).unwrap();
    f.sync_all().unwrap();
    drop(f);
    std::fs::write(
        files_dir.join("app/config.yaml"),
        "replicas: 5\nmode: primary\n",
    )
    .unwrap();
    std::fs::write(
        files_dir.join("app/new.txt"),
        "added after the first backup\n",
    )
    .unwrap();
    let raw = std::fs::OpenOptions::new()
        .write(true)
        .open(&raw_image)
        .unwrap();
    raw.write_all_at(&pseudo(4096, 77), 1000 * 4096).unwrap();
    drop(raw);
    let second = backup(&env, &input, &fleet, &dr_repo);
    let v2 = volume(&second, "data");
    // Only the changed and new files are read again.
    let f2 = volume(&second, "files");
    let files_read2 = f2["bytes_read"].as_u64().unwrap();
    assert!(
        files_read2 < 4096,
        "incremental read {files_read2} bytes of files, full read {files_read}: {f2:#}"
    );
    assert!(f2["base"].is_string(), "{f2:#}");
    // The first run's VolumeSnapshot is released; the second stays as the
    // next incremental's base.
    let released = second["stored"]["released_snapshots"].as_array().unwrap();
    assert_eq!(released.len(), 3, "{second:#}");
    assert!(released.iter().any(|r| r
        .as_str()
        .unwrap()
        .starts_with(&format!("{ns}/lifeboat-data-"))));
    // Deletion is asynchronous (the snapshot controller's finalizers first).
    let data_snapshots = |left: &[String]| {
        left.iter()
            .filter(|n| n.starts_with("lifeboat-data-"))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut left = snapshot_names("primary", &ns);
    while data_snapshots(&left) != 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        left = snapshot_names("primary", &ns);
    }
    assert_eq!(data_snapshots(&left), 1, "{left:?}");
    assert_eq!(v2["base"], v["csi_snapshot"], "{v2:#}");
    let incr_read = v2["bytes_read"].as_u64().unwrap();
    assert_eq!(
        incr_read,
        2 * 4096,
        "incremental read {incr_read} bytes, full read {full_read}"
    );
    let original = std::fs::read(&image).unwrap();

    // Failover into dr from the DR region's copy.
    let (code, execution) = run_failover(&env, &fleet);
    assert_eq!(code, 0, "{execution:#}");
    let report = &execution["output"]["report"];
    assert_eq!(report["outcome"], "succeeded", "{report:#}");
    let restored = report["volumes_restored"].as_array().unwrap();
    assert_eq!(restored.len(), 3, "{report:#}");
    assert!(restored.iter().all(|r| r["matched"] == true), "{report:#}");
    let ebs = restored.iter().find(|r| r["claim"] == "data").unwrap();
    assert!(ebs["handle"].as_str().unwrap().starts_with("snap-"));

    // The same execution's restore-volumes again, as after a retry
    // (Lifeboat.InProgress while restore Jobs run): the EBS volume is found
    // imported, and not written into another snapshot.
    let again = env.path("restore-again.json");
    write_json(
        &again,
        &json!({"version": 1, "action": "restore", "cluster": "dr",
            "source_cluster": "primary", "snapshot": report["snapshot"],
            "requested_by": "runbook"}),
    );
    let def = lifeboat_tests::repo_root().join("infra/statemachine/restore.asl.json");
    let (code, rerun) = run(
        &env,
        &[
            "--json",
            "--repo",
            &dr_repo,
            "workflow",
            "run",
            def.to_str().unwrap(),
            "--input",
            again.to_str().unwrap(),
            "--fleet",
            fleet.to_str().unwrap(),
            "--name",
            execution["name"].as_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{rerun:#}");
    let rerun_volumes = task_result(&rerun, "RestoreVolumes").unwrap();
    let ebs_again = rerun_volumes["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["claim"] == "data")
        .unwrap()
        .clone();
    assert_eq!(ebs_again["handle"], ebs["handle"], "{rerun_volumes:#}");
    assert_eq!(ebs_again["volume_snapshot"], ebs["volume_snapshot"]);
    assert_eq!(ebs_again["bytes_written"], ebs["bytes_written"]);

    // Lifeboat's own snapshots of primary are not part of the backup: in dr
    // there are only the three the restore made.
    let in_dr = snapshot_names("dr", &ns);
    assert!(
        in_dr.len() == 3 && in_dr.iter().all(|n| n.starts_with("lifeboat-restore-")),
        "{in_dr:?}"
    );

    // Where a claim restored in dr keeps its data: <driver>/volumes/<handle>.
    let in_dr = |driver: &str, ns: &str, claim: &str| {
        csi_dr
            .join(driver)
            .join("volumes")
            .join(bound_handle("dr", ns, claim))
    };
    // The filesystem and block volumes, through restore Jobs.
    let dr_files = in_dr("hostpath", &ns, "files");
    let differences = lifeboat_ops::compare::compare_trees(&files_dir, &dr_files).unwrap();
    assert!(differences.is_empty(), "{differences:#?}");
    let dr_raw = in_dr("hostpath", &ns, "raw");
    assert!(
        std::fs::read(&raw_image).unwrap() == std::fs::read(&dr_raw).unwrap(),
        "the block volume differs in dr"
    );
    let dr_image = in_dr("ebs", &ns, "data");
    let restored_bytes = std::fs::read(&dr_image).unwrap();
    assert_eq!(restored_bytes.len(), original.len());
    let differs: Vec<usize> = (0..original.len() / 4096)
        .filter(|p| original[p * 4096..(p + 1) * 4096] != restored_bytes[p * 4096..(p + 1) * 4096])
        .collect();
    assert!(differs.is_empty(), "restored pages differ: {differs:?}");

    // A migration-style failover: into another namespace of dr, with a
    // resource modifier. The volume data follows the objects there.
    let moved = format!("{ns}-moved");
    let _cleanup_moved = Cleanup(moved.clone());
    let rules = env.path("rules.yaml");
    std::fs::write(
        &rules,
        "version: 1\nrules:\n  - name: marked\n    match: {kind: PersistentVolumeClaim}\n    \
         merge_patch: {metadata: {annotations: {lifeboat.dev/moved: \"yes\"}}}\n",
    )
    .unwrap();
    let map = format!("{ns}={moved}");
    let (code, execution) = run_failover_with(
        &env,
        &fleet,
        &[
            "--namespace-map",
            &map,
            "--modifiers",
            rules.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{execution:#}");
    let report = &execution["output"]["report"];
    assert_eq!(report["outcome"], "succeeded", "{report:#}");
    let restored = report["volumes_restored"].as_array().unwrap();
    assert_eq!(restored.len(), 3, "{report:#}");
    assert!(
        restored
            .iter()
            .all(|r| r["matched"] == true && r["namespace"] == moved.as_str()),
        "{report:#}"
    );
    let moved_files = in_dr("hostpath", &moved, "files");
    let differences = lifeboat_ops::compare::compare_trees(&files_dir, &moved_files).unwrap();
    assert!(differences.is_empty(), "{differences:#?}");
    let moved_image = in_dr("ebs", &moved, "data");
    assert!(
        std::fs::read(&moved_image).unwrap() == original,
        "the ebs volume differs in {moved}"
    );
    let (ok, marked) = kubectl(
        "dr",
        &[
            "get",
            "pvc",
            "-n",
            &moved,
            "-o",
            "jsonpath={.items[*].metadata.annotations.lifeboat\\.dev/moved}",
        ],
        None,
    );
    assert!(ok && marked.split_whitespace().count() == 3, "{marked}");
}

/// Lifeboat's namespace enforcing Pod Security "restricted" refuses the
/// mover's pod (root, capabilities): the copy fails at once with the
/// admission's message, rather than waiting for a pod that cannot exist, and
/// the backup is committed without that volume, as partial. (The
/// application's namespace enforces "restricted" too, which does not matter:
/// the mover never runs there.)
#[test]
fn a_mover_refused_by_pod_security_leaves_its_volume_out_with_the_reason() {
    if common::skip_clusters() {
        return;
    }
    let mut env = Env::new();
    env.extra_env = lifeboat_tests::aws_env();
    let ns = format!("restricted-{}", std::process::id());
    let mover_ns = format!("lifeboat-restricted-{}", std::process::id());
    env.extra_env
        .push(("LIFEBOAT_MOVER_NAMESPACE".into(), mover_ns.clone()));
    env.ok(&["repo", "init"]);
    let _cleanup = Cleanup(ns.clone());
    let _cleanup_mover = Cleanup(mover_ns.clone());
    let manifest = format!(
        r#"
apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
  labels: {{pod-security.kubernetes.io/enforce: restricted}}
---
apiVersion: v1
kind: Namespace
metadata:
  name: {mover_ns}
  labels: {{pod-security.kubernetes.io/enforce: restricted}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: files, namespace: {ns}}}
spec:
  storageClassName: hostpath
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 16Mi}}}}
"#
    );
    let (ok, out) = kubectl("primary", &["apply", "-f", "-"], Some(&manifest));
    assert!(ok, "{out}");
    bound_handle("primary", &ns, "files");
    let fleet = env.path("fleet.json");
    write_json(
        &fleet,
        &json!({"version": 1,
            "clusters": {"primary": {"access": {"kubeconfig": {"path": kubeconfig("primary")}},
                                     "region": "us-east-1"}},
            "regions": {"us-east-1": {"repository": env.repo}}}),
    );
    let input = env.path("backup.json");
    write_json(
        &input,
        &json!({"version": 1, "action": "backup", "cluster": "primary",
            "scope": {"include_namespaces": [ns]}, "requested_by": "ci"}),
    );
    let replica = env.path("replica");
    std::fs::create_dir_all(&replica).unwrap();
    let started = Instant::now();
    let (code, execution) = run_backup(&env, &input, &fleet, replica.to_str().unwrap());
    // The objects are committed without the volume: a partial backup,
    // reported and alerted, with the admission's reason.
    assert_eq!(code, 0, "{execution:#}");
    let report = &execution["output"]["report"];
    assert_eq!(report["outcome"], "partial", "{report:#}");
    assert!(
        report["stored"]["volumes"].as_array().is_none(),
        "{report:#}"
    );
    let failed = report["stored"]["volumes_failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{report:#}");
    let cause = failed[0].as_str().unwrap();
    assert!(
        cause.starts_with(&format!("{ns}/files: Lifeboat.Failed: "))
            && cause.contains("may not create its pod")
            && cause.contains(&format!("namespace {mover_ns}"))
            && cause.contains("PodSecurity"),
        "{cause}"
    );
    assert_eq!(
        report["alerts"][0]["kind"], "volumes-not-copied",
        "{report:#}"
    );
    assert!(
        report["stored"]["objects"].as_u64().unwrap() >= 2,
        "{report:#}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "took {:?}: the refusal should end the wait",
        started.elapsed()
    );
    assert_eq!(mover_leftovers(&mover_ns), "", "the refused Job is removed");
    assert_eq!(mover_leftovers(&ns), "");
}
