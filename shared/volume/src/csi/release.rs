//! Releasing Lifeboat's snapshots: the newest `keep` of a claim's
//! VolumeSnapshots, or of a group's VolumeGroupSnapshots, stay; older
//! ones are deleted.

use super::claim::{annotation, label, str_at};
use super::group::group_snapshots;
use super::snapshot::snapshots;
use super::{label_value, GROUP_LABEL, MANAGED_LABEL, RUN_LABEL};
use crate::VolumeError;
use lifeboat_kube::{api, Cluster, KubeError};
use serde_json::Value;

/// Delete a VolumeSnapshot Lifeboat made (its class's deletion policy decides
/// whether the driver's snapshot goes too). `false` if it was already gone.
pub async fn delete_snapshot(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
) -> Result<bool, VolumeError> {
    Ok(api::delete(cluster, &snapshots(), Some(namespace), name).await?)
}

/// Keep the newest `keep` of the VolumeSnapshots Lifeboat made of claim
/// `namespace/claim` and delete the rest, once the data of run
/// `current_run` is committed. The current run's counts as the newest (an
/// incremental copy reads changes against it); `keep` 0 deletes it too.
/// Returns the names deleted.
pub async fn delete_older_snapshots(
    cluster: &Cluster,
    namespace: &str,
    claim: &str,
    current_run: &str,
    keep: usize,
) -> Result<Vec<String>, VolumeError> {
    let current = label_value(current_run);
    let selector = format!("{MANAGED_LABEL}=lifeboat");
    let ours: Vec<Value> = api::list(cluster, &snapshots(), Some(&selector))
        .await?
        .into_iter()
        .filter(|vs| {
            str_at(vs, "/metadata/namespace") == namespace
                && str_at(vs, "/metadata/annotations/lifeboat.dev~1claim") == claim
                && label(vs, RUN_LABEL).is_some()
        })
        .collect();
    let mut deleted = Vec::new();
    for name in to_release(&ours, &current, keep) {
        if delete_snapshot(cluster, namespace, &name).await? {
            deleted.push(name);
        }
    }
    Ok(deleted)
}

/// The names of `ours` (Lifeboat's snapshots of one claim or group, each
/// labelled with its run) to delete so that the newest `keep` stay: the
/// current run's counts as the newest, the others go by creation time.
pub(crate) fn to_release(ours: &[Value], current_run: &str, keep: usize) -> Vec<String> {
    let mut ranked: Vec<(bool, &str, &str)> = ours
        .iter()
        .map(|o| {
            (
                label(o, RUN_LABEL) == Some(current_run),
                str_at(o, "/metadata/creationTimestamp"),
                str_at(o, "/metadata/name"),
            )
        })
        .collect();
    // Newest first: the current run's, then by creation time.
    ranked.sort_by(|a, b| b.cmp(a));
    ranked
        .into_iter()
        .skip(keep)
        .map(|(_, _, name)| name.to_string())
        .collect()
}

/// Keep the newest `keep` of Lifeboat's VolumeGroupSnapshots of `namespace`'s
/// group `group` and delete the rest (their member snapshots go with them),
/// as [`super::delete_older_snapshots`] does for single ones. Returns the
/// names deleted.
pub async fn delete_older_group_snapshots(
    cluster: &Cluster,
    namespace: &str,
    group: &str,
    current_run: &str,
    keep: usize,
) -> Result<Vec<String>, VolumeError> {
    let selector = format!("{MANAGED_LABEL}=lifeboat");
    let ours: Vec<Value> = match api::list_in(
        cluster,
        &group_snapshots(),
        namespace,
        None,
        Some(&selector),
    )
    .await
    {
        Ok(all) => all,
        Err(KubeError::Api { code: 404, .. }) => return Ok(vec![]),
        Err(e) => return Err(e.into()),
    }
    .into_iter()
    .filter(|g| annotation(g, GROUP_LABEL) == Some(group) && label(g, RUN_LABEL).is_some())
    .collect();
    let mut deleted = Vec::new();
    for name in to_release(&ours, &label_value(current_run), keep) {
        if api::delete(cluster, &group_snapshots(), Some(namespace), &name).await? {
            deleted.push(name);
        }
    }
    Ok(deleted)
}

/// The group (`lifeboat.dev/group` value) of Lifeboat's VolumeGroupSnapshot
/// `namespace/name`, if it still exists.
pub async fn group_of_snapshot(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
) -> Result<Option<String>, VolumeError> {
    Ok(api::get(cluster, &group_snapshots(), Some(namespace), name)
        .await?
        .and_then(|g| annotation(&g, GROUP_LABEL).map(str::to_string)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn release_keeps_the_current_run_and_the_newest() {
        let vs = |name: &str, run: &str, created: &str| {
            json!({"metadata": {"name": name, "creationTimestamp": created,
                "labels": {"lifeboat.dev/run": run}}})
        };
        let ours = [
            vs("old", "r1", "2026-01-01T00:00:00Z"),
            vs("now", "r3", "2026-01-01T00:00:00Z"),
            vs("mid", "r2", "2026-01-02T00:00:00Z"),
        ];
        assert_eq!(to_release(&ours, "r3", 1), ["mid", "old"]);
        assert_eq!(to_release(&ours, "r3", 2), ["old"]);
        assert_eq!(to_release(&ours, "r3", 0), ["now", "mid", "old"]);
        assert!(to_release(&ours, "r3", 5).is_empty());
    }
}
