//! Creating the objects of a restore in the target cluster, phase by phase.

use super::actions::{prepare, Fixup, FixupContext, FixupError, Prepared, Transform};
use super::drift;
use super::order::{phase_of, Stage, PHASES};
use super::report::{ItemReport, Outcome};
use crate::api::{self, describe};
use crate::{Cluster, KubeError, ObjectRef, ResourceType};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What to do with an object that already exists in the target cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Existing {
    /// Leave it as it is (reported as skipped).
    #[default]
    Skip,
    /// Replace it with the backed-up object.
    Update,
    /// Report it as a failure.
    Fail,
}

impl std::str::FromStr for Existing {
    type Err = KubeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "skip" => Ok(Self::Skip),
            "update" => Ok(Self::Update),
            "fail" => Ok(Self::Fail),
            other => Err(KubeError::InvalidInput(format!(
                "--existing must be skip, update or fail, not {other:?}"
            ))),
        }
    }
}

/// How to restore.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    pub existing: Existing,
    /// Write the status of custom resources that have a status subresource.
    pub restore_status: bool,
    /// Only report what would happen.
    pub dry_run: bool,
    pub transform: Transform,
    /// Objects created at once within a phase.
    pub parallelism: usize,
    /// How long to wait for a CRD to be Established.
    pub crd_timeout: Duration,
    /// Which phases to run; objects of other phases are left out of the report.
    pub stage: Stage,
}

/// One backed-up object to restore.
#[derive(Debug, Clone)]
pub struct RestoreItem {
    pub resource: ResourceType,
    /// Whether the resource has a status subresource.
    pub has_status: bool,
    pub object: Value,
    pub status: Option<Value>,
    /// Its field ownership as backed up (`managedFields` without times).
    pub managed_fields: Option<Value>,
}

impl RestoreItem {
    fn source(&self) -> ObjectRef {
        let (ns, name) = api::ns_name(&self.object);
        ObjectRef {
            group: self.resource.group.clone(),
            kind: self.resource.kind.clone(),
            namespace: ns,
            name,
        }
    }
}

/// An object after its fix-ups, ready to apply.
struct Ready {
    item: RestoreItem,
    source: ObjectRef,
    /// What a fix-up changed that the report must say (empty: nothing).
    note: String,
    /// What the maps and modifiers changed, and the rules that selected it.
    changes: Vec<String>,
    rules: Vec<String>,
}

/// Restore `items` into `cluster`; returns one report line per object (and
/// per namespace created for them). Failures of single objects are in the
/// report; only a failure to talk to the cluster at all stops the restore,
/// and then every object not attempted is reported as such.
#[tracing::instrument(skip_all, fields(server = %cluster.server, objects = items.len()))]
pub async fn restore_objects(
    cluster: &Cluster,
    items: Vec<RestoreItem>,
    opts: &ApplyOptions,
    on_done: &(dyn Fn(u64) + Sync),
) -> Vec<ItemReport> {
    let restoring: HashSet<ObjectRef> = items.iter().map(RestoreItem::source).collect();
    let ctx = FixupContext {
        transform: &opts.transform,
        restoring: &restoring,
    };
    let mut reports = Vec::new();
    let mut phases: Vec<Vec<Ready>> = (0..=PHASES.len()).map(|_| Vec::new()).collect();
    for mut item in items {
        if !opts.stage.includes(phase_of(&item.resource)) {
            continue;
        }
        let source = item.source();
        match prepare(&item.resource, &mut item.object, &ctx) {
            Ok(Prepared {
                fixup: fixup @ (Fixup::Restore | Fixup::RestoreNoted(_)),
                changes,
                rules,
            }) => {
                let note = match fixup {
                    Fixup::RestoreNoted(n) => n,
                    _ => String::new(),
                };
                let p = phase_of(&item.resource);
                if let Some(v) = phases.get_mut(p) {
                    v.push(Ready {
                        item,
                        source,
                        note,
                        changes,
                        rules,
                    });
                }
            }
            Ok(Prepared {
                fixup: Fixup::Skip(reason),
                ..
            }) => {
                reports.push(line(source, None, skipped(opts), reason));
                on_done(1);
            }
            Err(e) => {
                let mut rep = line(source, None, failed(opts), e.to_string());
                if let FixupError::Modifier { rule, .. } = &e {
                    rep.rules.push(rule.clone());
                }
                reports.push(rep);
                on_done(1);
            }
        }
    }
    let restored_namespaces: BTreeSet<String> = phases
        .iter()
        .flatten()
        .filter(|r| r.item.resource.is("", "Namespace"))
        .map(|r| api::ns_name(&r.item.object).1)
        .collect();
    let needed_namespaces: BTreeSet<String> = phases
        .iter()
        .flatten()
        .filter_map(|r| api::ns_name(&r.item.object).0)
        .filter(|ns| !restored_namespaces.contains(ns))
        .collect();
    let abort = AtomicBool::new(false);
    let abort_reason = std::sync::Mutex::new(String::new());
    let namespaces_phase = PHASES.iter().position(|(n, _)| *n == "namespaces");
    for (i, ready) in phases.into_iter().enumerate() {
        if Some(i) == namespaces_phase.map(|p| p + 1) {
            // Namespaces that objects go into but the backup has no object for.
            reports.extend(ensure_namespaces(cluster, &needed_namespaces, opts, &abort).await);
        }
        if ready.is_empty() {
            continue;
        }
        let name = PHASES.get(i).map(|(n, _)| *n).unwrap_or("the rest");
        tracing::info!(phase = name, objects = ready.len(), "restoring");
        let crds: Vec<(ResourceType, String)> = ready
            .iter()
            .filter(|r| {
                r.item
                    .resource
                    .is("apiextensions.k8s.io", "CustomResourceDefinition")
            })
            .map(|r| (r.item.resource.clone(), r.source.name.clone()))
            .collect();
        let mut results = futures::stream::iter(ready)
            .map(|r| restore_one(cluster, r, opts, &ctx, &abort, &abort_reason))
            .buffer_unordered(opts.parallelism.max(1));
        let mut phase_reports = Vec::new();
        while let Some(rep) = results.next().await {
            on_done(1);
            phase_reports.push(rep);
        }
        if !opts.dry_run && !crds.is_empty() && !abort.load(Ordering::Relaxed) {
            wait_established(cluster, &crds, &mut phase_reports, opts.crd_timeout).await;
        }
        reports.extend(phase_reports);
    }
    reports
}

fn line(
    object: ObjectRef,
    target_ns: Option<String>,
    outcome: Outcome,
    reason: String,
) -> ItemReport {
    let target_namespace = target_ns.filter(|t| Some(t) != object.namespace.as_ref());
    ItemReport {
        object,
        target_namespace,
        outcome,
        reason,
        status_restored: false,
        owners_restored: false,
        differs: None,
        changes: Vec::new(),
        rules: Vec::new(),
    }
}

fn skipped(opts: &ApplyOptions) -> Outcome {
    if opts.dry_run {
        Outcome::WouldSkip
    } else {
        Outcome::Skipped
    }
}

fn failed(opts: &ApplyOptions) -> Outcome {
    if opts.dry_run {
        Outcome::WouldFail
    } else {
        Outcome::Failed
    }
}

/// Whether a refusal is the quota controller not having counted a new
/// namespace's objects yet: it passes within seconds (up to ~30 s for custom
/// resources), so it is retried like throttling.
fn quota_not_counted(e: &KubeError) -> bool {
    matches!(e, KubeError::Api { code: 403, message, .. } if message.contains("status unknown for quota"))
}

/// Retry a request that failed for a reason that may pass (throttling, a
/// server error, a quota not yet counted) with backoff, for up to about 45 s.
async fn with_retries<T, F, Fut>(mut f: F) -> Result<T, KubeError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, KubeError>>,
{
    let mut delay = Duration::from_millis(200);
    for _ in 0..10 {
        match f().await {
            Err(e)
                if (e.is_retryable() && !matches!(e, KubeError::Unreachable { .. }))
                    || quota_not_counted(&e) =>
            {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(8));
            }
            other => return other,
        }
    }
    f().await
}

async fn restore_one(
    cluster: &Cluster,
    r: Ready,
    opts: &ApplyOptions,
    ctx: &FixupContext<'_>,
    abort: &AtomicBool,
    abort_reason: &std::sync::Mutex<String>,
) -> ItemReport {
    let Ready {
        item,
        source,
        note,
        changes,
        rules,
    } = r;
    let (target_ns, name) = api::ns_name(&item.object);
    let res = &item.resource;
    // The note stays the reason when the object is created (or would be);
    // a skip or a failure gives its own.
    let mut rep = line(source, target_ns.clone(), Outcome::Failed, note);
    rep.changes = changes;
    rep.rules = rules;
    if abort.load(Ordering::Relaxed) {
        rep.outcome = failed(opts);
        rep.reason = format!(
            "not attempted: {}",
            abort_reason.lock().map(|s| s.clone()).unwrap_or_default()
        );
        return rep;
    }
    let stop = |e: &KubeError| {
        if matches!(e, KubeError::Unreachable { .. }) {
            abort.store(true, Ordering::Relaxed);
            if let Ok(mut s) = abort_reason.lock() {
                *s = e.to_string();
            }
        }
    };
    if opts.dry_run {
        match with_retries(|| api::get(cluster, res, target_ns.as_deref(), &name)).await {
            Ok(None) => rep.outcome = Outcome::WouldCreate,
            Ok(Some(existing)) => {
                let differs = drift::differences(res, &item.object, existing, ctx);
                let how = drift::describe(&differs);
                (rep.outcome, rep.reason) = match opts.existing {
                    Existing::Skip => (Outcome::WouldSkip, format!("already exists, {how}")),
                    Existing::Update => (Outcome::WouldUpdate, format!("already exists, {how}")),
                    Existing::Fail => (
                        Outcome::WouldFail,
                        format!("already exists (--existing fail), {how}"),
                    ),
                };
                rep.differs = Some(differs);
            }
            Err(e) => {
                stop(&e);
                rep.outcome = Outcome::WouldFail;
                rep.reason = e.to_string();
            }
        }
        return rep;
    }
    match with_retries(|| api::create(cluster, res, &item.object, false)).await {
        Ok(_) => rep.outcome = Outcome::Created,
        Err(e) if e.reason() == Some("AlreadyExists") => {
            // How the target's copy compares with the backup, before any update.
            let differs = match with_retries(|| api::get(cluster, res, target_ns.as_deref(), &name))
                .await
            {
                Ok(Some(existing)) => Some(drift::differences(res, &item.object, existing, ctx)),
                Ok(None) | Err(_) => None,
            };
            let how = differs.as_deref().map_or_else(
                || "not compared with the backup (it could not be read)".into(),
                drift::describe,
            );
            rep.differs = differs;
            match opts.existing {
                Existing::Skip => {
                    rep.outcome = Outcome::Skipped;
                    rep.reason = format!("already exists, {how}");
                }
                Existing::Fail => rep.reason = format!("already exists (--existing fail), {how}"),
                Existing::Update => {
                    match update(cluster, res, &item.object, &target_ns, &name).await {
                        Ok(()) => {
                            rep.outcome = Outcome::Updated;
                            let was = format!("already existed, {how}");
                            rep.reason = if rep.reason.is_empty() {
                                was
                            } else {
                                format!("{}; {was}", rep.reason)
                            };
                        }
                        Err(e) => {
                            stop(&e);
                            rep.reason = format!("exists ({how}), and updating it failed: {e}");
                        }
                    }
                }
            }
        }
        Err(e) if e.status() == Some(404) && e.reason() != Some("NotFound") => {
            rep.reason = format!(
                "the target cluster does not serve {} {}: its CRD (or API) must be restored or installed first",
                res.key(),
                res.version
            );
        }
        Err(e) => {
            stop(&e);
            rep.reason = e.to_string();
        }
    }
    let wrote = matches!(rep.outcome, Outcome::Created | Outcome::Updated);
    if wrote && opts.restore_status && item.has_status && !res.is_builtin() {
        if let Some(status) = &item.status {
            match with_retries(|| {
                api::patch_status(cluster, res, target_ns.as_deref(), &name, status)
            })
            .await
            {
                Ok(()) => rep.status_restored = true,
                Err(e) => {
                    rep.reason = format!(
                        "{} but its status was not restored: {e}",
                        rep.outcome.name()
                    );
                    rep.outcome = Outcome::Failed;
                }
            }
        }
    }
    // Last, so that no write of Lifeboat's comes after it.
    let wrote = matches!(rep.outcome, Outcome::Created | Outcome::Updated);
    if let (true, Some(fields)) = (wrote, &item.managed_fields) {
        let patch = || api::patch_managed_fields(cluster, res, target_ns.as_deref(), &name, fields);
        match with_retries(patch).await {
            Ok(()) => rep.owners_restored = true,
            Err(e) => {
                let note =
                    format!("its field owners were not restored (Lifeboat owns every field): {e}");
                rep.reason = if rep.reason.is_empty() {
                    note
                } else {
                    format!("{}; {note}", rep.reason)
                };
            }
        }
    }
    rep
}

async fn update(
    cluster: &Cluster,
    res: &ResourceType,
    obj: &Value,
    ns: &Option<String>,
    name: &str,
) -> Result<(), KubeError> {
    // A conflict means someone changed it between our get and put: read again.
    let mut last = None;
    for _ in 0..3 {
        let existing = with_retries(|| api::get(cluster, res, ns.as_deref(), name))
            .await?
            .ok_or_else(|| KubeError::Api {
                what: format!("update {}", describe(res, ns.as_deref(), name)),
                code: 404,
                reason: "NotFound".into(),
                message: "deleted while being restored".into(),
            })?;
        match api::replace(cluster, res, obj, &existing).await {
            Ok(_) => return Ok(()),
            Err(e) if e.status() == Some(409) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| KubeError::InvalidInput("update conflict".into())))
}

/// Create the namespaces in `needed` that the target cluster lacks: objects
/// go into them, but the backup has no Namespace object for them.
async fn ensure_namespaces(
    cluster: &Cluster,
    needed: &BTreeSet<String>,
    opts: &ApplyOptions,
    abort: &AtomicBool,
) -> Vec<ItemReport> {
    let ns_type = ResourceType {
        group: String::new(),
        version: "v1".into(),
        resource: "namespaces".into(),
        kind: "Namespace".into(),
        namespaced: false,
    };
    let mut out = Vec::new();
    for ns in needed {
        if abort.load(Ordering::Relaxed) {
            break;
        }
        let source = ObjectRef {
            group: String::new(),
            kind: "Namespace".into(),
            namespace: None,
            name: ns.clone(),
        };
        let reason = "not in the backup; created for the objects restored into it".to_string();
        let obj =
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        let result = if opts.dry_run {
            match with_retries(|| api::get(cluster, &ns_type, None, ns)).await {
                Ok(Some(_)) => continue,
                Ok(None) => Ok(Outcome::WouldCreate),
                Err(e) => Err(e),
            }
        } else {
            match with_retries(|| api::create(cluster, &ns_type, &obj, false)).await {
                Ok(_) => Ok(Outcome::Created),
                Err(e) if e.reason() == Some("AlreadyExists") => continue,
                Err(e) => Err(e),
            }
        };
        out.push(match result {
            Ok(outcome) => line(source, None, outcome, reason),
            Err(e) => line(source, None, failed(opts), e.to_string()),
        });
    }
    out
}

/// Wait until every CRD in `crds` is Established; a CRD that is not in time
/// is reported as failed (its custom resources will fail with a clear reason).
async fn wait_established(
    cluster: &Cluster,
    crds: &[(ResourceType, String)],
    reports: &mut [ItemReport],
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    let mut pending: BTreeSet<&str> = crds.iter().map(|(_, n)| n.as_str()).collect();
    let Some((crd_type, _)) = crds.first() else {
        return;
    };
    while !pending.is_empty() && Instant::now() < deadline {
        let mut done = Vec::new();
        for name in &pending {
            if let Ok(Some(crd)) = api::get(cluster, crd_type, None, name).await {
                if established(&crd) {
                    done.push(*name);
                }
            }
        }
        for d in done {
            pending.remove(d);
        }
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for r in reports.iter_mut() {
        if pending.contains(r.object.name.as_str()) && !r.outcome.is_failure() {
            r.reason = format!(
                "{} but not Established after {} s",
                r.outcome.name(),
                timeout.as_secs()
            );
            r.outcome = Outcome::Failed;
        }
    }
}

fn established(crd: &Value) -> bool {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| {
            c.get("type").and_then(Value::as_str) == Some("Established")
                && c.get("status").and_then(Value::as_str) == Some("True")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn uncounted_quota_is_retried_other_refusals_are_not() {
        let api = |code, message: &str| KubeError::Api {
            what: "create configmaps shop/x".into(),
            code,
            reason: "Forbidden".into(),
            message: message.into(),
        };
        assert!(quota_not_counted(&api(
            403,
            "status unknown for quota: q, resources: configmaps"
        )));
        assert!(!quota_not_counted(&api(403, "exceeded quota: q")));
        assert!(!quota_not_counted(&api(409, "status unknown for quota")));
    }

    #[test]
    fn established_reads_the_condition() {
        let yes = json!({"status": {"conditions": [{"type": "NamesAccepted", "status": "True"}, {"type": "Established", "status": "True"}]}});
        let no = json!({"status": {"conditions": [{"type": "Established", "status": "False"}]}});
        assert!(established(&yes));
        assert!(!established(&no));
        assert!(!established(&json!({})));
    }

    #[test]
    fn existing_policy_parses() {
        assert_eq!("update".parse::<Existing>().unwrap(), Existing::Update);
        assert!("overwrite"
            .parse::<Existing>()
            .unwrap_err()
            .to_string()
            .contains("skip, update or fail"));
    }
}
