//! Replication: make a second repository (the DR region's) hold everything the
//! first one does, copying only what it lacks.
//!
//! The replica shares the primary's config and keys (copied byte for byte),
//! so packs, indexes and snapshots are copied as they are: ids stay valid,
//! nothing is decrypted or re-encrypted, and the same passphrase opens both.
//! The order of the primary's writes is kept: packs, then indexes, then
//! snapshots, so a replica interrupted at any point never has a snapshot that
//! points at data it lacks. Every copy is written with the replica's own
//! Object Lock retention.
//!
//! Every run also brings the replica's state in line with the primary's
//! (see [`mirror`]): new key objects and revocations are copied before the
//! replica is opened (so a rotated passphrase opens it), key objects and
//! snapshots the primary removed are removed once their locks allow, packs
//! that a copied index file no longer lists are indexed again while the
//! replica holds them, and the locks of everything the replica's kept
//! snapshots need are extended as apply-lock does on the primary.

use crate::extend_locks::{extend_locks, ExtendOptions, ExtendReport};
use crate::{OpsError, Progress};
use lifeboat_repo::{Credential, FileKind, RepoConfig, Repository, REVOKED_PREFIX};
use lifeboat_store::{put_content_addressed, ObjectStore, PutOptions, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::Arc;
use tokio::task::JoinSet;

mod mirror;

/// Objects copied at once; packs are up to tens of MiB each.
const COPY_PARALLELISM: usize = 3;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ReplicateReport {
    pub packs_copied: u64,
    pub indexes_copied: u64,
    pub snapshots_copied: u64,
    pub bytes_copied: u64,
    /// Objects the replica already had.
    pub already_present: u64,
    /// Snapshots the primary no longer has, removed from the replica.
    pub snapshots_removed: u64,
    /// Snapshots the primary no longer has whose replica lock has not yet
    /// expired: their locks are no longer extended, a later run removes them.
    pub snapshots_pending_removal: u64,
    /// Key objects and revocation markers the primary no longer has, removed.
    pub keys_removed: u64,
    /// Packs the replica holds that a copied index file (a prune's rewrite
    /// on the primary) no longer lists, indexed again in the replica.
    pub packs_reindexed: u64,
    /// The replica's lock extension (`None` without an Object Lock policy).
    pub locks: Option<ExtendReport>,
}

/// Open `dst` as a replica of `src`, creating it from `src`'s config and keys
/// if it holds no repository yet. Fails if `dst` is a different repository.
/// Key objects and revocation markers the replica lacks are copied first, so
/// that after a passphrase rotation on the primary the new passphrase opens it.
pub async fn open_replica(
    src: &Repository,
    dst: Arc<dyn ObjectStore>,
    cred: &Credential,
) -> Result<(Repository, bool), OpsError> {
    let config_key = FileKind::Config.key(&src.config().id);
    let opts = src.put_options();
    let other_repository = |id: lifeboat_repo::Id| {
        OpsError::InvalidInput(format!(
            "{} holds another repository (id {}), not a replica of {} (id {})",
            dst.location(),
            id.short(),
            src.store().location(),
            src.config().id.short()
        ))
    };
    let initialized = match dst.get(&config_key).await {
        Ok(raw) => {
            let theirs = RepoConfig::parse(&raw)?;
            if theirs.id != src.config().id {
                return Err(other_repository(theirs.id));
            }
            for prefix in [FileKind::Key.prefix(), REVOKED_PREFIX] {
                let copied = copy_missing(src.store(), &dst, prefix, &opts).await?;
                if copied > 0 {
                    tracing::info!(prefix, copied, "copied key objects the replica lacked");
                }
            }
            false
        }
        Err(StoreError::NotFound { .. }) => {
            if !dst.exists().await? {
                return Err(OpsError::InvalidInput(format!(
                    "replica store {} does not exist (create the bucket or directory first)",
                    dst.location()
                )));
            }
            copy_missing(src.store(), &dst, FileKind::Key.prefix(), &opts).await?;
            copy_missing(src.store(), &dst, REVOKED_PREFIX, &opts).await?;
            // The config goes last: a replica with a config always has its keys.
            let bytes = src.store().get(&config_key).await?;
            // A config written meanwhile (a racing replicate) is compared
            // with the source's below.
            put_content_addressed(dst.as_ref(), &config_key, bytes, &opts).await?;
            true
        }
        Err(e) => return Err(e.into()),
    };
    let replica = Repository::open(dst.clone(), cred).await?;
    if replica.config().id != src.config().id {
        return Err(other_repository(replica.config().id));
    }
    Ok((replica, initialized))
}

/// Copy the objects under `prefix` that `dst` lacks, one by one (keys and
/// markers are few and small); returns how many were copied.
async fn copy_missing(
    src: &Arc<dyn ObjectStore>,
    dst: &Arc<dyn ObjectStore>,
    prefix: &str,
    opts: &PutOptions,
) -> Result<u64, OpsError> {
    let have: HashSet<String> = dst.list(prefix).await?.into_iter().map(|o| o.key).collect();
    let mut copied = 0;
    for obj in src.list(prefix).await? {
        if have.contains(&obj.key) {
            continue;
        }
        let bytes = src.get(&obj.key).await?;
        dst.put(&obj.key, bytes, opts).await?;
        copied += 1;
    }
    Ok(copied)
}

/// Copy every pack, index and snapshot of `src` that `dst` lacks, then bring
/// the replica's removals, index and locks in line (see the module docs).
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
    let mut primary_snapshots = HashSet::new();
    for kind in [FileKind::Snapshot, FileKind::Index, FileKind::Pack] {
        let have: HashSet<String> = dst
            .store()
            .list(kind.prefix())
            .await?
            .into_iter()
            .map(|o| o.key)
            .collect();
        let objects = src.store().list(kind.prefix()).await?;
        if kind == FileKind::Snapshot {
            primary_snapshots.extend(objects.iter().map(|o| o.key.clone()));
        }
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

    progress.set_phase("mirroring removals");
    let forgotten =
        mirror::remove_forgotten_snapshots(dst, &primary_snapshots, &mut report).await?;
    report.keys_removed = mirror::remove_removed_keys(src, dst).await?;
    progress.set_phase("indexing held packs");
    report.packs_reindexed = mirror::reindex_held_packs(dst).await?;
    if dst.config().object_lock.is_some() {
        let opts = ExtendOptions {
            skip_snapshots: forgotten,
        };
        report.locks = Some(extend_locks(dst, &opts, progress.clone()).await?);
    }
    tracing::info!(
        packs = report.packs_copied,
        indexes = report.indexes_copied,
        snapshots = report.snapshots_copied,
        bytes = report.bytes_copied,
        snapshots_removed = report.snapshots_removed,
        snapshots_pending_removal = report.snapshots_pending_removal,
        keys_removed = report.keys_removed,
        packs_reindexed = report.packs_reindexed,
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
mod mirror_tests;

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
