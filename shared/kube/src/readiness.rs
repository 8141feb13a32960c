//! Whether restored workloads are ready: the check-readiness step of a restore.
//!
//! [`check_readiness`] polls the cluster until every required check passes
//! or the timeout ends. What is required:
//!
//! - Deployments, StatefulSets, DaemonSets, ReplicaSets: accepted by their
//!   controller (`status.observedGeneration >= metadata.generation`); with
//!   [`ReadinessOptions::require_pods`] also `readyReplicas >= replicas`
//!   (`numberReady >= desiredNumberScheduled` for a DaemonSet).
//! - PersistentVolumeClaims: phase `Bound`.
//! - Jobs: not failed (no `Failed` or `FailureTarget` condition that is `True`).
//! - Pods: ready (condition `Ready=True`) or `Succeeded`; counted always,
//!   required only with `require_pods`.
//! - Services of type `LoadBalancer`: an address assigned; counted, never
//!   required.
//! - Namespaces, when named in [`ReadinessOptions::namespaces`]: they exist
//!   and are not being deleted (an empty, missing namespace would otherwise
//!   pass every check).
//!
//! Fetching ([`check_readiness`]) is split from evaluation ([`evaluate`], a
//! pure function of an [`Observed`] set of objects), so the rules are tested
//! without a cluster.

use crate::api::PAGE_SIZE;
use crate::{Cluster, KubeError};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, ListParams};
use kube::Resource;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::time::{Duration, Instant};

/// Namespaces left out when no namespace is named.
pub const SYSTEM_NAMESPACES: &[&str] = &["kube-system", "kube-public", "kube-node-lease"];

/// At most this many not-ready checks are listed in a report (required ones
/// first); [`ReadinessReport::omitted`] counts the rest. The counts always
/// cover every object. This keeps a report small enough to pass between
/// workflow steps whatever the size of the cluster.
pub const MAX_LISTED_CHECKS: usize = 50;

/// The shortest pause between polls, whatever [`ReadinessOptions::poll`] says.
pub const MIN_POLL: Duration = Duration::from_millis(100);

/// What to check and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadinessOptions {
    /// Namespaces to check; empty means every namespace except
    /// [`SYSTEM_NAMESPACES`].
    pub namespaces: Vec<String>,
    /// How long to keep polling before reporting "not ready".
    pub timeout: Duration,
    /// Pause between polls (at least [`MIN_POLL`]).
    pub poll: Duration,
    /// Also require pods to be ready (workloads' ready replicas, pods).
    pub require_pods: bool,
    /// Objects not required to be ready, as `Kind/namespace/name`: those that
    /// were not ready in the source either (a claim Pending there).
    pub not_required: BTreeSet<String>,
}

impl Default for ReadinessOptions {
    fn default() -> Self {
        ReadinessOptions {
            namespaces: Vec::new(),
            timeout: Duration::from_secs(300),
            poll: Duration::from_secs(5),
            require_pods: false,
            not_required: BTreeSet::new(),
        }
    }
}

/// One object that is not ready, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// `Deployment`, `PersistentVolumeClaim`, ...
    pub kind: String,
    /// Empty for a cluster-scoped object (a `Namespace`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    pub name: String,
    pub ready: bool,
    /// Whether this check counts towards [`ReadinessReport::ready`]; a check
    /// that does not (a pending load balancer) is listed for information.
    pub required: bool,
    /// Why it is not ready, for a person: `observedGeneration 1 < generation 2`.
    pub detail: String,
}

/// Ready and total objects of one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindCount {
    pub ready: usize,
    pub total: usize,
}

/// The outcome of [`check_readiness`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadinessReport {
    /// Every required check passed.
    pub ready: bool,
    /// Seconds from the start of the first poll to the end of the last.
    pub waited_secs: f64,
    /// The objects that are not ready (required first), at most
    /// [`MAX_LISTED_CHECKS`] of them.
    pub checks: Vec<Check>,
    /// Not-ready checks left out of `checks` to keep the report small.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub omitted: usize,
    /// Per kind, how many objects are ready. `Service` counts only services
    /// of type `LoadBalancer`; `Namespace` only the namespaces named in the
    /// options.
    pub counts: BTreeMap<String, KindCount>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The objects one poll saw. Only the namespaces named in the options are in
/// `namespaces`, each with the object if it exists.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub namespaces: Vec<(String, Option<Namespace>)>,
    pub deployments: Vec<Deployment>,
    pub stateful_sets: Vec<StatefulSet>,
    pub daemon_sets: Vec<DaemonSet>,
    pub replica_sets: Vec<ReplicaSet>,
    pub claims: Vec<PersistentVolumeClaim>,
    pub jobs: Vec<Job>,
    pub pods: Vec<Pod>,
    pub services: Vec<Service>,
}

/// Mark the checks of `not_required` objects as not required.
fn exempt(report: &mut ReadinessReport, not_required: &BTreeSet<String>) {
    if not_required.is_empty() {
        return;
    }
    for c in &mut report.checks {
        let key = format!("{}/{}/{}", c.kind, c.namespace, c.name);
        if c.required && not_required.contains(&key) {
            c.required = false;
            c.detail.push_str(" (not ready in the source either)");
        }
    }
    report.checks.sort_by_key(|c| !c.required);
    report.ready =
        report.ready || (report.omitted == 0 && !report.checks.iter().any(|c| c.required));
}

/// Poll `cluster` until everything `opts` asks for is ready or `opts.timeout`
/// has passed.
///
/// Returns a report with `ready: false` when time runs out (the last complete
/// poll's findings). An API error that may pass ([`KubeError::is_retryable`])
/// is retried at the next poll; if no poll succeeded by the end, the last such
/// error is returned. Any other error is returned at once.
pub async fn check_readiness(
    cluster: &Cluster,
    opts: &ReadinessOptions,
) -> Result<ReadinessReport, KubeError> {
    let start = Instant::now();
    let deadline = start + opts.timeout;
    let poll = opts.poll.max(MIN_POLL);
    let mut last: Option<ReadinessReport> = None;
    let mut last_err: Option<KubeError> = None;
    loop {
        match observe(cluster, opts).await {
            Ok(observed) => {
                let mut report = evaluate(&observed, opts.require_pods);
                exempt(&mut report, &opts.not_required);
                report.waited_secs = secs(start.elapsed());
                if report.ready {
                    return Ok(report);
                }
                tracing::debug!(
                    not_ready = report.checks.iter().filter(|c| c.required).count(),
                    "not ready yet"
                );
                last = Some(report);
            }
            Err(e) if e.is_retryable() => {
                tracing::warn!(error = %e, "readiness poll failed; retrying");
                last_err = Some(e);
            }
            Err(e) => return Err(e),
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        tokio::time::sleep(poll.min(deadline - now)).await;
    }
    match (last, last_err) {
        (Some(mut report), _) => {
            report.ready = false;
            report.waited_secs = secs(start.elapsed());
            Ok(report)
        }
        (None, Some(e)) => Err(e),
        // The loop runs at least once and each pass sets one of the two.
        (None, None) => Err(KubeError::Timeout {
            what: "the restored objects to be ready".into(),
            secs: opts.timeout.as_secs(),
        }),
    }
}

/// Seconds, to the millisecond.
fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// Fetch everything one poll looks at.
async fn observe(cluster: &Cluster, opts: &ReadinessOptions) -> Result<Observed, KubeError> {
    let named: BTreeSet<&str> = opts.namespaces.iter().map(String::as_str).collect();
    if named.is_empty() {
        let mut o = observe_in(cluster, None).await?;
        retain_user_namespaces(&mut o);
        return Ok(o);
    }
    let mut all = Observed::default();
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    for ns in named {
        let found = namespaces
            .get_opt(ns)
            .await
            .map_err(|e| cluster.err(format!("get namespace {ns}"), e))?;
        all.namespaces.push((ns.to_string(), found));
        let o = observe_in(cluster, Some(ns)).await?;
        all.deployments.extend(o.deployments);
        all.stateful_sets.extend(o.stateful_sets);
        all.daemon_sets.extend(o.daemon_sets);
        all.replica_sets.extend(o.replica_sets);
        all.claims.extend(o.claims);
        all.jobs.extend(o.jobs);
        all.pods.extend(o.pods);
        all.services.extend(o.services);
    }
    Ok(all)
}

/// Every checked kind in `namespace` (all namespaces if `None`).
async fn observe_in(cluster: &Cluster, namespace: Option<&str>) -> Result<Observed, KubeError> {
    let (deployments, stateful_sets, daemon_sets, replica_sets, claims, jobs, pods, services) = futures::try_join!(
        list::<Deployment>(cluster, namespace),
        list::<StatefulSet>(cluster, namespace),
        list::<DaemonSet>(cluster, namespace),
        list::<ReplicaSet>(cluster, namespace),
        list::<PersistentVolumeClaim>(cluster, namespace),
        list::<Job>(cluster, namespace),
        list::<Pod>(cluster, namespace),
        list::<Service>(cluster, namespace),
    )?;
    Ok(Observed {
        namespaces: Vec::new(),
        deployments,
        stateful_sets,
        daemon_sets,
        replica_sets,
        claims,
        jobs,
        pods,
        services,
    })
}

fn retain_user_namespaces(o: &mut Observed) {
    fn keep<K: Resource>(items: &mut Vec<K>) {
        items.retain(|k| {
            !SYSTEM_NAMESPACES.contains(&k.meta().namespace.as_deref().unwrap_or_default())
        });
    }
    keep(&mut o.deployments);
    keep(&mut o.stateful_sets);
    keep(&mut o.daemon_sets);
    keep(&mut o.replica_sets);
    keep(&mut o.claims);
    keep(&mut o.jobs);
    keep(&mut o.pods);
    keep(&mut o.services);
}

/// Every object of kind `K` in `namespace` (all namespaces if `None`), page
/// by page. An expired continue token (HTTP 410) restarts the listing.
async fn list<K>(cluster: &Cluster, namespace: Option<&str>) -> Result<Vec<K>, KubeError>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    const RESTARTS: usize = 3;
    let api: Api<K> = match namespace {
        Some(ns) => Api::namespaced(cluster.client.clone(), ns),
        None => Api::all(cluster.client.clone()),
    };
    let plural = K::plural(&K::DynamicType::default()).into_owned();
    let what = match namespace {
        Some(ns) => format!("list {plural} in namespace {ns}"),
        None => format!("list {plural}"),
    };
    let mut params = ListParams::default().limit(PAGE_SIZE);
    let mut items = Vec::new();
    let mut restarts = 0;
    loop {
        let page = match api.list(&params).await {
            Ok(page) => page,
            Err(kube::Error::Api(s))
                if s.code == 410 && params.continue_token.is_some() && restarts < RESTARTS =>
            {
                restarts += 1;
                params.continue_token = None;
                items.clear();
                continue;
            }
            Err(e) => return Err(cluster.err(&what, e)),
        };
        items.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params.continue_token = Some(token),
            None => return Ok(items),
        }
    }
}

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
struct Tally {
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

fn namespace_state(ns: Option<&Namespace>) -> Option<String> {
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

fn claim_state(c: &PersistentVolumeClaim) -> Option<String> {
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
fn observed_state(meta: &ObjectMeta, observed_generation: Option<i64>) -> Option<String> {
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
fn replica_failure<'a>(
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

fn join_reason(reason: &str, message: &str) -> String {
    match (reason.is_empty(), message.is_empty()) {
        (false, false) => format!("{reason}: {message}"),
        (false, true) => reason.to_string(),
        (true, false) => message.to_string(),
        (true, true) => "no reason given".to_string(),
    }
}

/// The shared rule of the replica-counting workloads.
fn replicas_state(
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

fn deployment_state(d: &Deployment, require_pods: bool) -> Option<String> {
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

fn stateful_set_state(s: &StatefulSet, require_pods: bool) -> Option<String> {
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

fn replica_set_state(r: &ReplicaSet, require_pods: bool) -> Option<String> {
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

fn daemon_set_state(d: &DaemonSet, require_pods: bool) -> Option<String> {
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

fn job_state(j: &Job) -> Option<String> {
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

fn pod_state(p: &Pod) -> Option<String> {
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

fn is_load_balancer(s: &Service) -> bool {
    s.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
}

fn load_balancer_state(s: &Service) -> Option<String> {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
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
        exempt(&mut report, &keys);
        assert!(!report.ready, "another claim's exemption changes nothing");
        keys.insert("PersistentVolumeClaim/analytics/scratch".to_string());
        exempt(&mut report, &keys);
        assert!(report.ready);
        assert!(!report.checks[0].required);
        assert!(report.checks[0]
            .detail
            .ends_with("(not ready in the source either)"));
    }
}
