//! Removing a key object from a repository under Object Lock.
//!
//! A locked key object cannot be deleted until its lock expires, and
//! extend-locks would keep extending it for ever. `remove-key` therefore writes
//! a revocation marker, `revoked/<key id>`: extend-locks and check leave the
//! revoked key's lock alone, and once it has expired prune (or a second
//! `remove-key`) deletes the key object and its marker. Markers are sealed with
//! the master key, so only a holder of a credential can revoke a key; a marker
//! that does not authenticate, or names another key than its object name,
//! is ignored with a warning.

use crate::{Aad, Id, RepoError, Repository};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use lifeboat_store::StoreError;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

use crate::repository::FileKind;

/// Prefix of revocation markers.
pub const REVOKED_PREFIX: &str = "revoked/";

/// The content of a `revoked/<key id>` marker (sealed JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Revocation {
    key: Id,
    revoked: DateTime<Utc>,
}

/// What `remove-key` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum KeyRemoval {
    /// The key object is gone.
    Removed,
    /// The key object is locked until `until`: it is marked revoked, its lock
    /// is no longer extended, and prune deletes it once the lock has expired.
    Revoked { until: String },
}

/// The object key of `id`'s revocation marker.
pub fn revocation_key(id: &Id) -> String {
    format!("{REVOKED_PREFIX}{id}")
}

impl Repository {
    /// Delete key object `id`, or mark it revoked if its lock forbids that.
    /// `keys` are the repository's key objects; at least one key that is not
    /// revoked must remain.
    pub(crate) async fn remove_key_object(
        &self,
        id: &Id,
        keys: &[Id],
    ) -> Result<KeyRemoval, RepoError> {
        let revoked = self.revoked_keys().await?;
        if !keys.iter().any(|k| k != id && !revoked.contains(k)) {
            return Err(RepoError::InvalidOption(format!(
                "refusing to remove key {}: it is the last key that is not revoked",
                id.short()
            )));
        }
        match self.store().delete(&FileKind::Key.key(id)).await {
            Ok(()) => {
                self.delete_marker(id).await;
                Ok(KeyRemoval::Removed)
            }
            Err(StoreError::Locked { until, .. }) => {
                let marker = Revocation {
                    key: *id,
                    revoked: Utc::now(),
                };
                let json = serde_json::to_vec(&marker)
                    .map_err(|e| RepoError::malformed("revocation marker", e))?;
                let sealed = self.key().seal(&json, &Aad::revocation(self.format()))?;
                self.store()
                    .put(
                        &revocation_key(id),
                        Bytes::from(sealed),
                        &self.put_options(),
                    )
                    .await?;
                Ok(KeyRemoval::Revoked { until })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The key objects marked revoked by an authentic marker.
    pub async fn revoked_keys(&self) -> Result<HashSet<Id>, RepoError> {
        let mut out = HashSet::new();
        for obj in self.store().list(REVOKED_PREFIX).await? {
            let Some(id) = obj
                .key
                .strip_prefix(REVOKED_PREFIX)
                .and_then(|s| s.parse::<Id>().ok())
            else {
                tracing::warn!(object = %obj.key, "revocation marker with a malformed name ignored");
                continue;
            };
            let bytes = match self.store().get(&obj.key).await {
                Ok(b) => b,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            };
            let authentic = self
                .key()
                .open(&bytes, &Aad::revocation(self.format()), &obj.key)
                .ok()
                .and_then(|json| serde_json::from_slice::<Revocation>(&json).ok())
                .is_some_and(|r| r.key == id);
            if authentic {
                out.insert(id);
            } else {
                tracing::warn!(object = %obj.key, "revocation marker that does not authenticate ignored");
            }
        }
        Ok(out)
    }

    /// Delete every revoked key object whose lock has expired, and its
    /// marker; returns the keys deleted (or, with `dry_run`, deletable).
    pub async fn remove_revoked_keys(&self, dry_run: bool) -> Result<Vec<Id>, RepoError> {
        let revoked = self.revoked_keys().await?;
        if revoked.is_empty() {
            return Ok(Vec::new());
        }
        let keys = self.list_ids(FileKind::Key).await?;
        if !keys.iter().any(|k| !revoked.contains(k)) {
            tracing::warn!(
                "every key object is marked revoked: none is deleted (add a key with `repo add-key`)"
            );
            return Ok(Vec::new());
        }
        let now = Utc::now();
        let mut removed = Vec::new();
        for id in revoked {
            let key = FileKind::Key.key(&id);
            if keys.contains(&id) {
                let head = self.store().head(&key).await?;
                if head.retention.is_some_and(|r| r.is_active(now)) {
                    continue;
                }
                if !dry_run {
                    match self.store().delete(&key).await {
                        Ok(()) => {}
                        Err(StoreError::Locked { .. }) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
                removed.push(id);
            }
            if !dry_run {
                self.delete_marker(&id).await;
            }
        }
        Ok(removed)
    }

    /// Remove `id`'s revocation marker if there is one and it is unlocked;
    /// a marker left behind names a key that no longer exists and is harmless.
    async fn delete_marker(&self, id: &Id) {
        if let Err(e) = self.store().delete(&revocation_key(id)).await {
            tracing::debug!(key = %id.short(), error = %e, "revocation marker kept");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{Credential, InitOptions, KdfParams, LockPolicy};
    use lifeboat_store::{LockMode, MemoryStore, ObjectStore, Retention};
    use std::sync::Arc;

    #[tokio::test]
    async fn removing_a_locked_key_revokes_it_and_prune_deletes_it_once_unlocked() {
        let mem = MemoryStore::with_object_lock();
        let store: Arc<dyn ObjectStore> = Arc::new(mem.clone());
        let old = Credential::Passphrase("old".into());
        let opts = InitOptions {
            object_lock: Some(LockPolicy {
                mode: LockMode::Governance,
                days: 30,
            }),
            kdf: Some(KdfParams::weak_for_tests(&old).unwrap()),
            ..InitOptions::default()
        };
        let repo = Repository::init(store.clone(), &old, opts).await.unwrap();
        let old_id = repo.key_id().unwrap();
        let new = Credential::Passphrase("new".into());
        repo.add_key(&new, KdfParams::weak_for_tests(&new).unwrap())
            .await
            .unwrap();
        let repo = Repository::open(store.clone(), &new).await.unwrap();

        let outcome = repo.remove_key(&old_id).await.unwrap();
        assert!(matches!(outcome, KeyRemoval::Revoked { .. }), "{outcome:?}");
        assert_eq!(repo.revoked_keys().await.unwrap(), HashSet::from([old_id]));
        // The new key may not go now: it is the last one not revoked.
        let new_id = repo.key_id().unwrap();
        let other = Repository::open(store.clone(), &old).await.unwrap();
        assert!(other.remove_key(&new_id).await.is_err());

        // Still locked: nothing to delete yet.
        assert!(repo.remove_revoked_keys(false).await.unwrap().is_empty());
        // Time passes: the lock (no longer extended) expires.
        mem.force_retention(
            &FileKind::Key.key(&old_id),
            Some(Retention {
                mode: LockMode::Governance,
                until: Utc::now() - chrono::Duration::seconds(1),
            }),
        );
        mem.force_retention(&revocation_key(&old_id), None);
        assert_eq!(repo.remove_revoked_keys(false).await.unwrap(), vec![old_id]);
        assert!(Repository::open(store.clone(), &old).await.is_err());
        assert!(repo.revoked_keys().await.unwrap().is_empty());
        assert!(store.list(REVOKED_PREFIX).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_forged_marker_revokes_nothing() {
        let mem = MemoryStore::new();
        let store: Arc<dyn ObjectStore> = Arc::new(mem.clone());
        let cred = Credential::Passphrase("pw".into());
        let opts = InitOptions {
            kdf: Some(KdfParams::weak_for_tests(&cred).unwrap()),
            ..InitOptions::default()
        };
        let repo = Repository::init(store.clone(), &cred, opts).await.unwrap();
        let id = repo.key_id().unwrap();
        let forged = serde_json::to_vec(&Revocation {
            key: id,
            revoked: Utc::now(),
        })
        .unwrap();
        store
            .put(
                &revocation_key(&id),
                Bytes::from(forged),
                &Default::default(),
            )
            .await
            .unwrap();
        assert!(repo.revoked_keys().await.unwrap().is_empty());
    }
}
