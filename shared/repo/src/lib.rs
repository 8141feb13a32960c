//! The Lifeboat repository format.
//!
//! A repository is a set of immutable objects in an [`ObjectStore`]:
//!
//! | key                   | what                                                    |
//! |-----------------------|---------------------------------------------------------|
//! | `config`              | plaintext JSON: format version, chunking, packing, lock policy |
//! | `keys/<id>`           | the master key, wrapped by a passphrase or key file      |
//! | `data/<xx>/<id>`      | packs: many encrypted, compressed blobs and a header     |
//! | `index/<id>`          | which blob lives in which pack, at which offset          |
//! | `snapshots/<id>`      | snapshot manifests                                      |
//! | `locks/<id>`          | short-lived coordination between backups and prune      |
//! | `damage/<id>`         | `repo repair`'s mark on a snapshot whose data is missing |
//!
//! Blob ids are keyed BLAKE3 hashes of the plaintext; file ids (packs, indexes,
//! snapshots) are plain BLAKE3 hashes of the stored bytes, so anyone can verify
//! an object's integrity without the key. The format is specified in
//! `docs/format.md`; this crate is its reference implementation.
//!
//! [`ObjectStore`]: lifeboat_store::ObjectStore

mod blob;
mod chunker;
mod config;
mod crypto;
mod error;
mod id;
mod index;
mod kdf_memory;
mod keyfile;
mod listing;
mod lock;
mod pack;
mod repository;
mod snapshot;
mod tree;

pub use blob::{decode_blob, encode_blob, BlobEncoder, BlobType, Compression, EncodedBlob};
pub use chunker::{ContentChunker, FixedChunker, GearTable};
pub use config::{ChunkingParams, LockPolicy, RepoConfig, FORMAT_VERSION};
pub use crypto::{Credential, MasterKey};
pub use error::RepoError;
pub use id::Id;
pub use index::{BlobLocation, Index, IndexFile, IndexPack, IndexedBlob};
pub use keyfile::{
    KdfParams, KeyFile, MAX_KDF_ITERATIONS, MAX_KDF_MEMORY_KIB, MAX_KDF_PARALLELISM,
};
pub use listing::{DamageMarker, SnapshotListing};
pub use lock::{LockGuard, LockKind, LockRecord};
pub use pack::{parse_pack, parse_pack_header, PackBlob, PackBuilder, PACK_MAGIC};
pub use repository::{FileKind, IndexLoad, InitOptions, Repository, SealedBlob, UnreadableIndex};
pub use snapshot::{ClusterResource, ClusterSource, Snapshot, SnapshotSummary, VolumeData};
pub use tree::{ChunkRef, Node, NodeType, Tree};
