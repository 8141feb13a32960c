//! The backup workflow's steps: prepare, export-state, snapshot-volumes,
//! copy-volume, commit, verify, apply-lock, replicate, verify-replica.

use crate::env::StepEnv;
use crate::request::Action;
use crate::state::{to_value, Committed, Locked, Plan, Replicated, State, Verified};
use crate::StepError;
use lifeboat_ops::cluster::{attach_volumes, commit_cluster, export_cluster, ClusterBackupOptions};
use lifeboat_ops::extend_locks::extend_locks;
use lifeboat_ops::pending;
use lifeboat_ops::replicate::{open_replica, replicate as replicate_repo};
use lifeboat_ops::verify::verify_snapshot;
use lifeboat_ops::Progress;
use lifeboat_repo::cluster_scope::scope_id;
use lifeboat_repo::{Id, Repository};
use serde_json::Value;
use std::sync::Arc;

fn progress() -> Arc<Progress> {
    Arc::new(Progress::default())
}

/// Resolve the cluster, its access and the scope.
pub async fn prepare(env: &dyn StepEnv, state: State) -> Result<Value, StepError> {
    if state.request.action != Action::Backup {
        return Err(StepError::invalid(format!(
            "field `action`: the backup workflow got a {} request",
            state.request.action.name()
        )));
    }
    let fleet = env.fleet().await?;
    let entry = fleet.cluster(&state.request.cluster)?;
    let repo = env.repository().await?;
    let mut tags = state.request.tags.clone();
    tags.insert(
        "lifeboat.requested-by".into(),
        format!("{:?}", state.request.requested_by).to_lowercase(),
    );
    if let Some(name) = state.execution.as_ref().and_then(|e| e.name.clone()) {
        tags.insert("lifeboat.execution".into(), name);
    }
    let scope = state
        .request
        .scope
        .clone()
        .unwrap_or_else(|| entry.scope.clone());
    // Before anything is written: from here until commit no lock is held
    // between steps, and the marker keeps prune off the data this run uses.
    let run = crate::volumes::run_name(&state);
    pending::begin(&repo, &run, "backup workflow", pending::WORKFLOW_LEASE).await?;
    to_value(&Plan {
        cluster: state.request.cluster.clone(),
        access: entry.access.clone(),
        // Full: the fleet's scope for the cluster, not narrowed by the request.
        full: Some(scope_id(&to_value(&scope)?) == scope_id(&to_value(&entry.scope)?)),
        scope,
        tags,
        repository: repo.store().location(),
        region: entry.region.clone(),
        volume_snapshots_kept: entry.volume_snapshots_kept,
        pending: Some(run),
    })
}

/// Remove this run's pending marker (after its commit, or its failure).
/// A marker left behind only delays prune's deletions until it expires.
pub(crate) async fn end_pending(repo: &Repository, plan: &Plan) {
    if let Some(run) = &plan.pending {
        if let Err(e) = pending::end(repo, run).await {
            tracing::warn!(run = %run, error = %e, "pending marker not removed; it expires on its own");
        }
    }
}

/// Export every API object in scope into the repository (not yet a snapshot).
pub async fn export_state(env: &dyn StepEnv, state: State) -> Result<Value, StepError> {
    let plan = State::need(&state.plan, "plan", "prepare")?;
    let cluster = env.cluster(&plan.cluster, &plan.access).await?;
    let repo = env.repository().await?;
    let exported = export_cluster(
        &repo,
        &cluster,
        ClusterBackupOptions {
            scope: plan.scope.clone(),
            tags: plan.tags.clone(),
            cluster_name: Some(plan.cluster.clone()),
            full: plan.full,
        },
        progress(),
    )
    .await?;
    to_value(&exported)
}

/// Write the snapshot manifest, now that everything it references is stored.
pub async fn commit(env: &dyn StepEnv, state: State) -> Result<Value, StepError> {
    let plan = State::need(&state.plan, "plan", "prepare")?;
    let exported = State::need(&state.export, "export", "export-state")?;
    let repo = env.repository().await?;
    let (volumes, volumes_failed) = crate::volumes::copied_volumes(&repo, &state).await?;
    let mut exported = if volumes.is_empty() {
        exported.clone()
    } else {
        attach_volumes(&repo, exported, volumes).await?
    };
    // The snapshot itself names the claims it should hold but does not.
    let not_copied = state.volumes.iter().flat_map(|v| &v.not_copied);
    exported.cluster.volumes_missing =
        crate::volumes::missing_volumes(not_copied.chain(&volumes_failed));
    let (id, snapshot) =
        commit_cluster(&repo, &exported, plan.tags.clone(), state.started()).await?;
    crate::fingerprints::after_snapshot(env, &repo, id, &snapshot).await;
    end_pending(&repo, plan).await;
    let released = crate::volumes::release_older_snapshots(env, &state, &snapshot).await;
    to_value(&Committed {
        snapshot: id,
        time: snapshot.time,
        objects: snapshot.summary.files,
        bytes: snapshot.summary.bytes,
        bytes_new: snapshot.summary.bytes_new,
        bytes_stored: snapshot.summary.bytes_stored,
        volumes: snapshot.cluster.map(|c| c.volumes).unwrap_or_default(),
        released_snapshots: released,
        volumes_failed,
    })
}

async fn verify_in(env: &dyn StepEnv, repo: &Repository, id: Id) -> Result<Verified, StepError> {
    let (v, record) = verify_snapshot(repo, id, progress()).await?;
    crate::fingerprints::after_verification(env, repo, &v).await;
    if !v.ok {
        let first: Vec<String> = v
            .problems
            .iter()
            .take(5)
            .map(|p| format!("{}: {}", p.object, p.message))
            .collect();
        return Err(StepError::failed(format!(
            "snapshot {} in {} failed verification with {} problem(s) (record reports/{}): {}",
            id.short(),
            v.repository,
            v.problem_count,
            record.short(),
            first.join("; ")
        )));
    }
    Ok(Verified {
        snapshot: id,
        repository: v.repository,
        ok: v.ok,
        problems: v.problem_count,
        packs_read: v.packs_read,
        bytes_read: v.bytes_read,
        objects_decoded: v.objects_decoded,
        objects_lock_checked: v.objects_lock_checked,
        record,
    })
}

/// The snapshot the verify steps check: the one this backup committed, or
/// the one the verify workflow resolved.
fn snapshot_to_verify(state: &State) -> Result<Id, StepError> {
    match (&state.commit, &state.resolved) {
        (Some(c), _) => Ok(c.snapshot),
        (None, Some(r)) => Ok(r.snapshot),
        (None, None) => Err(StepError::invalid(
            "execution state has neither `commit` nor `resolved`: \
             the commit (backup) or resolve (verify) step must run first",
        )),
    }
}

/// Re-read and re-hash the snapshot, check its locks, read its objects back.
pub async fn verify(env: &dyn StepEnv, state: State) -> Result<Value, StepError> {
    let id = snapshot_to_verify(&state)?;
    // The store's copy is what is verified, never the function's cache.
    let repo = env.repository().await?.without_cache();
    crate::pinned::enforce(env, &repo).await?;
    to_value(&verify_in(env, &repo, id).await?)
}

/// Extend Object Lock retention of everything kept snapshots reference.
pub async fn apply_lock(env: &dyn StepEnv, _state: State) -> Result<Value, StepError> {
    let repo = env.repository().await?;
    // A config that says less than the pinned policy fails here, with an alert.
    crate::pinned::enforce(env, &repo).await?;
    if repo.config().object_lock.is_none() {
        return to_value(&Locked {
            locked: false,
            objects: 0,
            extended: 0,
            until: None,
            reason: Some(format!(
                "repository {} has no Object Lock policy",
                repo.store().location()
            )),
        });
    }
    let r = extend_locks(&repo, &Default::default(), progress()).await?;
    to_value(&Locked {
        locked: true,
        objects: r.objects,
        extended: r.extended,
        until: Some(r.until),
        reason: None,
    })
}

/// Copy what the DR region's repository lacks.
pub async fn replicate(env: &dyn StepEnv, _state: State) -> Result<Value, StepError> {
    let repo = env.repository().await?;
    let store = env.replica_store().await?;
    let cred = env.credential().await?;
    let (replica, initialized) = open_replica(&repo, store, &cred).await?;
    let copied = replicate_repo(&repo, &replica, progress()).await?;
    to_value(&Replicated {
        repository: replica.store().location(),
        initialized,
        copied,
    })
}

/// Prove that the DR copy alone restores: verify the snapshot there.
pub async fn verify_replica(env: &dyn StepEnv, state: State) -> Result<Value, StepError> {
    let id = snapshot_to_verify(&state)?;
    let store = env.replica_store().await?;
    let cred = env.credential().await?;
    let replica = Repository::open(store, &cred).await?;
    crate::pinned::enforce(env, &replica).await?;
    to_value(&verify_in(env, &replica, id).await?)
}
