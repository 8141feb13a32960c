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
//! | `revoked/<key id>`    | a removed key object still under Object Lock (sealed)   |
//! | `damage/<id>`         | `repo repair`'s mark on a snapshot whose data is missing |
//!
//! Blob ids are keyed BLAKE3 hashes of the plaintext; file ids (packs, indexes,
//! snapshots) are plain BLAKE3 hashes of the stored bytes, so anyone can verify
//! an object's integrity without the key. The format is specified in
//! `docs/format.md`; this crate is its reference implementation.
//!
//! [`ObjectStore`]: lifeboat_store::ObjectStore

mod blob;
mod cache;
mod chunker;
pub mod cluster_scope;
mod config;
mod crypto;
mod domain;
mod error;
mod fingerprint;
mod id;
mod index;
mod kdf_memory;
mod keyfile;
mod listing;
mod lock;
mod pack;
mod repository;
mod revoke;
mod snapshot;
mod tree;

pub use blob::{decode_blob, encode_blob, BlobEncoder, BlobType, Compression, EncodedBlob};
pub use cache::FileCache;
pub use chunker::{ContentChunker, FixedChunker, GearTable};
pub use config::{ChunkingParams, LockPolicy, RepoConfig, FORMAT_VERSION};
pub use crypto::{Credential, MasterKey};
pub use domain::{Aad, Format};
pub use error::RepoError;
pub use fingerprint::RepoFingerprint;
pub use id::Id;
pub use index::{BlobLocation, Index, IndexFile, IndexPack, IndexedBlob};
pub use keyfile::{
    KdfParams, KeyFile, MAX_KDF_ITERATIONS, MAX_KDF_MEMORY_KIB, MAX_KDF_PARALLELISM,
};
pub use listing::{DamageMarker, SnapshotListing};
pub use lock::{
    LockEntry, LockGuard, LockHandle, LockKind, LockRecord, LockStatus,
    HOLD_WITHOUT_REFRESH_MINUTES, STALE_AFTER_MINUTES,
};
pub use pack::{parse_pack, parse_pack_header, PackBlob, PackBuilder, PACK_MAGIC};
pub use repository::{FileKind, IndexLoad, InitOptions, Repository, SealedBlob, UnreadableIndex};
pub use revoke::{revocation_key, KeyRemoval, REVOKED_PREFIX};
pub use snapshot::{
    ClusterResource, ClusterSource, MissingVolume, Snapshot, SnapshotSummary, VolumeData,
};
pub use tree::{ChunkRef, Node, NodeType, Tree};
