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
#[derive(Debug, Clone, Default)]
pub struct Index {
    blobs: HashMap<Id, BlobLocation>,
    packs: HashMap<Id, u64>,
    /// The live index files this was built from.
    pub files: Vec<Id>,
}

impl Index {
    /// Merge index files, ignoring those that another one supersedes.
    pub fn from_files(files: Vec<(Id, IndexFile)>) -> Self {
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
            self.blobs.entry(b.id).or_insert(BlobLocation {
                pack: pack.id,
                blob_type: b.blob_type,
                offset: b.offset,
                length: b.length,
                raw_length: b.raw_length,
                compression: b.compression,
            });
        }
    }

    pub fn get(&self, id: &Id) -> Option<&BlobLocation> {
        self.blobs.get(id)
    }

    pub fn contains(&self, id: &Id) -> bool {
        self.blobs.contains_key(id)
    }

    pub fn blob_count(&self) -> usize {
        self.blobs.len()
    }

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
}
