use crate::{
    decode_blob, Aad, BlobLocation, ChunkingParams, Credential, Format, Id, Index, IndexFile,
    KdfParams, KeyFile, LockPolicy, MasterKey, RepoConfig, RepoError, Snapshot, Tree,
};
use bytes::Bytes;
use chrono::{Duration, Utc};
use lifeboat_store::{put_content_addressed, ObjectStore, PutOptions, Retention, StoreError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;
use tokio::task::JoinSet;

/// Largest decompressed index or snapshot file accepted.
const MAX_FILE_LEN: u64 = 1 << 30;

/// Kinds of stored objects, each under its own prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    Config,
    Key,
    Pack,
    Index,
    Snapshot,
    Lock,
    /// A restore's per-object report, kept beside the snapshot it restored.
    Report,
}

impl FileKind {
    pub fn prefix(self) -> &'static str {
        match self {
            FileKind::Config => "config",
            FileKind::Key => "keys/",
            FileKind::Pack => "data/",
            FileKind::Index => "index/",
            FileKind::Snapshot => "snapshots/",
            FileKind::Lock => "locks/",
            FileKind::Report => "reports/",
        }
    }

    /// The object key of a file of this kind.
    pub fn key(self, id: &Id) -> String {
        match self {
            FileKind::Config => "config".into(),
            FileKind::Pack => {
                let h = id.to_hex();
                format!("data/{}/{h}", &h[..2])
            }
            other => format!("{}{id}", other.prefix()),
        }
    }

    /// The id in an object key of this kind, if the key is well-formed.
    pub fn parse_key(self, key: &str) -> Option<Id> {
        key.rsplit('/').next().and_then(|s| s.parse().ok())
    }

    pub fn name(self) -> &'static str {
        match self {
            FileKind::Config => "config",
            FileKind::Key => "key",
            FileKind::Pack => "pack",
            FileKind::Index => "index",
            FileKind::Snapshot => "snapshot",
            FileKind::Lock => "lock",
            FileKind::Report => "report",
        }
    }
}

/// A blob's stored bytes as fetched from its pack.
#[derive(Debug, Clone)]
pub struct SealedBlob {
    pub id: Id,
    pub location: BlobLocation,
    pub sealed: Bytes,
    /// The format of the repository it was read from.
    pub format: Format,
}

impl SealedBlob {
    /// Decrypt, decompress and verify (CPU work: call from a blocking thread).
    pub fn decode(&self, key: &MasterKey) -> Result<Vec<u8>, RepoError> {
        let l = &self.location;
        let (t, c, len) = (l.blob_type, l.compression, l.raw_length);
        decode_blob(key, self.format, t, &self.id, c, len, &self.sealed)
    }
}

/// Settings for a new repository.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub chunking: ChunkingParams,
    pub compression_level: i32,
    pub pack_size: u32,
    pub object_lock: Option<LockPolicy>,
    /// KDF parameters; `None` for the defaults of the credential's kind.
    pub kdf: Option<KdfParams>,
    /// The format version ([`Format::LATEST`]; version 1 only to test readers).
    pub format: Format,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            chunking: ChunkingParams::default(),
            compression_level: 3,
            pack_size: 16 * 1024 * 1024,
            object_lock: None,
            kdf: None,
            format: Format::LATEST,
        }
    }
}

/// An open repository: store, config and master key.
#[derive(Debug, Clone)]
pub struct Repository {
    store: Arc<dyn ObjectStore>,
    config: RepoConfig,
    key: Arc<MasterKey>,
    /// The key object this handle was opened with.
    key_id: Option<Id>,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

impl Repository {
    /// Create a repository in an empty location.
    pub async fn init(
        store: Arc<dyn ObjectStore>,
        cred: &Credential,
        opts: InitOptions,
    ) -> Result<Self, RepoError> {
        let mut config = RepoConfig::new(
            opts.chunking,
            opts.compression_level,
            opts.pack_size,
            opts.object_lock,
        )?;
        config.version = opts.format.version();
        store.create().await?;
        if opts.object_lock.is_some() {
            store.ensure_lock_support().await?;
        }
        match store.head("config").await {
            Ok(_) => {
                return Err(RepoError::AlreadyExists {
                    location: store.location(),
                })
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        let mut repo = Repository {
            store,
            config,
            key: Arc::new(MasterKey::generate()?),
            key_id: None,
        };
        let kdf = match opts.kdf {
            Some(k) => k,
            None => KdfParams::for_credential(cred)?,
        };
        repo.key_id = Some(repo.add_key(cred, kdf).await?);
        let written = repo
            .store
            .put(
                "config",
                Bytes::from(repo.config.to_json()?),
                &repo.put_options(),
            )
            .await;
        match written {
            // Another init got there first (between the check above and now).
            Err(e) if e.is_already_exists() => {
                return Err(RepoError::AlreadyExists {
                    location: repo.store.location(),
                })
            }
            other => other?,
        }
        Ok(repo)
    }

    /// Open an existing repository with a passphrase or key file.
    pub async fn open(store: Arc<dyn ObjectStore>, cred: &Credential) -> Result<Self, RepoError> {
        let not_repo = || RepoError::NotARepository {
            location: store.location(),
        };
        let raw = match store.get("config").await {
            Ok(b) => b,
            Err(StoreError::NotFound { .. }) | Err(StoreError::StoreMissing { .. }) => {
                return Err(not_repo())
            }
            Err(e) => return Err(e.into()),
        };
        let config = RepoConfig::parse(&raw)?;
        let keys = store.list(FileKind::Key.prefix()).await?;
        if keys.is_empty() {
            return Err(RepoError::malformed(
                format!("repository {}", store.location()),
                "it has no key objects",
            ));
        }
        for k in &keys {
            let bytes = store.get(&k.key).await?;
            let kf: KeyFile = serde_json::from_slice(&bytes)
                .map_err(|e| RepoError::malformed(format!("key {}", k.key), e))?;
            let key_version = kf.version;
            let cred = cred.clone();
            let attempt = tokio::task::spawn_blocking(move || kf.unwrap_key(&cred))
                .await
                .map_err(|e| RepoError::malformed("key", e))?;
            match attempt {
                Ok(key) => {
                    crate::keyfile::check_config_version(&config, key_version, &k.key)?;
                    return Ok(Repository {
                        key_id: FileKind::Key.parse_key(&k.key),
                        store,
                        config,
                        key: Arc::new(key),
                    });
                }
                Err(RepoError::Decrypt { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(RepoError::WrongCredential {
            location: store.location(),
            keys: keys.len(),
        })
    }

    /// Add a key object that opens the repository with `cred`.
    pub async fn add_key(&self, cred: &Credential, kdf: KdfParams) -> Result<Id, RepoError> {
        let key = self.key.clone();
        let cred = cred.clone();
        let format = self.format();
        let kf = tokio::task::spawn_blocking(move || {
            KeyFile::wrap(&key, &cred, kdf, hostname(), format)
        })
        .await
        .map_err(|e| RepoError::malformed("key", e))??;
        let bytes = serde_json::to_vec_pretty(&kf).map_err(|e| RepoError::malformed("key", e))?;
        let id = Id::of_file(&bytes);
        put_content_addressed(
            self.store.as_ref(),
            &FileKind::Key.key(&id),
            Bytes::from(bytes),
            &self.put_options(),
        )
        .await?;
        Ok(id)
    }

    /// Every key object, with its id.
    pub async fn keys(&self) -> Result<Vec<(Id, KeyFile)>, RepoError> {
        let mut out = Vec::new();
        for id in self.list_ids(FileKind::Key).await? {
            let bytes = self.store.get(&FileKind::Key.key(&id)).await?;
            let kf: KeyFile = serde_json::from_slice(&bytes)
                .map_err(|e| RepoError::malformed(format!("key {id}"), e))?;
            out.push((id, kf));
        }
        Ok(out)
    }

    /// The key object this handle was opened with.
    pub fn key_id(&self) -> Option<Id> {
        self.key_id
    }

    /// Remove a key object (after adding its replacement). Refuses to remove
    /// the key in use or the last one. A key object still under Object Lock
    /// is marked revoked instead (see [`crate::KeyRemoval`]).
    pub async fn remove_key(&self, id: &Id) -> Result<crate::KeyRemoval, RepoError> {
        let keys = self.list_ids(FileKind::Key).await?;
        if !keys.contains(id) {
            return Err(RepoError::InvalidOption(format!(
                "no key {id} in this repository"
            )));
        }
        if Some(*id) == self.key_id {
            return Err(RepoError::InvalidOption(format!(
                "key {} is the one this command opened the repository with; open with another credential to remove it",
                id.short()
            )));
        }
        if keys.len() < 2 {
            return Err(RepoError::InvalidOption(
                "refusing to remove the last key".into(),
            ));
        }
        self.remove_key_object(id, &keys).await
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    /// How this repository's objects are sealed: every object is written,
    /// and read, under the version in its config.
    pub fn format(&self) -> Format {
        self.config.format()
    }

    pub fn key(&self) -> &Arc<MasterKey> {
        &self.key
    }

    /// The retention a new object gets under the repository's lock policy.
    pub fn new_retention(&self) -> Option<Retention> {
        self.config.object_lock.map(|p| Retention {
            mode: p.mode,
            until: Utc::now() + Duration::days(i64::from(p.days)),
        })
    }

    pub fn put_options(&self) -> PutOptions {
        PutOptions {
            retention: self.new_retention(),
        }
    }

    /// Store a JSON document as `seal(zstd(json))` under its content hash,
    /// sealed for `kind` ([`Aad::file`]).
    pub async fn save_file<T: Serialize + Sync>(
        &self,
        kind: FileKind,
        value: &T,
    ) -> Result<Id, RepoError> {
        let json = serde_json::to_vec(value).map_err(|e| RepoError::malformed(kind.name(), e))?;
        let compressed = zstd::bulk::compress(&json, self.config.compression_level)
            .map_err(|e| RepoError::malformed(kind.name(), e))?;
        let sealed = self
            .key
            .seal(&compressed, &Aad::file(self.format(), kind))?;
        let id = Id::of_file(&sealed);
        put_content_addressed(
            self.store.as_ref(),
            &kind.key(&id),
            Bytes::from(sealed),
            &self.put_options(),
        )
        .await?;
        Ok(id)
    }

    /// Decode what [`Repository::save_file`] stored, verifying its id. In a
    /// format 2 repository, an object sealed as anything but a `kind` file (a
    /// blob copied out of a pack, say) fails with [`RepoError::Decrypt`].
    pub fn decode_file<T: DeserializeOwned>(
        &self,
        kind: FileKind,
        id: &Id,
        bytes: &[u8],
    ) -> Result<T, RepoError> {
        let what = format!("{} {id}", kind.name());
        let actual = Id::of_file(bytes);
        if actual != *id {
            return Err(RepoError::HashMismatch {
                what,
                expected: *id,
                actual,
            });
        }
        let compressed = self
            .key
            .open(bytes, &Aad::file(self.format(), kind), &what)?;
        // Stream the decompression with a cap: no up-front allocation of the
        // cap, and a decompression bomb is refused rather than followed.
        let mut json = Vec::new();
        let decoder = zstd::stream::read::Decoder::new(compressed.as_slice())
            .map_err(|e| RepoError::malformed(what.clone(), e))?;
        std::io::Read::read_to_end(
            &mut std::io::Read::take(decoder, MAX_FILE_LEN + 1),
            &mut json,
        )
        .map_err(|e| RepoError::malformed(what.clone(), e))?;
        if json.len() as u64 > MAX_FILE_LEN {
            return Err(RepoError::malformed(
                what,
                "decompresses to more than 1 GiB",
            ));
        }
        serde_json::from_slice(&json).map_err(|e| RepoError::malformed(what, e))
    }

    pub async fn load_file<T: DeserializeOwned>(
        &self,
        kind: FileKind,
        id: &Id,
    ) -> Result<T, RepoError> {
        let bytes = self.store.get(&kind.key(id)).await?;
        self.decode_file(kind, id, &bytes)
    }

    /// Ids of all files of a kind (well-formed keys only).
    pub async fn list_ids(&self, kind: FileKind) -> Result<Vec<Id>, RepoError> {
        Ok(self
            .store
            .list(kind.prefix())
            .await?
            .iter()
            .filter_map(|o| kind.parse_key(&o.key))
            .collect())
    }

    /// Load every index file (in parallel) and merge the live ones.
    pub async fn load_index(&self) -> Result<Index, RepoError> {
        let ids = self.list_ids(FileKind::Index).await?;
        let mut set = JoinSet::new();
        let mut files = Vec::with_capacity(ids.len());
        let mut pending = ids.into_iter();
        loop {
            while set.len() < 8 {
                let Some(id) = pending.next() else { break };
                let repo = self.clone();
                set.spawn(async move {
                    let f: IndexFile = repo.load_file(FileKind::Index, &id).await?;
                    Ok::<_, RepoError>((id, f))
                });
            }
            match set.join_next().await {
                Some(r) => files.push(r.map_err(|e| RepoError::malformed("index", e))??),
                None => break,
            }
        }
        Ok(Index::from_files(files))
    }

    /// Read, decrypt, decompress and verify one blob.
    pub async fn read_blob(&self, index: &Index, id: &Id) -> Result<Vec<u8>, RepoError> {
        let sealed = self.read_sealed_blob(index, id).await?;
        let key = self.key.clone();
        tokio::task::spawn_blocking(move || sealed.decode(&key))
            .await
            .map_err(|e| RepoError::malformed("blob", e))?
    }

    /// Fetch a blob's stored bytes without decoding them, so that a caller can
    /// decode on a thread of its choosing (together with other blocking work).
    pub async fn read_sealed_blob(&self, index: &Index, id: &Id) -> Result<SealedBlob, RepoError> {
        let loc = *index.get(id).ok_or(RepoError::BlobNotIndexed { id: *id })?;
        let sealed = self
            .store
            .get_range(
                &FileKind::Pack.key(&loc.pack),
                u64::from(loc.offset),
                u64::from(loc.length),
            )
            .await?;
        Ok(SealedBlob {
            id: *id,
            location: loc,
            sealed,
            format: self.format(),
        })
    }

    pub async fn load_tree(&self, index: &Index, id: &Id) -> Result<Tree, RepoError> {
        let bytes = self.read_blob(index, id).await?;
        Tree::parse(&bytes, id)
    }

    /// Every snapshot, oldest first.
    pub async fn snapshots(&self) -> Result<Vec<(Id, Snapshot)>, RepoError> {
        let ids = self.list_ids(FileKind::Snapshot).await?;
        let mut set = JoinSet::new();
        for id in ids {
            let repo = self.clone();
            set.spawn(async move {
                let s: Snapshot = repo.load_file(FileKind::Snapshot, &id).await?;
                Ok::<_, RepoError>((id, s))
            });
        }
        let mut out = Vec::new();
        while let Some(r) = set.join_next().await {
            out.push(r.map_err(|e| RepoError::malformed("snapshot", e))??);
        }
        out.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        Ok(out)
    }

    /// Find a snapshot by full id, unique id prefix, or `latest`.
    pub async fn resolve_snapshot(&self, spec: &str) -> Result<(Id, Snapshot), RepoError> {
        let all = self.snapshots().await?;
        if spec == "latest" {
            return all.into_iter().last().ok_or_else(|| {
                RepoError::SnapshotRef(format!(
                    "repository {} has no snapshots yet",
                    self.store.location()
                ))
            });
        }
        let spec_l = spec.to_ascii_lowercase();
        if spec_l.is_empty() || !spec_l.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(RepoError::SnapshotRef(format!(
                "{spec:?} is not a snapshot id, id prefix, or \"latest\""
            )));
        }
        let mut matches: Vec<_> = all
            .into_iter()
            .filter(|(id, _)| id.to_hex().starts_with(&spec_l))
            .collect();
        match matches.len() {
            0 => Err(RepoError::SnapshotRef(format!(
                "no snapshot matches {spec:?}"
            ))),
            1 => Ok(matches.remove(0)),
            n => Err(RepoError::SnapshotRef(format!(
                "{spec:?} matches {n} snapshots; give more digits"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat_store::MemoryStore;

    fn weak(cred: &Credential) -> InitOptions {
        InitOptions {
            kdf: Some(KdfParams::weak_for_tests(cred).unwrap()),
            ..InitOptions::default()
        }
    }

    #[tokio::test]
    async fn init_open_and_wrong_passphrase() {
        let store: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new());
        let cred = Credential::Passphrase("pw".into());
        let repo = Repository::init(store.clone(), &cred, weak(&cred))
            .await
            .unwrap();
        assert!(matches!(
            Repository::init(store.clone(), &cred, weak(&cred)).await,
            Err(RepoError::AlreadyExists { .. })
        ));
        let opened = Repository::open(store.clone(), &cred).await.unwrap();
        assert_eq!(opened.config(), repo.config());
        let err = Repository::open(store.clone(), &Credential::Passphrase("no".into()))
            .await
            .unwrap_err();
        assert!(
            matches!(err, RepoError::WrongCredential { keys: 1, .. }),
            "{err}"
        );
        let empty: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new());
        assert!(matches!(
            Repository::open(empty, &cred).await,
            Err(RepoError::NotARepository { .. })
        ));
    }

    #[tokio::test]
    async fn passphrase_change_via_second_key() {
        let store: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new());
        let old = Credential::Passphrase("old".into());
        let repo = Repository::init(store.clone(), &old, weak(&old))
            .await
            .unwrap();
        let new = Credential::Passphrase("new".into());
        repo.add_key(&new, KdfParams::weak_for_tests(&new).unwrap())
            .await
            .unwrap();
        let reopened = Repository::open(store.clone(), &new).await.unwrap();
        assert_eq!(reopened.key().blob_id(b"x"), repo.key().blob_id(b"x"));
        let old_id = repo.key_id().unwrap();
        assert!(repo.remove_key(&old_id).await.is_err(), "the key in use");
        reopened.remove_key(&old_id).await.unwrap();
        assert!(Repository::open(store.clone(), &old).await.is_err());
        let last = reopened.key_id().unwrap();
        assert!(reopened.remove_key(&last).await.is_err());
    }

    #[tokio::test]
    async fn lock_policy_needs_lock_support() {
        let cred = Credential::Passphrase("pw".into());
        let opts = InitOptions {
            object_lock: Some(LockPolicy {
                mode: lifeboat_store::LockMode::Compliance,
                days: 7,
            }),
            ..weak(&cred)
        };
        let plain: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new());
        assert!(Repository::init(plain, &cred, opts.clone()).await.is_err());
        let mem = MemoryStore::with_object_lock();
        let locked: Arc<dyn ObjectStore> = Arc::new(mem.clone());
        Repository::init(locked, &cred, opts).await.unwrap();
        let r = mem.head("config").await.unwrap().retention.unwrap();
        assert!(r.until > Utc::now() + Duration::days(6));
    }

    #[tokio::test]
    async fn files_are_verified_on_load() {
        let mem = MemoryStore::new();
        let store: Arc<dyn ObjectStore> = Arc::new(mem.clone());
        let cred = Credential::Passphrase("pw".into());
        let repo = Repository::init(store, &cred, weak(&cred)).await.unwrap();
        let id = repo
            .save_file(FileKind::Index, &IndexFile::default())
            .await
            .unwrap();
        let _: IndexFile = repo.load_file(FileKind::Index, &id).await.unwrap();
        mem.tamper(&FileKind::Index.key(&id), Bytes::from_static(b"garbage"));
        let err = repo
            .load_file::<IndexFile>(FileKind::Index, &id)
            .await
            .unwrap_err();
        assert!(matches!(err, RepoError::HashMismatch { .. }));
    }
}
