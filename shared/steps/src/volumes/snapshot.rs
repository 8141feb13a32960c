//! snapshot-volumes: every claim in scope snapshotted through the CSI
//! snapshot API (the claims of an application group together, see
//! [`super::group`]), and the copies planned.

use super::backup::{Base, CopyItem};
use super::group::{check_group, plan_groups, reasons_outside, Group};
use super::mover::{mover_for, CLAIM_TAG, CLUSTER_TAG, CSI_SNAPSHOT_TAG};
use super::{run_name, EBS_DRIVER};
use crate::env::StepEnv;
use crate::state::{to_value, State, Volumes};
use crate::StepError;
use lifeboat_kube::Cluster;
use lifeboat_ops::cluster::{tree_node, ExportedState};
use lifeboat_ops::verify::verifications;
use lifeboat_ops::volume::{plan_ranges, ByteRange};
use lifeboat_repo::{Id, Repository, Snapshot};
use lifeboat_volume::csi::{self, Claim, CsiSnapshot, GroupClass, Wait};
use lifeboat_volume::ebs::EbsSnapshot;
use lifeboat_volume::{BlockSource, VolumeError};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Bytes per copy-volume invocation: at the EBS direct APIs' pace this is a
/// few minutes, well under the Lambda limit. `LIFEBOAT_RANGE_BYTES` changes it.
const RANGE_BYTES: u64 = 8 << 30;

fn range_bytes() -> u64 {
    std::env::var("LIFEBOAT_RANGE_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|v| *v > 0)
        .unwrap_or(RANGE_BYTES)
}

/// The claims whose objects the export holds, from its tree.
async fn exported_claims(
    repo: &Repository,
    exported: &ExportedState,
) -> Result<Vec<(String, String)>, StepError> {
    let index = repo.load_index().await?;
    let mut out = Vec::new();
    let Some(claims) = tree_node(
        repo,
        &index,
        &exported.tree,
        "objects/persistentvolumeclaims",
    )
    .await?
    .and_then(|n| n.subtree) else {
        return Ok(out);
    };
    let tree = repo.load_tree(&index, &claims).await?;
    for ns in tree.nodes {
        if let Some(sub) = ns.subtree {
            for claim in repo.load_tree(&index, &sub).await?.nodes {
                out.push((ns.name.clone(), claim.name));
            }
        }
    }
    Ok(out)
}

/// The snapshots whose latest verification in this repository passed. Only
/// these may serve as an incremental base: an EBS copy keeps the base's
/// chunks for unchanged blocks, so a base with missing data would carry the
/// loss into every later copy.
async fn verified_snapshots(repo: &Repository) -> Result<HashSet<Id>, StepError> {
    let location = repo.store().location();
    let mut latest: HashMap<Id, (chrono::DateTime<chrono::Utc>, bool)> = HashMap::new();
    for v in verifications(repo).await? {
        if v.repository != location {
            continue;
        }
        let entry = latest.entry(v.snapshot).or_insert((v.time, v.ok));
        if v.time >= entry.0 {
            *entry = (v.time, v.ok);
        }
    }
    Ok(latest
        .into_iter()
        .filter(|(_, (_, ok))| *ok)
        .map(|(id, _)| id)
        .collect())
}

/// The newest of the `verified` `snapshots` of `cluster` with an EBS copy of
/// `claim`: its id and the driver snapshot handle.
fn previous_copy(
    snapshots: &[(Id, Snapshot)],
    verified: &HashSet<Id>,
    cluster: &str,
    claim: &Claim,
) -> Option<Base> {
    let mut best: Option<(chrono::DateTime<chrono::Utc>, Base)> = None;
    for (id, snap) in snapshots {
        if !verified.contains(id) {
            continue;
        }
        let Some(c) = &snap.cluster else { continue };
        if c.name != cluster {
            continue;
        }
        let found = c.volumes.iter().find(|v| {
            v.namespace == claim.namespace
                && v.claim == claim.name
                && v.mover == "ebs"
                && v.volume == claim.volume
        });
        if let Some(v) = found {
            if best.as_ref().is_none_or(|(t, _)| snap.time > *t) {
                best = Some((
                    snap.time,
                    Base {
                        snapshot: *id,
                        handle: v.csi_snapshot.clone(),
                    },
                ));
            }
        }
    }
    best.map(|(_, b)| b)
}

/// The newest volume snapshot a mover Job wrote of `claim` in `cluster`:
/// the parent of its next copy.
fn previous_job_copy(snapshots: &[(Id, Snapshot)], cluster: &str, claim: &Claim) -> Option<Base> {
    let key = claim.key();
    snapshots
        .iter()
        .filter(|(_, s)| {
            s.kind == "volume"
                && s.tags.get(CLAIM_TAG) == Some(&key)
                && s.tags.get(CLUSTER_TAG).map(String::as_str) == Some(cluster)
        })
        .max_by_key(|(_, s)| s.time)
        .map(|(id, s)| Base {
            snapshot: *id,
            handle: s.tags.get(CSI_SNAPSHOT_TAG).cloned().unwrap_or_default(),
        })
}

/// Snapshot every claim in scope through the CSI snapshot API and plan the
/// copies: one item per block range of each EBS volume, one per volume of
/// any other driver. Claims labelled `lifeboat.dev/group` are snapshotted
/// with their group; a claim that cannot be snapshotted does not fail the
/// backup (its objects are kept, and the report names it): under
/// `left_out` when that is the policy (not bound, not CSI), else under
/// `not_copied`, which makes the backup partial.
pub async fn snapshot_volumes(env: &dyn StepEnv, state: State) -> Result<Value, StepError> {
    let plan = State::need(&state.plan, "plan", "prepare")?;
    let exported = State::need(&state.export, "export", "export-state")?;
    let repo = env.repository().await?;
    let claims = exported_claims(&repo, exported).await?;
    if claims.is_empty() {
        return to_value(&Volumes::default());
    }
    let cluster = env.cluster(&plan.cluster, &plan.access).await?;
    let run = run_name(&state);
    let mut volumes = Volumes::default();
    let mut resolved = Vec::new();
    let mut unresolved = BTreeMap::new();
    for (ns, name) in claims {
        match csi::claim(&cluster, &ns, &name).await {
            Ok(c) => resolved.push(c),
            Err(e) => {
                // Not bound, or not CSI: nothing a backup copies, by policy.
                // Anything else is a claim asked for whose data is missing.
                if matches!(e, VolumeError::NoData(_)) {
                    volumes.left_out.push(format!("{ns}/{name}: {e}"));
                } else {
                    volumes.not_copied.push(format!("{ns}/{name}: {e}"));
                }
                unresolved.insert(format!("{ns}/{name}"), e.to_string());
            }
        }
    }
    let (groups, mut singles) = plan_groups(resolved);
    let outside = reasons_outside(&groups, &unresolved);
    let mut taken: Vec<(Claim, CsiSnapshot)> = Vec::new();
    for group in groups {
        match snapshot_group(&cluster, &group, &run, &outside).await {
            Grouped::Taken(name, snaps) => {
                volumes.groups.push(format!(
                    "{}: volumegroupsnapshot {name} ({})",
                    group.key(),
                    names(&group)
                ));
                taken.extend(snaps);
            }
            Grouped::OneByOne(why) => {
                volumes
                    .groups
                    .push(format!("{}: snapshotted one by one: {why}", group.key()));
                singles.extend(group.claims);
            }
            Grouped::Failed(why) => {
                for c in &group.claims {
                    volumes.not_copied.push(format!("{}: {why}", c.key()));
                }
            }
        }
    }
    for claim in singles {
        match snapshot_single(&cluster, &claim, &run).await {
            Ok(snap) => taken.push((claim, snap)),
            Err(why) => volumes.not_copied.push(format!("{}: {why}", claim.key())),
        }
    }
    // Earlier backups, read once for every claim's incremental base.
    let earlier = repo.snapshots().await?;
    let verified = verified_snapshots(&repo).await?;
    for (claim, snapshot) in taken {
        let key = claim.key();
        match plan_copy(env, &repo, plan, (&earlier, &verified), claim, snapshot).await {
            Ok(items) => {
                volumes.count += 1;
                for item in items {
                    volumes.items.push(to_value(&item)?);
                }
            }
            Err(reason) => volumes.not_copied.push(format!("{key}: {reason}")),
        }
    }
    to_value(&volumes)
}

fn names(group: &Group) -> String {
    group
        .claims
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What became of a group.
enum Grouped {
    /// One VolumeGroupSnapshot (its name) and each claim's member snapshot.
    Taken(String, Vec<(Claim, CsiSnapshot)>),
    /// The cluster or driver cannot take group snapshots: the claims are
    /// snapshotted one by one.
    OneByOne(String),
    /// The group cannot be snapshotted as asked; none of its claims is.
    Failed(String),
}

async fn snapshot_group(
    cluster: &Cluster,
    group: &Group,
    run: &str,
    outside: &BTreeMap<String, String>,
) -> Grouped {
    let class = match csi::group_snapshot_class(cluster, &group.driver, &group.claims).await {
        Ok(GroupClass::Class(c)) => c,
        Ok(GroupClass::Unsupported(why)) => return Grouped::OneByOne(why),
        Err(e) => return Grouped::Failed(format!("group {}: {e}", group.key())),
    };
    let labelled = match csi::labelled_claims(cluster, &group.namespace, &group.name).await {
        Ok(l) => l,
        Err(e) => return Grouped::Failed(format!("group {}: {e}", group.key())),
    };
    if let Err(why) = check_group(group, &labelled, outside) {
        return Grouped::Failed(why);
    }
    let taken = csi::take_group_snapshot(
        cluster,
        &group.namespace,
        &group.name,
        &group.claims,
        &class,
        run,
        Wait::default(),
    )
    .await;
    let mut snaps = match taken {
        Ok(s) => s,
        Err(e) => return Grouped::Failed(format!("group {}: {e}", group.key())),
    };
    // A restore imports each volume's data with the driver's
    // VolumeSnapshotClass, when there is one.
    for (claim, snap) in &mut snaps {
        snap.class = csi::snapshot_class(cluster, claim, None)
            .await
            .unwrap_or_default();
    }
    Grouped::Taken(
        csi::group_snapshot_name(&group.namespace, &group.name, run),
        snaps,
    )
}

/// Snapshot one claim alone; `Err` is the reason its data is not copied.
async fn snapshot_single(
    cluster: &Cluster,
    claim: &Claim,
    run: &str,
) -> Result<CsiSnapshot, String> {
    let class = csi::snapshot_class(cluster, claim, None)
        .await
        .map_err(|e| e.to_string())?;
    csi::take_snapshot(cluster, claim, &class, run, Wait::default())
        .await
        .map_err(|e| e.to_string())
}

/// The copy of one snapshotted claim: one item for a mover Job, or one
/// per block range of an EBS volume.
async fn plan_copy(
    env: &dyn StepEnv,
    repo: &Repository,
    plan: &crate::state::Plan,
    (earlier, verified): (&[(Id, Snapshot)], &HashSet<Id>),
    claim: Claim,
    snapshot: CsiSnapshot,
) -> Result<Vec<CopyItem>, String> {
    if claim.driver != EBS_DRIVER {
        // Any other driver: one item, the whole volume, copied by a Job in
        // the cluster from a claim made of the snapshot.
        let base = previous_job_copy(earlier, &plan.cluster, &claim);
        return Ok(vec![CopyItem {
            volume: claim.key(),
            mover: mover_for(&claim.mode).into(),
            volume_size: snapshot.size.max(claim.size),
            block_size: 0,
            range: ByteRange {
                start: 0,
                end: snapshot.size.max(claim.size),
            },
            base,
            claim,
            snapshot,
        }]);
    }
    let client = env
        .ebs(plan.region.as_deref())
        .await
        .map_err(|e| e.to_string())?;
    let source = EbsSnapshot::new(client, snapshot.handle.clone());
    let geometry = source.geometry().await.map_err(|e| e.to_string())?;
    let chunk = repo.config().chunking.fixed_size;
    let ranges = plan_ranges(geometry, chunk, range_bytes()).map_err(|e| e.to_string())?;
    let base = previous_copy(earlier, verified, &plan.cluster, &claim)
        .filter(|b| b.handle != snapshot.handle);
    Ok(ranges
        .into_iter()
        .map(|range| CopyItem {
            volume: claim.key(),
            claim: claim.clone(),
            snapshot: snapshot.clone(),
            mover: "ebs".into(),
            volume_size: geometry.volume_size,
            block_size: geometry.block_size,
            range,
            base: base.clone(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn snapshot_with_ebs_copy(minutes: i64, handle: &str) -> Snapshot {
        serde_json::from_value(serde_json::json!({
            "version": 1, "kind": "cluster", "hostname": "prod", "paths": ["https://api"],
            "time": (chrono::Utc::now() - chrono::Duration::minutes(minutes)).to_rfc3339(),
            "tree": Id([1; 32]), "summary": lifeboat_repo::SnapshotSummary::default(),
            "cluster": {"name": "prod", "server": "https://api", "scope": {}, "resources": [],
                "volumes": [{"namespace": "shop", "claim": "db", "volume": "pv-1", "driver": EBS_DRIVER,
                    "mode": "Block", "size": 1, "csi_snapshot": handle, "snapshot_class": "c",
                    "mover": "ebs", "path": "volumes/shop/db", "blocks_read": 0, "bytes_read": 0,
                    "bytes_stored": 0}]}
        }))
        .unwrap()
    }

    #[test]
    fn an_unverified_snapshot_is_never_an_incremental_base() {
        let claim: Claim = serde_json::from_value(serde_json::json!({
            "namespace": "shop", "name": "db", "volume": "pv-1", "driver": EBS_DRIVER,
            "volume_handle": "vol-1", "size": 1, "mode": "Block"
        }))
        .unwrap();
        let (older, newer) = (Id([2; 32]), Id([3; 32]));
        let snaps = vec![
            (older, snapshot_with_ebs_copy(120, "snap-old")),
            (newer, snapshot_with_ebs_copy(60, "snap-new")),
        ];
        let verified = HashSet::from([older]);
        let base = previous_copy(&snaps, &verified, "prod", &claim).unwrap();
        assert_eq!((base.snapshot, base.handle.as_str()), (older, "snap-old"));
        assert!(previous_copy(&snaps, &HashSet::new(), "prod", &claim).is_none());
    }
}
