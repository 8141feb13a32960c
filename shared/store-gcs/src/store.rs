//! [`GcsStore`]: a repository in a Cloud Storage bucket, under a prefix.

use crate::api::Api;
use crate::auth::{Auth, GcsCredentials};
use crate::client::Client;
use crate::failure::{lock_not_enabled, Failure, BUCKET_KEY};
use crate::options::GcsOptions;
use crate::retention;
use crate::transport::{Http, Request};
use async_trait::async_trait;
use bytes::Bytes;
use http::Method;
use lifeboat_store::{ObjectInfo, ObjectStore, PutOptions, Retention, StoreError};
use std::sync::Arc;
use tracing::{info, instrument};

/// A repository in a Cloud Storage bucket, under a prefix, through the JSON
/// API.
///
/// Every object is written with its CRC32C and, outside `locks/`, with
/// `ifGenerationMatch=0`, so an existing object is never replaced; retention
/// goes with the bytes in the same request (Object Retention Lock:
/// governance is `Unlocked`, compliance is `Locked`).
#[derive(Debug, Clone)]
pub struct GcsStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) client: Client,
    pub(crate) bucket: String,
    /// Without leading or trailing slashes; empty for the bucket root.
    pub(crate) prefix: String,
    pub(crate) resumable_threshold: usize,
    pub(crate) resumable_chunk: usize,
    pub(crate) list_page_size: u32,
    /// Why retention reported here is no proof: set for an endpoint reached
    /// without credentials, which only an emulator accepts.
    pub(crate) retention_caveat: Option<String>,
}

impl GcsStore {
    /// Connect with the configuration of the environment:
    /// `STORAGE_EMULATOR_HOST` for an emulator, else Application Default
    /// Credentials (`GOOGLE_APPLICATION_CREDENTIALS`, gcloud's file, the
    /// metadata server). Nothing is sent until the first operation.
    pub fn connect(bucket: &str, prefix: &str) -> Result<GcsStore, StoreError> {
        let opts = GcsOptions::from_env().map_err(|detail| StoreError::Backend {
            location: location_of(bucket, prefix.trim_matches('/')),
            key: "(credentials)".into(),
            detail,
        })?;
        GcsStore::with_options(bucket, prefix, opts)
    }

    /// Connect with explicit options (tests, or callers with their own
    /// endpoint and credentials).
    pub fn with_options(
        bucket: &str,
        prefix: &str,
        opts: GcsOptions,
    ) -> Result<GcsStore, StoreError> {
        let prefix = prefix.trim_matches('/').to_string();
        if !valid_bucket_name(bucket) {
            return Err(StoreError::InvalidUrl {
                url: format!("gs://{bucket}/{prefix}"),
                reason: format!("{bucket:?} is not a Cloud Storage bucket name"),
            });
        }
        let http =
            Http::new(opts.retry, opts.request_timeout).map_err(|detail| StoreError::Backend {
                location: location_of(bucket, &prefix),
                key: BUCKET_KEY.into(),
                detail,
            })?;
        info!(bucket, endpoint = %opts.endpoint, credentials = %opts.credentials.kind(), "Cloud Storage store");
        let retention_caveat = matches!(opts.credentials, GcsCredentials::Anonymous).then(|| {
            format!(
                "{} is reached without credentials, so it is an emulator (STORAGE_EMULATOR_HOST): \
                 fake-gcs-server records object retention but does not enforce it",
                opts.endpoint
            )
        });
        let client = Client {
            auth: Auth::new(opts.credentials, http.clone()),
            api: Api::new(&opts.endpoint, bucket),
            http,
        };
        Ok(GcsStore {
            inner: Arc::new(Inner {
                client,
                bucket: bucket.to_string(),
                prefix,
                resumable_threshold: opts.resumable_threshold,
                resumable_chunk: opts.resumable_chunk.max(256 << 10),
                list_page_size: opts.list_page_size.clamp(1, 1000),
                retention_caveat,
            }),
        })
    }

    pub fn bucket(&self) -> &str {
        &self.inner.bucket
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    pub(crate) fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The object name of a repository key.
    pub(crate) fn full_key(&self, key: &str) -> String {
        lifeboat_store::join_key(&self.inner.prefix, key)
    }

    pub(crate) fn check_key(&self, key: &str) -> Result<(), StoreError> {
        lifeboat_store::check_key(&self.location(), key)
    }

    /// The error a failed call about `key` means.
    pub(crate) fn error(&self, key: &str, failure: Failure) -> StoreError {
        failure.into_store_error(self.location(), &self.inner.bucket, key)
    }

    /// The bucket's resource, or `None` when the bucket does not exist.
    async fn bucket_resource(&self) -> Result<Option<serde_json::Value>, StoreError> {
        let req = Request::new(Method::GET, self.client().api.bucket());
        let resp = self
            .client()
            .call(req)
            .await
            .map_err(|f| self.error(BUCKET_KEY, f))?;
        if resp.status == 404 {
            return Ok(None);
        }
        if !resp.status.is_success() {
            return Err(self.error(BUCKET_KEY, Failure::from_response(&resp)));
        }
        serde_json::from_slice(&resp.body)
            .map(Some)
            .map_err(|e| StoreError::Backend {
                location: self.location(),
                key: BUCKET_KEY.into(),
                detail: format!("the bucket resource is not JSON: {e}"),
            })
    }
}

fn location_of(bucket: &str, prefix: &str) -> String {
    if prefix.is_empty() {
        format!("gs://{bucket}")
    } else {
        format!("gs://{bucket}/{prefix}")
    }
}

/// Cloud Storage's naming rules, loosely: 3-222 characters of lowercase
/// letters, digits, `-`, `_` and `.`, starting and ending alphanumeric.
fn valid_bucket_name(name: &str) -> bool {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c);
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (3..=222).contains(&name.len())
        && name.chars().all(ok_char)
        && edge(name.chars().next())
        && edge(name.chars().last())
}

#[async_trait]
impl ObjectStore for GcsStore {
    fn location(&self) -> String {
        location_of(&self.inner.bucket, &self.inner.prefix)
    }

    #[instrument(skip_all, fields(bucket = %self.inner.bucket))]
    async fn exists(&self) -> Result<bool, StoreError> {
        Ok(self.bucket_resource().await?.is_some())
    }

    /// Buckets are never created implicitly: where and how (location,
    /// object retention) is a decision for whoever owns the project.
    async fn create(&self) -> Result<(), StoreError> {
        if self.exists().await? {
            Ok(())
        } else {
            Err(StoreError::StoreMissing {
                location: self.location(),
            })
        }
    }

    /// Object Retention Lock must be enabled on the bucket: Lifeboat sets and
    /// extends a retention per object. A bucket retention policy alone is not
    /// enough (it cannot be set per object nor extended per object).
    #[instrument(skip_all, fields(bucket = %self.inner.bucket))]
    async fn ensure_lock_support(&self) -> Result<(), StoreError> {
        match self.bucket_resource().await? {
            None => Err(StoreError::StoreMissing {
                location: self.location(),
            }),
            Some(b) if retention::bucket_has_object_retention(&b) => Ok(()),
            Some(_) => Err(lock_not_enabled(self.location(), &self.inner.bucket)),
        }
    }

    #[instrument(skip_all, fields(bucket = %self.inner.bucket, key, size = data.len()))]
    async fn put(&self, key: &str, data: Bytes, opts: &PutOptions) -> Result<(), StoreError> {
        self.put_object(key, data, opts).await
    }

    #[instrument(skip_all, fields(bucket = %self.inner.bucket, key))]
    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        self.get_object(key).await
    }

    #[instrument(skip_all, fields(bucket = %self.inner.bucket, key, offset, len))]
    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Bytes, StoreError> {
        self.get_object_range(key, offset, len).await
    }

    #[instrument(skip_all, fields(bucket = %self.inner.bucket, key))]
    async fn head(&self, key: &str) -> Result<ObjectInfo, StoreError> {
        let resource = self.object_resource(key).await?;
        Ok(self.info_of(key, &resource))
    }

    #[instrument(skip_all, fields(bucket = %self.inner.bucket, prefix))]
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        self.list_objects(prefix).await
    }

    #[instrument(skip_all, fields(bucket = %self.inner.bucket, key))]
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.delete_object(key).await
    }

    #[instrument(skip_all, fields(bucket = %self.inner.bucket, key, mode = %retention.mode, until = %retention.until))]
    async fn set_retention(&self, key: &str, retention: Retention) -> Result<(), StoreError> {
        self.set_object_retention(key, retention).await
    }

    fn retention_caveat(&self) -> Option<String> {
        self.inner.retention_caveat.clone()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn store(prefix: &str) -> GcsStore {
        GcsStore::with_options("bkt", prefix, GcsOptions::emulator("127.0.0.1:1")).unwrap()
    }

    #[test]
    fn keys_join_without_stray_slashes() {
        assert_eq!(store("").full_key("config"), "config");
        assert_eq!(store("repo").full_key("data/ab/abc"), "repo/data/ab/abc");
        assert_eq!(store("/a/b/").full_key("config"), "a/b/config");
        assert_eq!(store("").location(), "gs://bkt");
        assert_eq!(store("/a/b/").location(), "gs://bkt/a/b");
        assert!(store("").check_key("/abs").is_err());
        assert!(store("").check_key("").is_err());
    }

    #[test]
    fn an_emulator_says_its_retention_is_no_proof() {
        let caveat = store("").retention_caveat().unwrap();
        assert!(
            caveat.contains("http://127.0.0.1:1") && caveat.contains("does not enforce"),
            "{caveat}"
        );
        let opts = GcsOptions::google(GcsCredentials::MetadataServer { host: "h".into() });
        assert_eq!(
            GcsStore::with_options("bkt", "", opts)
                .unwrap()
                .retention_caveat(),
            None
        );
    }

    #[test]
    fn bucket_names_are_checked() {
        for good in ["bkt", "my-bucket_1", "a.b.c", "0ab"] {
            assert!(valid_bucket_name(good), "{good}");
        }
        for bad in ["", "ab", "Upper", "a/b", "-ab", "ab-", "with space"] {
            assert!(!valid_bucket_name(bad), "{bad}");
        }
        let err = GcsStore::with_options("a/b", "", GcsOptions::emulator("x:1")).unwrap_err();
        assert!(matches!(err, StoreError::InvalidUrl { .. }), "{err:?}");
    }
}
