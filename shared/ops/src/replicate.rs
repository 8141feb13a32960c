//! Replication: make a second repository (the DR region's) hold everything the
//! first one does, copying only what it lacks.
//!
//! The replica shares the primary's config and keys (copied once, byte for
//! byte), so packs, indexes and snapshots are copied as they are: ids stay
//! valid, nothing is decrypted or re-encrypted, and the same passphrase opens
//! both. The order of the primary's writes is kept: packs, then indexes, then
//! snapshots, so a replica interrupted at any point never has a snapshot that
//! points at data it lacks. Every copy is written with the replica's own
//! Object Lock retention.

use crate::{OpsError, Progress};
use lifeboat_repo::{Credential, FileKind, Repository};
use lifeboat_store::{put_content_addressed, ObjectStore, PutOptions, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::Arc;
use tokio::task::JoinSet;

/// Objects copied at once; packs are up to tens of MiB each.
const COPY_PARALLELISM: usize = 3;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReplicateReport {
    pub packs_copied: u64,
    pub indexes_copied: u64,
    pub snapshots_copied: u64,
    pub bytes_copied: u64,
    /// Objects the replica already had.
    pub already_present: u64,
}

/// Open `dst` as a replica of `src`, creating it from `src`'s config and keys
/// if it holds no repository yet. Fails if `dst` is a different repository.
pub async fn open_replica(
    src: &Repository,
    dst: Arc<dyn ObjectStore>,
    cred: &Credential,
) -> Result<(Repository, bool), OpsError> {
    let config_key = FileKind::Config.key(&src.config().id);
    let initialized = match dst.head(&config_key).await {
        Ok(_) => false,
        Err(StoreError::NotFound { .. }) => {
            if !dst.exists().await? {
                return Err(OpsError::InvalidInput(format!(
                    "replica store {} does not exist (create the bucket or directory first)",
                    dst.location()
                )));
            }
            let opts = src.put_options();
            let mut keys: Vec<String> = src
                .store()
                .list(FileKind::Key.prefix())
                .await?
                .into_iter()
                .map(|o| o.key)
                .collect();
            // The config goes last: a replica with a config always has its keys.
            keys.push(config_key.clone());
            for key in keys {
                let bytes = src.store().get(&key).await?;
                // Keys are content-addressed; a config written meanwhile is
                // compared with the source's below.
                put_content_addressed(dst.as_ref(), &key, bytes, &opts).await?;
            }
            true
        }
        Err(e) => return Err(e.into()),
    };
    let replica = Repository::open(dst.clone(), cred).await?;
    if replica.config().id != src.config().id {
        return Err(OpsError::InvalidInput(format!(
            "{} holds another repository (id {}), not a replica of {} (id {})",
            dst.location(),
            replica.config().id.short(),
            src.store().location(),
            src.config().id.short()
        )));
    }
    Ok((replica, initialized))
}

/// Copy every pack, index and snapshot of `src` that `dst` lacks.
#[tracing::instrument(skip_all, fields(from = %src.store().location(), to = %dst.store().location()))]
pub async fn replicate(
    src: &Repository,
    dst: &Repository,
    progress: Arc<Progress>,
) -> Result<ReplicateReport, OpsError> {
    let mut report = ReplicateReport::default();
    // List in the reverse of the write order: whatever a listed snapshot
    // needs was durable before it, so it is in the later listings.
    progress.set_phase("listing");
    let mut plan = Vec::new();
    for kind in [FileKind::Snapshot, FileKind::Index, FileKind::Pack] {
        let have: HashSet<String> = dst
            .store()
            .list(kind.prefix())
            .await?
            .into_iter()
            .map(|o| o.key)
            .collect();
        let objects = src.store().list(kind.prefix()).await?;
        let (present, missing): (Vec<_>, Vec<_>) =
            objects.into_iter().partition(|o| have.contains(&o.key));
        report.already_present += present.len() as u64;
        plan.push((kind, missing));
    }
    plan.reverse();
    let total: u64 = plan.iter().map(|(_, m)| m.len() as u64).sum();
    progress
        .items_total
        .store(total, std::sync::atomic::Ordering::Relaxed);
    let opts = dst.put_options();
    for (kind, missing) in plan {
        progress.set_phase(&format!("copying {}", kind.name()));
        let (copied, bytes) = copy_all(
            src,
            dst,
            missing.into_iter().map(|o| o.key),
            &opts,
            &progress,
        )
        .await?;
        match kind {
            FileKind::Pack => report.packs_copied = copied,
            FileKind::Index => report.indexes_copied = copied,
            _ => report.snapshots_copied = copied,
        }
        report.bytes_copied += bytes;
    }
    tracing::info!(
        packs = report.packs_copied,
        indexes = report.indexes_copied,
        snapshots = report.snapshots_copied,
        bytes = report.bytes_copied,
        "replicated"
    );
    Ok(report)
}

/// Copy `keys` with bounded concurrency; returns the objects and bytes copied.
async fn copy_all(
    src: &Repository,
    dst: &Repository,
    keys: impl Iterator<Item = String>,
    opts: &PutOptions,
    progress: &Arc<Progress>,
) -> Result<(u64, u64), OpsError> {
    let (mut count, mut bytes) = (0, 0);
    let mut set = JoinSet::new();
    let mut keys = keys;
    loop {
        while set.len() < COPY_PARALLELISM {
            let Some(key) = keys.next() else { break };
            let (from, to, opts) = (src.store().clone(), dst.store().clone(), opts.clone());
            set.spawn(async move {
                let data = from.get(&key).await?;
                let n = data.len() as u64;
                put_content_addressed(to.as_ref(), &key, data, &opts).await?;
                Ok::<u64, StoreError>(n)
            });
        }
        let Some(joined) = set.join_next().await else {
            break;
        };
        let n = joined.map_err(|e| OpsError::Pipeline(e.to_string()))??;
        count += 1;
        bytes += n;
        Progress::add(&progress.items_done, 1);
        Progress::add(&progress.bytes_written, n);
    }
    Ok((count, bytes))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use lifeboat_repo::{InitOptions, KdfParams};
    use lifeboat_store::MemoryStore;

    fn weak(cred: &Credential) -> InitOptions {
        InitOptions {
            kdf: Some(KdfParams::weak_for_tests(cred).unwrap()),
            ..InitOptions::default()
        }
    }

    #[tokio::test]
    async fn copies_only_what_is_missing_and_opens_with_the_same_passphrase() {
        let cred = Credential::Passphrase("pw".into());
        let src_store: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new());
        let src = Repository::init(src_store, &cred, weak(&cred))
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), vec![7u8; 300_000]).unwrap();
        let progress = Arc::new(Progress::default());
        let opts = crate::backup::BackupOptions {
            paths: vec![dir.path().to_path_buf()],
            ..Default::default()
        };
        crate::backup::backup(&src, opts, progress).await.unwrap();

        let dst_store: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new());
        let (dst, initialized) = open_replica(&src, dst_store.clone(), &cred).await.unwrap();
        assert!(initialized);
        let first = replicate(&src, &dst, Arc::new(Progress::default()))
            .await
            .unwrap();
        assert_eq!(first.snapshots_copied, 1);
        assert!(first.packs_copied >= 1 && first.indexes_copied >= 1);
        assert_eq!(first.already_present, 0);

        let second = replicate(&src, &dst, Arc::new(Progress::default()))
            .await
            .unwrap();
        assert_eq!(
            second.packs_copied + second.indexes_copied + second.snapshots_copied,
            0
        );
        assert_eq!(
            second.already_present,
            first.packs_copied + first.indexes_copied + first.snapshots_copied
        );

        let (reopened, again) = open_replica(&src, dst_store, &cred).await.unwrap();
        assert!(!again);
        let snaps = reopened.snapshots().await.unwrap();
        assert_eq!(snaps.len(), 1);
        let report = crate::check::check(
            &reopened,
            crate::check::CheckOptions {
                read_data: true,
                snapshots: None,
            },
            Arc::new(Progress::default()),
        )
        .await
        .unwrap();
        assert_eq!(report.errors(), 0, "{:?}", report.problems);
    }

    #[tokio::test]
    async fn refuses_a_store_holding_another_repository() {
        let cred = Credential::Passphrase("pw".into());
        let a = Repository::init(Arc::new(MemoryStore::new()), &cred, weak(&cred))
            .await
            .unwrap();
        let other: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new());
        Repository::init(other.clone(), &cred, weak(&cred))
            .await
            .unwrap();
        let err = open_replica(&a, other, &cred)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("another repository"), "{err}");
    }
}
