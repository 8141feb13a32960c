use crate::{BlobType, Compression, Id, PackBlob};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// One blob in an index file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexedBlob {
    pub id: Id,
    #[serde(rename = "type")]
    pub blob_type: BlobType,
    pub offset: u32,
    pub length: u32,
    pub raw_length: u32,
    pub compression: Compression,
}

impl From<&PackBlob> for IndexedBlob {
    fn from(b: &PackBlob) -> Self {
        IndexedBlob {
            id: b.id,
            blob_type: b.blob_type,
            offset: b.offset,
            length: b.length,
            raw_length: b.raw_length,
            compression: b.compression,
        }
    }
}

/// One pack in an index file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexPack {
    pub id: Id,
    /// Size of the pack object in bytes.
    pub size: u64,
    pub blobs: Vec<IndexedBlob>,
}

/// The content of an `index/<id>` object (before compression and encryption).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexFile {
    pub version: u32,
    /// Index files this one replaces: readers ignore them (prune writes these).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supersedes: Vec<Id>,
    pub packs: Vec<IndexPack>,
}

/// Where a blob lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    pub pack: Id,
    pub blob_type: BlobType,
    pub offset: u32,
    pub length: u32,
    pub raw_length: u32,
    pub compression: Compression,
}

/// The in-memory union of all live index files.
///
/// A blob stored more than once (two writers packed the same content at the
/// same time) keeps every location. The preferred one, which [`Index::get`]
/// returns, is the first in a fixed order: index files by id, then packs and
/// blobs in file order. So every command picks the same copy whatever order
/// the files were loaded in, and readers can fall back to the others
/// ([`Index::locations`]).
#[derive(Debug, Clone, Default)]
pub struct Index {
    blobs: HashMap<Id, BlobLocation>,
    /// The other copies of blobs stored more than once.
    copies: HashMap<Id, Vec<BlobLocation>>,
    packs: HashMap<Id, u64>,
    /// The live index files this was built from, sorted.
    pub files: Vec<Id>,
}

impl Index {
    /// Merge index files, ignoring those that another one supersedes. The
    /// result does not depend on the order of `files`.
    pub fn from_files(mut files: Vec<(Id, IndexFile)>) -> Self {
        files.sort_by_key(|f| f.0);
        let superseded: HashSet<Id> = files
            .iter()
            .flat_map(|(_, f)| f.supersedes.iter().copied())
            .collect();
        let mut index = Index::default();
        for (id, file) in files {
            if superseded.contains(&id) {
                continue;
            }
            index.files.push(id);
            for pack in &file.packs {
                index.add_pack(pack);
            }
        }
        index
    }

    pub fn add_pack(&mut self, pack: &IndexPack) {
        self.packs.insert(pack.id, pack.size);
        for b in &pack.blobs {
            let loc = BlobLocation {
                pack: pack.id,
                blob_type: b.blob_type,
                offset: b.offset,
                length: b.length,
                raw_length: b.raw_length,
                compression: b.compression,
            };
            match self.blobs.get(&b.id) {
                None => {
                    self.blobs.insert(b.id, loc);
                }
                // The same copy listed again (by two index files) is one copy.
                Some(first) if *first == loc => {}
                Some(_) => {
                    let copies = self.copies.entry(b.id).or_default();
                    if !copies.contains(&loc) {
                        copies.push(loc);
                    }
                }
            }
        }
    }

    /// The preferred location of a blob.
    pub fn get(&self, id: &Id) -> Option<&BlobLocation> {
        self.blobs.get(id)
    }

    /// Every location of a blob, the preferred one first.
    pub fn locations(&self, id: &Id) -> impl Iterator<Item = &BlobLocation> {
        self.blobs
            .get(id)
            .into_iter()
            .chain(self.copies.get(id).into_iter().flatten())
    }

    /// Every (blob, location) pair, each copy of a blob stored more than once included.
    pub fn all_locations(&self) -> impl Iterator<Item = (&Id, &BlobLocation)> {
        self.blobs.iter().chain(
            self.copies
                .iter()
                .flat_map(|(id, locs)| locs.iter().map(move |l| (id, l))),
        )
    }

    pub fn contains(&self, id: &Id) -> bool {
        self.blobs.contains_key(id)
    }

    pub fn blob_count(&self) -> usize {
        self.blobs.len()
    }

    /// Every blob with its preferred location.
    pub fn blobs(&self) -> impl Iterator<Item = (&Id, &BlobLocation)> {
        self.blobs.iter()
    }

    /// Packs and their sizes.
    pub fn packs(&self) -> &HashMap<Id, u64> {
        &self.packs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(n: u8, blobs: &[u8]) -> IndexPack {
        IndexPack {
            id: Id([n; 32]),
            size: 100,
            blobs: blobs
                .iter()
                .map(|b| IndexedBlob {
                    id: Id([*b; 32]),
                    blob_type: BlobType::Data,
                    offset: 8,
                    length: 10,
                    raw_length: 10,
                    compression: Compression::None,
                })
                .collect(),
        }
    }

    #[test]
    fn superseded_files_are_ignored() {
        let a = IndexFile {
            version: 1,
            supersedes: vec![],
            packs: vec![pack(1, &[10, 11])],
        };
        let b = IndexFile {
            version: 1,
            supersedes: vec![Id([100; 32])],
            packs: vec![pack(2, &[11])],
        };
        let idx = Index::from_files(vec![(Id([100; 32]), a.clone()), (Id([101; 32]), b.clone())]);
        assert!(!idx.contains(&Id([10; 32])));
        assert_eq!(idx.get(&Id([11; 32])).unwrap().pack, Id([2; 32]));
        assert_eq!(idx.files, vec![Id([101; 32])]);
        let idx = Index::from_files(vec![(Id([103; 32]), a), (Id([102; 32]), b)]);
        assert_eq!(idx.blob_count(), 2);
    }

    fn file(packs: Vec<IndexPack>) -> IndexFile {
        IndexFile {
            version: 1,
            supersedes: vec![],
            packs,
        }
    }

    #[test]
    fn duplicate_blobs_resolve_the_same_in_any_load_order_and_keep_every_copy() {
        // Blob 11 is in pack 1 (index file 50) and in pack 2 (index file 40).
        let one = (Id([50; 32]), file(vec![pack(1, &[10, 11])]));
        let two = (Id([40; 32]), file(vec![pack(2, &[11, 12])]));
        let ab = Index::from_files(vec![one.clone(), two.clone()]);
        let ba = Index::from_files(vec![two, one]);
        let blob = Id([11; 32]);
        // The file with the smaller id comes first, whatever the load order.
        assert_eq!(ab.get(&blob).unwrap().pack, Id([2; 32]));
        assert_eq!(ba.get(&blob).unwrap().pack, Id([2; 32]));
        assert_eq!(ab.files, ba.files);
        let packs: Vec<Id> = ab.locations(&blob).map(|l| l.pack).collect();
        assert_eq!(packs, vec![Id([2; 32]), Id([1; 32])]);
        assert_eq!(ab.blob_count(), 3);
        assert_eq!(ab.all_locations().count(), 4);
        assert_eq!(ab.locations(&Id([10; 32])).count(), 1);
        assert_eq!(ab.locations(&Id([99; 32])).count(), 0);
    }

    #[test]
    fn a_copy_listed_by_two_index_files_is_one_copy() {
        let a = (Id([1; 32]), file(vec![pack(1, &[10])]));
        let b = (Id([2; 32]), file(vec![pack(1, &[10])]));
        let idx = Index::from_files(vec![a, b]);
        assert_eq!(idx.locations(&Id([10; 32])).count(), 1);
    }
}
