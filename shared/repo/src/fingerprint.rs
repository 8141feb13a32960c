//! A repository's fingerprint: a hash of its `config` object and one of its
//! set of key objects. Snapshots and verifications record it, so that a
//! `config` or key set that changed between two of them (a replaced config
//! turning locks off, a planted key) is noticed.

use crate::{FileKind, Id, RepoError, Repository};
use serde::{Deserialize, Serialize};

/// Hashes of a repository's `config` and of its key set, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoFingerprint {
    /// BLAKE3 of the `config` object's bytes.
    pub config: Id,
    /// BLAKE3 of the sorted key object ids, each followed by a newline.
    pub keys: Id,
}

impl RepoFingerprint {
    /// What differs from `earlier`, for an alert: `config`, `keys`, or both.
    pub fn changes_since(&self, earlier: &RepoFingerprint) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.config != earlier.config {
            out.push("config");
        }
        if self.keys != earlier.keys {
            out.push("keys");
        }
        out
    }
}

impl Repository {
    /// The fingerprint of the repository as its store holds it now.
    pub async fn fingerprint(&self) -> Result<RepoFingerprint, RepoError> {
        let config = self.store().get("config").await?;
        let mut ids: Vec<String> = self
            .list_ids(FileKind::Key)
            .await?
            .iter()
            .map(|id| format!("{id}\n"))
            .collect();
        ids.sort();
        Ok(RepoFingerprint {
            config: Id::of_file(&config),
            keys: Id::of_file(ids.concat().as_bytes()),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{Credential, InitOptions, KdfParams};
    use lifeboat_store::MemoryStore;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_new_key_or_a_new_config_changes_the_fingerprint() {
        let store = Arc::new(MemoryStore::new());
        let cred = Credential::Passphrase("fingerprint".into());
        let kdf = KdfParams::weak_for_tests(&cred).unwrap();
        let opts = InitOptions {
            kdf: Some(kdf.clone()),
            ..Default::default()
        };
        let repo = Repository::init(store.clone(), &cred, opts).await.unwrap();
        let first = repo.fingerprint().await.unwrap();
        assert_eq!(repo.fingerprint().await.unwrap(), first);
        repo.add_key(&Credential::Passphrase("second".into()), kdf)
            .await
            .unwrap();
        let second = repo.fingerprint().await.unwrap();
        assert_eq!(second.changes_since(&first), ["keys"]);
        store.tamper("config", bytes::Bytes::from_static(b"{\"replaced\":true}"));
        let third = repo.fingerprint().await.unwrap();
        assert_eq!(third.changes_since(&second), ["config"]);
    }
}
