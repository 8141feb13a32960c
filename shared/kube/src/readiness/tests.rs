#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use super::fetch::*;
use super::rules::*;
use super::*;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

fn obj<K: DeserializeOwned>(v: Value) -> K {
    serde_json::from_value(v).unwrap()
}

fn meta(name: &str, generation: i64) -> Value {
    json!({ "name": name, "namespace": "shop", "generation": generation })
}

fn deployment(generation: i64, status: Value) -> Deployment {
    obj(json!({
        "metadata": meta("web", generation),
        "spec": { "replicas": 2, "selector": {}, "template": {} },
        "status": status,
    }))
}

#[test]
fn deployment_is_accepted_once_its_controller_observed_the_spec() {
    let d = deployment(2, json!({ "observedGeneration": 1 }));
    assert_eq!(
        deployment_state(&d, false).as_deref(),
        Some("observedGeneration 1 < generation 2")
    );
    let d = deployment(2, json!({}));
    assert_eq!(
        deployment_state(&d, false).as_deref(),
        Some("not yet observed by its controller (generation 2)")
    );
    let d: Deployment = obj(json!({ "metadata": meta("web", 1) }));
    assert!(deployment_state(&d, false).is_some());
    let d = deployment(2, json!({ "observedGeneration": 2 }));
    assert_eq!(deployment_state(&d, false), None);
    let d = deployment(2, json!({ "observedGeneration": 3 }));
    assert_eq!(deployment_state(&d, false), None);
}

#[test]
fn deployment_needs_ready_replicas_only_when_pods_are_required() {
    let d = deployment(1, json!({ "observedGeneration": 1, "readyReplicas": 1 }));
    assert_eq!(deployment_state(&d, false), None);
    assert_eq!(
        deployment_state(&d, true).as_deref(),
        Some("readyReplicas 1 < replicas 2")
    );
    let d = deployment(1, json!({ "observedGeneration": 1, "readyReplicas": 2 }));
    assert_eq!(deployment_state(&d, true), None);
    // No readyReplicas at all is 0; no spec.replicas is 1.
    let d: Deployment = obj(json!({
        "metadata": meta("web", 1),
        "spec": { "selector": {}, "template": {} },
        "status": { "observedGeneration": 1 },
    }));
    assert_eq!(
        deployment_state(&d, true).as_deref(),
        Some("readyReplicas 0 < replicas 1")
    );
    // Scaled to zero: nothing to wait for.
    let d: Deployment = obj(json!({
        "metadata": meta("web", 1),
        "spec": { "replicas": 0, "selector": {}, "template": {} },
        "status": { "observedGeneration": 1 },
    }));
    assert_eq!(deployment_state(&d, true), None);
}

#[test]
fn deployment_detail_says_why_replicas_are_missing() {
    let d = deployment(
        1,
        json!({
            "observedGeneration": 1,
            "conditions": [
                { "type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                  "message": "exceeded quota: pods" },
                { "type": "Progressing", "status": "False",
                  "reason": "ProgressDeadlineExceeded" },
            ],
        }),
    );
    assert_eq!(
        deployment_state(&d, true).as_deref(),
        Some(
            "readyReplicas 0 < replicas 2; ReplicaFailure: FailedCreate: exceeded quota: pods; \
             progress deadline exceeded"
        )
    );
}

#[test]
fn stateful_and_replica_sets_follow_the_same_rule() {
    let s: StatefulSet = obj(json!({
        "metadata": meta("db", 3),
        "spec": { "replicas": 3, "selector": {}, "template": {}, "serviceName": "db" },
        "status": { "observedGeneration": 2, "replicas": 0 },
    }));
    assert_eq!(
        stateful_set_state(&s, false).as_deref(),
        Some("observedGeneration 2 < generation 3")
    );
    let s: StatefulSet = obj(json!({
        "metadata": meta("db", 3),
        "spec": { "replicas": 3, "selector": {}, "template": {}, "serviceName": "db" },
        "status": { "observedGeneration": 3, "replicas": 3, "readyReplicas": 2 },
    }));
    assert_eq!(stateful_set_state(&s, false), None);
    assert_eq!(
        stateful_set_state(&s, true).as_deref(),
        Some("readyReplicas 2 < replicas 3")
    );
    let r: ReplicaSet = obj(json!({
        "metadata": meta("web-abc", 1),
        "spec": { "replicas": 1, "selector": {} },
        "status": { "observedGeneration": 1, "replicas": 1,
            "conditions": [{ "type": "ReplicaFailure", "status": "True",
                             "reason": "FailedCreate" }] },
    }));
    assert_eq!(replica_set_state(&r, false), None);
    assert_eq!(
        replica_set_state(&r, true).as_deref(),
        Some("readyReplicas 0 < replicas 1; ReplicaFailure: FailedCreate")
    );
}

#[test]
fn daemon_set_counts_ready_against_scheduled() {
    let status = |observed: i64, desired: i32, ready: i32| -> DaemonSet {
        obj(json!({
            "metadata": meta("agent", 2),
            "spec": { "selector": {}, "template": {} },
            "status": { "observedGeneration": observed, "desiredNumberScheduled": desired,
                "numberReady": ready, "currentNumberScheduled": desired,
                "numberMisscheduled": 0 },
        }))
    };
    assert_eq!(
        daemon_set_state(&status(1, 0, 0), false).as_deref(),
        Some("observedGeneration 1 < generation 2")
    );
    assert_eq!(daemon_set_state(&status(2, 3, 1), false), None);
    assert_eq!(
        daemon_set_state(&status(2, 3, 1), true).as_deref(),
        Some("numberReady 1 < desiredNumberScheduled 3")
    );
    // No nodes: nothing is scheduled, so nothing is missing.
    assert_eq!(daemon_set_state(&status(2, 0, 0), true), None);
}

#[test]
fn claim_must_be_bound() {
    let claim = |spec: Value, status: Value| -> PersistentVolumeClaim {
        obj(json!({ "metadata": meta("data", 1), "spec": spec, "status": status }))
    };
    assert_eq!(
        claim_state(&claim(json!({}), json!({ "phase": "Bound" }))),
        None
    );
    assert_eq!(
        claim_state(&claim(json!({}), json!({ "phase": "Pending" }))).as_deref(),
        Some("claim Pending")
    );
    assert_eq!(
        claim_state(&claim(
            json!({ "storageClassName": "gp3" }),
            json!({ "phase": "Pending" })
        ))
        .as_deref(),
        Some("claim Pending (storage class \"gp3\")")
    );
    assert_eq!(
        claim_state(&claim(
            json!({ "volumeName": "pv-1" }),
            json!({ "phase": "Pending" })
        ))
        .as_deref(),
        Some("claim Pending (waiting for volume pv-1)")
    );
    assert_eq!(
        claim_state(&claim(json!({}), json!({}))).as_deref(),
        Some("claim has no phase yet")
    );
    assert!(claim_state(&claim(json!({}), json!({ "phase": "Lost" })))
        .unwrap()
        .starts_with("claim Lost"));
}

#[test]
fn job_must_not_have_failed() {
    let job = |conditions: Value| -> Job {
        obj(json!({ "metadata": meta("migrate", 1), "status": { "conditions": conditions } }))
    };
    assert_eq!(job_state(&job(json!([]))), None);
    assert_eq!(
        job_state(&job(json!([{ "type": "Complete", "status": "True" }]))),
        None
    );
    assert_eq!(
        job_state(&job(json!([{ "type": "Failed", "status": "False" }]))),
        None
    );
    assert_eq!(
        job_state(&job(json!([{ "type": "Failed", "status": "True",
            "reason": "BackoffLimitExceeded",
            "message": "Job has reached the specified backoff limit" }])))
        .as_deref(),
        Some("job failed: BackoffLimitExceeded: Job has reached the specified backoff limit")
    );
    assert_eq!(
        job_state(&job(json!([{ "type": "FailureTarget", "status": "True",
            "reason": "DeadlineExceeded" }])))
        .as_deref(),
        Some("job failed: DeadlineExceeded")
    );
    let j: Job = obj(json!({ "metadata": meta("migrate", 1) }));
    assert_eq!(job_state(&j), None);
}

#[test]
fn pod_is_ready_or_succeeded_and_says_why_not() {
    let pod = |spec: Value, status: Value| -> Pod {
        obj(json!({ "metadata": meta("web-1", 1), "spec": spec, "status": status }))
    };
    let containers = json!({ "containers": [] });
    assert_eq!(
        pod_state(&pod(
            containers.clone(),
            json!({ "phase": "Running",
                    "conditions": [{ "type": "Ready", "status": "True" }] })
        )),
        None
    );
    assert_eq!(
        pod_state(&pod(containers.clone(), json!({ "phase": "Succeeded" }))),
        None
    );
    // What the test clusters show: no scheduler, no kubelet.
    assert_eq!(
        pod_state(&pod(containers.clone(), json!({ "phase": "Pending" }))).as_deref(),
        Some("phase Pending; not scheduled to a node")
    );
    assert_eq!(
        pod_state(&pod(
            containers.clone(),
            json!({ "phase": "Pending", "conditions": [{ "type": "PodScheduled",
                "status": "False", "reason": "Unschedulable",
                "message": "0/3 nodes are available" }] })
        ))
        .as_deref(),
        Some("phase Pending; not scheduled: Unschedulable: 0/3 nodes are available")
    );
    assert_eq!(
        pod_state(&pod(
            json!({ "containers": [], "nodeName": "n1" }),
            json!({ "phase": "Running",
                "conditions": [{ "type": "Ready", "status": "False",
                                 "reason": "ContainersNotReady" }],
                "containerStatuses": [{ "name": "web", "image": "x", "imageID": "",
                    "ready": false, "restartCount": 4,
                    "state": { "waiting": { "reason": "CrashLoopBackOff" } } }] })
        ))
        .as_deref(),
        Some("phase Running; container web: CrashLoopBackOff")
    );
    assert_eq!(
        pod_state(&pod(
            json!({ "containers": [], "nodeName": "n1" }),
            json!({})
        ))
        .as_deref(),
        Some("no phase yet")
    );
}

#[test]
fn load_balancer_needs_an_address() {
    let svc = |type_: &str, status: Value| -> Service {
        obj(
            json!({ "metadata": meta("front", 1), "spec": { "type": type_ },
                    "status": status }),
        )
    };
    assert!(!is_load_balancer(&svc("ClusterIP", json!({}))));
    let pending = svc("LoadBalancer", json!({ "loadBalancer": {} }));
    assert!(is_load_balancer(&pending));
    assert_eq!(
        load_balancer_state(&pending).as_deref(),
        Some("no load balancer address yet")
    );
    let up = svc(
        "LoadBalancer",
        json!({ "loadBalancer": { "ingress": [{ "hostname": "a.elb.amazonaws.com" }] } }),
    );
    assert_eq!(load_balancer_state(&up), None);
}

#[test]
fn namespace_must_exist_and_not_be_terminating() {
    assert_eq!(
        namespace_state(None).as_deref(),
        Some("namespace does not exist")
    );
    let active: Namespace = obj(json!({ "metadata": { "name": "shop" },
                                        "status": { "phase": "Active" } }));
    assert_eq!(namespace_state(Some(&active)), None);
    let going: Namespace = obj(json!({ "metadata": { "name": "shop" },
                                       "status": { "phase": "Terminating" } }));
    assert!(namespace_state(Some(&going)).is_some());
}

fn restored_shop() -> Observed {
    Observed {
        namespaces: vec![
            (
                "shop".into(),
                Some(obj(json!({ "metadata": { "name": "shop" } }))),
            ),
            ("gone".into(), None),
        ],
        deployments: vec![
            deployment(1, json!({ "observedGeneration": 1 })),
            obj(json!({ "metadata": meta("api", 2),
                        "status": { "observedGeneration": 1 } })),
        ],
        claims: vec![obj(json!({ "metadata": meta("data", 1),
                                 "status": { "phase": "Pending" } }))],
        pods: vec![obj(json!({ "metadata": meta("web-1", 1),
                               "status": { "phase": "Pending" } }))],
        services: vec![
            obj(json!({ "metadata": meta("front", 1), "spec": { "type": "LoadBalancer" } })),
            obj(json!({ "metadata": meta("internal", 1), "spec": { "type": "ClusterIP" } })),
        ],
        ..Observed::default()
    }
}

#[test]
fn evaluation_lists_only_what_is_not_ready_and_counts_everything() {
    let report = evaluate(&restored_shop(), false);
    assert!(!report.ready);
    let listed: Vec<(&str, &str, bool, &str)> = report
        .checks
        .iter()
        .map(|c| {
            (
                c.kind.as_str(),
                c.name.as_str(),
                c.required,
                c.detail.as_str(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        vec![
            ("Namespace", "gone", true, "namespace does not exist"),
            ("PersistentVolumeClaim", "data", true, "claim Pending"),
            (
                "Deployment",
                "api",
                true,
                "observedGeneration 1 < generation 2"
            ),
            (
                "Pod",
                "web-1",
                false,
                "phase Pending; not scheduled to a node"
            ),
            ("Service", "front", false, "no load balancer address yet"),
        ]
    );
    assert!(report.checks.iter().all(|c| !c.ready));
    assert_eq!(report.checks[1].namespace, "shop");
    assert_eq!(report.checks[0].namespace, "");
    let count = |k: &str| report.counts[k];
    assert_eq!(count("Deployment"), KindCount { ready: 1, total: 2 });
    assert_eq!(count("Pod"), KindCount { ready: 0, total: 1 });
    assert_eq!(count("Service"), KindCount { ready: 0, total: 1 });
    assert_eq!(count("Namespace"), KindCount { ready: 1, total: 2 });
    assert_eq!(count("StatefulSet"), KindCount { ready: 0, total: 0 });
    assert_eq!(report.omitted, 0);
}

#[test]
fn pods_and_load_balancers_alone_do_not_block_unless_pods_are_required() {
    let mut o = restored_shop();
    o.namespaces.truncate(1);
    o.claims.clear();
    o.deployments.truncate(1);
    let report = evaluate(&o, false);
    assert!(report.ready, "{report:?}");
    assert_eq!(report.checks.len(), 2);
    assert!(report.checks.iter().all(|c| !c.required));
    let report = evaluate(&o, true);
    assert!(!report.ready);
    let required: Vec<&str> = report
        .checks
        .iter()
        .filter(|c| c.required)
        .map(|c| c.kind.as_str())
        .collect();
    assert_eq!(required, vec!["Deployment", "Pod"]);
    // An empty cluster is ready.
    assert!(evaluate(&Observed::default(), true).ready);
}

#[test]
fn a_large_report_lists_required_checks_first_and_stays_small() {
    let pods: Vec<Pod> = (0..80)
        .map(|i| obj(json!({ "metadata": meta(&format!("p{i}"), 1) })))
        .collect();
    let o = Observed {
        pods,
        claims: vec![obj(json!({ "metadata": meta("data", 1) }))],
        ..Observed::default()
    };
    let report = evaluate(&o, false);
    assert_eq!(report.checks.len(), MAX_LISTED_CHECKS);
    assert_eq!(report.omitted, 81 - MAX_LISTED_CHECKS);
    assert_eq!(report.checks[0].kind, "PersistentVolumeClaim");
    assert_eq!(
        report.counts["Pod"],
        KindCount {
            ready: 0,
            total: 80
        }
    );
}

#[test]
fn report_round_trips_through_json_compactly() {
    let mut report = evaluate(&restored_shop(), false);
    report.waited_secs = 1.25;
    let v = serde_json::to_value(&report).unwrap();
    assert_eq!(v["counts"]["Deployment"], json!({ "ready": 1, "total": 2 }));
    assert!(v.get("omitted").is_none());
    assert!(v["checks"][0].get("namespace").is_none());
    assert_eq!(v["waited_secs"], json!(1.25));
    let back: ReadinessReport = serde_json::from_value(v).unwrap();
    assert_eq!(back, report);
}

#[test]
fn system_namespaces_are_left_out() {
    let mut o = Observed {
        pods: ["kube-system", "kube-public", "kube-node-lease", "shop"]
            .iter()
            .map(|ns| obj(json!({ "metadata": { "name": "p", "namespace": ns } })))
            .collect(),
        ..Observed::default()
    };
    retain_user_namespaces(&mut o);
    assert_eq!(o.pods.len(), 1);
    assert_eq!(o.pods[0].metadata.namespace.as_deref(), Some("shop"));
}

#[test]
fn seconds_are_kept_to_the_millisecond() {
    assert_eq!(secs(Duration::from_micros(1_234_567)), 1.235);
}

#[test]
fn objects_not_ready_in_the_source_are_not_required() {
    let check = |kind: &str, name: &str| Check {
        kind: kind.into(),
        namespace: "analytics".into(),
        name: name.into(),
        ready: false,
        required: true,
        detail: "claim Pending".into(),
    };
    let mut report = ReadinessReport {
        ready: false,
        waited_secs: 0.0,
        checks: vec![check("PersistentVolumeClaim", "scratch")],
        omitted: 0,
        counts: BTreeMap::new(),
    };
    let mut keys = BTreeSet::new();
    keys.insert("PersistentVolumeClaim/analytics/other".to_string());
    exempt(&mut report, &keys, "not ready in the source either");
    assert!(!report.ready, "another claim's exemption changes nothing");
    keys.insert("PersistentVolumeClaim/analytics/scratch".to_string());
    exempt(&mut report, &keys, "not ready in the source either");
    assert!(report.ready);
    assert!(!report.checks[0].required);
    assert!(report.checks[0]
        .detail
        .ends_with("(not ready in the source either)"));
}
