//! The filesystem and block movers in the workflows: a Job in Lifeboat's
//! own namespace (`LIFEBOAT_MOVER_NAMESPACE`, default `lifeboat-system`)
//! runs `lifeboat volume backup` on a claim made there from the
//! application's VolumeSnapshot (imported into that namespace), or
//! `lifeboat volume restore --verify` into a new claim there, which is then
//! snapshotted and handed to the application's namespace as the restored
//! claim's dataSource. Nothing of the mover's, and no passphrase, is ever
//! in the application's namespace.
//!
//! Every object made for a Job carries a nonce ([`nonce`]): a keyed hash of
//! the object's name under a key derived from the repository's master key,
//! so only Lifeboat can compute it, and a retried step (which has no state
//! of its own) computes the same one. An object found under the name
//! without it is refused, never used.
//!
//! A step waits for its Job at most `LIFEBOAT_MOVER_WAIT` seconds (default
//! 720, under the Lambda limit); a Job still running then fails the step
//! with `Lifeboat.InProgress`, and the workflow calls it again: the step
//! finds its Job by name and waits on.

use super::backup::{CopyItem, CopyResult};
use crate::env::StepEnv;
use crate::state::Plan;
use crate::{ErrorKind, StepError};
use lifeboat_kube::Cluster;
use lifeboat_repo::{FileKind, Id, MasterKey, Node, Repository, Snapshot, VolumeData};
use lifeboat_volume::csi::{self, DeletionPolicy, SnapshotImport, Wait};
use lifeboat_volume::mover::{self, Direction, MoverJob, MoverSettings, CLAIM_ANNOTATION};
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

pub(super) fn wait() -> Wait {
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
pub(super) fn job_name(what: &str, key: &str) -> String {
    format!(
        "lifeboat-{what}-{}",
        &blake3::hash(key.as_bytes()).to_hex()[..12]
    )
}

/// Lifeboat's nonce for the object `what` (kind, namespace and name): 128
/// bits of a BLAKE3 hash keyed with a key derived from the master key's id
/// key. Without the passphrase nobody can compute it, so nobody can plant
/// an object that passes for Lifeboat's; with it, a retried step finds its
/// own objects without keeping any state.
pub(super) fn nonce(key: &MasterKey, what: &str) -> String {
    let derived = key.blob_id(b"lifeboat.dev/nonce-key/v1 (mover jobs, imported snapshots)");
    blake3::keyed_hash(&derived.0, what.as_bytes()).to_hex()[..32].to_string()
}

/// Remove everything made for `job` in Lifeboat's namespace: the Job, its
/// Secret and staging claim, and the VolumeSnapshot of the same name (the
/// imported source of a backup, the filled claim's snapshot of a restore)
/// with its content. Only objects carrying the job's nonce are deleted.
pub(super) async fn cleanup(cluster: &Cluster, job: &MoverJob) -> Result<(), VolumeError> {
    mover::remove(cluster, job).await?;
    csi::delete_snapshot_and_content(cluster, &job.namespace, &job.name, &job.nonce).await
}

/// A Job still running becomes `Lifeboat.InProgress` (call again); any
/// other failure removes the Job, so a retry starts afresh.
pub(super) async fn failed(cluster: &Cluster, job: &MoverJob, e: VolumeError) -> StepError {
    if let VolumeError::Timeout { .. } = e {
        return StepError::new(ErrorKind::InProgress, e.to_string());
    }
    if let Err(cleanup) = cleanup(cluster, job).await {
        tracing::warn!(job = %job.name, error = %cleanup, "mover job not removed");
    }
    e.into()
}

/// The backup Job for one Map item, in Lifeboat's namespace.
fn backup_job(
    item: &CopyItem,
    plan: &Plan,
    run: &str,
    settings: &MoverSettings,
    key: &MasterKey,
) -> MoverJob {
    let name = job_name("backup", &format!("{run}/{}", item.volume));
    let tags = BTreeMap::from([
        (CLAIM_TAG.to_string(), item.volume.clone()),
        (RUN_TAG.to_string(), run.to_string()),
        (CLUSTER_TAG.to_string(), plan.cluster.clone()),
        (CSI_SNAPSHOT_TAG.to_string(), item.snapshot.handle.clone()),
    ]);
    MoverJob {
        namespace: settings.namespace.clone(),
        nonce: nonce(key, &format!("mover/{}/{name}", settings.namespace)),
        name: name.clone(),
        run: run.to_string(),
        claim_namespace: item.claim.namespace.clone(),
        claim: item.claim.name.clone(),
        volume_claim: name,
        block: item.claim.mode == "Block",
        direction: Direction::Backup {
            tags,
            // One volume, one host: the parent is this claim's last copy.
            host: format!("{}/{}", plan.cluster, item.volume),
            parent: item.base.as_ref().map(|b| b.snapshot.to_hex()),
        },
    }
}

/// The application's snapshot as seen from Lifeboat's namespace: a
/// pre-provisioned content with the same handle, deletion policy Retain
/// (deleting it leaves the application's snapshot alone), and a
/// VolumeSnapshot named after the Job.
fn backup_source(item: &CopyItem, job: &MoverJob) -> SnapshotImport {
    SnapshotImport {
        namespace: job.namespace.clone(),
        name: job.name.clone(),
        driver: item.snapshot.driver.clone(),
        handle: item.snapshot.handle.clone(),
        class: Some(item.snapshot.class.clone()).filter(|c| !c.is_empty()),
        deletion_policy: DeletionPolicy::Retain,
        annotations: BTreeMap::from([(CLAIM_ANNOTATION.to_string(), item.volume.clone())]),
        nonce: job.nonce.clone(),
    }
}

/// copy-volume for a claim moved by a Job: import its snapshot into
/// Lifeboat's namespace, start the Job there (or find it), wait, and check
/// the volume snapshot it reports.
pub(super) async fn copy_with_job(
    env: &dyn StepEnv,
    item: &CopyItem,
    plan: &Plan,
    run: &str,
) -> Result<CopyResult, StepError> {
    let cluster = env.cluster(&plan.cluster, &plan.access).await?;
    let access = env.mover().await?;
    let repo = env.repository().await?;
    let job = backup_job(item, plan, run, &access.settings, repo.key());
    mover::ensure_namespace(&cluster, &access.settings).await?;
    // Before the import: a name that is not Lifeboat's leaves nothing made.
    mover::check_name(&cluster, &job).await?;
    let source =
        csi::import_snapshot(&cluster, &backup_source(item, &job), Wait::default()).await?;
    let staging = job.staging_claim(
        item.claim.storage_class.as_deref(),
        item.snapshot.size.max(item.claim.size).max(source.size),
        Some(&source.name),
    );
    // A failed start (an object of the Job's name that is not Lifeboat's,
    // say) removes what this run made, and only that.
    if let Err(e) = mover::start(&cluster, &job, &access.settings, &staging, &access.env).await {
        return Err(failed(&cluster, &job, e).await);
    }
    let done = match mover::wait_for(&cluster, &job, wait()).await {
        Ok(done) => done,
        Err(e) => return Err(failed(&cluster, &job, e).await),
    };
    cleanup(&cluster, &job).await?;
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn key(seed: u8) -> MasterKey {
        MasterKey::from_parts([seed; 32], [seed.wrapping_add(1); 32], 7)
    }

    pub(crate) fn item() -> CopyItem {
        serde_json::from_value(json!({
            "volume": "shop/files",
            "claim": {"namespace": "shop", "name": "files", "volume": "pv-1",
                "driver": "hostpath.csi.k8s.io", "volume_handle": "v1",
                "storage_class": "hostpath", "size": 67108864, "mode": "Filesystem"},
            "snapshot": {"namespace": "shop", "name": "lifeboat-files-0123456789",
                "class": "csi-hostpath-snapclass", "content": "snapcontent-1",
                "driver": "hostpath.csi.k8s.io", "handle": "snap-1", "size": 67108864},
            "mover": "filesystem", "volume_size": 67108864, "block_size": 4096,
            "range": {"start": 0, "end": 67108864},
        }))
        .unwrap()
    }

    fn plan() -> Plan {
        serde_json::from_value(json!({
            "cluster": "primary",
            "access": {"kubeconfig": {"path": "/k"}},
            "scope": {}, "tags": {}, "repository": "s3://b/r",
        }))
        .unwrap()
    }

    /// Nothing of a mover's, and above all not the Secret with the
    /// passphrase, is in the application's namespace.
    #[test]
    fn a_backup_job_and_its_secret_are_in_lifeboats_namespace_not_the_claims() {
        let settings = MoverSettings::default();
        let job = backup_job(&item(), &plan(), "run-1", &settings, &key(1));
        assert_eq!(job.namespace, "lifeboat-system");
        assert_eq!(job.claim_namespace, "shop");
        let env = BTreeMap::from([("LIFEBOAT_PASSWORD".to_string(), "p".to_string())]);
        let source = backup_source(&item(), &job);
        let objects = [
            job.job(&settings),
            job.secret("uid", &env),
            job.staging_claim(None, 1, Some(&source.name)),
            source.snapshot(),
        ];
        for obj in &objects {
            assert_eq!(obj["metadata"]["namespace"], "lifeboat-system", "{obj}");
            assert_eq!(
                obj["metadata"]["annotations"][csi::NONCE_ANNOTATION],
                job.nonce.as_str()
            );
        }
        // The imported content is a view of the application's snapshot:
        // removing it leaves that snapshot alone.
        let content = source.content();
        assert_eq!(content["spec"]["source"]["snapshotHandle"], "snap-1");
        assert_eq!(content["spec"]["deletionPolicy"], "Retain");
        assert_eq!(
            content["spec"]["volumeSnapshotRef"]["namespace"],
            "lifeboat-system"
        );
        let other = MoverSettings {
            namespace: "backup-ops".into(),
            ..MoverSettings::default()
        };
        let moved = backup_job(&item(), &plan(), "run-1", &other, &key(1));
        assert_eq!(moved.job(&other)["metadata"]["namespace"], "backup-ops");
        assert_ne!(moved.nonce, job.nonce);
    }

    #[test]
    fn nonces_are_stable_per_object_and_need_the_master_key() {
        let a = nonce(&key(1), "mover/lifeboat-system/lifeboat-backup-0123");
        assert_eq!(
            a,
            nonce(&key(1), "mover/lifeboat-system/lifeboat-backup-0123")
        );
        assert_eq!(a.len(), 32);
        assert_ne!(
            a,
            nonce(&key(1), "mover/lifeboat-system/lifeboat-backup-0124")
        );
        assert_ne!(
            a,
            nonce(&key(2), "mover/lifeboat-system/lifeboat-backup-0123")
        );
        // Not a plain hash of the name, which anyone could compute.
        let plain = blake3::hash(b"mover/lifeboat-system/lifeboat-backup-0123").to_hex();
        assert_ne!(a, plain[..32]);
    }

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
