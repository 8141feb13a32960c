//! Application groups of volumes (`lifeboat.dev/group`), end to end on the
//! local clusters with the upstream snapshot controller and csi-snapshotter
//! (VolumeGroupSnapshots, groupsnapshot.storage.k8s.io/v1):
//!
//! - two labelled hostpath claims are snapshotted as one
//!   VolumeGroupSnapshot (an unlabelled one alone, a labelled EBS claim as
//!   a group of its own), the manifest gives both the same `group`, a
//!   second backup releases the first group snapshot and leaves Lifeboat's
//!   group snapshots out of the export, and failover restores them;
//! - without a default VolumeGroupSnapshotClass the claims are snapshotted
//!   one by one and the step result says why;
//! - a group whose label selector takes a claim outside the backup's scope
//!   is not snapshotted, and the reason names that claim.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::workflow::{kubectl, run_backup, run_failover, write_json, Cleanup};
use common::{kubeconfig, Env};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The fallback test changes the hostpath group class; the group test must
/// not run meanwhile.
static GROUP_CLASS: Mutex<()> = Mutex::new(());

fn csi_dir(cluster: &str) -> PathBuf {
    let key = format!("CSI_DIR_{}", cluster.to_ascii_uppercase());
    PathBuf::from(&common::clusters_env()[&key])
}

/// A namespace with claims: `(name, storage class, mode, labels)`.
fn app(ns: &str, claims: &[(&str, &str, &str, &str)]) -> String {
    let mut out = format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n");
    for (name, class, mode, labels) in claims {
        out += &format!(
            "---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: {name}, namespace: {ns}, labels: {{{labels}}}}}\nspec: {{storageClassName: {class}, volumeMode: {mode}, accessModes: [ReadWriteOnce], resources: {{requests: {{storage: {}}}}}}}\n",
            if *class == "ebs" { "1Gi" } else { "16Mi" }
        );
    }
    out
}

/// Wait for claim `ns/name` to be bound; its PV's volume handle.
fn bound_handle(cluster: &str, ns: &str, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let jsonpath = "jsonpath={.status.phase}/{.spec.volumeName}";
        let (_, phase) = kubectl(
            cluster,
            &["get", "pvc", name, "-n", ns, "-o", jsonpath],
            None,
        );
        if let Some(pv) = phase.strip_prefix("Bound/") {
            let path = "jsonpath={.spec.csi.volumeHandle}";
            let (ok, handle) = kubectl(cluster, &["get", "pv", pv, "-o", path], None);
            assert!(ok && !handle.is_empty(), "{handle}");
            return handle;
        }
        assert!(Instant::now() < deadline, "{ns}/{name} not bound: {phase}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn names(cluster: &str, what: &str, ns: &str, selector: Option<&str>) -> Vec<String> {
    let mut args = vec![
        "get",
        what,
        "-n",
        ns,
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ];
    if let Some(s) = selector {
        args.extend(["-l", s]);
    }
    let (ok, out) = kubectl(cluster, &args, None);
    assert!(ok, "{out}");
    out.split_whitespace().map(str::to_string).collect()
}

/// `names`, once there are `expected` of them: a released snapshot is
/// deleted asynchronously (the snapshot controller's finalizers go first),
/// so the count settles within a minute; the names then, settled or not.
fn names_settled(cluster: &str, what: &str, ns: &str, expected: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let now = names(cluster, what, ns, None);
        if now.len() == expected || std::time::Instant::now() >= deadline {
            return now;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

fn setup(env: &mut Env, ns: &str, claims: &[(&str, &str, &str, &str)]) -> (PathBuf, String) {
    env.extra_env = lifeboat_tests::aws_env();
    env.ok(&["repo", "init"]);
    let dr_repo = env.path("dr-repo");
    std::fs::create_dir_all(&dr_repo).unwrap();
    let (ok, out) = kubectl("primary", &["apply", "-f", "-"], Some(&app(ns, claims)));
    assert!(ok, "{out}");
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
    (fleet, dr_repo.to_str().unwrap().to_string())
}

/// Run the backup workflow of `scope` and check its outcome: the
/// execution's output (state). The fleet's scope is the test namespace, so a
/// backup of that namespace is a full-scope one (which a failover restores).
fn backup(env: &Env, fleet: &Path, dr_repo: &str, scope: Value, outcome: &str) -> Value {
    let input = env.path("backup.json");
    write_json(
        &input,
        &json!({"version": 1, "action": "backup", "cluster": "primary",
            "scope": scope, "requested_by": "ci"}),
    );
    let (code, execution) = run_backup(env, &input, fleet, dr_repo);
    assert_eq!(code, 0, "{execution:#}");
    let output = execution["output"].clone();
    assert_eq!(output["report"]["outcome"], outcome, "{output:#}");
    output
}

fn volume<'a>(output: &'a Value, claim: &str) -> &'a Value {
    output["report"]["stored"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["claim"] == claim)
        .unwrap_or_else(|| panic!("no volume {claim} in {output:#}"))
}

#[test]
fn labelled_claims_are_snapshotted_together_and_restored() {
    if common::skip_clusters() {
        return;
    }
    let _serial = GROUP_CLASS.lock().unwrap_or_else(|e| e.into_inner());
    let mut env = Env::new();
    let ns = format!("vgroup-{}", std::process::id());
    let _cleanup = Cleanup(ns.clone());
    let app_label = "lifeboat.dev/group: app";
    let claims = [
        ("db", "hostpath", "Filesystem", app_label),
        ("wal", "hostpath", "Filesystem", app_label),
        ("cache", "hostpath", "Filesystem", ""),
        ("disk", "ebs", "Block", "lifeboat.dev/group: disk"),
    ];
    let (fleet, dr_repo) = setup(&mut env, &ns, &claims);
    let volumes = csi_dir("primary").join("hostpath/volumes");
    let mut dirs = Vec::new();
    for (i, name) in ["db", "wal", "cache"].iter().enumerate() {
        let dir = volumes.join(bound_handle("primary", &ns, name));
        std::fs::write(dir.join("data.txt"), format!("{name} {i}\n").repeat(1000)).unwrap();
        dirs.push(dir);
    }
    bound_handle("primary", &ns, "disk");
    let scope = json!({"include_namespaces": [ns]});

    let first = backup(&env, &fleet, &dr_repo, scope.clone(), "succeeded");
    let group = volume(&first, "db")["group"].as_str().unwrap().to_string();
    assert!(group.starts_with("lifeboat-group-app-"), "{group}");
    assert_eq!(volume(&first, "wal")["group"], group.as_str());
    assert!(volume(&first, "cache").get("group").is_none());
    let disk = volume(&first, "disk");
    assert!(
        disk["group"]
            .as_str()
            .unwrap()
            .starts_with("lifeboat-group-disk-"),
        "{disk:#}"
    );
    assert_eq!(disk["mover"], "ebs");
    assert!(
        disk["csi_snapshot"].as_str().unwrap().starts_with("snap-"),
        "{disk:#}"
    );
    // The member snapshots are read like single ones: the restore's class
    // is the driver's VolumeSnapshotClass.
    assert_eq!(volume(&first, "db")["snapshot_class"], "hostpath-snapclass");
    let groups = first["volumes"]["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{groups:?}");
    // The stored report says the same.
    assert_eq!(
        &first["report"]["volume_groups"], &first["volumes"]["groups"],
        "{:#}",
        first["report"]
    );
    assert!(groups.iter().any(|g| g
        .as_str()
        .unwrap()
        .starts_with(&format!("{ns}/app: volumegroupsnapshot {group} (db, wal)"))));
    assert_eq!(names("primary", "volumegroupsnapshots", &ns, None).len(), 2);
    // Every member snapshot carries Lifeboat's label (exports skip them).
    let all = names("primary", "volumesnapshots", &ns, None);
    let ours = names(
        "primary",
        "volumesnapshots",
        &ns,
        Some("app.kubernetes.io/managed-by=lifeboat"),
    );
    assert_eq!(all.len(), 4, "{all:?}");
    assert_eq!(all, ours);

    // A second backup: the first run's group snapshots are released, and
    // the ones kept are not part of the export.
    std::fs::write(dirs[0].join("data.txt"), "changed\n").unwrap();
    let second = backup(&env, &fleet, &dr_repo, scope, "succeeded");
    let released = second["report"]["stored"]["released_snapshots"]
        .as_array()
        .unwrap();
    assert!(
        released.contains(&json!(format!("{ns}/{group}"))),
        "{released:?}"
    );
    let group2 = volume(&second, "db")["group"].as_str().unwrap().to_string();
    assert_ne!(group2, group);
    let left = names_settled("primary", "volumegroupsnapshots", &ns, 2);
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(!left.contains(&group), "{left:?}");

    let (code, execution) = run_failover(&env, &fleet);
    assert_eq!(code, 0, "{execution:#}");
    let report = &execution["output"]["report"];
    assert_eq!(report["outcome"], "succeeded", "{report:#}");
    let restored = report["volumes_restored"].as_array().unwrap();
    assert_eq!(restored.len(), 4, "{report:#}");
    assert!(restored.iter().all(|r| r["matched"] == true), "{report:#}");
    for (name, dir) in ["db", "wal", "cache"].iter().zip(&dirs) {
        let there = csi_dir("dr")
            .join("hostpath/volumes")
            .join(bound_handle("dr", &ns, name));
        let differences = lifeboat_ops::compare::compare_trees(dir, &there).unwrap();
        assert!(differences.is_empty(), "{name}: {differences:#?}");
    }
    // The second export ran beside the first run's group snapshots; as
    // Lifeboat's, neither they nor their members were restored.
    assert!(names("dr", "volumegroupsnapshots", &ns, None).is_empty());
    let in_dr = names("dr", "volumesnapshots", &ns, None);
    assert!(
        in_dr.iter().all(|n| n.starts_with("lifeboat-restore-")),
        "{in_dr:?}"
    );
}

/// Puts the default annotation back on the hostpath group class.
struct RestoreDefault;

impl Drop for RestoreDefault {
    fn drop(&mut self) {
        let (ok, out) = kubectl(
            "primary",
            &[
                "annotate",
                "--overwrite",
                "volumegroupsnapshotclass",
                "hostpath-groupsnapclass",
                "groupsnapshot.storage.kubernetes.io/is-default-class=true",
            ],
            None,
        );
        assert!(ok || std::thread::panicking(), "{out}");
    }
}

#[test]
fn without_a_group_class_the_claims_are_snapshotted_one_by_one() {
    if common::skip_clusters() {
        return;
    }
    let _serial = GROUP_CLASS.lock().unwrap_or_else(|e| e.into_inner());
    let mut env = Env::new();
    let ns = format!("vgroup-one-{}", std::process::id());
    let _cleanup = Cleanup(ns.clone());
    let label = "lifeboat.dev/group: app";
    let claims = [
        ("db", "hostpath", "Filesystem", label),
        ("wal", "hostpath", "Filesystem", label),
    ];
    let (fleet, dr_repo) = setup(&mut env, &ns, &claims);
    bound_handle("primary", &ns, "db");
    bound_handle("primary", &ns, "wal");
    let _restore = RestoreDefault;
    let (ok, out) = kubectl(
        "primary",
        &[
            "annotate",
            "volumegroupsnapshotclass",
            "hostpath-groupsnapclass",
            "groupsnapshot.storage.kubernetes.io/is-default-class-",
        ],
        None,
    );
    assert!(ok, "{out}");
    let output = backup(
        &env,
        &fleet,
        &dr_repo,
        json!({"include_namespaces": [ns]}),
        "succeeded",
    );
    for claim in ["db", "wal"] {
        let v = volume(&output, claim);
        assert!(v.get("group").is_none(), "{v:#}");
        assert_eq!(v["snapshot_class"], "hostpath-snapclass");
    }
    let groups = output["volumes"]["groups"].as_array().unwrap();
    assert_eq!(
        groups,
        &[json!(format!(
            "{ns}/app: snapshotted one by one: no default volumegroupsnapshotclass for driver hostpath.csi.k8s.io (classes for it: hostpath-groupsnapclass; mark one with the annotation groupsnapshot.storage.kubernetes.io/is-default-class: \"true\" or name one on the storageclass with lifeboat.dev/group-snapshot-class)"
        ))]
    );
    assert!(names("primary", "volumegroupsnapshots", &ns, None).is_empty());
}

#[test]
fn a_group_selector_taking_a_claim_out_of_scope_is_refused() {
    if common::skip_clusters() {
        return;
    }
    let mut env = Env::new();
    let ns = format!("vgroup-guard-{}", std::process::id());
    let _cleanup = Cleanup(ns.clone());
    let in_scope = "lifeboat.dev/group: app, tier: data";
    let claims = [
        ("db", "hostpath", "Filesystem", in_scope),
        ("wal", "hostpath", "Filesystem", in_scope),
        ("stray", "hostpath", "Filesystem", "lifeboat.dev/group: app"),
    ];
    let (fleet, dr_repo) = setup(&mut env, &ns, &claims);
    for c in ["db", "wal", "stray"] {
        bound_handle("primary", &ns, c);
    }
    let scope = json!({"include_namespaces": [ns], "selector": "tier=data"});
    // Volumes left uncopied make the backup partial, never "succeeded".
    let output = backup(&env, &fleet, &dr_repo, scope, "partial");
    let not_copied = output["report"]["volumes_not_copied"].as_array().unwrap();
    assert_eq!(not_copied.len(), 2, "{output:#}");
    for line in not_copied {
        let line = line.as_str().unwrap();
        assert!(
            line.contains(&format!(
                "group {ns}/app (db, wal on hostpath.csi.k8s.io) not snapshotted"
            )) && line.contains(&format!("{ns}/stray (not in this backup's scope)")),
            "{line}"
        );
    }
    assert!(names("primary", "volumegroupsnapshots", &ns, None).is_empty());
}
