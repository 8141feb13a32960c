//! Backup: snapshot-volumes, copy-volume, and the volume part of commit.

use super::mover::{
    copy_with_job, job_volume, mover_for, JobCopy, CLAIM_TAG, CLUSTER_TAG, CSI_SNAPSHOT_TAG,
};
use super::{run_name, EBS_DRIVER};
use crate::env::StepEnv;
use crate::state::{from_value, to_value, State, Volumes};
use crate::StepError;
use lifeboat_kube::Cluster;
use lifeboat_ops::cluster::{tree_node, volume_path, CopiedVolume, ExportedState};
use lifeboat_ops::volume::{assemble, copy_range, plan_ranges, ByteRange, CopyOptions, RangeCopy};
use lifeboat_ops::Progress;
use lifeboat_repo::{FileKind, Id, Repository, Snapshot, VolumeData};
use lifeboat_volume::csi::{self, Claim, CsiSnapshot, Wait};
use lifeboat_volume::ebs::EbsSnapshot;
use lifeboat_volume::BlockSource;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Bytes per copy-volume invocation: at the EBS direct APIs' pace this is a
/// few minutes, well under the Lambda limit. `LIFEBOAT_RANGE_BYTES` changes it.
const RANGE_BYTES: u64 = 8 << 30;

/// One Map item: a range of one volume's snapshot to copy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CopyItem {
    /// `namespace/claim`.
    pub volume: String,
    pub claim: Claim,
    pub snapshot: CsiSnapshot,
    pub mover: String,
    pub volume_size: u64,
    pub block_size: u32,
    pub range: ByteRange,
    /// The previous backup of this claim, for an incremental copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<Base>,
}

impl CopyItem {
    /// The volume's record in the snapshot, its figures zero.
    pub(super) fn volume_data(&self, base: Option<String>) -> VolumeData {
        VolumeData {
            namespace: self.claim.namespace.clone(),
            claim: self.claim.name.clone(),
            volume: self.claim.volume.clone(),
            driver: self.claim.driver.clone(),
            storage_class: self.claim.storage_class.clone(),
            mode: self.claim.mode.clone(),
            size: self.volume_size,
            csi_snapshot: self.snapshot.handle.clone(),
            snapshot_class: self.snapshot.class.clone(),
            group: self.snapshot.group.clone(),
            mover: self.mover.clone(),
            path: volume_path(&self.claim.namespace, &self.claim.name),
            base,
            blocks_read: 0,
            bytes_read: 0,
            bytes_stored: 0,
        }
    }
}

/// Where the previous copy of a volume is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Base {
    /// The repository snapshot holding it.
    pub snapshot: Id,
    /// The driver snapshot it was copied from.
    pub handle: String,
}

/// One Map item's result: a range copied through the EBS direct APIs, or
/// the volume snapshot a mover Job wrote.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CopyResult {
    pub volume: String,
    #[serde(flatten, default)]
    pub copy: Option<RangeCopy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobCopy>,
}

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

/// The newest of `snapshots` of `cluster` with an EBS copy of
/// `claim`: its id and the driver snapshot handle.
fn previous_copy(snapshots: &[(Id, Snapshot)], cluster: &str, claim: &Claim) -> Option<Base> {
    let mut best: Option<(chrono::DateTime<chrono::Utc>, Base)> = None;
    for (id, snap) in snapshots {
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
/// copies: one item per block range of each EBS volume.
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
    // Earlier backups, read once for every claim's incremental base.
    let earlier = repo.snapshots().await?;
    let mut volumes = Volumes::default();
    for (ns, name) in claims {
        let claim = Target {
            plan,
            earlier: &earlier,
            ns: &ns,
            name: &name,
            run: &run,
        };
        match snapshot_one(env, &repo, &cluster, claim).await {
            Ok(items) => {
                volumes.count += 1;
                for item in items {
                    volumes.items.push(to_value(&item)?);
                }
            }
            Err(reason) => volumes.not_copied.push(format!("{ns}/{name}: {reason}")),
        }
    }
    to_value(&volumes)
}

/// One claim to snapshot, and what its copy plan needs.
struct Target<'a> {
    plan: &'a crate::state::Plan,
    /// The repository's snapshots, for the claim's previous copy.
    earlier: &'a [(Id, Snapshot)],
    ns: &'a str,
    name: &'a str,
    run: &'a str,
}

/// Snapshot one claim; `Err` is the reason its data is not copied (a
/// claim that cannot be snapshotted does not fail the backup: its objects
/// are kept, and the report names it).
async fn snapshot_one(
    env: &dyn StepEnv,
    repo: &Repository,
    cluster: &Cluster,
    target: Target<'_>,
) -> Result<Vec<CopyItem>, String> {
    let Target {
        plan,
        earlier,
        ns,
        name,
        run,
    } = target;
    let claim = csi::claim(cluster, ns, name)
        .await
        .map_err(|e| e.to_string())?;
    let class = csi::snapshot_class(cluster, &claim, None)
        .await
        .map_err(|e| e.to_string())?;
    let snapshot = csi::take_snapshot(cluster, &claim, &class, run, Wait::default())
        .await
        .map_err(|e| e.to_string())?;
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
    let base =
        previous_copy(earlier, &plan.cluster, &claim).filter(|b| b.handle != snapshot.handle);
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

/// Copy one range of one volume (a Map item).
pub async fn copy_volume(env: &dyn StepEnv, input: Value) -> Result<Value, StepError> {
    let item: CopyItem = from_value(
        input.get("volume").cloned().unwrap_or(Value::Null),
        "copy-volume item `volume`",
    )?;
    if item.mover != "ebs" {
        let plan: crate::state::Plan = from_value(
            input.get("plan").cloned().unwrap_or(Value::Null),
            "copy-volume `plan`",
        )?;
        let run = input
            .pointer("/execution/name")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                StepError::invalid("copy-volume input has no execution.name (the run)")
            })?;
        return to_value(&copy_with_job(env, &item, &plan, run).await?);
    }
    let region = input
        .pointer("/plan/region")
        .and_then(Value::as_str)
        .map(str::to_string);
    let repo = env.repository().await?;
    let client = env.ebs(region.as_deref()).await?;
    let source = EbsSnapshot::new(client, item.snapshot.handle.clone()).with_geometry(
        lifeboat_volume::Geometry {
            volume_size: item.volume_size,
            block_size: item.block_size,
        },
    );
    let base = match &item.base {
        Some(b) => {
            // Under no lock: the base is a kept snapshot, which prune
            // leaves alone; copy_range loads its own index under its lock.
            let index = repo.load_index().await?;
            let snap: Snapshot = repo.load_file(FileKind::Snapshot, &b.snapshot).await?;
            let path = volume_path(&item.claim.namespace, &item.claim.name);
            tree_node(&repo, &index, &snap.tree, &path)
                .await?
                .map(|node| (b.handle.clone(), node.content))
        }
        None => None,
    };
    let copy = copy_range(
        &repo,
        &source,
        CopyOptions {
            range: item.range,
            base,
        },
        Arc::new(Progress::default()),
    )
    .await?;
    to_value(&CopyResult {
        volume: item.volume,
        copy: Some(copy),
        job: None,
    })
}

/// The copied volumes of a backup, ready to attach to its snapshot.
pub async fn copied_volumes(
    repo: &Repository,
    state: &State,
) -> Result<Vec<CopiedVolume>, StepError> {
    let items: Vec<CopyItem> = match &state.volumes {
        Some(v) => v
            .items
            .iter()
            .map(|i| from_value(i.clone(), "volumes item"))
            .collect::<Result<_, _>>()?,
        None => return Ok(vec![]),
    };
    let copies: Vec<CopyResult> = state
        .copies
        .iter()
        .flatten()
        .map(|c| from_value(c.clone(), "copy-volume result"))
        .collect::<Result<_, _>>()?;
    let mut by_volume: BTreeMap<&str, (Option<&CopyItem>, Vec<RangeCopy>)> = BTreeMap::new();
    let mut by_job: BTreeMap<&str, &JobCopy> = BTreeMap::new();
    for item in &items {
        by_volume.entry(&item.volume).or_default().0 = Some(item);
    }
    for c in &copies {
        if let Some(job) = &c.job {
            by_job.insert(&c.volume, job);
        }
        if let Some(copy) = &c.copy {
            by_volume.entry(&c.volume).or_default().1.push(copy.clone());
        }
    }
    let index = repo.load_index().await?;
    let mut out = Vec::new();
    for (volume, (item, ranges)) in by_volume {
        let item = item.ok_or_else(|| {
            StepError::invalid(format!(
                "copy-volume results for {volume}, which no item names"
            ))
        })?;
        if item.mover != "ebs" {
            let job = by_job
                .get(volume)
                .ok_or_else(|| StepError::invalid(format!("no copy-volume result for {volume}")))?;
            let (node, data) = job_volume(repo, item, job).await?;
            out.push(CopiedVolume { data, node });
            continue;
        }
        let node = assemble(repo, &index, &item.claim.name, item.volume_size, &ranges).await?;
        let base = ranges
            .iter()
            .any(|r| r.incremental)
            .then(|| item.base.as_ref().map(|b| b.handle.clone()))
            .flatten();
        let mut data = item.volume_data(base);
        data.blocks_read = ranges.iter().map(|r| r.blocks_read).sum();
        data.bytes_read = ranges.iter().map(|r| r.bytes_read).sum();
        data.bytes_stored = ranges.iter().map(|r| r.bytes_stored).sum();
        out.push(CopiedVolume { data, node });
    }
    Ok(out)
}

/// After a commit: delete Lifeboat's VolumeSnapshots of the claims whose
/// data was just copied, but the newest `volume_snapshots_kept` (fleet;
/// default 1, this run's: the base of the next incremental). The backup is
/// committed whatever happens here, so a failure is reported in the
/// result, not raised.
pub async fn release_older_snapshots(
    env: &dyn StepEnv,
    state: &State,
    snapshot: &lifeboat_repo::Snapshot,
) -> Vec<String> {
    let volumes = snapshot
        .cluster
        .as_ref()
        .map(|c| c.volumes.as_slice())
        .unwrap_or(&[]);
    let Some(plan) = state.plan.as_ref() else {
        return vec![];
    };
    if volumes.is_empty() {
        return vec![];
    }
    let cluster = match env.cluster(&plan.cluster, &plan.access).await {
        Ok(c) => c,
        Err(e) => return vec![format!("older volume snapshots kept: {e}")],
    };
    let run = run_name(state);
    let keep = plan.volume_snapshots_kept.unwrap_or(1) as usize;
    let mut out = Vec::new();
    for v in volumes {
        match csi::delete_older_snapshots(&cluster, &v.namespace, &v.claim, &run, keep).await {
            Ok(names) => out.extend(names.into_iter().map(|n| format!("{}/{n}", v.namespace))),
            Err(e) => out.push(format!(
                "older volume snapshots of {}/{} kept: {e}",
                v.namespace, v.claim
            )),
        }
    }
    out
}
