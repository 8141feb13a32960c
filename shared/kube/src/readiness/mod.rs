//! Whether restored workloads are ready: the check-readiness step of a restore.
//!
//! [`check_readiness`] polls the cluster until every required check passes
//! or the timeout ends. What is required:
//!
//! - Deployments, StatefulSets, DaemonSets, ReplicaSets: accepted by their
//!   controller (`status.observedGeneration >= metadata.generation`); with
//!   [`ReadinessOptions::require_pods`] also `readyReplicas >= replicas`
//!   (`numberReady >= desiredNumberScheduled` for a DaemonSet).
//! - PersistentVolumeClaims: phase `Bound`, except those Pending in the
//!   source too ([`ReadinessOptions::not_required`]) and those a restore
//!   provisions anew, empty ([`ReadinessOptions::provisioned_empty`]).
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

use crate::{Cluster, KubeError};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod, Service};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::time::{Duration, Instant};

mod fetch;
mod rules;
#[cfg(test)]
mod tests;

use fetch::observe;
pub use rules::evaluate;

/// Namespaces left out when no namespace is named.
pub const SYSTEM_NAMESPACES: &[&str] = &["kube-system", "kube-public", "kube-node-lease"];

/// At most this many not-ready checks are listed in a report (required ones
/// first); [`ReadinessReport::omitted`] counts the rest. The counts always
/// cover every object. This keeps a report small enough to pass between
/// workflow steps whatever the size of the cluster.
pub const MAX_LISTED_CHECKS: usize = 50;

/// Why a check of [`ReadinessOptions::not_required`] is not required.
const NOT_READY_IN_SOURCE: &str = "not ready in the source either";
/// Why a check of [`ReadinessOptions::provisioned_empty`] is not required.
const PROVISIONED_EMPTY: &str =
    "provisioned anew, empty: its data is not restored and its old volume not re-attached";

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
    /// Claims a restore provisions anew, empty, as `PersistentVolumeClaim/
    /// namespace/name`: their data is not restored and their old volume is
    /// not re-attached. Not required to bind (a class without a provisioner,
    /// or waiting for a consumer, leaves them Pending); their checks say why.
    pub provisioned_empty: BTreeSet<String>,
}

impl Default for ReadinessOptions {
    fn default() -> Self {
        ReadinessOptions {
            namespaces: Vec::new(),
            timeout: Duration::from_secs(300),
            poll: Duration::from_secs(5),
            require_pods: false,
            not_required: BTreeSet::new(),
            provisioned_empty: BTreeSet::new(),
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

/// Mark the checks of `not_required` objects as not required, saying `why`.
fn exempt(report: &mut ReadinessReport, not_required: &BTreeSet<String>, why: &str) {
    if not_required.is_empty() {
        return;
    }
    for c in &mut report.checks {
        let key = format!("{}/{}/{}", c.kind, c.namespace, c.name);
        if c.required && not_required.contains(&key) {
            c.required = false;
            c.detail.push_str(&format!(" ({why})"));
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
                exempt(&mut report, &opts.not_required, NOT_READY_IN_SOURCE);
                exempt(&mut report, &opts.provisioned_empty, PROVISIONED_EMPTY);
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
