use crate::{ObjectInfo, ObjectStore, PutOptions, Retention, StoreError};
use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, Clone)]
struct Object {
    data: Bytes,
    modified: DateTime<Utc>,
    retention: Option<Retention>,
}

/// An in-memory store for unit tests. It enforces retention like S3 Object
/// Lock: a locked object cannot be deleted and its lock cannot be shortened.
/// Clones share the same objects.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    objects: Arc<Mutex<BTreeMap<String, Object>>>,
    lock_enabled: bool,
}

impl MemoryStore {
    /// A store without Object Lock.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that accepts and enforces retention.
    pub fn with_object_lock() -> Self {
        MemoryStore {
            objects: Arc::default(),
            lock_enabled: true,
        }
    }

    fn objects(&self) -> MutexGuard<'_, BTreeMap<String, Object>> {
        // A panic while holding the lock cannot leave a map half-updated, so a
        // poisoned lock is still safe to use.
        self.objects
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn not_found(key: &str) -> StoreError {
        StoreError::NotFound {
            location: "memory".into(),
            key: key.to_string(),
        }
    }

    /// Replace an object's bytes, bypassing every rule (to simulate corruption in tests).
    pub fn tamper(&self, key: &str, data: Bytes) {
        if let Some(o) = self.objects().get_mut(key) {
            o.data = data;
        }
    }

    /// Remove an object, bypassing retention (to simulate loss in tests).
    pub fn force_remove(&self, key: &str) {
        self.objects().remove(key);
    }

    /// Change an object's retention, bypassing every rule (to simulate the passage of time).
    pub fn force_retention(&self, key: &str, retention: Option<Retention>) {
        if let Some(o) = self.objects().get_mut(key) {
            o.retention = retention;
        }
    }
}

#[async_trait]
impl ObjectStore for MemoryStore {
    fn location(&self) -> String {
        "memory".into()
    }

    async fn exists(&self) -> Result<bool, StoreError> {
        Ok(true)
    }

    async fn create(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn ensure_lock_support(&self) -> Result<(), StoreError> {
        if self.lock_enabled {
            Ok(())
        } else {
            Err(StoreError::Unsupported {
                location: self.location(),
                what: "Object Lock".into(),
            })
        }
    }

    async fn put(&self, key: &str, data: Bytes, opts: &PutOptions) -> Result<(), StoreError> {
        if opts.retention.is_some() && !self.lock_enabled {
            self.ensure_lock_support().await?;
        }
        let mut objects = self.objects();
        if let Some(existing) = objects.get(key) {
            if !crate::may_overwrite(key) {
                return Err(StoreError::AlreadyExists {
                    location: "memory".into(),
                    key: key.to_string(),
                });
            }
            if let Some(r) = existing.retention.filter(|r| r.is_active(Utc::now())) {
                return Err(StoreError::Locked {
                    location: "memory".into(),
                    key: key.to_string(),
                    until: r.until.to_rfc3339(),
                });
            }
        }
        objects.insert(
            key.to_string(),
            Object {
                data,
                modified: Utc::now(),
                retention: opts.retention,
            },
        );
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        self.objects()
            .get(key)
            .map(|o| o.data.clone())
            .ok_or_else(|| Self::not_found(key))
    }

    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Bytes, StoreError> {
        let data = self.get(key).await?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let end = start.saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
        if end > data.len() {
            return Err(StoreError::Backend {
                location: "memory".into(),
                key: key.to_string(),
                detail: format!("range {offset}+{len} beyond object size {}", data.len()),
            });
        }
        Ok(data.slice(start..end))
    }

    async fn head(&self, key: &str) -> Result<ObjectInfo, StoreError> {
        self.objects()
            .get(key)
            .map(|o| ObjectInfo {
                key: key.to_string(),
                size: o.data.len() as u64,
                last_modified: Some(o.modified),
                retention: o.retention,
            })
            .ok_or_else(|| Self::not_found(key))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        Ok(self
            .objects()
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, o)| ObjectInfo {
                key: k.clone(),
                size: o.data.len() as u64,
                last_modified: Some(o.modified),
                retention: None,
            })
            .collect())
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let mut objects = self.objects();
        if let Some(r) = objects
            .get(key)
            .and_then(|o| o.retention)
            .filter(|r| r.is_active(Utc::now()))
        {
            return Err(StoreError::Locked {
                location: "memory".into(),
                key: key.to_string(),
                until: r.until.to_rfc3339(),
            });
        }
        objects.remove(key);
        Ok(())
    }

    async fn set_retention(&self, key: &str, retention: Retention) -> Result<(), StoreError> {
        self.ensure_lock_support().await?;
        let mut objects = self.objects();
        let o = objects.get_mut(key).ok_or_else(|| Self::not_found(key))?;
        if let Some(old) = o.retention {
            if old.is_active(Utc::now())
                && (retention.until < old.until || old.mode != retention.mode)
            {
                return Err(StoreError::Locked {
                    location: "memory".into(),
                    key: key.to_string(),
                    until: old.until.to_rfc3339(),
                });
            }
        }
        o.retention = Some(retention);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LockMode;
    use chrono::Duration;

    #[tokio::test]
    async fn locked_objects_cannot_be_deleted_or_shortened() {
        let store = MemoryStore::with_object_lock();
        let until = Utc::now() + Duration::days(1);
        let r = Retention {
            mode: LockMode::Compliance,
            until,
        };
        store
            .put(
                "a",
                Bytes::from_static(b"x"),
                &PutOptions { retention: Some(r) },
            )
            .await
            .unwrap();
        assert!(matches!(
            store.delete("a").await,
            Err(StoreError::Locked { .. })
        ));
        let shorter = Retention {
            until: until - Duration::hours(1),
            ..r
        };
        assert!(store.set_retention("a", shorter).await.is_err());
        let longer = Retention {
            until: until + Duration::days(1),
            ..r
        };
        store.set_retention("a", longer).await.unwrap();
        assert_eq!(store.head("a").await.unwrap().retention, Some(longer));
        store.force_retention("a", None);
        store.delete("a").await.unwrap();
    }

    #[tokio::test]
    async fn existing_objects_are_never_overwritten_but_locks_are() {
        let store = MemoryStore::new();
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
        assert_eq!(store.get("config").await.unwrap(), "one");
        // A content-addressed write of an object already there is done.
        crate::put_content_addressed(&store, "config", Bytes::from_static(b"one"), &opts)
            .await
            .unwrap();
        store
            .put("locks/a", Bytes::from_static(b"1"), &opts)
            .await
            .unwrap();
        store
            .put("locks/a", Bytes::from_static(b"2"), &opts)
            .await
            .unwrap();
        assert_eq!(store.get("locks/a").await.unwrap(), "2");
    }

    #[tokio::test]
    async fn plain_store_refuses_retention() {
        let store = MemoryStore::new();
        let r = Retention {
            mode: LockMode::Governance,
            until: Utc::now(),
        };
        assert!(store
            .put("a", Bytes::new(), &PutOptions { retention: Some(r) })
            .await
            .is_err());
    }
}
