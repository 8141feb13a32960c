//! The repository config (plaintext JSON, readable and writable without any
//! key): `RepoConfig::parse` on the input or, for inputs that start with a
//! zero byte (never valid JSON), on a valid config whose numbers and lock
//! policy the rest of the input replaces with edge values (the fuzzer rarely
//! grows a digit string far enough by itself); then a round trip, and then what opening a
//! repository with that config does: `Repository::open` on an in-memory store
//! holding the config and a valid key object, then `save_file`, which every
//! write of an index or snapshot goes through (it uses the config's
//! compression level and Object Lock policy).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use lifeboat_fuzz::{key, seed_corpus, seeds, Input};
use lifeboat_repo::{
    Credential, FileKind, Format, Id, IndexFile, KdfParams, KeyFile, RepoConfig, Repository,
};
use lifeboat_store::{MemoryStore, ObjectStore, PutOptions};
use std::sync::{Arc, OnceLock};

fn credential() -> Credential {
    Credential::KeyFile(vec![7; 32])
}

/// A key object for the fixed key, of the format version a repository of
/// `format` holds; the key-file KDF is a single BLAKE3 call.
fn key_object(format: Format) -> &'static [u8] {
    static KEYS: [OnceLock<Vec<u8>>; 2] = [OnceLock::new(), OnceLock::new()];
    KEYS[usize::from(format == Format::V2)].get_or_init(|| {
        let kf = KeyFile::wrap(
            &key(),
            &credential(),
            KdfParams::Keyfile { salt: vec![5; 16] },
            "fuzz".into(),
            format,
        )
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

/// A valid config with input-chosen numbers and lock policy.
fn edited(input: &mut Input) -> Vec<u8> {
    let mut v: serde_json::Value =
        serde_json::from_slice(&seeds::config()[1]).expect("the seed config is JSON");
    for path in [
        "/version",
        "/compression_level",
        "/pack_size",
        "/chunking/cdc_min",
        "/chunking/cdc_avg",
        "/chunking/cdc_max",
        "/chunking/fixed_size",
        "/object_lock/days",
    ] {
        let new: serde_json::Value = match input.u8() % 8 {
            0 | 1 => continue,
            2 => 0.into(),
            3 => 1.into(),
            4 => u32::MAX.into(),
            5 => i32::MIN.into(),
            6 => input.u32().into(),
            _ => (1u64 << (input.u8() % 33)).into(),
        };
        if let Some(slot) = v.pointer_mut(path) {
            *slot = new;
        }
    }
    match input.u8() % 4 {
        0 => v["object_lock"] = serde_json::Value::Null,
        1 => v["object_lock"]["mode"] = "governance".into(),
        _ => {}
    }
    serde_json::to_vec(&v).expect("a JSON value serializes")
}

fuzz_target!(
    init: { seed_corpus(seeds::config) },
    |data: &[u8]| {
        let edited_config;
        let data = match data.split_first() {
            Some((0, rest)) => {
                edited_config = edited(&mut Input::new(rest));
                &edited_config[..]
            }
            _ => data,
        };
        let Ok(config) = RepoConfig::parse(data) else { return };
        let json = config.to_json().expect("a parsed config serializes");
        let again = RepoConfig::parse(&json).expect("a serialized config parses");
        assert_eq!(again, config, "config JSON does not round-trip");

        // Stores with and without Object Lock, since a config may claim either.
        let store = if config.object_lock.is_some() { MemoryStore::with_object_lock() } else { MemoryStore::new() };
        runtime().block_on(async {
            let opts = PutOptions::default();
            store.put("config", Bytes::copy_from_slice(data), &opts).await.expect("memory put");
            let key_object = key_object(config.format());
            let kid = Id::of_file(key_object);
            store
                .put(&format!("keys/{kid}"), Bytes::from_static(key_object), &opts)
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
