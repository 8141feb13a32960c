//! The volume steps: snapshot-volumes and copy-volume (backup), the volume
//! part of commit, and restore-volumes.
//!
//! Claims on the EBS CSI driver are copied through the EBS direct APIs, one
//! Map item per block range of each volume; a range's result is durable
//! once returned, so a retried item rereads only its own range. Claims on
//! other drivers are snapshotted and listed as not copied, with the reason
//! (the filesystem mover, a Job in the protected cluster, is not built yet).

use crate::env::StepEnv;
use crate::state::{from_value, to_value, State, Volumes};
use crate::StepError;
use lifeboat_kube::Cluster;
use lifeboat_ops::cluster::{volume_path, CopiedVolume, ExportedState};
use lifeboat_ops::volume::{assemble, copy_range, plan_ranges, ByteRange, CopyOptions, RangeCopy};
use lifeboat_ops::Progress;
use lifeboat_repo::{Id, Repository, VolumeData};
use lifeboat_volume::csi::{self, Claim, CsiSnapshot, Wait};
use lifeboat_volume::ebs::EbsSnapshot;
use lifeboat_volume::BlockSource;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The EBS CSI driver, whose snapshots the EBS direct APIs read.
pub const EBS_DRIVER: &str = "ebs.csi.aws.com";
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

/// Where the previous copy of a volume is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Base {
    /// The repository snapshot holding it.
    pub snapshot: Id,
    /// The driver snapshot it was copied from.
    pub handle: String,
}

/// One Map item's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CopyResult {
    pub volume: String,
    #[serde(flatten)]
    pub copy: RangeCopy,
}

fn range_bytes() -> u64 {
    std::env::var("LIFEBOAT_RANGE_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|v| *v > 0)
        .unwrap_or(RANGE_BYTES)
}

fn run_name(state: &State) -> String {
    state
        .execution
        .as_ref()
        .and_then(|e| e.name.clone())
        .unwrap_or_else(|| state.started().format("%Y%m%dt%H%M%S").to_string())
}

/// The claims whose objects the export holds, from its tree.
async fn exported_claims(
    repo: &Repository,
    exported: &ExportedState,
) -> Result<Vec<(String, String)>, StepError> {
    let index = repo.load_index().await?;
    let mut out = Vec::new();
    let mut tree = repo.load_tree(&index, &exported.tree).await?;
    for dir in ["objects", "persistentvolumeclaims"] {
        let Some(sub) = tree
            .nodes
            .iter()
            .find(|n| n.name == dir)
            .and_then(|n| n.subtree)
        else {
            return Ok(out);
        };
        tree = repo.load_tree(&index, &sub).await?;
    }
    for ns in tree.nodes {
        if let Some(sub) = ns.subtree {
            for claim in repo.load_tree(&index, &sub).await?.nodes {
                out.push((ns.name.clone(), claim.name));
            }
        }
    }
    Ok(out)
}

/// The newest earlier snapshot of `cluster` in `repo` with an EBS copy of
/// `claim`: its id and the driver snapshot handle.
async fn previous_copy(
    repo: &Repository,
    cluster: &str,
    claim: &Claim,
) -> Result<Option<Base>, StepError> {
    let mut best: Option<(chrono::DateTime<chrono::Utc>, Base)> = None;
    for (id, snap) in repo.snapshots().await? {
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
                        snapshot: id,
                        handle: v.csi_snapshot.clone(),
                    },
                ));
            }
        }
    }
    Ok(best.map(|(_, b)| b))
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
    let mut volumes = Volumes::default();
    for (ns, name) in claims {
        match snapshot_one(env, &repo, &cluster, plan, &ns, &name, &run).await {
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

/// Snapshot one claim; `Err` is the reason its data is not copied (a
/// claim that cannot be snapshotted does not fail the backup: its objects
/// are kept, and the report names it).
async fn snapshot_one(
    env: &dyn StepEnv,
    repo: &Repository,
    cluster: &Cluster,
    plan: &crate::state::Plan,
    ns: &str,
    name: &str,
    run: &str,
) -> Result<Vec<CopyItem>, String> {
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
        return Err(format!(
            "snapshotted as {} (driver {}), but its data is not copied: only {EBS_DRIVER} volumes are copied in this build",
            snapshot.name, claim.driver
        ));
    }
    let client = env
        .ebs(plan.region.as_deref())
        .await
        .map_err(|e| e.to_string())?;
    let source = EbsSnapshot::new(client, snapshot.handle.clone());
    let geometry = source.geometry().await.map_err(|e| e.to_string())?;
    let chunk = repo.config().chunking.fixed_size;
    let ranges = plan_ranges(geometry, chunk, range_bytes()).map_err(|e| e.to_string())?;
    let base = previous_copy(repo, &plan.cluster, &claim)
        .await
        .map_err(|e| e.to_string())?
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

/// The content of `path` in repository snapshot `snapshot`.
async fn node_at(
    repo: &Repository,
    snapshot: &Id,
    path: &str,
) -> Result<Option<lifeboat_repo::Node>, StepError> {
    let snap: lifeboat_repo::Snapshot = repo
        .load_file(lifeboat_repo::FileKind::Snapshot, snapshot)
        .await?;
    let index = repo.load_index().await?;
    let mut tree = repo.load_tree(&index, &snap.tree).await?;
    let parts: Vec<&str> = path.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        let Some(node) = tree.nodes.into_iter().find(|n| n.name == *part) else {
            return Ok(None);
        };
        if i + 1 == parts.len() {
            return Ok(Some(node));
        }
        let Some(sub) = node.subtree else {
            return Ok(None);
        };
        tree = repo.load_tree(&index, &sub).await?;
    }
    Ok(None)
}

/// Copy one range of one volume (a Map item).
pub async fn copy_volume(env: &dyn StepEnv, input: Value) -> Result<Value, StepError> {
    let item: CopyItem = from_value(
        input.get("volume").cloned().unwrap_or(Value::Null),
        "copy-volume item `volume`",
    )?;
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
            let path = volume_path(&item.claim.namespace, &item.claim.name);
            node_at(&repo, &b.snapshot, &path)
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
        copy,
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
    for item in &items {
        by_volume.entry(&item.volume).or_default().0 = Some(item);
    }
    for c in &copies {
        by_volume
            .entry(&c.volume)
            .or_default()
            .1
            .push(c.copy.clone());
    }
    let index = repo.load_index().await?;
    let mut out = Vec::new();
    for (volume, (item, ranges)) in by_volume {
        let item = item.ok_or_else(|| {
            StepError::invalid(format!(
                "copy-volume results for {volume}, which no item names"
            ))
        })?;
        let node = assemble(repo, &index, &item.claim.name, item.volume_size, &ranges).await?;
        out.push(CopiedVolume {
            data: VolumeData {
                namespace: item.claim.namespace.clone(),
                claim: item.claim.name.clone(),
                volume: item.claim.volume.clone(),
                driver: item.claim.driver.clone(),
                storage_class: item.claim.storage_class.clone(),
                mode: item.claim.mode.clone(),
                size: item.volume_size,
                csi_snapshot: item.snapshot.handle.clone(),
                snapshot_class: item.snapshot.class.clone(),
                group: item.snapshot.group.clone(),
                mover: item.mover.clone(),
                path: volume_path(&item.claim.namespace, &item.claim.name),
                base: ranges
                    .iter()
                    .any(|r| r.incremental)
                    .then(|| item.base.as_ref().map(|b| b.handle.clone()))
                    .flatten(),
                blocks_read: ranges.iter().map(|r| r.blocks_read).sum(),
                bytes_read: ranges.iter().map(|r| r.bytes_read).sum(),
                bytes_stored: ranges.iter().map(|r| r.bytes_stored).sum(),
            },
            node,
        });
    }
    Ok(out)
}

/// After a commit: delete Lifeboat's VolumeSnapshots of earlier runs for
/// the claims whose data was just copied (the newest stays, the base of the
/// next incremental). The backup is committed whatever happens here, so a
/// failure is reported in the result, not raised.
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
    let mut out = Vec::new();
    for v in volumes {
        match csi::delete_older_snapshots(&cluster, &v.namespace, &v.claim, &run).await {
            Ok(names) => out.extend(names.into_iter().map(|n| format!("{}/{n}", v.namespace))),
            Err(e) => out.push(format!(
                "older volume snapshots of {}/{} kept: {e}",
                v.namespace, v.claim
            )),
        }
    }
    out
}

/// `$.restored_volumes` (restore-volumes).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RestoredVolumes {
    pub volumes: Vec<RestoredVolume>,
    /// Volumes of the snapshot whose data is not restored, with the reason.
    #[serde(default)]
    pub not_restored: Vec<String>,
}

/// One volume restored as a new driver snapshot in the target region.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestoredVolume {
    pub namespace: String,
    pub claim: String,
    /// The VolumeSnapshot the restored claim takes as its dataSource.
    pub volume_snapshot: String,
    /// The new driver snapshot.
    pub handle: String,
    pub blocks_written: u64,
    pub bytes_written: u64,
    /// The new snapshot read back and compared, chunk by chunk, with the
    /// backup (keyed hashes).
    pub matched: bool,
}

impl RestoredVolumes {
    /// `namespace/claim` -> VolumeSnapshot, for the workloads' restore.
    pub fn sources(&self) -> BTreeMap<String, String> {
        self.volumes
            .iter()
            .map(|v| {
                (
                    format!("{}/{}", v.namespace, v.claim),
                    v.volume_snapshot.clone(),
                )
            })
            .collect()
    }
}

/// Write each EBS volume of the snapshot into a new EBS snapshot in the
/// target region, compare it with the backup, and bring it into the target
/// cluster as a VolumeSnapshot for its claim.
pub async fn restore_volumes(env: &dyn StepEnv, state: State) -> Result<Value, StepError> {
    let resolved = State::need(&state.resolved, "resolved", "resolve")?;
    let repo = env.repository().await?;
    let snapshot: lifeboat_repo::Snapshot = repo
        .load_file(lifeboat_repo::FileKind::Snapshot, &resolved.snapshot)
        .await?;
    let volumes = snapshot.cluster.map(|c| c.volumes).unwrap_or_default();
    let mut out = RestoredVolumes::default();
    if volumes.is_empty() {
        return to_value(&out);
    }
    let fleet = env.fleet().await?;
    let region = fleet.cluster(&resolved.target_cluster)?.region.clone();
    let cluster = env
        .cluster(&resolved.target_cluster, &resolved.access)
        .await?;
    let client = env.ebs(region.as_deref()).await?;
    let run = run_name(&state);
    for v in volumes {
        if v.mover != "ebs" {
            out.not_restored.push(format!(
                "{}/{}: copied by the {} mover, which this build cannot restore",
                v.namespace, v.claim, v.mover
            ));
            continue;
        }
        out.volumes
            .push(restore_one(&repo, &resolved.snapshot, &cluster, &client, &v, &run).await?);
    }
    to_value(&out)
}

async fn restore_one(
    repo: &Repository,
    snapshot: &Id,
    cluster: &Cluster,
    client: &aws_sdk_ebs::Client,
    v: &VolumeData,
    run: &str,
) -> Result<RestoredVolume, StepError> {
    let node = node_at(repo, snapshot, &v.path).await?.ok_or_else(|| {
        StepError::not_found(format!(
            "snapshot {} lists volume {}/{} but its tree has no {}",
            snapshot.short(),
            v.namespace,
            v.claim,
            v.path
        ))
    })?;
    let token = blake3::hash(format!("{run}/{}/{}", v.namespace, v.claim).as_bytes()).to_hex();
    let tags = vec![
        (
            "lifeboat.dev/claim".to_string(),
            format!("{}/{}", v.namespace, v.claim),
        ),
        ("lifeboat.dev/snapshot".to_string(), snapshot.to_hex()),
    ];
    let writer = lifeboat_volume::ebs::EbsWriter::start(
        client.clone(),
        v.size,
        &format!("Lifeboat restore of {}/{}", v.namespace, v.claim),
        &tags,
        &token[..32],
    )
    .await?;
    let index = repo.load_index().await?;
    let written = lifeboat_ops::volume::restore_volume(
        repo,
        &index,
        &node,
        &writer,
        Arc::new(Progress::default()),
    )
    .await?;
    let copy = EbsSnapshot::new(client.clone(), written.handle.clone());
    let cmp = lifeboat_ops::volume::compare_volume(repo, &node, &copy).await?;
    if !cmp.matched() {
        return Err(StepError::failed(format!(
            "volume {}/{}: the restored snapshot {} differs from the backup in {} chunk(s), first at byte {}",
            v.namespace,
            v.claim,
            written.handle,
            cmp.mismatch_count,
            cmp.mismatches.first().copied().unwrap_or_default()
        )));
    }
    let name = format!(
        "lifeboat-restore-{}",
        &blake3::hash(format!("{}/{}/{}", v.namespace, v.claim, written.handle).as_bytes())
            .to_hex()[..12]
    );
    let imported = csi::import_snapshot(
        cluster,
        &v.namespace,
        &name,
        &v.driver,
        &written.handle,
        Some(&v.snapshot_class),
        Wait::default(),
    )
    .await?;
    Ok(RestoredVolume {
        namespace: v.namespace.clone(),
        claim: v.claim.clone(),
        volume_snapshot: imported.name,
        handle: written.handle,
        blocks_written: written.blocks_written,
        bytes_written: written.bytes_written,
        matched: true,
    })
}
