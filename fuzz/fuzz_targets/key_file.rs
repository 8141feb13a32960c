//! Key objects (`keys/<id>`, plaintext JSON that anyone with write access to
//! the store can plant):
//! - mode 0: `serde_json::from_slice::<KeyFile>` then `unwrap_key` with a
//!   passphrase and with key files;
//! - mode 1: a real key object (`KeyFile::wrap` of the fixed key with
//!   input-chosen cheap parameters), serialized, mutated, and parsed again;
//! - mode 2: the master key's own JSON (what `unwrap_key` parses once the
//!   AEAD opens);
//! - mode 3: `KeyFile::parse` (what `Repository::open` and `repo check` read
//!   a key object with), which must refuse exactly the parameters over the
//!   limits, without running Argon2.
//!
//! The Argon2 parameters come from the input. `unwrap_key` refuses more than
//! `MAX_KDF_MEMORY_KIB` (256 MiB), `MAX_KDF_ITERATIONS` (8) passes or
//! `MAX_KDF_PARALLELISM` (16) lanes (it must do so before running Argon2,
//! which this target checks), but what it accepts can still take a second or
//! more, so inputs within those limits with `memory_kib > 1024` or
//! `iterations > 2` are skipped here to keep runs fast (see README.md).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifeboat_fuzz::{key, mutate, seed_corpus, seeds, Input};
use lifeboat_repo::{
    Credential, KdfParams, KeyFile, MasterKey, MAX_KDF_ITERATIONS, MAX_KDF_MEMORY_KIB,
    MAX_KDF_PARALLELISM,
};

/// What this target runs Argon2 with.
const MAX_MEMORY_KIB: u32 = 1024;
const MAX_ITERATIONS: u32 = 2;
/// What `unwrap_key` and `KeyFile::parse` accept.
const LIMIT_MEMORY_KIB: u32 = MAX_KDF_MEMORY_KIB;
const LIMIT_ITERATIONS: u32 = MAX_KDF_ITERATIONS;
const LIMIT_PARALLELISM: u32 = MAX_KDF_PARALLELISM;

fuzz_target!(
    init: { seed_corpus(seeds::key_file) },
    |data: &[u8]| {
        let Some((&mode, rest)) = data.split_first() else { return };
        match mode % 4 {
            0 => parse_and_unwrap(rest, None),
            1 => wrapped_then_mutated(&mut Input::new(rest)),
            3 => checked_parse(rest),
            _ => {
                if let Ok(k) = serde_json::from_slice::<MasterKey>(rest) {
                    let _ = k.blob_id(b"x");
                    let _ = k.chunker_seed();
                }
            }
        }
    }
);

/// Whether `unwrap_key` must refuse the parameters outright.
fn over_limits(kf: &KeyFile) -> bool {
    match &kf.kdf {
        KdfParams::Argon2id {
            memory_kib,
            iterations,
            parallelism,
            ..
        } => {
            *memory_kib > LIMIT_MEMORY_KIB
                || *iterations > LIMIT_ITERATIONS
                || *parallelism > LIMIT_PARALLELISM
        }
        KdfParams::Keyfile { .. } => false,
    }
}

/// `KeyFile::parse` accepts what the JSON decoder accepts, minus the
/// parameters over the limits.
fn checked_parse(json: &[u8]) {
    let plain = serde_json::from_slice::<KeyFile>(json);
    match KeyFile::parse(json) {
        Ok(kf) => {
            assert!(!over_limits(&kf), "KeyFile::parse accepted {:?}", kf.kdf);
            assert!(kf.kdf.check_limits().is_ok());
        }
        Err(why) => match plain {
            Ok(kf) => {
                assert!(
                    over_limits(&kf),
                    "KeyFile::parse refused {:?}: {why}",
                    kf.kdf
                );
                assert!(why.contains("exceeds the limits"), "{why}");
            }
            Err(_) => {}
        },
    }
}

fn cheap(kf: &KeyFile) -> bool {
    match &kf.kdf {
        KdfParams::Argon2id {
            memory_kib,
            iterations,
            ..
        } => *memory_kib <= MAX_MEMORY_KIB && *iterations <= MAX_ITERATIONS,
        KdfParams::Keyfile { .. } => true,
    }
}

/// Parse a key object and try to unwrap it; `expect` is the credential that
/// wrapped it, if any, whose master key must then come back unchanged.
fn parse_and_unwrap(json: &[u8], expect: Option<&Credential>) {
    let Ok(kf) = serde_json::from_slice::<KeyFile>(json) else {
        return;
    };
    if over_limits(&kf) {
        // Refused before any work (were it not, this run would take hours).
        assert!(
            kf.unwrap_key(&Credential::Passphrase("x".into())).is_err(),
            "KDF parameters over the limits were accepted"
        );
        return;
    }
    if !cheap(&kf) {
        return;
    }
    for cred in [
        Credential::Passphrase("x".into()),
        Credential::KeyFile(vec![7; 32]),
        Credential::KeyFile(vec![7; 8]),
    ] {
        let _ = kf.unwrap_key(&cred);
    }
    if let Some(cred) = expect {
        if let Ok(k) = kf.unwrap_key(cred) {
            assert_eq!(
                k.blob_id(b"x"),
                key().blob_id(b"x"),
                "unwrapped another key"
            );
        }
    }
    let again = serde_json::to_vec(&kf).expect("a parsed key object serializes");
    let back: KeyFile = serde_json::from_slice(&again).expect("a serialized key object parses");
    assert_eq!(back.kdf, kf.kdf);
    assert_eq!(back.wrapped, kf.wrapped);
}

fn wrapped_then_mutated(input: &mut Input) {
    let n = usize::from(input.u8() % 32);
    let salt = input.bytes(n).to_vec();
    let (cred, kdf) = if input.bool() {
        let memory_kib = 8 + u32::from(input.u8() % 57);
        let iterations = 1 + u32::from(input.u8() % 2);
        let parallelism = 1 + u32::from(input.u8() % 2);
        (
            Credential::Passphrase("x".into()),
            KdfParams::Argon2id {
                memory_kib,
                iterations,
                parallelism,
                salt,
            },
        )
    } else {
        (
            Credential::KeyFile(vec![7; 32]),
            KdfParams::Keyfile { salt },
        )
    };
    // Argon2 refuses salts under 8 bytes; that is an error, not a panic.
    let Ok(kf) = KeyFile::wrap(&key(), &cred, kdf, "fuzz".into(), lifeboat_fuzz::FORMAT) else {
        return;
    };
    let back = kf.unwrap_key(&cred).expect("a freshly wrapped key opens");
    assert_eq!(
        back.blob_id(b"x"),
        key().blob_id(b"x"),
        "unwrapped another key"
    );
    let mut json = serde_json::to_vec(&kf).expect("a key object serializes");
    mutate(&mut json, input);
    parse_and_unwrap(&json, Some(&cred));
}
