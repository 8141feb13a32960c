//! Restore: restore-volumes, and the claims' sources for the workloads.

use super::run_name;
use crate::env::StepEnv;
use crate::state::{to_value, State};
use crate::StepError;
use lifeboat_kube::Cluster;
use lifeboat_ops::cluster::tree_node;
use lifeboat_ops::Progress;
use lifeboat_repo::{Id, Index, Repository, VolumeData};
use lifeboat_volume::csi::{self, Wait};
use lifeboat_volume::ebs::EbsSnapshot;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

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
    /// Where the claim is restored (its namespace mapped, if the request
    /// maps it).
    pub namespace: String,
    /// The claim's namespace as backed up, when a namespace map moved it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_namespace: Option<String>,
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
    /// `namespace/claim` as backed up -> VolumeSnapshot (in the claim's
    /// target namespace), for the workloads' restore.
    pub fn sources(&self) -> BTreeMap<String, String> {
        self.volumes
            .iter()
            .map(|v| {
                let ns = v.source_namespace.as_ref().unwrap_or(&v.namespace);
                (format!("{ns}/{}", v.claim), v.volume_snapshot.clone())
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
    let run = run_name(&state);
    let index = repo.load_index().await?;
    let from = Source {
        repo: &repo,
        index: &index,
        snapshot: &resolved.snapshot,
        tree: &snapshot.tree,
    };
    // Each volume is restored where its claim goes: the request's namespace
    // map applied; the source namespace is kept for the claims' sources.
    let map = &state.request.namespace_map;
    let mut moved_from: BTreeMap<(String, String), String> = BTreeMap::new();
    let volumes: Vec<VolumeData> = volumes
        .into_iter()
        .map(|mut v| {
            if let Some(to) = map.get(&v.namespace) {
                let from = std::mem::replace(&mut v.namespace, to.clone());
                moved_from.insert((v.namespace.clone(), v.claim.clone()), from);
            }
            v
        })
        .collect();
    let (ebs, moved): (Vec<VolumeData>, Vec<VolumeData>) =
        volumes.into_iter().partition(|v| v.mover == "ebs");
    let (moved, unknown): (Vec<VolumeData>, Vec<VolumeData>) = moved
        .into_iter()
        .partition(|v| v.mover == "filesystem" || v.mover == "block");
    for v in unknown {
        out.not_restored.push(format!(
            "{}/{}: copied by the {} mover, which this build cannot restore",
            v.namespace, v.claim, v.mover
        ));
    }
    if !ebs.is_empty() {
        let client = env.ebs(region.as_deref()).await?;
        for v in ebs {
            out.volumes
                .push(restore_one(&from, &cluster, &client, &v, &run).await?);
        }
    }
    out.volumes.extend(
        super::mover_restore::restore_with_jobs(env, &cluster, &resolved.snapshot, &moved, &run)
            .await?,
    );
    for v in &mut out.volumes {
        v.source_namespace = moved_from.remove(&(v.namespace.clone(), v.claim.clone()));
    }
    to_value(&out)
}

/// The snapshot volumes are restored from.
struct Source<'a> {
    repo: &'a Repository,
    index: &'a Index,
    snapshot: &'a Id,
    tree: &'a Id,
}

/// The annotation on an imported VolumeSnapshot that holds what was written
/// into it ([`Written`], JSON): a retried restore-volumes finds the volume
/// done and does not write it again.
pub(super) const RESTORED_ANNOTATION: &str = "lifeboat.dev/restored";

/// What restoring one volume wrote, as recorded on its VolumeSnapshot.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(super) struct Written {
    pub(super) blocks_written: u64,
    pub(super) bytes_written: u64,
}

/// The VolumeSnapshot a restore run imports for a claim: named by the run
/// and the claim, so that a retry of the step looks for the same name.
pub(super) fn restored_snapshot_name(run: &str, v: &VolumeData) -> String {
    format!(
        "lifeboat-restore-{}",
        &blake3::hash(format!("{run}/{}/{}", v.namespace, v.claim).as_bytes()).to_hex()[..12]
    )
}

/// The volume as an earlier attempt of this run restored it, if it did:
/// imported (with `nonce`: a VolumeSnapshot of that name that Lifeboat did
/// not import is refused), ready, and recorded as compared with the backup.
pub(super) async fn restored_before(
    cluster: &Cluster,
    v: &VolumeData,
    name: &str,
    nonce: &str,
) -> Result<Option<RestoredVolume>, StepError> {
    let Some((vs, annotations)) = csi::find_ours(cluster, &v.namespace, name, nonce).await? else {
        return Ok(None);
    };
    let Some(written) = annotations
        .get(RESTORED_ANNOTATION)
        .and_then(|a| serde_json::from_str::<Written>(a).ok())
    else {
        return Ok(None);
    };
    tracing::info!(
        claim = %format!("{}/{}", v.namespace, v.claim),
        volume_snapshot = %vs.name,
        handle = %vs.handle,
        "volume already restored by an earlier attempt of this run; not written again"
    );
    Ok(Some(RestoredVolume {
        namespace: v.namespace.clone(),
        source_namespace: None,
        claim: v.claim.clone(),
        volume_snapshot: vs.name,
        handle: vs.handle,
        blocks_written: written.blocks_written,
        bytes_written: written.bytes_written,
        matched: true,
    }))
}

async fn restore_one(
    from: &Source<'_>,
    cluster: &Cluster,
    client: &aws_sdk_ebs::Client,
    v: &VolumeData,
    run: &str,
) -> Result<RestoredVolume, StepError> {
    let Source {
        repo,
        index,
        snapshot,
        tree,
    } = *from;
    let name = restored_snapshot_name(run, v);
    let nonce = super::mover::nonce(repo.key(), &format!("restored/{}/{name}", v.namespace));
    if let Some(done) = restored_before(cluster, v, &name, &nonce).await? {
        return Ok(done);
    }
    let node = tree_node(repo, index, tree, &v.path)
        .await?
        .ok_or_else(|| {
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
    let written = lifeboat_ops::volume::restore_volume(
        repo,
        index,
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
    let record = serde_json::to_string(&Written {
        blocks_written: written.blocks_written,
        bytes_written: written.bytes_written,
    })
    .map_err(|e| StepError::failed(format!("restore record not serialisable: {e}")))?;
    let import = csi::SnapshotImport {
        namespace: v.namespace.clone(),
        name,
        driver: v.driver.clone(),
        handle: written.handle.clone(),
        class: Some(v.snapshot_class.clone()).filter(|c| !c.is_empty()),
        // The restored copy belongs to whoever restored it: deleting the
        // VolumeSnapshot must not delete the data.
        deletion_policy: csi::DeletionPolicy::Retain,
        annotations: BTreeMap::from([(RESTORED_ANNOTATION.to_string(), record)]),
        nonce,
    };
    let imported = csi::import_snapshot(cluster, &import, Wait::default()).await?;
    Ok(RestoredVolume {
        namespace: v.namespace.clone(),
        source_namespace: None,
        claim: v.claim.clone(),
        volume_snapshot: imported.name,
        handle: written.handle,
        blocks_written: written.blocks_written,
        bytes_written: written.bytes_written,
        matched: true,
    })
}
