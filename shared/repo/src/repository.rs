use crate::cache::FileCache;
use crate::{
    decode_blob, Aad, BlobLocation, ChunkingParams, Credential, Format, Id, Index, IndexFile,
    KdfParams, KeyFile, LockPolicy, MasterKey, RepoConfig, RepoError, Tree,
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
    /// `repo repair`'s mark on a snapshot whose data is missing, keyed by the
    /// snapshot's id (not by its own content).
    Damage,
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
            FileKind::Damage => "damage/",
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
            FileKind::Damage => "damage marker",
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
    pub(crate) store: Arc<dyn ObjectStore>,
    config: RepoConfig,
    key: Arc<MasterKey>,
    /// The key object this handle was opened with.
    key_id: Option<Id>,
    /// Where snapshot and index files read before are kept (see
    /// [`FileCache`]); none unless [`Repository::with_cache`] set one.
    cache: Option<Arc<FileCache>>,
}

/// An index file that cannot be used: missing its hash, not decrypting or not parsing.
#[derive(Debug, Clone)]
pub struct UnreadableIndex {
    pub id: Id,
    pub reason: String,
    /// Whether a readable index file supersedes it (as `repo repair` writes),
    /// so that nothing it listed is lost.
    pub superseded: bool,
}

/// The live index, and the index files left out of it because they cannot be read.
#[derive(Debug, Clone, Default)]
pub struct IndexLoad {
    pub index: Index,
    pub unreadable: Vec<UnreadableIndex>,
}

/// What became of reading one object that a listing named.
pub(crate) enum Read<T> {
    Ok(T),
    /// Deleted since it was listed (e.g. by a prune).
    Gone,
    /// The object is there but unusable (junk, rotten, tampered with): why.
    Bad(String),
}

impl<T> Read<T> {
    /// Sort a read's result: a store that fails (unreachable, access denied)
    /// stays an error, for skipping objects then would hide good ones.
    pub(crate) fn of(r: Result<T, RepoError>) -> Result<Self, RepoError> {
        match r {
            Ok(v) => Ok(Read::Ok(v)),
            Err(RepoError::Store(e)) if e.is_not_found() => Ok(Read::Gone),
            Err(e @ RepoError::Store(_)) => Err(e),
            Err(e) => Ok(Read::Bad(e.to_string())),
        }
    }
}

/// Index files read at once.
const INDEX_READS: usize = 8;

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
            cache: None,
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
            Err(StoreError::NotFound { .. }) => return Err(not_repo()),
            // A missing bucket or container is not "no repository": `repo
            // init` never creates one, so its advice would fail too.
            Err(e) => return Err(e.into()),
        };
        let config = RepoConfig::parse(&raw)?;
        let listed = store.list(FileKind::Key.prefix()).await?;
        if listed.is_empty() {
            return Err(RepoError::malformed(
                format!("repository {}", store.location()),
                "it has no key objects",
            ));
        }
        // Key objects that do not parse or whose KDF exceeds the limits are
        // skipped (and named), so one planted object cannot lock everyone out.
        let mut usable = Vec::new();
        let mut refused = Vec::new();
        for k in &listed {
            let bytes = match store.get(&k.key).await {
                Ok(b) => b,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            };
            match KeyFile::parse(&bytes) {
                Ok(kf) => usable.push((k.key.clone(), kf)),
                Err(why) => {
                    tracing::warn!(key = %k.key, reason = %why, "skipping a key object that cannot be used");
                    refused.push(RepoError::malformed(format!("key {}", k.key), why));
                }
            }
        }
        let mut tried = 0;
        for (name, kf) in try_order(usable, cred) {
            tried += 1;
            let key_version = kf.version;
            let cred = cred.clone();
            let attempt = tokio::task::spawn_blocking(move || kf.unwrap_key(&cred))
                .await
                .map_err(|e| RepoError::malformed("key", e))?;
            match attempt {
                Ok(key) => {
                    crate::keyfile::check_config_version(&config, key_version, &name)?;
                    return Ok(Repository {
                        key_id: FileKind::Key.parse_key(&name),
                        store,
                        config,
                        key: Arc::new(key),
                        cache: None,
                    });
                }
                Err(RepoError::Decrypt { .. }) => continue,
                Err(e) => {
                    tracing::warn!(key = %name, error = %e, "skipping a key object that cannot be used");
                    refused.push(RepoError::malformed(format!("key {name}"), e));
                }
            }
        }
        match refused.into_iter().next() {
            // Nothing could even be tried: say why the first one was refused.
            Some(first) if tried == 0 => Err(first),
            _ => Err(RepoError::WrongCredential {
                location: store.location(),
                keys: listed.len(),
            }),
        }
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

    /// Every usable key object, with its id; the others are skipped with a
    /// warning (see [`Repository::unusable_keys`]).
    pub async fn keys(&self) -> Result<Vec<(Id, KeyFile)>, RepoError> {
        let (good, bad) = self.key_objects().await?;
        for (key, why) in bad {
            tracing::warn!(key = %key, reason = %why, "skipping a key object that cannot be used");
        }
        Ok(good)
    }

    /// Key objects that do not parse or whose KDF parameters exceed the
    /// limits: (object key, why).
    pub async fn unusable_keys(&self) -> Result<Vec<(String, String)>, RepoError> {
        Ok(self.key_objects().await?.1)
    }

    #[allow(clippy::type_complexity)]
    async fn key_objects(&self) -> Result<(Vec<(Id, KeyFile)>, Vec<(String, String)>), RepoError> {
        let (mut good, mut bad) = (Vec::new(), Vec::new());
        for o in self.store.list(FileKind::Key.prefix()).await? {
            let bytes = match self.store.get(&o.key).await {
                Ok(b) => b,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            };
            match (FileKind::Key.parse_key(&o.key), KeyFile::parse(&bytes)) {
                (Some(id), Ok(kf)) => good.push((id, kf)),
                (None, _) => bad.push((o.key, "the name is not a 64-digit hex id".into())),
                (_, Err(why)) => bad.push((o.key, why)),
            }
        }
        Ok((good, bad))
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
        self.open_sealed(what, &Aad::file(self.format(), kind), bytes)
    }

    /// Open, decompress (with a cap) and parse `seal(zstd(json))`.
    pub(crate) fn open_sealed<T: DeserializeOwned>(
        &self,
        what: String,
        aad: &Aad,
        bytes: &[u8],
    ) -> Result<T, RepoError> {
        let compressed = self.key.open(bytes, aad, &what)?;
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

    /// Read, check and open one file. Snapshots and indexes come from the
    /// local cache when one is set and holds a copy that passes the same
    /// checks; otherwise from the store (and are then kept in the cache).
    pub async fn load_file<T: DeserializeOwned>(
        &self,
        kind: FileKind,
        id: &Id,
    ) -> Result<T, RepoError> {
        let cache = self
            .cache
            .as_ref()
            .filter(|_| crate::cache::cacheable(kind));
        if let Some(cache) = cache {
            if let Some(bytes) = cache.get(&self.config.id, kind, id).await {
                match self.decode_file(kind, id, &bytes) {
                    Ok(v) => return Ok(v),
                    Err(_) => cache.remove(&self.config.id, kind, id).await,
                }
            }
        }
        let bytes = self.store.get(&kind.key(id)).await?;
        let v = self.decode_file(kind, id, &bytes)?;
        if let Some(cache) = cache {
            cache.put(&self.config.id, kind, id, &bytes).await;
        }
        Ok(v)
    }

    /// Ids of all files of a kind (well-formed keys only). For the kinds
    /// the local cache holds, entries the store no longer lists are
    /// dropped from it.
    pub async fn list_ids(&self, kind: FileKind) -> Result<Vec<Id>, RepoError> {
        let ids: Vec<Id> = self
            .store
            .list(kind.prefix())
            .await?
            .iter()
            .filter_map(|o| kind.parse_key(&o.key))
            .collect();
        if let Some(cache) = self
            .cache
            .as_ref()
            .filter(|_| crate::cache::cacheable(kind))
        {
            cache.retain(&self.config.id, kind, &ids).await;
        }
        Ok(ids)
    }

    /// Use `cache` for the snapshot and index files this handle reads.
    pub fn with_cache(mut self, cache: FileCache) -> Self {
        self.cache = Some(Arc::new(cache));
        self
    }

    /// This handle reading every file from the store: for checks, which
    /// must judge the store's copy.
    pub fn without_cache(mut self) -> Self {
        self.cache = None;
        self
    }

    /// The local cache this handle uses, if any.
    pub fn cache(&self) -> Option<&FileCache> {
        self.cache.as_deref()
    }

    /// Load every index file (8 at a time) and merge the live ones. Index
    /// files that fail their hash check, do not decrypt or do not parse are
    /// left out with a warning naming each.
    pub async fn load_index(&self) -> Result<Index, RepoError> {
        Ok(self.load_index_report().await?.index)
    }

    /// [`Repository::load_index`], also naming the index files left out.
    pub async fn load_index_report(&self) -> Result<IndexLoad, RepoError> {
        let ids = self.list_ids(FileKind::Index).await?;
        let mut set = JoinSet::new();
        let mut files = Vec::with_capacity(ids.len());
        let mut bad = Vec::new();
        let mut pending = ids.into_iter();
        loop {
            while set.len() < INDEX_READS {
                let Some(id) = pending.next() else { break };
                let repo = self.clone();
                set.spawn(async move {
                    let r = repo.load_file::<IndexFile>(FileKind::Index, &id).await;
                    (id, Read::of(r))
                });
            }
            let Some(joined) = set.join_next().await else {
                break;
            };
            let (id, read) = joined.map_err(|e| RepoError::malformed("index", e))?;
            match read? {
                Read::Ok(f) => files.push((id, f)),
                Read::Gone => {}
                Read::Bad(reason) => bad.push((id, reason)),
            }
        }
        let superseded: std::collections::HashSet<Id> = files
            .iter()
            .flat_map(|(_, f)| f.supersedes.iter().copied())
            .collect();
        let mut unreadable: Vec<UnreadableIndex> = bad
            .into_iter()
            .map(|(id, reason)| UnreadableIndex {
                superseded: superseded.contains(&id),
                id,
                reason,
            })
            .collect();
        unreadable.sort_by_key(|u| u.id);
        for u in &unreadable {
            if u.superseded {
                tracing::debug!(index = %u.id, reason = %u.reason, "ignoring a superseded index file that cannot be read");
            } else {
                tracing::warn!(index = %u.id, reason = %u.reason, "skipping an index file that cannot be read (`lifeboat repo repair` re-indexes its packs)");
            }
        }
        Ok(IndexLoad {
            index: Index::from_files(files),
            unreadable,
        })
    }

    /// Read, decrypt, decompress and verify one blob. A blob stored more than
    /// once is read from its preferred copy, and from the next one when that
    /// fails (missing, truncated, not authentic); the error is the first copy's.
    pub async fn read_blob(&self, index: &Index, id: &Id) -> Result<Vec<u8>, RepoError> {
        let mut first_error = None;
        for loc in index.locations(id) {
            let attempt = async {
                let sealed = self.read_sealed_at(id, *loc).await?;
                let key = self.key.clone();
                tokio::task::spawn_blocking(move || sealed.decode(&key))
                    .await
                    .map_err(|e| RepoError::malformed("blob", e))?
            };
            match attempt.await {
                Ok(data) => return Ok(data),
                Err(e) => {
                    tracing::warn!(blob = %id, pack = %loc.pack, error = %e, "cannot read this copy of the blob");
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or(RepoError::BlobNotIndexed { id: *id }))
    }

    /// Fetch a blob's stored bytes without decoding them, so that a caller can
    /// decode on a thread of its choosing (together with other blocking work).
    /// Reads the preferred copy only; [`Repository::read_blob`] falls back.
    pub async fn read_sealed_blob(&self, index: &Index, id: &Id) -> Result<SealedBlob, RepoError> {
        let loc = *index.get(id).ok_or(RepoError::BlobNotIndexed { id: *id })?;
        self.read_sealed_at(id, loc).await
    }

    async fn read_sealed_at(&self, id: &Id, loc: BlobLocation) -> Result<SealedBlob, RepoError> {
        self.read_sealed_run(&[(*id, loc)])
            .await?
            .pop()
            .ok_or(RepoError::BlobNotIndexed { id: *id })
    }

    /// Fetch the stored bytes of several blobs that lie back to back in
    /// one pack (each starting where the one before it ends) with a single
    /// ranged read, and split them. On an object store this turns a run of
    /// a file's chunks into one request instead of one per chunk. Fails
    /// (naming the pack) if `blobs` is empty, spans packs or has a gap.
    pub async fn read_sealed_run(
        &self,
        blobs: &[(Id, BlobLocation)],
    ) -> Result<Vec<SealedBlob>, RepoError> {
        let Some((_, first)) = blobs.first() else {
            return Ok(Vec::new());
        };
        let mut end = u64::from(first.offset);
        for (_, loc) in blobs {
            if loc.pack != first.pack || u64::from(loc.offset) != end {
                return Err(RepoError::malformed(
                    format!("pack {}", first.pack),
                    "the blobs of a run must lie back to back in one pack",
                ));
            }
            end += u64::from(loc.length);
        }
        let start = u64::from(first.offset);
        let bytes = self
            .store
            .get_range(&FileKind::Pack.key(&first.pack), start, end - start)
            .await?;
        let format = self.format();
        Ok(blobs
            .iter()
            .map(|(id, loc)| {
                let from = (u64::from(loc.offset) - start) as usize;
                SealedBlob {
                    id: *id,
                    location: *loc,
                    sealed: bytes.slice(from..from + loc.length as usize),
                    format,
                }
            })
            .collect())
    }

    pub async fn load_tree(&self, index: &Index, id: &Id) -> Result<Tree, RepoError> {
        let bytes = self.read_blob(index, id).await?;
        Tree::parse(&bytes, id)
    }
}

/// The order in which to try key objects with `cred`: only those that can fit
/// it, those costing no more than the defaults first, then the cheaper ones,
/// then by name. A costly planted key is thus tried last, if at all.
fn try_order(mut keys: Vec<(String, KeyFile)>, cred: &Credential) -> Vec<(String, KeyFile)> {
    keys.retain(|(_, kf)| kf.kdf.fits(cred));
    let cost = |k: &KdfParams| match k {
        KdfParams::Argon2id {
            memory_kib,
            iterations,
            ..
        } => u64::from(*memory_kib) * u64::from(*iterations),
        KdfParams::Keyfile { .. } => 0,
    };
    keys.sort_by(|(na, a), (nb, b)| {
        (!a.kdf.is_default_cost(), cost(&a.kdf), na).cmp(&(
            !b.kdf.is_default_cost(),
            cost(&b.kdf),
            nb,
        ))
    });
    keys
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
