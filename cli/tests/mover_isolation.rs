//! Mover Jobs never put anything of Lifeboat's into the application's
//! namespace (security review, finding 1), on the local clusters
//! (tests/substrate/clusters; the kubelet stand-in runs the mover pods):
//!
//! 1. a backup of a Filesystem claim on the hostpath driver runs its Job in
//!    Lifeboat's namespace (here a fresh one, which Lifeboat creates): while
//!    it runs, the application's namespace holds no Job, no Secret, no pod
//!    and no claim of Lifeboat's;
//! 2. the failover into dr restores it the same way, and the restored
//!    application claim is bound to a volume holding the data;
//! 3. a Job planted under the name the next run's mover Job will have is
//!    refused, not adopted: the volume is left out with the reason, and the
//!    planted Job is not touched.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::workflow::{kubectl, run_definition, run_failover, write_json, Cleanup};
use common::{kubeconfig, Env};
use serde_json::json;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn csi_dir(cluster: &str) -> PathBuf {
    let key = format!("CSI_DIR_{}", cluster.to_ascii_uppercase());
    PathBuf::from(&common::clusters_env()[&key])
}

/// Wait for claim `ns/name` to be bound: its PV's name and volume handle.
fn bound(cluster: &str, ns: &str, name: &str) -> (String, String) {
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
            return (pv.to_string(), handle);
        }
        assert!(Instant::now() < deadline, "{ns}/{name} not bound: {phase}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The `kind/name` lines of kubectl's `-o name` output (not its notes,
/// such as "No resources found", which come with it).
fn object_lines(out: &str) -> impl Iterator<Item = String> + '_ {
    out.lines()
        .filter(|l| l.contains('/') && !l.contains(' '))
        .map(str::to_string)
}

/// `kubectl get <what> -n <ns> -o name`, one name a line.
fn names(cluster: &str, what: &str, ns: &str) -> Vec<String> {
    let (ok, out) = kubectl(cluster, &["get", what, "-n", ns, "-o", "name"], None);
    assert!(ok, "{out}");
    object_lines(&out).collect()
}

/// What of `whats` is still in `ns` once deletions have had up to 60 s to
/// finish (a VolumeSnapshot waits for the snapshot controller's and the
/// provisioner's finalizers after Lifeboat deletes it).
fn left_after_deletion(cluster: &str, whats: &[&str], ns: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left: Vec<String> = whats.iter().flat_map(|w| names(cluster, w, ns)).collect();
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Watches two namespaces while a workflow runs: everything seen in the
/// application's, and the Jobs seen in Lifeboat's (to prove the watch saw
/// the mover at work).
struct Watch {
    stop: Arc<AtomicBool>,
    seen_app: Arc<Mutex<BTreeSet<String>>>,
    seen_lifeboat: Arc<Mutex<BTreeSet<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watch {
    fn start(cluster: &'static str, app_ns: &str, lifeboat_ns: &str) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let seen_app = Arc::new(Mutex::new(BTreeSet::new()));
        let seen_lifeboat = Arc::new(Mutex::new(BTreeSet::new()));
        let (s, a, l) = (stop.clone(), seen_app.clone(), seen_lifeboat.clone());
        let (app_ns, lifeboat_ns) = (app_ns.to_string(), lifeboat_ns.to_string());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let (_, out) = kubectl(
                    cluster,
                    &["get", "jobs,secrets,pods,pvc", "-n", &app_ns, "-o", "name"],
                    None,
                );
                a.lock().unwrap().extend(object_lines(&out));
                let (_, out) = kubectl(
                    cluster,
                    &["get", "jobs,secrets", "-n", &lifeboat_ns, "-o", "name"],
                    None,
                );
                l.lock().unwrap().extend(object_lines(&out));
            }
        });
        Watch {
            stop,
            seen_app,
            seen_lifeboat,
            thread: Some(thread),
        }
    }

    /// Stop: what was seen in the application's namespace and in Lifeboat's.
    fn finish(mut self) -> (BTreeSet<String>, BTreeSet<String>) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        let app = self.seen_app.lock().unwrap().clone();
        let lifeboat = self.seen_lifeboat.lock().unwrap().clone();
        (app, lifeboat)
    }
}

fn backup_input(env: &Env, ns: &str) -> PathBuf {
    let input = env.path("backup.json");
    write_json(
        &input,
        &json!({"version": 1, "action": "backup", "cluster": "primary",
            "scope": {"include_namespaces": [ns]}, "requested_by": "ci"}),
    );
    input
}
// The fleet's scope is the test namespace, so these backups are full-scope
// ones, which a failover's `latest` takes.

#[test]
fn movers_leave_nothing_in_the_application_namespace_and_refuse_a_planted_job() {
    if common::skip_clusters() {
        return;
    }
    let pid = std::process::id();
    let ns = format!("iso-{pid}");
    // A namespace of Lifeboat's own for this test (so the planted Job
    // cannot disturb other tests), which does not exist yet.
    let lifeboat_ns = format!("lifeboat-iso-{pid}");
    let _cleanup = Cleanup(ns.clone());
    let _cleanup_lifeboat = Cleanup(lifeboat_ns.clone());
    let mut env = Env::new();
    env.extra_env = vec![("LIFEBOAT_MOVER_NAMESPACE".into(), lifeboat_ns.clone())];
    env.ok(&["repo", "init"]);
    let dr_repo = env.path("dr-repo");
    std::fs::create_dir_all(&dr_repo).unwrap();
    let dr_repo = dr_repo.to_str().unwrap().to_string();
    let manifest = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: files, namespace: {ns}}}\nspec: {{storageClassName: hostpath, accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 16Mi}}}}}}\n"
    );
    let (ok, out) = kubectl("primary", &["apply", "-f", "-"], Some(&manifest));
    assert!(ok, "{out}");
    let (_, handle) = bound("primary", &ns, "files");
    let files = csi_dir("primary").join("hostpath/volumes").join(handle);
    std::fs::create_dir_all(files.join("db")).unwrap();
    std::fs::write(files.join("db/pages.bin"), vec![7u8; 200_000]).unwrap();
    std::fs::write(files.join("config.yaml"), "replicas: 3\n").unwrap();
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
    let input = backup_input(&env, &ns);

    // 1. Backup: the Job and its Secret are in Lifeboat's namespace only.
    let watch = Watch::start("primary", &ns, &lifeboat_ns);
    let (code, execution) =
        run_definition(&env, "backup.asl.json", &input, &fleet, Some(&dr_repo), &[]);
    let (in_app, in_lifeboat) = watch.finish();
    assert_eq!(code, 0, "{execution:#}");
    let report = &execution["output"]["report"];
    assert_eq!(report["outcome"], "succeeded", "{report:#}");
    assert_eq!(report["stored"]["volumes"][0]["mover"], "filesystem");
    let lifeboats: Vec<&String> = in_app.iter().filter(|n| n.contains("lifeboat")).collect();
    assert!(
        lifeboats.is_empty(),
        "the application's namespace held {lifeboats:?}"
    );
    assert!(
        in_app
            .iter()
            .all(|n| !n.starts_with("job") && !n.starts_with("secret")),
        "{in_app:?}"
    );
    assert!(
        in_lifeboat
            .iter()
            .any(|n| n.starts_with("job.batch/lifeboat-backup-")),
        "the watch never saw the mover's Job in {lifeboat_ns}: {in_lifeboat:?}"
    );
    // Lifeboat made its namespace, at Pod Security "baseline".
    let (ok, level) = kubectl(
        "primary",
        &[
            "get",
            "namespace",
            &lifeboat_ns,
            "-o",
            "jsonpath={.metadata.labels.pod-security\\.kubernetes\\.io/enforce}",
        ],
        None,
    );
    assert!(ok && level == "baseline", "{level}");
    // And cleaned up after itself there.
    for what in ["jobs", "secrets", "pvc", "volumesnapshots"] {
        assert_eq!(names("primary", what, &lifeboat_ns), Vec::<String>::new());
    }

    // 2. Failover into dr: the restore Job runs in Lifeboat's namespace
    // there; the restored claim is bound to a volume with the data.
    let watch = Watch::start("dr", &ns, &lifeboat_ns);
    let (code, execution) = run_failover(&env, &fleet);
    let (in_app, in_lifeboat) = watch.finish();
    assert_eq!(code, 0, "{execution:#}");
    let report = &execution["output"]["report"];
    assert_eq!(report["outcome"], "succeeded", "{report:#}");
    assert!(
        in_app
            .iter()
            .all(|n| !n.starts_with("job") && !n.starts_with("secret") && !n.starts_with("pod")),
        "the application's namespace in dr held {in_app:?}"
    );
    assert!(
        in_app.iter().all(|n| n == "persistentvolumeclaim/files"),
        "{in_app:?}"
    );
    assert!(
        in_lifeboat
            .iter()
            .any(|n| n.starts_with("job.batch/lifeboat-restore-")),
        "the watch never saw the restore Job in {lifeboat_ns}: {in_lifeboat:?}"
    );
    let (pv, dr_handle) = bound("dr", &ns, "files");
    let (ok, source) = kubectl(
        "dr",
        &[
            "get",
            "pvc",
            "files",
            "-n",
            &ns,
            "-o",
            "jsonpath={.spec.dataSource.kind}/{.spec.dataSource.name}",
        ],
        None,
    );
    assert!(
        ok && source.starts_with("VolumeSnapshot/lifeboat-restore-"),
        "{source}"
    );
    let (ok, claim_ref) = kubectl(
        "dr",
        &[
            "get",
            "pv",
            &pv,
            "-o",
            "jsonpath={.spec.claimRef.namespace}/{.spec.claimRef.name}",
        ],
        None,
    );
    assert!(ok && claim_ref == format!("{ns}/files"), "{claim_ref}");
    let dr_files = csi_dir("dr").join("hostpath/volumes").join(dr_handle);
    let differences = lifeboat_ops::compare::compare_trees(&files, &dr_files).unwrap();
    assert!(differences.is_empty(), "{differences:#?}");
    // The staged snapshot, too, may wait a moment for its finalizers.
    assert_eq!(
        left_after_deletion(
            "dr",
            &["jobs", "secrets", "pvc", "volumesnapshots"],
            &lifeboat_ns
        ),
        Vec::<String>::new()
    );

    // 3. A Job planted under the next run's mover Job's name is refused.
    let run = format!("iso-planted-{pid}");
    let name = format!(
        "lifeboat-backup-{}",
        &blake3::hash(format!("{run}/{ns}/files").as_bytes()).to_hex()[..12]
    );
    let planted = format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: {name}, namespace: {lifeboat_ns}, annotations: {{planted: \"yes\"}}}}\nspec:\n  suspend: true\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{{name: c, image: example.test/steal:1, command: [\"true\"]}}]\n"
    );
    let (ok, out) = kubectl("primary", &["apply", "-f", "-"], Some(&planted));
    assert!(ok, "{out}");
    let (code, execution) = run_definition(
        &env,
        "backup.asl.json",
        &input,
        &fleet,
        Some(&dr_repo),
        &["--name", &run],
    );
    assert_eq!(code, 0, "{execution:#}");
    let report = &execution["output"]["report"];
    assert_eq!(report["outcome"], "partial", "{report:#}");
    let failed = report["stored"]["volumes_failed"].as_array().unwrap();
    let cause = failed[0].as_str().unwrap();
    assert!(
        cause.starts_with(&format!("{ns}/files: "))
            && cause.contains(&format!("jobs.batch {lifeboat_ns}/{name}"))
            && cause.contains("Lifeboat did not create it"),
        "{cause}"
    );
    // The planted Job is neither used nor deleted, and gets no Secret.
    let (ok, planted_now) = kubectl(
        "primary",
        &[
            "get",
            "job",
            &name,
            "-n",
            &lifeboat_ns,
            "-o",
            "jsonpath={.metadata.annotations.planted}/{.spec.template.spec.containers[0].image}",
        ],
        None,
    );
    assert!(
        ok && planted_now == "yes/example.test/steal:1",
        "{planted_now}"
    );
    assert_eq!(
        names("primary", "secrets", &lifeboat_ns),
        Vec::<String>::new()
    );
    // Deleted, though a snapshot may wait a moment for the provisioner to
    // drop its source-protection finalizer (the staging claim went first).
    let left = left_after_deletion("primary", &["pvc", "volumesnapshots"], &lifeboat_ns);
    assert!(
        left.is_empty(),
        "Lifeboat's own objects are cleaned up: {left:?}"
    );
}
