//! Lock records (`locks/<id>`, plaintext JSON that anyone with write access
//! to the store can plant): the decoder and the judgement of a lock's
//! status at the edges of time.
#![no_main]

use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;
use lifeboat_fuzz::{seed_corpus, seeds};
use lifeboat_repo::{LockEntry, LockRecord};

fuzz_target!(
    init: { seed_corpus(seeds::lock) },
    |data: &[u8]| {
        let Ok(rec) = serde_json::from_slice::<LockRecord>(data) else { return };
        let edges = [Utc::now(), DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC];
        for last_modified in edges.iter().copied().map(Some).chain([None]) {
            let entry = LockEntry {
                key: "locks/x".into(),
                record: Ok(rec.clone()),
                last_modified,
            };
            for now in edges {
                let _ = entry.status(now);
            }
        }
        let json = serde_json::to_vec(&rec).expect("a parsed lock serializes");
        let again: LockRecord = serde_json::from_slice(&json).expect("a serialized lock parses");
        assert_eq!(again, rec, "lock JSON does not round-trip");
    }
);
