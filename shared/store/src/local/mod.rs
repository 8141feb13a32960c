use crate::{ObjectInfo, ObjectStore, PutOptions, Retention, StoreError};
use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use uncached::{read_object, read_range, uncache, UNCACHE_FROM};

mod uncached;

/// Temporary files live here until they are renamed into place, so a crash
/// leaves only files that are never mistaken for objects.
const TMP_DIR: &str = ".tmp";

/// Objects are readable by their owner only: `keys/` holds the wrapped
/// master key, and the rest is the owner's data (restic and kopia do the same).
const FILE_MODE: u32 = 0o600;
/// Directories the store creates, the root included.
const DIR_MODE: u32 = 0o700;

/// `create_dir_all`, but every directory it creates is `DIR_MODE`.
fn create_private_dirs(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)
}

/// A repository in a local directory: the embedded default.
///
/// Each object is a file at `root/key`. Writes go to a temporary file in the same
/// filesystem, are fsynced and then renamed over the final name, and the parent
/// directory is fsynced, so a crash never leaves a partial object and two
/// writers never see each other's half-written files.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalStore { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        if key.is_empty()
            || key.starts_with('/')
            || key
                .split('/')
                .any(|c| c == ".." || c == "." || c.is_empty())
        {
            return Err(StoreError::Backend {
                location: self.location(),
                key: key.to_string(),
                detail: "invalid object key".into(),
            });
        }
        Ok(self.root.join(key))
    }

    fn not_found_or_io(&self, key: &str, path: &Path, e: io::Error) -> StoreError {
        if e.kind() == io::ErrorKind::NotFound {
            StoreError::NotFound {
                location: self.location(),
                key: key.to_string(),
            }
        } else if e.kind() == io::ErrorKind::AlreadyExists {
            StoreError::AlreadyExists {
                location: self.location(),
                key: key.to_string(),
            }
        } else if e.kind() == io::ErrorKind::PermissionDenied {
            StoreError::AccessDenied {
                location: self.location(),
                key: key.to_string(),
                detail: e.to_string(),
            }
        } else {
            StoreError::io(path.display().to_string(), e)
        }
    }

    fn unsupported_lock(&self) -> StoreError {
        StoreError::Unsupported {
            location: self.location(),
            what: "Object Lock (retention needs an S3 bucket with Object Lock enabled)".into(),
        }
    }
}

/// Move the finished temporary file to its final name. An object outside
/// [`crate::MUTABLE_PREFIX`] is created, never replaced: `renameat2` with
/// `RENAME_NOREPLACE` (or, where the filesystem lacks it, a hard link) fails
/// with `AlreadyExists` when the name is taken.
fn publish(tmp: &Path, path: &Path, overwrite: bool) -> io::Result<()> {
    if overwrite {
        return fs::rename(tmp, path);
    }
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    use rustix::io::Errno;
    match renameat_with(CWD, tmp, CWD, path, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(e) if e == Errno::INVAL || e == Errno::NOSYS || e == Errno::NOTSUP => {
            fs::hard_link(tmp, path)?;
            fs::remove_file(tmp)
        }
        Err(e) => Err(io::Error::from(e)),
    }
}

fn write_atomically(root: &Path, path: &Path, data: &[u8], overwrite: bool) -> io::Result<()> {
    let tmp_dir = root.join(TMP_DIR);
    create_private_dirs(&tmp_dir)?;
    let parent = path
        .parent()
        .ok_or_else(|| io::Error::other("object path has no parent"))?;
    create_private_dirs(parent)?;
    let mut rnd = [0u8; 12];
    getrandom::getrandom(&mut rnd).map_err(|e| io::Error::other(e.to_string()))?;
    let tmp = tmp_dir.join(hex::encode(rnd));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        if data.len() >= UNCACHE_FROM {
            uncache(&f, 0, 0);
        }
        drop(f);
        publish(&tmp, path, overwrite)?;
        fs::File::open(parent)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn modified(meta: &fs::Metadata) -> Option<DateTime<Utc>> {
    meta.modified().ok().map(DateTime::<Utc>::from)
}

fn walk(dir: &Path, rel: &str, out: &mut Vec<ObjectInfo>) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if rel.is_empty() && name == TMP_DIR {
            continue;
        }
        let key = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let ft = entry.file_type()?;
        if ft.is_dir() {
            walk(&entry.path(), &key, out)?;
        } else if ft.is_file() {
            let meta = entry.metadata()?;
            out.push(ObjectInfo {
                key,
                size: meta.len(),
                last_modified: modified(&meta),
                retention: None,
            });
        }
    }
    Ok(())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::io("<blocking task>", io::Error::other(e.to_string())))?
}

#[async_trait]
impl ObjectStore for LocalStore {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    async fn exists(&self) -> Result<bool, StoreError> {
        Ok(self.root.is_dir())
    }

    async fn create(&self) -> Result<(), StoreError> {
        let root = self.root.clone();
        blocking(move || {
            create_private_dirs(&root).map_err(|e| StoreError::io(root.display().to_string(), e))
        })
        .await
    }

    async fn ensure_lock_support(&self) -> Result<(), StoreError> {
        Err(self.unsupported_lock())
    }

    async fn put(&self, key: &str, data: Bytes, opts: &PutOptions) -> Result<(), StoreError> {
        if opts.retention.is_some() {
            return Err(self.unsupported_lock());
        }
        let path = self.path(key)?;
        if !self.root.is_dir() {
            return Err(StoreError::StoreMissing {
                location: self.location(),
            });
        }
        let root = self.root.clone();
        let this = self.clone();
        let key = key.to_string();
        let overwrite = crate::may_overwrite(&key);
        blocking(move || {
            write_atomically(&root, &path, &data, overwrite)
                .map_err(|e| this.not_found_or_io(&key, &path, e))
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        let path = self.path(key)?;
        let this = self.clone();
        let key = key.to_string();
        blocking(move || read_object(&path).map_err(|e| this.not_found_or_io(&key, &path, e))).await
    }

    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Bytes, StoreError> {
        let path = self.path(key)?;
        let this = self.clone();
        let key = key.to_string();
        blocking(move || {
            read_range(&path, offset, len).map_err(|e| this.not_found_or_io(&key, &path, e))
        })
        .await
    }

    async fn head(&self, key: &str) -> Result<ObjectInfo, StoreError> {
        let path = self.path(key)?;
        let meta = fs::metadata(&path).map_err(|e| self.not_found_or_io(key, &path, e))?;
        Ok(ObjectInfo {
            key: key.to_string(),
            size: meta.len(),
            last_modified: modified(&meta),
            retention: None,
        })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        if !self.root.is_dir() {
            return Err(StoreError::StoreMissing {
                location: self.location(),
            });
        }
        // Walk only the directory the prefix names; filter the rest by string.
        let dir_part = match prefix.rfind('/') {
            Some(i) => &prefix[..i],
            None => "",
        };
        let root = self.root.clone();
        let dir_part = dir_part.to_string();
        let prefix = prefix.to_string();
        blocking(move || {
            let mut out = Vec::new();
            let start = if dir_part.is_empty() {
                root.clone()
            } else {
                root.join(&dir_part)
            };
            walk(&start, &dir_part, &mut out)
                .map_err(|e| StoreError::io(start.display().to_string(), e))?;
            out.retain(|o| o.key.starts_with(&prefix));
            Ok(out)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path(key)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.not_found_or_io(key, &path, e)),
        }
    }

    async fn set_retention(&self, _key: &str, _retention: Retention) -> Result<(), StoreError> {
        Err(self.unsupported_lock())
    }

    async fn remove_stale_temporaries(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let dir = self.root.join(TMP_DIR);
        blocking(move || remove_older(&dir, before)).await
    }
}

/// Remove the files in `dir` last modified before `before` (a write killed
/// between creating its temporary file and renaming it leaves one behind).
fn remove_older(dir: &Path, before: DateTime<Utc>) -> Result<u64, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(StoreError::io(dir.display().to_string(), e)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(dir.display().to_string(), e))?;
        let path = entry.path();
        let meta = match entry.metadata() {
            Ok(m) => m,
            // Renamed into place (or removed) since the listing.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(StoreError::io(path.display().to_string(), e)),
        };
        if !meta.is_file() || modified(&meta).is_none_or(|t| t >= before) {
            continue;
        }
        match fs::remove_file(&path) {
            Ok(()) => {
                tracing::info!(path = %path.display(), bytes = meta.len(), "removed a temporary file an interrupted write left");
                removed += 1;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io(path.display().to_string(), e)),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn large_objects_read_back_whole_and_in_ranges() {
        // Large enough that writes and reads drop the pages from the cache.
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().join("repo"));
        store.create().await.unwrap();
        let data: Vec<u8> = (0..3 * UNCACHE_FROM + 123)
            .map(|i| (i % 251) as u8)
            .collect();
        store
            .put(
                "data/00/big",
                Bytes::from(data.clone()),
                &PutOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(store.get("data/00/big").await.unwrap(), data);
        let (off, len) = (UNCACHE_FROM as u64 - 7, 2 * UNCACHE_FROM as u64);
        let range = store.get_range("data/00/big", off, len).await.unwrap();
        assert_eq!(range, data[off as usize..(off + len) as usize]);
        // Read again after the drop: the same bytes, now from disk.
        assert_eq!(
            store.get_range("data/00/big", off, len).await.unwrap(),
            range
        );
        assert_eq!(store.get("data/00/big").await.unwrap(), data);
    }

    #[tokio::test]
    async fn put_get_list_delete_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().join("repo"));
        assert!(!store.exists().await.unwrap());
        store.create().await.unwrap();
        store
            .put(
                "data/ab/abc",
                Bytes::from_static(b"hello"),
                &PutOptions::default(),
            )
            .await
            .unwrap();
        store
            .put("config", Bytes::from_static(b"{}"), &PutOptions::default())
            .await
            .unwrap();
        assert_eq!(store.get("data/ab/abc").await.unwrap(), "hello");
        assert_eq!(store.get_range("data/ab/abc", 1, 3).await.unwrap(), "ell");
        assert!(store.get_range("data/ab/abc", 3, 5).await.is_err());
        let mut keys: Vec<_> = store
            .list("")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        keys.sort();
        assert_eq!(keys, vec!["config", "data/ab/abc"]);
        assert_eq!(store.list("data/").await.unwrap().len(), 1);
        assert_eq!(store.list("snapshots/").await.unwrap().len(), 0);
        store.delete("data/ab/abc").await.unwrap();
        assert!(store.get("data/ab/abc").await.unwrap_err().is_not_found());
        store.delete("data/ab/abc").await.unwrap();
    }

    #[tokio::test]
    async fn existing_objects_are_never_overwritten_but_locks_are() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().join("repo"));
        store.create().await.unwrap();
        let opts = PutOptions::default();
        store
            .put("config", Bytes::from_static(b"one"), &opts)
            .await
            .unwrap();
        let err = store
            .put("config", Bytes::from_static(b"two"), &opts)
            .await
            .unwrap_err();
        assert!(err.is_already_exists(), "{err}");
        assert!(err.to_string().contains("config"), "{err}");
        assert_eq!(store.get("config").await.unwrap(), "one");
        // The refused write leaves no temporary file behind.
        assert_eq!(
            fs::read_dir(dir.path().join("repo/.tmp")).unwrap().count(),
            0
        );
        store
            .put("locks/l1", Bytes::from_static(b"one"), &opts)
            .await
            .unwrap();
        store
            .put("locks/l1", Bytes::from_static(b"two"), &opts)
            .await
            .unwrap();
        assert_eq!(store.get("locks/l1").await.unwrap(), "two");
    }

    #[tokio::test]
    async fn rejects_escaping_keys_and_locks() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        assert!(store.get("../etc/passwd").await.is_err());
        assert!(store.get("/etc/passwd").await.is_err());
        assert!(matches!(
            store.ensure_lock_support().await,
            Err(StoreError::Unsupported { .. })
        ));
    }

    #[tokio::test]
    async fn objects_are_private_to_their_owner_under_umask_022() {
        use std::os::unix::fs::PermissionsExt;
        // The usual umask, which left objects 0644 and directories 0755.
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        let store = LocalStore::new(&root);
        store.create().await.unwrap();
        for key in ["config", "keys/0123", "data/ab/abc", "locks/42"] {
            store
                .put(key, Bytes::from_static(b"x"), &PutOptions::default())
                .await
                .unwrap();
        }
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        for key in ["config", "keys/0123", "data/ab/abc", "locks/42"] {
            assert_eq!(mode(&root.join(key)), 0o600, "{key}");
        }
        for d in ["", "keys", "data", "data/ab", "locks", TMP_DIR] {
            assert_eq!(mode(&root.join(d)), 0o700, "directory {d:?}");
        }
    }

    #[tokio::test]
    async fn stale_temporaries_are_removed_and_fresh_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().join("repo"));
        store.create().await.unwrap();
        assert_eq!(
            store.remove_stale_temporaries(Utc::now()).await.unwrap(),
            0,
            "no .tmp directory yet"
        );
        store
            .put("config", Bytes::from_static(b"{}"), &PutOptions::default())
            .await
            .unwrap();
        let tmp = dir.path().join("repo").join(TMP_DIR);
        let old = tmp.join("0123456789abcdef01234567");
        fs::write(&old, vec![1u8; 4096]).unwrap();
        let day_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(86_400);
        fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(day_ago)
            .unwrap();
        let fresh = tmp.join("fedcba9876543210fedcba98");
        fs::write(&fresh, b"in flight").unwrap();
        let hour_ago = Utc::now() - chrono::Duration::hours(1);
        assert_eq!(store.remove_stale_temporaries(hour_ago).await.unwrap(), 1);
        assert!(!old.exists());
        assert!(fresh.exists());
        assert_eq!(store.get("config").await.unwrap(), "{}");
    }

    #[tokio::test]
    async fn missing_store_is_named() {
        let store = LocalStore::new("/nonexistent/lifeboat-repo");
        let err = store.list("snapshots/").await.unwrap_err();
        assert!(err.to_string().contains("/nonexistent/lifeboat-repo"));
    }
}
