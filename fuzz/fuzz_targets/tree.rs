//! Trees: `Tree::parse`, every node accessor the restorer uses, and the
//! canonical re-serialization.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifeboat_fuzz::{seed_corpus, seeds};
use lifeboat_repo::{Id, Tree};

fuzz_target!(
    init: { seed_corpus(seeds::tree) },
    |data: &[u8]| {
        let Ok(tree) = Tree::parse(data, &Id::of_file(data)) else { return };
        for n in &tree.nodes {
            let _ = n.os_name();
            let _ = n.os_target();
            let _ = n.has_safe_name();
        }
        let mut canonical = tree.clone();
        let json = canonical.to_json().expect("a parsed tree serializes");
        let mut again = Tree::parse(&json, &Id::of_file(&json)).expect("a serialized tree parses");
        assert_eq!(again, canonical, "tree JSON does not round-trip");
        assert_eq!(again.to_json().expect("serializes"), json, "canonical JSON is not stable");
    }
);
