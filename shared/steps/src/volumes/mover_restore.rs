//! restore-volumes for volumes a mover Job copied: the Jobs run in
//! Lifeboat's namespace, each fills a new claim there, which is then
//! snapshotted and handed to the application's namespace as an imported
//! VolumeSnapshot, the restored claim's source (see [`super::mover`]).

use super::mover::{cleanup, failed, job_name, nonce, wait};
use super::restore::{
    restored_before, restored_snapshot_name, RestoredVolume, Written, RESTORED_ANNOTATION,
};
use crate::env::StepEnv;
use crate::StepError;
use lifeboat_kube::Cluster;
use lifeboat_repo::{Id, MasterKey, VolumeData};
use lifeboat_volume::csi::{self, DeletionPolicy, SnapshotImport, Wait};
use lifeboat_volume::mover::{self, Direction, MoverJob, MoverSettings};
use lifeboat_volume::VolumeError;
use serde_json::Value;
use std::collections::BTreeMap;

/// The restore Job for one volume, in Lifeboat's namespace.
fn restore_job(
    v: &VolumeData,
    snapshot: &Id,
    run: &str,
    settings: &MoverSettings,
    key: &MasterKey,
) -> MoverJob {
    let name = job_name("restore", &format!("{run}/{}/{}", v.namespace, v.claim));
    MoverJob {
        namespace: settings.namespace.clone(),
        nonce: nonce(key, &format!("mover/{}/{name}", settings.namespace)),
        name: name.clone(),
        run: run.to_string(),
        claim_namespace: v.namespace.clone(),
        claim: v.claim.clone(),
        volume_claim: name,
        block: v.mode == "Block",
        direction: Direction::Restore {
            snapshot: snapshot.to_hex(),
            path: v.path.clone(),
        },
    }
}

/// restore-volumes for volumes a mover Job copied: start every Job first
/// (they run side by side, in Lifeboat's namespace), then wait for each,
/// snapshot its filled claim there, hand that snapshot to the volume's own
/// namespace (an imported VolumeSnapshot, the restored claim's source), and
/// remove what the Job used. A volume an earlier attempt of the run handed
/// over already is not restored again.
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
    let repo = env.repository().await?;
    let key = repo.key();
    mover::ensure_namespace(cluster, &access.settings).await?;
    let mut out = Vec::new();
    let mut jobs = Vec::new();
    for v in volumes {
        let job = restore_job(v, snapshot, run, &access.settings, key);
        let handover = restored_snapshot_name(run, v);
        let handover_nonce = nonce(key, &format!("restored/{}/{handover}", v.namespace));
        if let Some(done) = restored_before(cluster, v, &handover, &handover_nonce).await? {
            // What a run that stopped after the hand-over left behind.
            cleanup(cluster, &job).await?;
            out.push(done);
            continue;
        }
        let claim = job.staging_claim(v.storage_class.as_deref(), v.size, None);
        if let Err(e) = mover::start(cluster, &job, &access.settings, &claim, &access.env).await {
            return Err(failed(cluster, &job, e).await);
        }
        jobs.push((job, v, handover, handover_nonce));
    }
    for (job, v, handover, handover_nonce) in jobs {
        let done = match mover::wait_for(cluster, &job, wait()).await {
            Ok(done) => done,
            Err(e) => return Err(failed(cluster, &job, e).await),
        };
        let summary = done.result.get("summary").cloned().unwrap_or(Value::Null);
        let verification = summary.get("verification");
        let matched = verification
            .and_then(|v| v.get("mismatch_count"))
            .and_then(Value::as_u64)
            == Some(0);
        if !matched {
            let e = StepError::failed(format!(
                "volume {}/{}: the mover's restore was not verified against the backup: {}",
                v.namespace,
                v.claim,
                verification
                    .map(Value::to_string)
                    .unwrap_or_else(|| "no verification in its result".into())
            ));
            if let Err(c) = cleanup(cluster, &job).await {
                tracing::warn!(job = %job.name, error = %c, "mover job not removed");
            }
            return Err(e);
        }
        let written = Written {
            blocks_written: 0,
            bytes_written: summary.get("bytes").and_then(Value::as_u64).unwrap_or(0),
        };
        let handed = hand_over(cluster, &job, v, &handover, &handover_nonce, written, run).await;
        let imported = match handed {
            Ok(imported) => imported,
            Err(e) => return Err(failed(cluster, &job, e).await),
        };
        cleanup(cluster, &job).await?;
        out.push(RestoredVolume {
            namespace: v.namespace.clone(),
            source_namespace: None,
            claim: v.claim.clone(),
            volume_snapshot: imported.name,
            handle: imported.handle,
            blocks_written: written.blocks_written,
            bytes_written: written.bytes_written,
            matched,
        });
    }
    Ok(out)
}

/// Snapshot the claim a restore Job filled (in Lifeboat's namespace), keep
/// the driver's snapshot when that VolumeSnapshot goes (deletion policy
/// Retain), and import it into the volume's own namespace as VolumeSnapshot
/// `handover`, which owns it from then on (deletion policy Delete, as a
/// snapshot taken there would).
async fn hand_over(
    cluster: &Cluster,
    job: &MoverJob,
    v: &VolumeData,
    handover: &str,
    handover_nonce: &str,
    written: Written,
    run: &str,
) -> Result<csi::CsiSnapshot, VolumeError> {
    let staged = csi::claim(cluster, &job.namespace, &job.volume_claim).await?;
    let class = csi::snapshot_class(cluster, &staged, None).await?;
    let snap = csi::take_owned_snapshot(
        cluster,
        &staged,
        &class,
        &job.name,
        run,
        &job.nonce,
        Wait::default(),
    )
    .await?;
    csi::retain_content(cluster, &snap.content).await?;
    let record = serde_json::to_string(&written).map_err(|e| VolumeError::Failed {
        what: format!("restore record of {}/{}", v.namespace, v.claim),
        message: e.to_string(),
    })?;
    let import = SnapshotImport {
        namespace: v.namespace.clone(),
        name: handover.to_string(),
        driver: snap.driver.clone(),
        handle: snap.handle.clone(),
        class: Some(class),
        deletion_policy: DeletionPolicy::Delete,
        annotations: BTreeMap::from([(RESTORED_ANNOTATION.to_string(), record)]),
        nonce: handover_nonce.to_string(),
    };
    csi::import_snapshot(cluster, &import, Wait::default()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volumes::mover::tests::{item, key};

    #[test]
    fn a_restore_job_is_in_lifeboats_namespace_not_the_claims() {
        let v = item().volume_data(None);
        let settings = MoverSettings::default();
        let job = restore_job(&v, &Id([3; 32]), "run-1", &settings, &key(1));
        assert_eq!(job.namespace, "lifeboat-system");
        assert_eq!(job.claim_namespace, "shop");
        let claim = job.staging_claim(Some("hostpath"), v.size, None);
        assert_eq!(claim["metadata"]["namespace"], "lifeboat-system");
        assert_eq!(
            job.job(&settings)["metadata"]["namespace"],
            "lifeboat-system"
        );
    }
}
