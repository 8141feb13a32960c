//! `check_readiness` against the real local "dr" cluster (tests/substrate/clusters).
//!
//! The clusters have kube-apiserver and kube-controller-manager but no
//! scheduler and no kubelet: controllers run, pods never do. So a Deployment
//! is accepted by its controller (ready without `require_pods`) and never has
//! ready replicas (not ready with it).
//!
//! Each test works in a namespace (and a PersistentVolume) of its own with a
//! unique name and deletes them at the end, even when it fails: other tests
//! may use the same cluster at the same time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use k8s_openapi::api::core::v1::{Namespace, PersistentVolume};
use kube::api::{Api, DeleteParams};
use lifeboat_kube::{api, check_readiness, Cluster, KindCount, ReadinessOptions, ResourceType};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const CLUSTER: &str = "dr";

/// The kubeconfig of the test cluster, or `None` (with the reason printed)
/// when the test is to be skipped: `LIFEBOAT_SKIP_CLUSTERS=1`, or the
/// clusters are not up.
fn kubeconfig() -> Option<PathBuf> {
    if std::env::var_os("LIFEBOAT_SKIP_CLUSTERS").is_some_and(|v| v == "1") {
        eprintln!("LIFEBOAT_SKIP_CLUSTERS=1: cluster test skipped on request");
        return None;
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/substrate")
        .join(format!("{CLUSTER}.kubeconfig"));
    if !p.exists() {
        eprintln!(
            "{} is missing: the test clusters are not up (start them with \
             tests/substrate/clusters up); cluster test skipped",
            p.display()
        );
        return None;
    }
    Some(p)
}

/// A name no other test run uses.
fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

fn rt(group: &str, version: &str, resource: &str, kind: &str, namespaced: bool) -> ResourceType {
    ResourceType {
        group: group.into(),
        version: version.into(),
        resource: resource.into(),
        kind: kind.into(),
        namespaced,
    }
}

/// Deletes the namespace and volume when dropped, on a thread and client of
/// its own (the test's runtime may be unwinding from a failed assertion).
struct Cleanup {
    kubeconfig: PathBuf,
    namespace: String,
    volume: Option<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let (kubeconfig, namespace, volume) = (
            self.kubeconfig.clone(),
            self.namespace.clone(),
            self.volume.clone(),
        );
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let cluster = Cluster::connect(Some(&kubeconfig), None).await.unwrap();
                let dp = DeleteParams::background();
                let ns: Api<Namespace> = Api::all(cluster.client.clone());
                if let Err(e) = ns.delete(&namespace, &dp).await {
                    eprintln!("cleanup: delete namespace {namespace}: {e}");
                }
                if let Some(pv) = volume {
                    let pvs: Api<PersistentVolume> = Api::all(cluster.client.clone());
                    if let Err(e) = pvs.delete(&pv, &dp).await {
                        eprintln!("cleanup: delete persistentvolume {pv}: {e}");
                    }
                }
            });
        })
        .join();
        if done.is_err() {
            eprintln!(
                "cleanup of namespace {} failed; delete it by hand",
                self.namespace
            );
        }
    }
}

async fn create(cluster: &Cluster, r: &ResourceType, obj: Value) {
    api::create(cluster, r, &obj, false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn restored_deployment_is_ready_without_pods_and_not_with_them() {
    let Some(kubeconfig) = kubeconfig() else {
        return;
    };
    let cluster = Cluster::connect(Some(&kubeconfig), None).await.unwrap();
    let ns = unique("lifeboat-readiness");
    let pv = unique("lifeboat-readiness-pv");
    let _cleanup = Cleanup {
        kubeconfig: kubeconfig.clone(),
        namespace: ns.clone(),
        volume: Some(pv.clone()),
    };

    create(
        &cluster,
        &rt("", "v1", "namespaces", "Namespace", false),
        json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": ns } }),
    )
    .await;
    // A static volume and a claim that names it: the PV controller binds
    // them without any provisioner or node.
    create(
        &cluster,
        &rt("", "v1", "persistentvolumes", "PersistentVolume", false),
        json!({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": { "name": pv },
            "spec": {
                "capacity": { "storage": "1Gi" },
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "",
                "hostPath": { "path": format!("/tmp/{pv}") },
                "claimRef": { "namespace": ns, "name": "data" },
            },
        }),
    )
    .await;
    create(
        &cluster,
        &rt(
            "",
            "v1",
            "persistentvolumeclaims",
            "PersistentVolumeClaim",
            true,
        ),
        json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": { "name": "data", "namespace": ns },
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "volumeName": pv,
                "resources": { "requests": { "storage": "1Gi" } },
            },
        }),
    )
    .await;
    create(
        &cluster,
        &rt("apps", "v1", "deployments", "Deployment", true),
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "web", "namespace": ns },
            "spec": {
                "replicas": 1,
                "selector": { "matchLabels": { "app": "web" } },
                "template": {
                    "metadata": { "labels": { "app": "web" } },
                    "spec": { "containers": [{ "name": "web", "image": "nginx:1.27" }] },
                },
            },
        }),
    )
    .await;

    // Without pods: the controllers accept the Deployment and its
    // ReplicaSet, the claim binds.
    let opts = ReadinessOptions {
        namespaces: vec![ns.clone()],
        timeout: Duration::from_secs(90),
        poll: Duration::from_millis(500),
        require_pods: false,
        ..Default::default()
    };
    let report = check_readiness(&cluster, &opts).await.unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&report).unwrap());
    assert!(report.ready, "{report:#?}");
    assert!(report.waited_secs < 90.0, "{report:#?}");
    assert!(
        report.checks.iter().all(|c| !c.required),
        "only informational checks may be left: {report:#?}"
    );
    let one = KindCount { ready: 1, total: 1 };
    assert_eq!(report.counts["Deployment"], one, "{report:#?}");
    assert_eq!(report.counts["ReplicaSet"], one, "{report:#?}");
    assert_eq!(report.counts["PersistentVolumeClaim"], one, "{report:#?}");
    assert_eq!(report.counts["Namespace"], one, "{report:#?}");
    // The ReplicaSet created its pod, which never runs.
    assert_eq!(report.counts["Pod"].ready, 0, "{report:#?}");

    // With pods: never ready here; reported, not an error, after the timeout.
    let opts = ReadinessOptions {
        timeout: Duration::from_secs(3),
        require_pods: true,
        ..opts
    };
    let report = check_readiness(&cluster, &opts).await.unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&report).unwrap());
    assert!(!report.ready, "{report:#?}");
    assert!(report.waited_secs >= 3.0, "{report:#?}");
    let deployment = report
        .checks
        .iter()
        .find(|c| c.kind == "Deployment")
        .unwrap_or_else(|| panic!("no Deployment check: {report:#?}"));
    assert_eq!(
        (
            deployment.namespace.as_str(),
            deployment.name.as_str(),
            deployment.ready,
            deployment.required,
        ),
        (ns.as_str(), "web", false, true)
    );
    assert_eq!(deployment.detail, "readyReplicas 0 < replicas 1");
    assert!(
        report.checks.iter().any(|c| c.kind == "ReplicaSet"),
        "{report:#?}"
    );
    assert_eq!(
        report.counts["Deployment"],
        KindCount { ready: 0, total: 1 }
    );
    assert_eq!(
        report.counts["PersistentVolumeClaim"],
        KindCount { ready: 1, total: 1 }
    );
}

#[tokio::test]
async fn missing_namespace_is_not_ready_and_all_namespaces_skip_the_system_ones() {
    let Some(kubeconfig) = kubeconfig() else {
        return;
    };
    let cluster = Cluster::connect(Some(&kubeconfig), None).await.unwrap();
    let missing = unique("lifeboat-readiness-missing");
    let opts = ReadinessOptions {
        namespaces: vec![missing.clone()],
        timeout: Duration::from_secs(1),
        poll: Duration::from_millis(200),
        require_pods: false,
        ..Default::default()
    };
    let report = check_readiness(&cluster, &opts).await.unwrap();
    assert!(!report.ready, "{report:#?}");
    assert_eq!(report.checks.len(), 1, "{report:#?}");
    assert_eq!(
        (
            report.checks[0].kind.as_str(),
            report.checks[0].name.as_str(),
            report.checks[0].detail.as_str()
        ),
        ("Namespace", missing.as_str(), "namespace does not exist")
    );

    // Every namespace: other tests' objects may not be ready, so only the
    // shape is checked; nothing from the system namespaces is looked at.
    let opts = ReadinessOptions {
        namespaces: Vec::new(),
        timeout: Duration::ZERO,
        ..opts
    };
    let report = check_readiness(&cluster, &opts).await.unwrap();
    assert!(!report.counts.contains_key("Namespace"), "{report:#?}");
    assert!(
        report
            .checks
            .iter()
            .all(|c| !["kube-system", "kube-public", "kube-node-lease"]
                .contains(&c.namespace.as_str())),
        "{report:#?}"
    );
}
