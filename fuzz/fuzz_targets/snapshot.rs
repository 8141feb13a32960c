//! Snapshot manifests: the plaintext JSON decoder, and a round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifeboat_fuzz::{seed_corpus, seeds};
use lifeboat_repo::Snapshot;

fuzz_target!(
    init: { seed_corpus(seeds::snapshot) },
    |data: &[u8]| {
        let Ok(snap) = serde_json::from_slice::<Snapshot>(data) else { return };
        let json = serde_json::to_vec(&snap).expect("a parsed snapshot serializes");
        let mut again: Snapshot = serde_json::from_slice(&json).expect("a serialized snapshot parses");
        // serde_json's default float parser may be off by one ulp; that is not ours.
        let (a, b) = (snap.summary.duration_secs, again.summary.duration_secs);
        assert!(a == b || (a - b).abs() <= a.abs() * 1e-15, "duration {a} became {b}");
        again.summary.duration_secs = a;
        assert_eq!(again, snap, "snapshot JSON does not round-trip");
        // What `snapshots` and `resolve_snapshot` do with a manifest.
        let _ = snap.time.cmp(&again.time);
        let _ = snap.tree.to_hex().starts_with("ab");
    }
);
