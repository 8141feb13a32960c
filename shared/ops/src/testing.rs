//! Helpers for this crate's unit tests.
#![allow(clippy::unwrap_used)]

use lifeboat_repo::{Credential, InitOptions, KdfParams, Repository};
use lifeboat_store::{MemoryStore, ObjectStore};
use std::sync::Arc;

/// A new repository in memory, with passphrase `pw` and cheap key
/// derivation; `opts` gives everything else.
pub async fn memory_repo(opts: InitOptions) -> Repository {
    let cred = Credential::Passphrase("pw".into());
    let store: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new());
    let opts = InitOptions {
        kdf: Some(KdfParams::weak_for_tests(&cred).unwrap()),
        ..opts
    };
    Repository::init(store, &cred, opts).await.unwrap()
}
