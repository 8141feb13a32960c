//! Backup: copy-volume, and the volume part of commit (snapshot-volumes is
//! in [`super::snapshot`]).

use super::mover::{copy_with_job, job_volume, JobCopy};
use super::run_name;
use crate::env::StepEnv;
use crate::state::{from_value, to_value, State};
use crate::StepError;
use lifeboat_ops::cluster::{tree_node, volume_path, CopiedVolume};
use lifeboat_ops::volume::{assemble, copy_range, ByteRange, CopyOptions, RangeCopy};
use lifeboat_ops::Progress;
use lifeboat_repo::{FileKind, Id, Repository, Snapshot, VolumeData};
use lifeboat_volume::csi::{self, Claim, CsiSnapshot};
use lifeboat_volume::ebs::EbsSnapshot;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

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
    /// The copy failed for good: the definition's `CopyFailed` state makes
    /// this result from the Catch's `{Error, Cause}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<crate::state::Failure>,
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
        failed: None,
    })
}

/// The volumes whose copies all succeeded, ready to attach to the snapshot,
/// and the volumes left out because a copy of theirs failed
/// (`namespace/claim: Error: Cause`).
pub async fn copied_volumes(
    repo: &Repository,
    state: &State,
) -> Result<(Vec<CopiedVolume>, Vec<String>), StepError> {
    let items: Vec<CopyItem> = match &state.volumes {
        Some(v) => v
            .items
            .iter()
            .map(|i| from_value(i.clone(), "volumes item"))
            .collect::<Result<_, _>>()?,
        None => return Ok((vec![], vec![])),
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
    let mut failed: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for c in &copies {
        if let Some(f) = &c.failed {
            failed.entry(&c.volume).or_default().push(format!(
                "{}: {}",
                f.error,
                failure_message(&f.cause)
            ));
        }
    }
    for c in copies
        .iter()
        .filter(|c| !failed.contains_key(c.volume.as_str()))
    {
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
        if failed.contains_key(volume) {
            continue;
        }
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
    let failed = failed
        .into_iter()
        .map(|(volume, reasons)| format!("{volume}: {}", reasons.join("; ")))
        .collect();
    Ok((out, failed))
}

/// A Lambda error's cause is the function's error JSON as a string
/// (`{"errorType": ..., "errorMessage": ...}`); its message, else the text.
fn failure_message(cause: &str) -> String {
    serde_json::from_str::<Value>(cause)
        .ok()
        .and_then(|v| {
            v.get("errorMessage")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| cause.to_string())
}

/// After a commit: delete Lifeboat's VolumeSnapshots of the claims whose
/// data was just copied, but the newest `volume_snapshots_kept` (fleet;
/// default 1, this run's: the base of the next incremental). A group's
/// VolumeGroupSnapshots are kept and deleted the same way (their member
/// snapshots go with them); a claim that was snapshotted with its group
/// keeps one single snapshot fewer, since the group's is its newest. The
/// backup is committed whatever happens here, so a failure is reported in
/// the result, not raised.
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
    let mut groups = BTreeSet::new();
    for v in volumes {
        let singles_kept = match &v.group {
            Some(g) => {
                groups.insert((v.namespace.as_str(), g.as_str()));
                keep.saturating_sub(1)
            }
            None => keep,
        };
        match csi::delete_older_snapshots(&cluster, &v.namespace, &v.claim, &run, singles_kept)
            .await
        {
            Ok(names) => out.extend(names.into_iter().map(|n| format!("{}/{n}", v.namespace))),
            Err(e) => out.push(format!(
                "older volume snapshots of {}/{} kept: {e}",
                v.namespace, v.claim
            )),
        }
    }
    for (ns, vgs) in groups {
        let released = match csi::group_of_snapshot(&cluster, ns, vgs).await {
            Ok(Some(group)) => {
                csi::delete_older_group_snapshots(&cluster, ns, &group, &run, keep).await
            }
            Ok(None) => Ok(vec![]),
            Err(e) => Err(e),
        };
        match released {
            Ok(names) => out.extend(names.into_iter().map(|n| format!("{ns}/{n}"))),
            Err(e) => out.push(format!(
                "older volume group snapshots of {ns}/{vgs} kept: {e}"
            )),
        }
    }
    out
}
