//! Cluster state against the two real local clusters (tests/substrate/clusters):
//! back up the fixture application from primary, restore it into dr and into
//! primary under a namespace map, and compare every object field by field.
//! Expected differences are listed in docs/cluster-state.md; `normalise`
//! removes exactly those.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{fixture, kubeconfig, Env};
use lifeboat_kube::{api, Cluster, ResourceType};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::sync::Mutex;

/// The tests share two clusters: one at a time.
static CLUSTERS: Mutex<()> = Mutex::new(());

const FIXTURE_NAMESPACES: &str = "shop,payments,analytics,platform";

fn kubectl(cluster: &str, args: &[&str]) -> String {
    let out = Command::new(lifeboat_tests::repo_root().join("tests/substrate/clusters"))
        .arg("kubectl")
        .arg(cluster)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn connect(rt: &tokio::runtime::Runtime, cluster: &str) -> Cluster {
    rt.block_on(Cluster::connect(Some(&kubeconfig(cluster)), None))
        .unwrap()
}

fn resource_types(backup: &Value) -> HashMap<(String, String), ResourceType> {
    backup["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let t: ResourceType = serde_json::from_value(r.clone()).unwrap();
            ((t.group.clone(), t.kind.clone()), t)
        })
        .collect()
}

fn remove(v: &mut Value, ptr: &str) {
    let (parent, key) = ptr.rsplit_once('/').unwrap();
    if let Some(Value::Object(m)) = v.pointer_mut(parent) {
        m.remove(key);
    }
}

/// An object as it should compare across clusters: what the server owns and
/// what docs/cluster-state.md lists as expected to differ is removed.
fn normalise(t: &ResourceType, obj: Value) -> Value {
    let c = lifeboat_kube::clean::clean(t, obj).unwrap();
    let mut v: Value = serde_json::from_slice(&c.body).unwrap();
    remove(&mut v, "/metadata/ownerReferences");
    for a in [
        "pv.kubernetes.io/bind-completed",
        "pv.kubernetes.io/bound-by-controller",
        "volume.beta.kubernetes.io/storage-provisioner",
        "volume.kubernetes.io/storage-provisioner",
        "volume.kubernetes.io/selected-node",
    ] {
        if let Some(Value::Object(m)) = v.pointer_mut("/metadata/annotations") {
            m.remove(a);
        }
    }
    if let Some(Value::Object(m)) = v.pointer_mut("/metadata/annotations") {
        if m.is_empty() {
            remove(&mut v, "/metadata/annotations");
        }
    }
    match (t.group.as_str(), t.kind.as_str()) {
        ("", "Service") => {
            if v.pointer("/spec/clusterIP").and_then(Value::as_str) != Some("None") {
                remove(&mut v, "/spec/clusterIP");
                remove(&mut v, "/spec/clusterIPs");
            }
            remove(&mut v, "/spec/healthCheckNodePort");
            if let Some(Value::Array(ports)) = v.pointer_mut("/spec/ports") {
                for p in ports {
                    remove(p, "/nodePort");
                }
            }
        }
        ("", "PersistentVolume") => {
            remove(&mut v, "/spec/claimRef/uid");
            remove(&mut v, "/spec/claimRef/resourceVersion");
            // Re-attached volumes are always Retain (checked on its own),
            // and the external-provisioner drops its deletion finalizer
            // from Retain volumes.
            remove(&mut v, "/spec/persistentVolumeReclaimPolicy");
            if let Some(Value::Array(f)) = v.pointer_mut("/metadata/finalizers") {
                f.retain(|x| x != "external-provisioner.volume.kubernetes.io/finalizer");
            }
        }
        ("batch", "Job") => {
            remove(&mut v, "/spec/selector");
            for p in ["/metadata/labels", "/spec/template/metadata/labels"] {
                if let Some(Value::Object(m)) = v.pointer_mut(p) {
                    m.remove("controller-uid");
                    m.remove("batch.kubernetes.io/controller-uid");
                }
            }
        }
        ("", "Pod") => {
            remove(&mut v, "/spec/nodeName");
            // The service-account admission plugin adds a token volume with a
            // random name in each cluster.
            if let Some(Value::Array(vols)) = v.pointer_mut("/spec/volumes") {
                vols.retain(|x| {
                    !x["name"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with("kube-api-access-")
                });
            }
            for kind in ["containers", "initContainers"] {
                if let Some(Value::Array(cs)) = v.pointer_mut(&format!("/spec/{kind}")) {
                    for c in cs {
                        if let Some(Value::Array(m)) = c.pointer_mut("/volumeMounts") {
                            m.retain(|x| {
                                !x["name"]
                                    .as_str()
                                    .unwrap_or("")
                                    .starts_with("kube-api-access-")
                            });
                        }
                    }
                }
            }
        }
        _ => {}
    }
    v
}

fn report_items(report: &Value) -> Vec<Value> {
    report["report"]["items"].as_array().unwrap().clone()
}

fn by_outcome(items: &[Value]) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for i in items {
        *m.entry(i["outcome"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    m
}

/// Compare every created object of `items` between `from` and `to`.
fn compare_created(
    rt: &tokio::runtime::Runtime,
    types: &HashMap<(String, String), ResourceType>,
    items: &[Value],
    from: &Cluster,
    to: &Cluster,
    namespace_map: &BTreeMap<&str, &str>,
) -> usize {
    let mut compared = 0;
    let mut diffs = Vec::new();
    for i in items.iter().filter(|i| i["outcome"] == "created") {
        let o = &i["object"];
        let key = (
            o["group"].as_str().unwrap().to_string(),
            o["kind"].as_str().unwrap().to_string(),
        );
        let Some(t) = types.get(&key) else { continue };
        let name = o["name"].as_str().unwrap();
        let ns = o["namespace"].as_str();
        let target_ns = ns.map(|n| *namespace_map.get(n).unwrap_or(&n));
        let target_name = if t.is("", "Namespace") {
            *namespace_map.get(name).unwrap_or(&name)
        } else {
            name
        };
        let a = rt
            .block_on(api::get(from, t, ns, name))
            .unwrap()
            .unwrap_or_else(|| panic!("{o} gone from the source"));
        let b = rt
            .block_on(api::get(to, t, target_ns, target_name))
            .unwrap()
            .unwrap_or_else(|| panic!("{o} reported created but not in the target"));
        let mut a = normalise(t, a);
        let b = normalise(t, b);
        if let Some(tn) = target_ns {
            a["metadata"]["namespace"] = Value::String(tn.to_string());
        }
        if t.is("", "Namespace") {
            a["metadata"]["name"] = Value::String(target_name.to_string());
            remove(&mut a, "/metadata/labels/kubernetes.io~1metadata.name");
            let mut b2 = b.clone();
            remove(&mut b2, "/metadata/labels/kubernetes.io~1metadata.name");
            if a != b2 {
                diffs.push(format!("{o}:\n  source {a}\n  target {b2}"));
            }
            compared += 1;
            continue;
        }
        if a != b {
            diffs.push(format!("{o}:\n  source {a}\n  target {b}"));
        }
        compared += 1;
    }
    assert!(
        diffs.is_empty(),
        "{} objects differ:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
    compared
}

/// What every test starts from: the clusters to itself, the fixture in
/// primary (and none of it in dr, when `empty_dr`), a new repository.
struct Setup {
    _one: std::sync::MutexGuard<'static, ()>,
    env: Env,
    primary: String,
    dr: String,
}

fn setup(empty_dr: bool) -> Option<Setup> {
    if common::skip_clusters() {
        return None;
    }
    let one = CLUSTERS.lock().unwrap_or_else(|e| e.into_inner());
    fixture("apply", "primary");
    if empty_dr {
        fixture("delete", "dr");
    }
    let env = Env::new();
    env.ok(&["repo", "init"]);
    Some(Setup {
        _one: one,
        env,
        primary: kubeconfig("primary").display().to_string(),
        dr: kubeconfig("dr").display().to_string(),
    })
}

#[test]
fn fixture_application_restores_into_another_cluster_field_by_field() {
    let Some(Setup {
        _one,
        env,
        primary,
        dr,
    }) = setup(true)
    else {
        return;
    };
    let backup = env.json(&[
        "backup",
        "--kubeconfig",
        &primary,
        "--include-namespaces",
        FIXTURE_NAMESPACES,
    ]);
    let snap = backup["snapshot"].as_str().unwrap().to_string();
    let objects = backup["summary"]["files"].as_u64().unwrap();
    assert!(objects > 80, "{backup}");
    // The dependencies of the namespaces came along.
    let kinds: Vec<&str> = backup["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    for k in [
        "CustomResourceDefinition",
        "StorageClass",
        "PersistentVolume",
        "PriorityClass",
        "ClusterRole",
        "IngressClass",
        "Widget",
    ] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }

    // A dry run changes nothing and says what would happen.
    let plan = env.json(&["restore", &snap, "--kubeconfig", &dr, "--dry-run"]);
    let planned = by_outcome(&report_items(&plan));
    assert!(
        planned.get("would-create").copied().unwrap_or(0) > 50,
        "{planned:?}"
    );
    assert!(kubectl(
        "dr",
        &[
            "get",
            "ns",
            "-l",
            "lifeboat-fixture=cluster-app",
            "-o",
            "name"
        ]
    )
    .trim()
    .is_empty());

    // The fixture's volumes point nowhere: re-attaching them is harmless
    // here, and lets every PV and PVC compare field by field.
    let out = env.run(&[
        "restore",
        &snap,
        "--kubeconfig",
        &dr,
        "--json",
        "--restore-status",
        "--reattach-volumes",
    ]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let items = report_items(&report);
    let failed: Vec<&Value> = items.iter().filter(|i| i["outcome"] == "failed").collect();
    assert!(
        failed.is_empty() && out.status.success(),
        "failures: {failed:#?}"
    );
    // Re-attached volumes never delete the source's disk, and say so.
    let ledger = item(
        &items,
        "PersistentVolume",
        None,
        "lifeboat-fixture-payments-ledger",
    );
    assert!(
        ledger["reason"]
            .as_str()
            .unwrap()
            .contains("reclaim policy Retain (was Delete)"),
        "{ledger}"
    );
    assert_eq!(
        kubectl(
            "dr",
            &[
                "get",
                "pv",
                "lifeboat-fixture-payments-ledger",
                "-o",
                "jsonpath={.spec.persistentVolumeReclaimPolicy}"
            ]
        ),
        "Retain"
    );
    let counts = by_outcome(&items);
    assert!(counts["created"] > 50, "{counts:?}");
    // Objects owned by a restored controller are left to it.
    assert!(
        items.iter().any(
            |i| i["outcome"] == "skipped" && i["reason"].as_str().unwrap().contains("owned by")
        ),
        "{counts:?}"
    );

    let rt = runtime();
    let (p, d) = (connect(&rt, "primary"), connect(&rt, "dr"));
    let compared = compare_created(
        &rt,
        &resource_types(&backup),
        &items,
        &p,
        &d,
        &BTreeMap::new(),
    );
    assert!(
        compared as u64 >= counts["created"] - 5,
        "compared {compared} of {counts:?}"
    );
    // Custom resource status came back with --restore-status.
    let widgets = kubectl(
        "dr",
        &["get", "widgets.fixtures.lifeboat.dev", "-A", "-o", "json"],
    );
    let w: Value = serde_json::from_str(&widgets).unwrap();
    assert!(
        w["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| !x["status"].is_null()),
        "{widgets}"
    );
    // The stored report is the printed one.
    let rid = report["report_id"].as_str().unwrap();
    assert!(std::path::Path::new(&env.repo)
        .join("reports")
        .join(rid)
        .exists());

    // A second restore finds everything there.
    let again = env.json(&["restore", &snap, "--kubeconfig", &dr]);
    let c = by_outcome(&report_items(&again));
    assert!(
        !c.contains_key("created") && !c.contains_key("failed"),
        "{c:?}"
    );
    fixture("delete", "dr");
}

/// Without `--reattach-volumes`, no PersistentVolume whose data is not
/// restored is re-created in the target (it would point at the source's
/// disk); each claim is provisioned anew, and the report says so per claim.
#[test]
fn restore_leaves_out_volumes_without_data_unless_asked() {
    let Some(Setup {
        _one,
        env,
        primary,
        dr,
    }) = setup(true)
    else {
        return;
    };
    let backup = env.json(&[
        "backup",
        "--kubeconfig",
        &primary,
        "--include-namespaces",
        FIXTURE_NAMESPACES,
    ]);
    let snap = backup["snapshot"].as_str().unwrap().to_string();
    let out = env.run(&["restore", &snap, "--kubeconfig", &dr, "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let items = report_items(&report);
    let failed: Vec<&Value> = items.iter().filter(|i| i["outcome"] == "failed").collect();
    assert!(failed.is_empty(), "failures: {failed:#?}");
    let volumes: Vec<&Value> = items
        .iter()
        .filter(|i| i["object"]["kind"] == "PersistentVolume")
        .collect();
    assert!(volumes.len() >= 6, "{volumes:#?}");
    for v in &volumes {
        assert_eq!(v["outcome"], "skipped", "{v}");
        assert!(
            v["reason"].as_str().unwrap().contains("source's storage"),
            "{v}"
        );
    }
    let ledger = item(
        &items,
        "PersistentVolume",
        None,
        "lifeboat-fixture-payments-ledger",
    );
    assert!(
        ledger["reason"]
            .as_str()
            .unwrap()
            .contains("csi hostpath.csi.k8s.io 7f3c9a52-lifeboat-fixture-payments-ledger"),
        "{ledger}"
    );
    let claim = item(&items, "PersistentVolumeClaim", Some("payments"), "ledger");
    assert_eq!(claim["outcome"], "created", "{claim}");
    assert!(
        claim["reason"]
            .as_str()
            .unwrap()
            .starts_with("provisioned anew, empty"),
        "{claim}"
    );
    let fixture_pvs = kubectl(
        "dr",
        &[
            "get",
            "pv",
            "-l",
            "lifeboat-fixture=cluster-app",
            "-o",
            "name",
        ],
    );
    assert!(fixture_pvs.trim().is_empty(), "{fixture_pvs}");
    let volume_name = kubectl(
        "dr",
        &[
            "get",
            "pvc",
            "ledger",
            "-n",
            "payments",
            "-o",
            "jsonpath={.spec.volumeName}",
        ],
    );
    assert_ne!(volume_name, "lifeboat-fixture-payments-ledger");
    fixture("delete", "dr");
}

fn item<'a>(items: &'a [Value], kind: &str, ns: Option<&str>, name: &str) -> &'a Value {
    items
        .iter()
        .find(|i| {
            i["object"]["kind"] == kind
                && i["object"]["name"] == name
                && i["object"]["namespace"].as_str() == ns
        })
        .unwrap_or_else(|| panic!("no {kind} {ns:?}/{name} in the report"))
}

fn apply_stdin(cluster: &str, yaml: &str) {
    use std::io::Write;
    let mut child = Command::new(lifeboat_tests::repo_root().join("tests/substrate/clusters"))
        .args(["kubectl", cluster, "apply", "--server-side", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Restore into a cluster that already has some of the objects, a stricter
/// version of the CRD (some custom resources fail its validation), and none
/// of the StorageClasses: each object gets its own outcome and reason, and
/// nothing else is lost.
#[test]
fn existing_objects_invalid_custom_resources_and_missing_storage_classes() {
    let Some(Setup {
        _one,
        env,
        primary,
        dr,
    }) = setup(true)
    else {
        return;
    };
    // Namespaced objects only: the target's StorageClasses are not restored.
    let backup = env.json(&[
        "backup",
        "--kubeconfig",
        &primary,
        "--include-namespaces",
        FIXTURE_NAMESPACES,
        "--include-cluster-resources",
        "false",
    ]);
    let snap = backup["snapshot"].as_str().unwrap().to_string();
    let kinds: Vec<&str> = backup["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert!(
        !kinds.contains(&"StorageClass") && !kinds.contains(&"CustomResourceDefinition"),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"Namespace"),
        "namespaces in scope always come along: {kinds:?}"
    );

    // The target: a stricter Widget CRD and a changed ConfigMap already there.
    let crd_path = lifeboat_tests::repo_root()
        .join("tests/fixtures/cluster-app/crds/00-widgets.fixtures.lifeboat.dev.yaml");
    let strict = std::fs::read_to_string(crd_path).unwrap().replacen(
        "minimum: 1\n                  description: How big",
        "minimum: 1\n                  maximum: 5\n                  description: How big",
        1,
    );
    assert!(strict.contains("maximum: 5"));
    apply_stdin("dr", &strict);
    kubectl(
        "dr",
        &[
            "wait",
            "--for=condition=Established",
            "crd/widgets.fixtures.lifeboat.dev",
            "--timeout=60s",
        ],
    );
    apply_stdin(
        "dr",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {lifeboat-fixture: cluster-app}}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web-config, namespace: shop}\ndata: {LOG_LEVEL: debug}\n",
    );

    // --existing fail: the ConfigMap is a failure, the exit code says so.
    let out = env.run(&[
        "restore",
        &snap,
        "--kubeconfig",
        &dr,
        "--json",
        "--existing",
        "fail",
    ]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let items = report_items(&report);
    let cm = item(&items, "ConfigMap", Some("shop"), "web-config");
    assert_eq!(cm["outcome"], "failed", "{cm}");
    assert!(
        cm["reason"].as_str().unwrap().contains("already exists"),
        "{cm}"
    );
    // Widgets that break the stricter schema fail with the API server's reason;
    // the others are created.
    for (ns, name, ok) in [
        ("shop", "alpha", true),
        ("shop", "beta", true),
        ("analytics", "delta", false),
        ("payments", "gamma", false),
    ] {
        let w = item(&items, "Widget", Some(ns), name);
        if ok {
            assert_eq!(w["outcome"], "created", "{w}");
        } else {
            assert_eq!(w["outcome"], "failed", "{w}");
            assert!(w["reason"].as_str().unwrap().contains("spec.size"), "{w}");
        }
    }
    // Only what the target already had (the shop namespace, the ConfigMap)
    // and the invalid Widgets failed.
    let ns = item(&items, "Namespace", None, "shop");
    assert_eq!(ns["outcome"], "failed", "{ns}");
    let unexpected: Vec<&Value> = items
        .iter()
        .filter(|i| i["outcome"] == "failed")
        .filter(|i| {
            let name = i["object"]["name"].as_str().unwrap();
            i["object"]["kind"] != "Widget" && name != "web-config" && name != "shop"
        })
        .filter(|i| {
            // The other CRD was not in this backup and the target lacks it.
            let uncovered = i["object"]["kind"] == "ClusterInstance";
            if uncovered {
                assert!(
                    i["reason"]
                        .as_str()
                        .unwrap()
                        .contains("does not serve clusterinstances"),
                    "{i}"
                );
            }
            !uncovered
        })
        .filter(|i| {
            let reason = i["reason"].as_str().unwrap();
            // Pods that name a PriorityClass the target lacks (cluster
            // resources were left out of this backup) are refused by admission.
            let no_class = i["object"]["kind"] == "Pod" && reason.contains("no PriorityClass");
            // Every namespace gets its own `default` ServiceAccount at once.
            let default_sa = i["object"]["kind"] == "ServiceAccount"
                && i["object"]["name"] == "default"
                && reason.contains("already exists");
            !(no_class || default_sa)
        })
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:#?}");
    // Claims of a class the target lacks are created and wait for it.
    let pvcs: Vec<&Value> = items
        .iter()
        .filter(|i| i["object"]["kind"] == "PersistentVolumeClaim")
        .collect();
    assert!(
        !pvcs.is_empty() && pvcs.iter().all(|i| i["outcome"] == "created"),
        "{pvcs:#?}"
    );

    // --existing skip leaves it; --existing update replaces it with the backup's.
    // (These runs still exit 4: the invalid Widgets keep failing.)
    let skip = env.run(&["restore", &snap, "--kubeconfig", &dr, "--json"]);
    assert_eq!(skip.status.code(), Some(4));
    let skip: Value = serde_json::from_slice(&skip.stdout).unwrap();
    let cm = item(
        &report_items(&skip),
        "ConfigMap",
        Some("shop"),
        "web-config",
    )
    .clone();
    assert_eq!(cm["outcome"], "skipped", "{cm}");
    assert!(kubectl(
        "dr",
        &[
            "get",
            "cm",
            "-n",
            "shop",
            "web-config",
            "-o",
            "jsonpath={.data.LOG_LEVEL}"
        ]
    )
    .contains("debug"));
    let upd = env.run(&[
        "restore",
        &snap,
        "--kubeconfig",
        &dr,
        "--json",
        "--existing",
        "update",
    ]);
    let upd: Value = serde_json::from_slice(&upd.stdout).unwrap();
    let cm = item(&report_items(&upd), "ConfigMap", Some("shop"), "web-config").clone();
    assert_eq!(cm["outcome"], "updated", "{cm}");
    assert_eq!(
        kubectl(
            "dr",
            &[
                "get",
                "cm",
                "-n",
                "shop",
                "web-config",
                "-o",
                "jsonpath={.data.LOG_LEVEL}"
            ]
        ),
        "info"
    );
    fixture("delete", "dr");
    kubectl(
        "dr",
        &[
            "delete",
            "crd",
            "widgets.fixtures.lifeboat.dev",
            "--ignore-not-found",
        ],
    );
}

/// Restore into the same cluster under new namespace names, with a label on
/// every restored object; references to the namespaces move with them.
#[test]
fn namespace_map_restores_beside_the_original() {
    let Some(Setup {
        _one, env, primary, ..
    }) = setup(false)
    else {
        return;
    };
    let backup = env.json(&[
        "backup",
        "--kubeconfig",
        &primary,
        "--include-namespaces",
        "shop,payments",
    ]);
    let snap = backup["snapshot"].as_str().unwrap().to_string();
    let out = env.run(&[
        "restore",
        &snap,
        "--kubeconfig",
        &primary,
        "--json",
        "--namespace-map",
        "shop=shop-copy",
        "--namespace-map",
        "payments=payments-copy",
        "--label",
        "restored-by=lifeboat-test",
    ]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let items = report_items(&report);
    let failed: Vec<&Value> = items.iter().filter(|i| i["outcome"] == "failed").collect();
    assert!(failed.is_empty(), "{failed:#?}");
    let created: Vec<&Value> = items.iter().filter(|i| i["outcome"] == "created").collect();
    assert!(created.len() > 20, "{}", created.len());
    for c in &created {
        if let Some(ns) = c["object"]["namespace"].as_str() {
            assert_eq!(
                c["target_namespace"].as_str(),
                Some(format!("{ns}-copy").as_str()),
                "{c}"
            );
        }
    }
    // Cluster-scoped objects are shared with the original: already there.
    assert_eq!(
        item(&items, "StorageClass", None, "lifeboat-fixture-csi")["outcome"],
        "skipped"
    );
    let labelled = kubectl(
        "primary",
        &[
            "get",
            "cm",
            "-n",
            "shop-copy",
            "-l",
            "restored-by=lifeboat-test",
            "-o",
            "name",
        ],
    );
    assert!(labelled.contains("configmap/web-config"), "{labelled}");
    let subjects = kubectl(
        "primary",
        &[
            "get",
            "rolebindings",
            "-n",
            "shop-copy",
            "-o",
            "jsonpath={.items[*].subjects[*].namespace}",
        ],
    );
    assert!(
        !subjects.split_whitespace().any(|n| n == "shop"),
        "subjects still point at shop: {subjects}"
    );
    assert!(
        kubectl(
            "primary",
            &["get", "ns", "shop-copy", "payments-copy", "-o", "name"]
        )
        .lines()
        .count()
            == 2
    );
    // The copies carry the fixture's label: the fixture's delete removes them
    // with the originals.
    fixture("delete", "primary");
}
