//! Index files: the plaintext JSON decoder, then `Index::from_files` over the
//! parsed file together with copies of it under its own id and under the ids
//! it supersedes (duplicates and self-supersession included).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifeboat_fuzz::{seed_corpus, seeds};
use lifeboat_repo::{Id, Index, IndexFile};
use std::collections::HashSet;

fuzz_target!(
    init: { seed_corpus(seeds::index_file) },
    |data: &[u8]| {
        let Ok(file) = serde_json::from_slice::<IndexFile>(data) else { return };
        let json = serde_json::to_vec(&file).expect("a parsed index file serializes");
        let again: IndexFile = serde_json::from_slice(&json).expect("a serialized index file parses");
        assert_eq!(again, file, "index file JSON does not round-trip");

        let own = Id::of_file(data);
        let mut files = vec![(own, file.clone())];
        for s in file.supersedes.iter().take(4) {
            files.push((*s, file.clone()));
        }
        files.push((own, file.clone()));
        files.push((Id([0xee; 32]), IndexFile { supersedes: vec![own], ..file.clone() }));
        let superseded: HashSet<Id> =
            files.iter().flat_map(|(_, f)| f.supersedes.iter().copied()).collect();
        let ids: Vec<Id> = files.iter().map(|(id, _)| *id).collect();

        let index = Index::from_files(files);
        for f in &index.files {
            assert!(!superseded.contains(f), "a superseded index file was used");
            assert!(ids.contains(f), "an index file out of nowhere");
        }
        let mut count = 0;
        for (id, loc) in index.blobs() {
            count += 1;
            assert!(index.contains(id));
            assert_eq!(index.get(id), Some(loc));
            assert!(index.packs().contains_key(&loc.pack), "a blob in an unknown pack");
        }
        assert_eq!(count, index.blob_count());
        if !index.files.is_empty() {
            // The file itself was live: every blob it names is found.
            for p in &file.packs {
                for b in &p.blobs {
                    assert!(index.contains(&b.id), "a live index file's blob is missing");
                }
            }
        }
        let mut grown = index.clone();
        for p in &file.packs {
            grown.add_pack(p);
        }
    }
);
