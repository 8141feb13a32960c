//! The repository config (plaintext JSON, readable and writable without any
//! key): `RepoConfig::parse`, a round trip, and then what opening a
//! repository with that config does: `Repository::open` on an in-memory store
//! holding the config and a valid key object, then `save_file`, which every
//! write of an index or snapshot goes through (it uses the config's
//! compression level and Object Lock policy).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use lifeboat_fuzz::{key, seed_corpus, seeds};
use lifeboat_repo::{Credential, FileKind, Id, IndexFile, KdfParams, KeyFile, RepoConfig, Repository};
use lifeboat_store::{MemoryStore, ObjectStore, PutOptions};
use std::sync::{Arc, OnceLock};

fn credential() -> Credential {
    Credential::KeyFile(vec![7; 32])
}

/// A key object for the fixed key; the key-file KDF is a single BLAKE3 call.
fn key_object() -> &'static [u8] {
    static KEY: OnceLock<Vec<u8>> = OnceLock::new();
    KEY.get_or_init(|| {
        let kf = KeyFile::wrap(&key(), &credential(), KdfParams::Keyfile { salt: vec![5; 16] }, "fuzz".into())
            .expect("the fixed key wraps");
        serde_json::to_vec(&kf).expect("a key object serializes")
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime starts")
    })
}

fuzz_target!(
    init: { seed_corpus(seeds::config) },
    |data: &[u8]| {
        let Ok(config) = RepoConfig::parse(data) else { return };
        let json = config.to_json().expect("a parsed config serializes");
        let again = RepoConfig::parse(&json).expect("a serialized config parses");
        assert_eq!(again, config, "config JSON does not round-trip");

        // Stores with and without Object Lock, since a config may claim either.
        let store = if config.object_lock.is_some() { MemoryStore::with_object_lock() } else { MemoryStore::new() };
        runtime().block_on(async {
            let opts = PutOptions::default();
            store.put("config", Bytes::copy_from_slice(data), &opts).await.expect("memory put");
            let kid = Id::of_file(key_object());
            store
                .put(&format!("keys/{kid}"), Bytes::from_static(key_object()), &opts)
                .await
                .expect("memory put");
            let repo = Repository::open(Arc::new(store), &credential())
                .await
                .expect("a config that parses opens with a valid key");
            assert_eq!(repo.config(), &config);
            let _ = repo.save_file(FileKind::Index, &IndexFile::default()).await;
        });
    }
);
