//! The filesystem and block movers in the workflows: a Job in the cluster
//! runs `lifeboat volume backup` on a claim made from the VolumeSnapshot,
//! or `lifeboat volume restore --verify` into a new claim that is then
//! snapshotted for the restored claim's dataSource.
//!
//! A step waits for its Job at most `LIFEBOAT_MOVER_WAIT` seconds (default
//! 720, under the Lambda limit); a Job still running then fails the step
//! with `Lifeboat.InProgress`, and the workflow calls it again: the step
//! finds its Job by name and waits on.

use super::backup::{CopyItem, CopyResult};
use super::restore::RestoredVolume;
use crate::env::StepEnv;
use crate::state::Plan;
use crate::{ErrorKind, StepError};
use lifeboat_kube::Cluster;
use lifeboat_repo::{FileKind, Id, Node, Repository, Snapshot, VolumeData};
use lifeboat_volume::csi::{self, Wait};
use lifeboat_volume::mover::{self, Direction, MoverJob};
use lifeboat_volume::VolumeError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// The tag naming the claim a mover's volume snapshot holds.
pub const CLAIM_TAG: &str = "lifeboat.dev/claim";
/// The tag naming the run that made it.
pub const RUN_TAG: &str = "lifeboat.dev/run";
/// The tag naming the cluster.
pub const CLUSTER_TAG: &str = "lifeboat.dev/cluster";
/// The tag naming the driver snapshot it was copied from.
pub const CSI_SNAPSHOT_TAG: &str = "lifeboat.dev/csi-snapshot";

/// The volume snapshot a backup mover Job wrote.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobCopy {
    pub snapshot: Id,
    pub files: u64,
    pub bytes_read: u64,
    pub bytes_stored: u64,
}

/// The movers that run as Jobs, by volume mode.
pub fn mover_for(mode: &str) -> &'static str {
    if mode == "Block" {
        "block"
    } else {
        "filesystem"
    }
}

fn wait() -> Wait {
    let secs = std::env::var("LIFEBOAT_MOVER_WAIT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(720);
    Wait {
        timeout: Duration::from_secs(secs),
        poll: Duration::from_secs(1),
    }
}

/// `lifeboat-<what>-<hash>`: stable for a run and claim, so a retried step
/// finds its own Job.
fn job_name(what: &str, key: &str) -> String {
    format!(
        "lifeboat-{what}-{}",
        &blake3::hash(key.as_bytes()).to_hex()[..12]
    )
}

/// A Job still running becomes `Lifeboat.InProgress` (call again); any
/// other failure removes the Job, so a retry starts afresh.
async fn failed(cluster: &Cluster, job: &MoverJob, e: VolumeError) -> StepError {
    if let VolumeError::Timeout { .. } = e {
        return StepError::new(ErrorKind::InProgress, e.to_string());
    }
    if let Err(cleanup) = mover::remove(cluster, job).await {
        tracing::warn!(job = %job.name, error = %cleanup, "mover job not removed");
    }
    e.into()
}

/// copy-volume for a claim moved by a Job: start it (or find it), wait, and
/// check the volume snapshot it reports.
pub(super) async fn copy_with_job(
    env: &dyn StepEnv,
    item: &CopyItem,
    plan: &Plan,
    run: &str,
) -> Result<CopyResult, StepError> {
    let cluster = env.cluster(&plan.cluster, &plan.access).await?;
    let access = env.mover().await?;
    let name = job_name("backup", &format!("{run}/{}", item.volume));
    let tags = BTreeMap::from([
        (CLAIM_TAG.to_string(), item.volume.clone()),
        (RUN_TAG.to_string(), run.to_string()),
        (CLUSTER_TAG.to_string(), plan.cluster.clone()),
        (CSI_SNAPSHOT_TAG.to_string(), item.snapshot.handle.clone()),
    ]);
    let job = MoverJob {
        namespace: item.claim.namespace.clone(),
        name: name.clone(),
        run: run.to_string(),
        claim: item.claim.name.clone(),
        volume_claim: name,
        block: item.claim.mode == "Block",
        direction: Direction::Backup {
            tags,
            // One volume, one host: the parent is this claim's last copy.
            host: format!("{}/{}", plan.cluster, item.volume),
            parent: item.base.as_ref().map(|b| b.snapshot.to_hex()),
        },
    };
    let staging = job.staging_claim(
        item.claim.storage_class.as_deref(),
        item.snapshot.size.max(item.claim.size),
        Some(&item.snapshot),
    );
    mover::start(&cluster, &job, &access.settings, &staging, &access.env).await?;
    let done = match mover::wait_for(&cluster, &job, wait()).await {
        Ok(done) => done,
        Err(e) => return Err(failed(&cluster, &job, e).await),
    };
    mover::remove(&cluster, &job).await?;
    let id = done
        .result
        .get("snapshot")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<Id>().ok())
        .ok_or_else(|| {
            StepError::failed(format!(
                "mover job {} (pod {}) names no snapshot in its result: {:.300}",
                job.name, done.pod, done.result
            ))
        })?;
    let repo = env.repository().await?;
    let snap: Snapshot = repo.load_file(FileKind::Snapshot, &id).await?;
    let tagged = |k: &str, v: &str| snap.tags.get(k).map(String::as_str) == Some(v);
    if !tagged(CLAIM_TAG, &item.volume) || !tagged(RUN_TAG, run) {
        return Err(StepError::failed(format!(
            "mover job {} reported snapshot {}, which is not tagged as {} of run {run}",
            job.name,
            id.short(),
            item.volume
        )));
    }
    Ok(CopyResult {
        volume: item.volume.clone(),
        copy: None,
        job: Some(JobCopy {
            snapshot: id,
            files: snap.summary.files,
            bytes_read: snap.summary.bytes_read,
            bytes_stored: snap.summary.bytes_stored,
        }),
        failed: None,
    })
}

/// The volume a mover Job backed up: the one node at the root of its
/// snapshot, named after the claim, and its record.
pub(super) async fn job_volume(
    repo: &Repository,
    item: &CopyItem,
    copy: &JobCopy,
) -> Result<(Node, VolumeData), StepError> {
    let index = repo.load_index().await?;
    let snap: Snapshot = repo.load_file(FileKind::Snapshot, &copy.snapshot).await?;
    let root = repo.load_tree(&index, &snap.tree).await?;
    let mut node = match root.nodes.as_slice() {
        [one] => one.clone(),
        _ => {
            return Err(StepError::failed(format!(
                "the mover's snapshot {} of {} holds {} paths, not one volume",
                copy.snapshot.short(),
                item.volume,
                root.nodes.len()
            )))
        }
    };
    node.name = item.claim.name.clone();
    node.name_bytes = None;
    let mut data = item.volume_data(snap.parent.map(|p| p.to_hex()));
    data.bytes_read = copy.bytes_read;
    data.bytes_stored = copy.bytes_stored;
    Ok((node, data))
}

/// restore-volumes for volumes a mover Job copied: start every Job first
/// (they run side by side), then wait for each, snapshot its claim, and
/// remove it.
pub(super) async fn restore_with_jobs(
    env: &dyn StepEnv,
    cluster: &Cluster,
    snapshot: &Id,
    volumes: &[VolumeData],
    run: &str,
) -> Result<Vec<RestoredVolume>, StepError> {
    if volumes.is_empty() {
        return Ok(vec![]);
    }
    let access = env.mover().await?;
    let mut jobs = Vec::new();
    for v in volumes {
        let name = job_name("restore", &format!("{run}/{}/{}", v.namespace, v.claim));
        let job = MoverJob {
            namespace: v.namespace.clone(),
            name: name.clone(),
            run: run.to_string(),
            claim: v.claim.clone(),
            volume_claim: name,
            block: v.mode == "Block",
            direction: Direction::Restore {
                snapshot: snapshot.to_hex(),
                path: v.path.clone(),
            },
        };
        let claim = job.staging_claim(v.storage_class.as_deref(), v.size, None);
        mover::start(cluster, &job, &access.settings, &claim, &access.env).await?;
        jobs.push((job, v));
    }
    let mut out = Vec::new();
    for (job, v) in jobs {
        let done = match mover::wait_for(cluster, &job, wait()).await {
            Ok(done) => done,
            Err(e) => return Err(failed(cluster, &job, e).await),
        };
        // Snapshot the filled claim before the Job (and the claim) go.
        let staged = csi::claim(cluster, &job.namespace, &job.volume_claim).await?;
        let class = csi::snapshot_class(cluster, &staged, None).await?;
        let snap = csi::take_snapshot(cluster, &staged, &class, run, Wait::default()).await?;
        mover::remove(cluster, &job).await?;
        let summary = done.result.get("summary").cloned().unwrap_or(Value::Null);
        let verification = summary.get("verification");
        let matched = verification
            .and_then(|v| v.get("mismatch_count"))
            .and_then(Value::as_u64)
            == Some(0);
        if !matched {
            return Err(StepError::failed(format!(
                "volume {}/{}: the mover's restore was not verified against the backup: {}",
                v.namespace,
                v.claim,
                verification
                    .map(Value::to_string)
                    .unwrap_or_else(|| "no verification in its result".into())
            )));
        }
        out.push(RestoredVolume {
            namespace: v.namespace.clone(),
            claim: v.claim.clone(),
            volume_snapshot: snap.name,
            handle: snap.handle,
            blocks_written: 0,
            bytes_written: summary.get("bytes").and_then(Value::as_u64).unwrap_or(0),
            matched,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn copy_results_of_both_movers_read_back() {
        let id = "ab".repeat(32);
        let job: CopyResult = serde_json::from_value(json!({
            "volume": "shop/files",
            "job": {"snapshot": id, "files": 3, "bytes_read": 10, "bytes_stored": 7},
        }))
        .unwrap();
        assert!(job.copy.is_none());
        assert_eq!(job.job.as_ref().unwrap().bytes_stored, 7);
        let ebs: CopyResult = serde_json::from_value(json!({
            "volume": "shop/data",
            "range": {"start": 0, "end": 65536},
            "tree": id,
            "blocks_read": 1, "bytes_read": 512, "chunks_kept": 0,
            "bytes_new": 512, "bytes_stored": 100, "incremental": false,
        }))
        .unwrap();
        assert!(ebs.job.is_none());
        assert_eq!(ebs.copy.as_ref().unwrap().bytes_read, 512);
        // And each writes what it read.
        let again: CopyResult =
            serde_json::from_value(serde_json::to_value(&ebs).unwrap()).unwrap();
        assert_eq!(again.copy.unwrap().bytes_stored, 100);
    }

    #[test]
    fn job_names_are_stable_and_short() {
        let a = job_name("backup", "run-1/shop/files");
        assert_eq!(a, job_name("backup", "run-1/shop/files"));
        assert_ne!(a, job_name("backup", "run-2/shop/files"));
        assert!(a.starts_with("lifeboat-backup-") && a.len() <= 63);
        assert_eq!(mover_for("Block"), "block");
        assert_eq!(mover_for("Filesystem"), "filesystem");
    }
}
