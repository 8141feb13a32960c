//! The readiness rules: a pure function of the observed objects.

use super::*;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;

/// Apply the rules to what one poll saw. `waited_secs` is left at 0.
pub fn evaluate(observed: &Observed, require_pods: bool) -> ReadinessReport {
    let mut tally = Tally::default();
    for (name, ns) in &observed.namespaces {
        tally.add("Namespace", "", name, true, namespace_state(ns.as_ref()));
    }
    for c in &observed.claims {
        tally.add_obj("PersistentVolumeClaim", &c.metadata, true, claim_state(c));
    }
    for d in &observed.deployments {
        tally.add_obj(
            "Deployment",
            &d.metadata,
            true,
            deployment_state(d, require_pods),
        );
    }
    for s in &observed.stateful_sets {
        tally.add_obj(
            "StatefulSet",
            &s.metadata,
            true,
            stateful_set_state(s, require_pods),
        );
    }
    for d in &observed.daemon_sets {
        tally.add_obj(
            "DaemonSet",
            &d.metadata,
            true,
            daemon_set_state(d, require_pods),
        );
    }
    for r in &observed.replica_sets {
        tally.add_obj(
            "ReplicaSet",
            &r.metadata,
            true,
            replica_set_state(r, require_pods),
        );
    }
    for j in &observed.jobs {
        tally.add_obj("Job", &j.metadata, true, job_state(j));
    }
    for p in &observed.pods {
        tally.add_obj("Pod", &p.metadata, require_pods, pod_state(p));
    }
    for s in observed.services.iter().filter(|s| is_load_balancer(s)) {
        tally.add_obj("Service", &s.metadata, false, load_balancer_state(s));
    }
    tally.report()
}

/// Counts and not-ready checks as they are found.
#[derive(Default)]
pub(super) struct Tally {
    counts: BTreeMap<String, KindCount>,
    not_ready: Vec<Check>,
}

impl Tally {
    fn add_obj(&mut self, kind: &str, meta: &ObjectMeta, required: bool, state: Option<String>) {
        self.add(
            kind,
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().unwrap_or_default(),
            required,
            state,
        );
    }

    /// Count one object; `state` is `None` when it is ready, else why not.
    fn add(
        &mut self,
        kind: &str,
        namespace: &str,
        name: &str,
        required: bool,
        state: Option<String>,
    ) {
        let count = self.counts.entry(kind.to_string()).or_default();
        count.total += 1;
        match state {
            None => count.ready += 1,
            Some(detail) => self.not_ready.push(Check {
                kind: kind.to_string(),
                namespace: namespace.to_string(),
                name: name.to_string(),
                ready: false,
                required,
                detail,
            }),
        }
    }

    fn report(mut self) -> ReadinessReport {
        for kind in [
            "PersistentVolumeClaim",
            "Deployment",
            "StatefulSet",
            "DaemonSet",
            "ReplicaSet",
            "Job",
            "Pod",
            "Service",
        ] {
            self.counts.entry(kind.to_string()).or_default();
        }
        let ready = !self.not_ready.iter().any(|c| c.required);
        // Stable: within each group the order of evaluation stays.
        self.not_ready.sort_by_key(|c| !c.required);
        let omitted = self.not_ready.len().saturating_sub(MAX_LISTED_CHECKS);
        self.not_ready.truncate(MAX_LISTED_CHECKS);
        ReadinessReport {
            ready,
            waited_secs: 0.0,
            checks: self.not_ready,
            omitted,
            counts: self.counts,
        }
    }
}

// ---------------------------------------------------------------- the rules
//
// Each returns `None` when the object is ready, else the reason it is not.

pub(super) fn namespace_state(ns: Option<&Namespace>) -> Option<String> {
    let ns = match ns {
        None => return Some("namespace does not exist".into()),
        Some(ns) => ns,
    };
    if ns.metadata.deletion_timestamp.is_some()
        || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating")
    {
        return Some("namespace is being deleted (Terminating)".into());
    }
    None
}

pub(super) fn claim_state(c: &PersistentVolumeClaim) -> Option<String> {
    let phase = c.status.as_ref().and_then(|s| s.phase.as_deref());
    match phase {
        Some("Bound") => None,
        Some("Lost") => Some("claim Lost: its volume no longer exists".into()),
        other => {
            let mut detail = match other {
                Some(p) => format!("claim {p}"),
                None => "claim has no phase yet".to_string(),
            };
            let spec = c.spec.as_ref();
            if let Some(v) = spec.and_then(|s| s.volume_name.as_deref()) {
                detail.push_str(&format!(" (waiting for volume {v})"));
            } else if let Some(class) = spec.and_then(|s| s.storage_class_name.as_deref()) {
                detail.push_str(&format!(" (storage class {class:?})"));
            }
            Some(detail)
        }
    }
}

/// Whether the controller has seen the current spec: `None` if so.
pub(super) fn observed_state(
    meta: &ObjectMeta,
    observed_generation: Option<i64>,
) -> Option<String> {
    match (meta.generation, observed_generation) {
        (_, None) => Some(match meta.generation {
            Some(g) => format!("not yet observed by its controller (generation {g})"),
            None => "not yet observed by its controller".to_string(),
        }),
        (Some(g), Some(o)) if o < g => Some(format!("observedGeneration {o} < generation {g}")),
        _ => None,
    }
}

/// The reason of a `ReplicaFailure` condition that is `True`, to append.
pub(super) fn replica_failure<'a>(
    conditions: impl IntoIterator<Item = (&'a str, &'a str, Option<&'a str>, Option<&'a str>)>,
) -> String {
    conditions
        .into_iter()
        .find(|(t, s, _, _)| *t == "ReplicaFailure" && *s == "True")
        .map(|(_, _, reason, message)| {
            format!(
                "; ReplicaFailure: {}",
                join_reason(reason.unwrap_or_default(), message.unwrap_or_default())
            )
        })
        .unwrap_or_default()
}

pub(super) fn join_reason(reason: &str, message: &str) -> String {
    match (reason.is_empty(), message.is_empty()) {
        (false, false) => format!("{reason}: {message}"),
        (false, true) => reason.to_string(),
        (true, false) => message.to_string(),
        (true, true) => "no reason given".to_string(),
    }
}

/// The shared rule of the replica-counting workloads.
pub(super) fn replicas_state(
    meta: &ObjectMeta,
    observed_generation: Option<i64>,
    require_pods: bool,
    desired: i32,
    ready: i32,
    failure: String,
) -> Option<String> {
    if let Some(why) = observed_state(meta, observed_generation) {
        return Some(why);
    }
    if require_pods && ready < desired {
        return Some(format!(
            "readyReplicas {ready} < replicas {desired}{failure}"
        ));
    }
    None
}

pub(super) fn deployment_state(d: &Deployment, require_pods: bool) -> Option<String> {
    let status = d.status.as_ref();
    let conditions = status
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let mut failure = replica_failure(conditions.iter().map(|c| {
        (
            c.type_.as_str(),
            c.status.as_str(),
            c.reason.as_deref(),
            c.message.as_deref(),
        )
    }));
    if conditions.iter().any(|c| {
        c.type_ == "Progressing"
            && c.status == "False"
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    }) {
        failure.push_str("; progress deadline exceeded");
    }
    replicas_state(
        &d.metadata,
        status.and_then(|s| s.observed_generation),
        require_pods,
        d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        status.and_then(|s| s.ready_replicas).unwrap_or(0),
        failure,
    )
}

pub(super) fn stateful_set_state(s: &StatefulSet, require_pods: bool) -> Option<String> {
    let status = s.status.as_ref();
    replicas_state(
        &s.metadata,
        status.and_then(|s| s.observed_generation),
        require_pods,
        s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        status.and_then(|s| s.ready_replicas).unwrap_or(0),
        String::new(),
    )
}

pub(super) fn replica_set_state(r: &ReplicaSet, require_pods: bool) -> Option<String> {
    let status = r.status.as_ref();
    let conditions = status
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let failure = replica_failure(conditions.iter().map(|c| {
        (
            c.type_.as_str(),
            c.status.as_str(),
            c.reason.as_deref(),
            c.message.as_deref(),
        )
    }));
    replicas_state(
        &r.metadata,
        status.and_then(|s| s.observed_generation),
        require_pods,
        r.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        status.and_then(|s| s.ready_replicas).unwrap_or(0),
        failure,
    )
}

pub(super) fn daemon_set_state(d: &DaemonSet, require_pods: bool) -> Option<String> {
    let status = d.status.as_ref();
    if let Some(why) = observed_state(&d.metadata, status.and_then(|s| s.observed_generation)) {
        return Some(why);
    }
    let (desired, ready) = status
        .map(|s| (s.desired_number_scheduled, s.number_ready))
        .unwrap_or_default();
    if require_pods && ready < desired {
        return Some(format!(
            "numberReady {ready} < desiredNumberScheduled {desired}"
        ));
    }
    None
}

pub(super) fn job_state(j: &Job) -> Option<String> {
    let conditions = j
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    conditions
        .iter()
        .find(|c| (c.type_ == "Failed" || c.type_ == "FailureTarget") && c.status == "True")
        .map(|c| {
            format!(
                "job failed: {}",
                join_reason(
                    c.reason.as_deref().unwrap_or_default(),
                    c.message.as_deref().unwrap_or_default()
                )
            )
        })
}

pub(super) fn pod_state(p: &Pod) -> Option<String> {
    let status = p.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref());
    if phase == Some("Succeeded") {
        return None;
    }
    let conditions = status
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let condition = |t: &str| conditions.iter().find(|c| c.type_ == t);
    if condition("Ready").is_some_and(|c| c.status == "True") {
        return None;
    }
    let mut detail = match phase {
        Some(p) => format!("phase {p}"),
        None => "no phase yet".to_string(),
    };
    let node = p.spec.as_ref().and_then(|s| s.node_name.as_deref());
    match condition("PodScheduled") {
        Some(c) if c.status == "False" => detail.push_str(&format!(
            "; not scheduled: {}",
            join_reason(
                c.reason.as_deref().unwrap_or_default(),
                c.message.as_deref().unwrap_or_default()
            )
        )),
        _ if node.is_none() => detail.push_str("; not scheduled to a node"),
        _ => {}
    }
    let waiting = status
        .into_iter()
        .flat_map(|s| {
            s.init_container_statuses
                .iter()
                .chain(s.container_statuses.iter())
        })
        .flatten()
        .find_map(|c| {
            let w = c.state.as_ref()?.waiting.as_ref()?;
            Some((c.name.as_str(), w.reason.as_deref().unwrap_or("waiting")))
        });
    if let Some((name, reason)) = waiting {
        detail.push_str(&format!("; container {name}: {reason}"));
    } else if let Some(c) = condition("Ready").filter(|c| c.status == "False") {
        if let Some(r) = c.reason.as_deref().filter(|r| !r.is_empty()) {
            detail.push_str(&format!("; {r}"));
        }
    }
    Some(detail)
}

pub(super) fn is_load_balancer(s: &Service) -> bool {
    s.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
}

pub(super) fn load_balancer_state(s: &Service) -> Option<String> {
    let has_address = s
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .is_some_and(|i| !i.is_empty());
    if has_address {
        None
    } else {
        Some("no load balancer address yet".into())
    }
}
