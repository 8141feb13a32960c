//! The restore (and failover) workflow's steps: resolve, restore-state (twice:
//! foundations, then workloads), restore-volumes, check-readiness.

use crate::env::StepEnv;
use crate::request::Action;
use crate::state::{to_value, Resolved, RestoredState, State};
use crate::StepError;
use lifeboat_kube::restore::order::Stage;
use lifeboat_kube::restore::{ApplyOptions, Existing};
use lifeboat_kube::ReadinessOptions;
use lifeboat_ops::cluster::restore_cluster;
use lifeboat_ops::series::Series;
use lifeboat_ops::verify::latest_verified;
use lifeboat_ops::Progress;
use lifeboat_repo::cluster_scope::scope_id;
use lifeboat_repo::{FileKind, Id, Repository, Snapshot};
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// How long check-readiness waits.
const READINESS_TIMEOUT: Duration = Duration::from_secs(600);

/// Pick the snapshot. For a restore, `latest` is the newest full-scope
/// snapshot of the source cluster (or, when the request has a `scope`, the
/// newest taken with that scope) that passed verification in this region's
/// repository; for
/// a verify request (the verify workflow), the newest snapshot of the
/// cluster, verified before or not.
pub async fn resolve(env: &dyn StepEnv, state: State) -> Result<Value, StepError> {
    let request = &state.request;
    if request.action == Action::Backup {
        return Err(StepError::invalid(
            "field `action`: the restore and verify workflows got a backup request",
        ));
    }
    let fleet = env.fleet().await?;
    let target = fleet.cluster(&request.cluster)?;
    let repo = env.repository().await?;
    let source = request.source();
    let spec = request.snapshot.as_deref().unwrap_or("latest");
    let (id, snapshot) = match (spec, request.action) {
        ("latest", Action::Restore) => {
            let series = latest_series(request.scope.as_ref())?;
            let found = latest_verified(&repo, source, &series).await?;
            let (id, snap, _) = found.ok_or_else(|| {
                StepError::not_found(format!(
                    "no verified {}snapshot of cluster {source:?} in {}",
                    series.describe(),
                    repo.store().location()
                ))
            })?;
            (id, snap)
        }
        ("latest", _) => latest_of_cluster(&repo, source).await?,
        _ => repo.resolve_snapshot(spec).await?,
    };
    // latest_verified has read the verifications already.
    let verified = (spec == "latest" && request.action == Action::Restore)
        || lifeboat_ops::verify::verifications(&repo)
            .await?
            .iter()
            .any(|v| v.snapshot == id && v.ok);
    if snapshot.cluster.is_none() {
        return Err(StepError::invalid(format!(
            "field `snapshot`: {} is a {} snapshot, not a cluster snapshot",
            id.short(),
            snapshot.kind
        )));
    }
    // An explicit id must be a snapshot of the source cluster: the request
    // was authorized for that source only.
    check_source(&id, &snapshot, source)?;
    let rpo = (state.started() - snapshot.time).num_milliseconds() as f64 / 1000.0;
    to_value(&Resolved {
        snapshot: id,
        snapshot_time: snapshot.time,
        source_cluster: source.to_string(),
        target_cluster: request.cluster.clone(),
        access: target.access.clone(),
        repository: repo.store().location(),
        verified,
        rpo_secs: rpo.max(0.0),
    })
}

/// Refuse a snapshot taken of another cluster than `source`.
fn check_source(id: &Id, snapshot: &Snapshot, source: &str) -> Result<(), StepError> {
    if snapshot.hostname == source {
        return Ok(());
    }
    Err(StepError::new(
        crate::ErrorKind::PermissionDenied,
        format!(
            "field `snapshot`: {} is a snapshot of cluster {:?}, not of the source cluster {source:?}",
            id.short(),
            snapshot.hostname
        ),
    ))
}

/// Which snapshots a restore's `latest` chooses among: the full-scope ones,
/// or, when the request names a `scope`, those taken with exactly that scope.
fn latest_series(scope: Option<&lifeboat_kube::Scope>) -> Result<Series, StepError> {
    Ok(match scope {
        None => Series::Full,
        Some(s) => Series::Scope(scope_id(&to_value(s)?)),
    })
}

/// The newest cluster snapshot of `cluster`.
async fn latest_of_cluster(repo: &Repository, cluster: &str) -> Result<(Id, Snapshot), StepError> {
    repo.snapshots()
        .await?
        .into_iter()
        .filter(|(_, s)| s.hostname == cluster && s.cluster.is_some())
        .max_by_key(|(_, s)| s.time)
        .ok_or_else(|| {
            StepError::not_found(format!(
                "no snapshot of cluster {cluster:?} in {}",
                repo.store().location()
            ))
        })
}

/// Restore the foundations (first call) or the workloads (second call, once
/// `$.foundation` is in the state). Objects that fail fail the step, named.
pub async fn restore_state(env: &dyn StepEnv, state: State) -> Result<Value, StepError> {
    let resolved = State::need(&state.resolved, "resolved", "resolve")?;
    let stage = if state.foundation.is_none() {
        Stage::Foundation
    } else {
        Stage::Workloads
    };
    let repo = env.repository().await?;
    let snapshot: Snapshot = repo
        .load_file(FileKind::Snapshot, &resolved.snapshot)
        .await?;
    let cluster = env
        .cluster(&resolved.target_cluster, &resolved.access)
        .await?;
    let transform = crate::volumes::volume_transform(&state, &snapshot)?;
    let opts = ApplyOptions {
        existing: Existing::Skip,
        transform,
        parallelism: 16,
        crd_timeout: Duration::from_secs(120),
        stage,
        ..Default::default()
    };
    let outcome = restore_cluster(
        &repo,
        resolved.snapshot,
        &snapshot,
        &cluster,
        opts,
        Arc::new(Progress::default()),
    )
    .await?;
    let report = &outcome.report;
    let failures: Vec<String> = report
        .items
        .iter()
        .filter(|i| i.outcome.is_failure())
        .map(|i| format!("{}: {}", i.object, i.reason))
        .collect();
    if !failures.is_empty() {
        return Err(StepError::failed(format!(
            "{} object(s) not restored into {} (report reports/{}): {}",
            failures.len(),
            resolved.target_cluster,
            outcome.report_id.map(|i| i.short()).unwrap_or_default(),
            failures
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    let namespaces: BTreeSet<String> = report
        .items
        .iter()
        .filter_map(|i| {
            i.target_namespace
                .clone()
                .or_else(|| i.object.namespace.clone())
        })
        .collect();
    to_value(&RestoredState {
        stage,
        counts: report.counts.clone(),
        failed: 0,
        report: outcome.report_id,
        namespaces: namespaces.into_iter().collect(),
        duration_secs: report.duration_secs,
    })
}

/// Wait until the restored workloads are accepted by their controllers and
/// their claims are bound: all but those Pending in the source too, and
/// those provisioned anew, empty (no data restored, old volume not
/// re-attached), which the report lists as not required.
pub async fn check_readiness(env: &dyn StepEnv, state: State) -> Result<Value, StepError> {
    let resolved = State::need(&state.resolved, "resolved", "resolve")?;
    let mut namespaces: BTreeSet<String> = BTreeSet::new();
    for r in [&state.foundation, &state.workloads].into_iter().flatten() {
        namespaces.extend(r.namespaces.iter().cloned());
    }
    let claims = crate::volumes::claims_to_exempt(env, &state, resolved.snapshot).await?;
    let cluster = env
        .cluster(&resolved.target_cluster, &resolved.access)
        .await?;
    let report = lifeboat_kube::check_readiness(
        &cluster,
        &ReadinessOptions {
            namespaces: namespaces.into_iter().collect(),
            timeout: READINESS_TIMEOUT,
            not_required: claims.pending_in_source,
            provisioned_empty: claims.provisioned_empty,
            ..Default::default()
        },
    )
    .await?;
    if !report.ready {
        let first: Vec<String> = report
            .checks
            .iter()
            .filter(|c| !c.ready && c.required)
            .take(5)
            .map(|c| format!("{} {}/{}: {}", c.kind, c.namespace, c.name, c.detail))
            .collect();
        return Err(StepError::failed(format!(
            "{} not ready after {:.0} s: {}",
            resolved.target_cluster,
            report.waited_secs,
            first.join("; ")
        )));
    }
    to_value(&report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn snapshot_of(hostname: &str) -> Snapshot {
        Snapshot {
            version: 1,
            kind: "cluster".into(),
            time: chrono::Utc::now(),
            hostname: hostname.into(),
            paths: Vec::new(),
            tags: Default::default(),
            tree: Id::of_file(b"tree"),
            parent: None,
            summary: Default::default(),
            cluster: None,
            repository: None,
        }
    }

    #[test]
    fn an_explicit_snapshot_of_another_cluster_is_refused() {
        let id = Id::of_file(b"snap");
        check_source(&id, &snapshot_of("prod"), "prod").unwrap();
        let err = check_source(&id, &snapshot_of("payments"), "prod").unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::PermissionDenied);
        assert!(err.message.contains("\"payments\""), "{}", err.message);
        assert!(err.message.contains("\"prod\""), "{}", err.message);
    }
}
