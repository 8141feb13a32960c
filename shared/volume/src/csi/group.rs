//! VolumeGroupSnapshots (`groupsnapshot.storage.k8s.io/v1`): several claims
//! of one namespace and driver snapshotted at one point in time.
//!
//! The snapshot controller answers a VolumeGroupSnapshot with one
//! VolumeSnapshot per volume (owned by the group, named
//! `snapshot-<hash>`, `spec.source.persistentVolumeClaimName` the claim,
//! `status.volumeGroupSnapshotName` the group), each bound to a
//! VolumeSnapshotContent whose `spec.source.volumeHandle` is the volume's.
//! Those member snapshots are what the copies read, as for single ones.

use super::claim::{str_at, Claim};
use super::snapshot::{lasting_error, snapshot_from, snapshots};
use super::{label_value, CsiSnapshot, Wait, MANAGED_LABEL, RUN_LABEL};
use crate::VolumeError;
use lifeboat_kube::{api, Cluster, KubeError, ResourceType};
use serde_json::{json, Value};
use std::time::Instant;

/// On a PersistentVolumeClaim: the application group it is snapshotted with.
pub const GROUP_LABEL: &str = "lifeboat.dev/group";
pub(super) fn group_api(resource: &str, kind: &str, namespaced: bool) -> ResourceType {
    ResourceType {
        group: "groupsnapshot.storage.k8s.io".into(),
        version: "v1".into(),
        resource: resource.into(),
        kind: kind.into(),
        namespaced,
    }
}

pub(super) fn group_snapshots() -> ResourceType {
    group_api("volumegroupsnapshots", "VolumeGroupSnapshot", true)
}
fn group_contents() -> ResourceType {
    group_api(
        "volumegroupsnapshotcontents",
        "VolumeGroupSnapshotContent",
        false,
    )
}

/// The names of the claims in `namespace` labelled `lifeboat.dev/group=group`:
/// what the group snapshot's selector takes.
pub async fn labelled_claims(
    cluster: &Cluster,
    namespace: &str,
    group: &str,
) -> Result<Vec<String>, VolumeError> {
    let pvcs = super::claim::core("persistentvolumeclaims", "PersistentVolumeClaim", true);
    let selector = format!("{GROUP_LABEL}={group}");
    let mut names: Vec<String> = api::list_in(cluster, &pvcs, namespace, None, Some(&selector))
        .await?
        .iter()
        .map(|p| str_at(p, "/metadata/name").to_string())
        .collect();
    names.sort();
    Ok(names)
}

/// The name of the VolumeGroupSnapshot of `namespace`'s group `group` in
/// run `run`: stable, so a retried step finds its own.
pub fn group_snapshot_name(namespace: &str, group: &str, run: &str) -> String {
    let digest = blake3::hash(format!("{namespace}/{group}/{run}").as_bytes());
    let base: String = label_value(&group.to_ascii_lowercase())
        .replace(['.', '_'], "-")
        .chars()
        .take(36)
        .collect();
    let base = base.trim_matches('-');
    format!("lifeboat-group-{base}-{}", &digest.to_hex()[..10])
}

/// Snapshot `members` (the claims of `namespace` labelled
/// `lifeboat.dev/group=group`, one driver) together with `class`, wait until
/// the group and every member snapshot are ready, and return each claim's
/// snapshot. The member snapshots get Lifeboat's labels, so cluster exports
/// leave them out like single ones.
pub async fn take_group_snapshot(
    cluster: &Cluster,
    namespace: &str,
    group: &str,
    members: &[Claim],
    class: &str,
    run: &str,
    wait: Wait,
) -> Result<Vec<(Claim, CsiSnapshot)>, VolumeError> {
    let name = group_snapshot_name(namespace, group, run);
    let obj = json!({
        "apiVersion": "groupsnapshot.storage.k8s.io/v1",
        "kind": "VolumeGroupSnapshot",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": { MANAGED_LABEL: "lifeboat", RUN_LABEL: label_value(run) },
            "annotations": { GROUP_LABEL: group },
        },
        "spec": {
            "volumeGroupSnapshotClassName": class,
            "source": { "selector": { "matchLabels": { GROUP_LABEL: group } } },
        },
    });
    match api::create(cluster, &group_snapshots(), &obj, false).await {
        Ok(_) | Err(KubeError::Api { code: 409, .. }) => {}
        Err(e) => return Err(e.into()),
    }
    tracing::info!(namespace, group, snapshot = %name, class, "volume group snapshot requested");
    let what = format!("volumegroupsnapshot {namespace}/{name}");
    let started = Instant::now();
    loop {
        let vgs = api::get(cluster, &group_snapshots(), Some(namespace), &name)
            .await?
            .ok_or_else(|| VolumeError::Failed {
                what: what.clone(),
                message: "it was deleted while Lifeboat waited for it".into(),
            })?;
        if let Some(msg) = lasting_error(&vgs) {
            return Err(VolumeError::Failed {
                what,
                message: msg.to_string(),
            });
        }
        let content = str_at(&vgs, "/status/boundVolumeGroupSnapshotContentName");
        let waiting_for =
            if vgs.pointer("/status/readyToUse").and_then(Value::as_bool) != Some(true) {
                if content.is_empty() {
                    "no content bound yet: is the snapshot controller running?".to_string()
                } else {
                    format!("content {content} not ready: is the CSI snapshotter running?")
                }
            } else {
                let handles = match api::get(cluster, &group_contents(), None, content).await? {
                    Some(c) => c
                        .pointer("/spec/source/volumeHandles")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_string)
                                .collect()
                        })
                        .unwrap_or_default(),
                    None => Vec::new(),
                };
                check_handles(members, &handles).map_err(|message| VolumeError::Failed {
                    what: what.clone(),
                    message,
                })?;
                match ready_members(cluster, namespace, &vgs, members).await? {
                    Ok(taken) => {
                        label_members(cluster, namespace, run, &taken).await?;
                        return Ok(taken);
                    }
                    Err(missing) => missing,
                }
            };
        if started.elapsed() >= wait.timeout {
            return Err(VolumeError::Timeout {
                what: format!("{what} to become ready to use ({waiting_for})"),
                secs: wait.timeout.as_secs(),
            });
        }
        tokio::time::sleep(wait.poll).await;
    }
}

/// The group's volumes must be exactly the members': a claim labelled
/// between the check and the snapshot would otherwise be in it unseen.
pub(crate) fn check_handles(members: &[Claim], handles: &[String]) -> Result<(), String> {
    let extra: Vec<&str> = handles
        .iter()
        .filter(|h| !members.iter().any(|c| &c.volume_handle == *h))
        .map(String::as_str)
        .collect();
    let missing: Vec<String> = members
        .iter()
        .filter(|c| !handles.contains(&c.volume_handle))
        .map(Claim::key)
        .collect();
    if extra.is_empty() && missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "the group snapshot's volumes are not the group's claims (volumes of other claims: [{}]; claims left out: [{}]): was the {GROUP_LABEL} label changed during the backup?",
        extra.join(", "),
        missing.join(", ")
    ))
}

/// Each member's ready snapshot, or what is still awaited.
async fn ready_members(
    cluster: &Cluster,
    namespace: &str,
    vgs: &Value,
    members: &[Claim],
) -> Result<Result<Vec<(Claim, CsiSnapshot)>, String>, VolumeError> {
    let uid = str_at(vgs, "/metadata/uid");
    let owned: Vec<Value> = api::list_in(cluster, &snapshots(), namespace, None, None)
        .await?
        .into_iter()
        .filter(|vs| {
            vs.pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|refs| {
                    refs.iter().any(|r| {
                        str_at(r, "/kind") == "VolumeGroupSnapshot" && str_at(r, "/uid") == uid
                    })
                })
        })
        .collect();
    let mut with_content = Vec::new();
    for vs in owned {
        if vs.pointer("/status/readyToUse").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        let name = str_at(&vs, "/status/boundVolumeSnapshotContentName");
        if let Some(content) = api::get(cluster, &super::snapshot::contents(), None, name).await? {
            with_content.push((vs, content));
        }
    }
    let pairs = match_members(members, &with_content);
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for (claim, found) in members.iter().zip(pairs) {
        match found {
            Some(i) => {
                let (vs, content) = &with_content[i];
                out.push((claim.clone(), snapshot_from(vs, content)?));
            }
            None => missing.push(claim.key()),
        }
    }
    if missing.is_empty() {
        Ok(Ok(out))
    } else {
        Ok(Err(format!(
            "the group is ready, but not yet the member snapshots of {}",
            missing.join(", ")
        )))
    }
}

/// For each claim, the index in `snapshots` (member VolumeSnapshot and its
/// content) of its snapshot: the content taken of the claim's volume
/// handle, else the snapshot whose source names the claim.
pub(crate) fn match_members(claims: &[Claim], snapshots: &[(Value, Value)]) -> Vec<Option<usize>> {
    claims
        .iter()
        .map(|c| {
            snapshots
                .iter()
                .position(|(_, content)| {
                    str_at(content, "/spec/source/volumeHandle") == c.volume_handle
                })
                .or_else(|| {
                    snapshots.iter().position(|(vs, _)| {
                        str_at(vs, "/spec/source/persistentVolumeClaimName") == c.name
                    })
                })
        })
        .collect()
}

/// Label the member snapshots as Lifeboat's (exports leave them out); they
/// go with their group, so they get no claim annotation of their own.
async fn label_members(
    cluster: &Cluster,
    namespace: &str,
    run: &str,
    taken: &[(Claim, CsiSnapshot)],
) -> Result<(), VolumeError> {
    let metadata = json!({ "labels": { MANAGED_LABEL: "lifeboat", RUN_LABEL: label_value(run) } });
    for (_, snap) in taken {
        api::patch_metadata(
            cluster,
            &snapshots(),
            Some(namespace),
            &snap.name,
            &metadata,
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "group_tests.rs"]
mod tests;
