//! Helpers for this crate's unit tests.
#![allow(clippy::unwrap_used)]

use lifeboat_repo::{Credential, InitOptions, KdfParams, Repository};
use lifeboat_store::{MemoryStore, ObjectStore};
use std::sync::Arc;

/// A new repository in memory, with passphrase `pw` and cheap key
/// derivation; `opts` gives everything else.
pub async fn memory_repo(opts: InitOptions) -> Repository {
    memory_repo_and_store(opts).await.1
}

/// [`memory_repo`] and its store, for tests that damage objects.
pub async fn memory_repo_and_store(opts: InitOptions) -> (Arc<MemoryStore>, Repository) {
    let mem = Arc::new(MemoryStore::new());
    let repo = repo_on(mem.clone(), opts).await;
    (mem, repo)
}

/// A new repository on `store` (a metered or tampered one), with
/// passphrase `pw` and cheap key derivation; `opts` gives everything else.
pub async fn repo_on(store: Arc<dyn ObjectStore>, opts: InitOptions) -> Repository {
    let cred = Credential::Passphrase("pw".into());
    let opts = InitOptions {
        kdf: Some(KdfParams::weak_for_tests(&cred).unwrap()),
        ..opts
    };
    Repository::init(store, &cred, opts).await.unwrap()
}

/// `len` incompressible bytes, the same for the same `seed`.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; len];
    crate::sample_data::Rng::new(seed).fill(&mut data);
    data
}

/// Store every indexed blob a second time, in one new pack under an index
/// file of its own, as two writers at once would have (neither saw the
/// other's blobs). The first copies stay the preferred ones when the index
/// is loaded again if their index files sort first; callers look up which.
pub async fn store_every_blob_twice(repo: &Repository) {
    use lifeboat_repo::{encode_blob, FileKind, IndexFile, IndexPack, IndexedBlob, PackBuilder};
    use lifeboat_store::PutOptions;
    let index = repo.load_index().await.unwrap();
    let key = repo.key().clone();
    let mut copy = PackBuilder::new(64 << 20);
    for (bid, loc) in index.blobs() {
        let data = repo.read_blob(&index, bid).await.unwrap();
        copy.add(&encode_blob(&key, repo.format(), loc.blob_type, *bid, &data, 3).unwrap())
            .unwrap();
    }
    let (pack, bytes, blobs) = copy.finish(&key, repo.format()).unwrap();
    let size = bytes.len() as u64;
    repo.store()
        .put(
            &FileKind::Pack.key(&pack),
            bytes::Bytes::from(bytes),
            &PutOptions::default(),
        )
        .await
        .unwrap();
    let file = IndexFile {
        version: 1,
        supersedes: vec![],
        packs: vec![IndexPack {
            id: pack,
            size,
            blobs: blobs.iter().map(IndexedBlob::from).collect(),
        }],
    };
    repo.save_file(FileKind::Index, &file).await.unwrap();
}
