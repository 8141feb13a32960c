mod convert;
mod failure;

use async_trait::async_trait;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ObjectLockEnabled, ObjectLockLegalHoldStatus, ObjectLockRetention,
};
use aws_sdk_s3::Client;
use aws_smithy_runtime::client::retries::classifiers::HttpStatusCodeClassifier;
use bytes::Bytes;
use chrono::Utc;
use convert::{from_aws_time, object_lock_mode, retention_mode, retention_of, to_aws_time};
use failure::{lock_not_enabled, Failure};
use lifeboat_store::{
    check_key, join_key, ObjectInfo, ObjectStore, PutOptions, Retention, StoreError,
};
use std::error::Error as StdError;
use tracing::{debug, instrument};

/// Attempts per request (the first try included). The SDK's standard mode retries
/// throttling, 5xx and connection failures with jittered exponential backoff; its
/// default of 3 is too few for a backup that runs unattended for minutes.
const MIN_ATTEMPTS: u32 = 6;

/// Statuses retried whatever the error body says: throttling and the
/// transient server errors.
const RETRYABLE_STATUS: &[u16] = &[429, 500, 502, 503, 504];

/// Set to `true` or `1` for S3-compatible stores (MinIO, moto) that need path-style URLs.
const PATH_STYLE_ENV: &str = "LIFEBOAT_S3_PATH_STYLE";

/// The key used in errors about the bucket as a whole rather than one object.
const BUCKET_KEY: &str = "(bucket)";

/// A repository in an S3 bucket (or any S3-compatible store), under a key prefix.
///
/// Every object is written with a single PutObject carrying a CRC32C checksum,
/// `If-None-Match: *` (so an existing key is never replaced; `locks/` excepted),
/// and with Object Lock retention when asked. Deleting removes every version of a
/// key, because Object Lock buckets are versioned and a plain DeleteObject would
/// only hide the data behind a delete marker.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    /// Without leading or trailing slashes; empty for the bucket root.
    prefix: String,
}

impl S3Store {
    /// Connect with the standard AWS configuration chain: `AWS_ENDPOINT_URL`,
    /// region, credentials and profiles all come from the environment and
    /// `~/.aws`. Path-style addressing is used when `LIFEBOAT_S3_PATH_STYLE` is
    /// `true` or `1`.
    pub async fn connect(bucket: &str, prefix: &str) -> Result<S3Store, StoreError> {
        S3Store::connect_in(bucket, prefix, None).await
    }

    /// [`S3Store::connect`] with the region set, e.g. for the DR region's
    /// bucket from a function running in the primary region.
    pub async fn connect_in(
        bucket: &str,
        prefix: &str,
        region: Option<&str>,
    ) -> Result<S3Store, StoreError> {
        if bucket.is_empty() || bucket.contains('/') {
            return Err(StoreError::InvalidUrl {
                url: format!("s3://{bucket}/{prefix}"),
                reason: format!("{bucket:?} is not a bucket name"),
            });
        }
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(r) = region {
            loader = loader.region(aws_config::Region::new(r.to_string()));
        }
        let shared = loader.load().await;
        Ok(S3Store::from_sdk_config(&shared, bucket, prefix))
    }

    /// A store on the client Lifeboat makes from an SDK configuration: at
    /// least six attempts, 429 retried as throttling besides the SDK's own
    /// classes (S3-compatible stores answer 429 where S3 says SlowDown), and
    /// path-style addressing when `LIFEBOAT_S3_PATH_STYLE` asks for it.
    pub fn from_sdk_config(shared: &SdkConfig, bucket: &str, prefix: &str) -> S3Store {
        let configured_attempts = shared.retry_config().map_or(0, RetryConfig::max_attempts);
        let retry = shared
            .retry_config()
            .cloned()
            .unwrap_or_else(RetryConfig::standard)
            .with_max_attempts(configured_attempts.max(MIN_ATTEMPTS));
        let config = aws_sdk_s3::config::Builder::from(shared)
            .retry_config(retry)
            .retry_classifier(HttpStatusCodeClassifier::new_from_codes(
                RETRYABLE_STATUS.to_vec(),
            ))
            .force_path_style(path_style_from_env())
            .build();
        S3Store::from_client(Client::from_conf(config), bucket, prefix)
    }

    /// Use an already configured client (tests, or callers with their own settings).
    pub fn from_client(client: Client, bucket: &str, prefix: &str) -> S3Store {
        S3Store {
            client,
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The full S3 key of a repository key.
    fn full_key(&self, key: &str) -> String {
        join_key(&self.prefix, key)
    }

    fn check_key(&self, key: &str) -> Result<(), StoreError> {
        check_key(&self.location(), key)
    }

    fn lock_not_enabled(&self) -> StoreError {
        lock_not_enabled(self.location(), &self.bucket)
    }

    /// Turn a failed call into a [`StoreError`] about `key`.
    fn map_err<E>(&self, key: &str, err: &SdkError<E>) -> StoreError
    where
        E: ProvideErrorMetadata + StdError + 'static,
    {
        Failure::from_sdk(err).into_store_error(self.location(), &self.bucket, key)
    }

    /// When deleting a version is refused, find out whether Object Lock (rather
    /// than a missing permission) is the reason, and until when.
    async fn lock_of_version(
        &self,
        full_key: &str,
        version_id: &str,
    ) -> Result<Option<String>, String> {
        let out = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(full_key)
            .version_id(version_id)
            .send()
            .await
            .map_err(|e| Failure::from_sdk(&e).detail())?;
        if let Some(r) = retention_of(out.object_lock_mode(), out.object_lock_retain_until_date()) {
            if r.is_active(Utc::now()) {
                return Ok(Some(format!("{} ({})", r.until.to_rfc3339(), r.mode)));
            }
        }
        if out.object_lock_legal_hold_status() == Some(&ObjectLockLegalHoldStatus::On) {
            return Ok(Some("its legal hold is removed".into()));
        }
        Ok(None)
    }

    /// Every version id of exactly `full_key`, delete markers included, newest first.
    async fn versions_of(&self, key: &str, full_key: &str) -> Result<Vec<String>, StoreError> {
        let mut ids = Vec::new();
        let (mut key_marker, mut version_marker) = (None, None);
        loop {
            let page = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(full_key)
                .set_key_marker(key_marker)
                .set_version_id_marker(version_marker)
                .send()
                .await
                .map_err(|e| self.map_err(key, &e))?;
            let versions = page.versions().iter().map(|v| (v.key(), v.version_id()));
            let markers = page
                .delete_markers()
                .iter()
                .map(|m| (m.key(), m.version_id()));
            ids.extend(
                versions
                    .chain(markers)
                    .filter(|(k, _)| *k == Some(full_key))
                    .filter_map(|(_, v)| v.map(str::to_string)),
            );
            // The prefix also matches longer keys, listed after ours: stop once past it.
            let past_key = page.next_key_marker().is_some_and(|k| k != full_key);
            if !page.is_truncated().unwrap_or(false) || past_key {
                return Ok(ids);
            }
            key_marker = page.next_key_marker().map(str::to_string);
            version_marker = page.next_version_id_marker().map(str::to_string);
        }
    }
}

fn path_style_from_env() -> bool {
    std::env::var(PATH_STYLE_ENV).is_ok_and(|v| parse_flag(&v))
}

fn parse_flag(value: &str) -> bool {
    let value = value.trim();
    value == "1" || value.eq_ignore_ascii_case("true")
}

#[async_trait]
impl ObjectStore for S3Store {
    fn location(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    #[instrument(skip_all, fields(bucket = %self.bucket))]
    async fn exists(&self) -> Result<bool, StoreError> {
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => Ok(true),
            Err(e) => match self.map_err(BUCKET_KEY, &e) {
                StoreError::StoreMissing { .. } | StoreError::NotFound { .. } => Ok(false),
                other => Err(other),
            },
        }
    }

    /// Buckets are never created implicitly: where and how (region, Object Lock,
    /// replication) is a decision for whoever owns the account.
    async fn create(&self) -> Result<(), StoreError> {
        if self.exists().await? {
            Ok(())
        } else {
            Err(StoreError::StoreMissing {
                location: self.location(),
            })
        }
    }

    #[instrument(skip_all, fields(bucket = %self.bucket))]
    async fn ensure_lock_support(&self) -> Result<(), StoreError> {
        let out = self
            .client
            .get_object_lock_configuration()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| {
                if e.code() == Some("ObjectLockConfigurationNotFoundError") {
                    self.lock_not_enabled()
                } else {
                    self.map_err(BUCKET_KEY, &e)
                }
            })?;
        let enabled = out
            .object_lock_configuration()
            .and_then(|c| c.object_lock_enabled())
            == Some(&ObjectLockEnabled::Enabled);
        if enabled {
            Ok(())
        } else {
            Err(self.lock_not_enabled())
        }
    }

    #[instrument(skip_all, fields(bucket = %self.bucket, key, size = data.len()))]
    async fn put(&self, key: &str, data: Bytes, opts: &PutOptions) -> Result<(), StoreError> {
        self.check_key(key)?;
        let len = i64::try_from(data.len()).unwrap_or(i64::MAX);
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .content_length(len)
            // Object Lock requires an integrity header; it also protects every pack.
            .checksum_algorithm(ChecksumAlgorithm::Crc32C)
            .body(ByteStream::from(data));
        // Objects are created, never replaced: S3 answers 412 when the key exists.
        // The bucket policy denies a PutObject without this header outside locks/.
        if !lifeboat_store::may_overwrite(key) {
            req = req.if_none_match("*");
        }
        if let Some(r) = opts.retention {
            req = req
                .object_lock_mode(object_lock_mode(r.mode))
                .object_lock_retain_until_date(to_aws_time(r.until));
        }
        req.send().await.map_err(|e| self.map_err(key, &e))?;
        Ok(())
    }

    #[instrument(skip_all, fields(bucket = %self.bucket, key))]
    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        self.check_key(key)?;
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
            .map_err(|e| self.map_err(key, &e))?;
        read_body(out.body)
            .await
            .map_err(|detail| StoreError::Transient {
                location: self.location(),
                key: key.to_string(),
                detail,
            })
    }

    #[instrument(skip_all, fields(bucket = %self.bucket, key, offset, len))]
    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Bytes, StoreError> {
        self.check_key(key)?;
        let short = |got: u64| StoreError::Backend {
            location: self.location(),
            key: key.to_string(),
            detail: format!("range {offset}+{len} beyond the object's end (got {got} bytes)"),
        };
        if len == 0 {
            // An empty HTTP range cannot be expressed; still report a missing object.
            let size = self.head(key).await?.size;
            return if offset <= size {
                Ok(Bytes::new())
            } else {
                Err(short(0))
            };
        }
        let last = offset.saturating_add(len - 1);
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .range(format!("bytes={offset}-{last}"))
            .send()
            .await
            .map_err(|e| self.map_err(key, &e))?;
        let data = read_body(out.body)
            .await
            .map_err(|detail| StoreError::Transient {
                location: self.location(),
                key: key.to_string(),
                detail,
            })?;
        // S3 silently shortens a range that runs past the end.
        if data.len() as u64 != len {
            return Err(short(data.len() as u64));
        }
        Ok(data)
    }

    #[instrument(skip_all, fields(bucket = %self.bucket, key))]
    async fn head(&self, key: &str) -> Result<ObjectInfo, StoreError> {
        self.check_key(key)?;
        let out = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
            .map_err(|e| self.map_err(key, &e))?;
        Ok(ObjectInfo {
            key: key.to_string(),
            size: out
                .content_length()
                .map_or(0, |n| u64::try_from(n).unwrap_or(0)),
            last_modified: out.last_modified().and_then(from_aws_time),
            retention: retention_of(out.object_lock_mode(), out.object_lock_retain_until_date()),
        })
    }

    #[instrument(skip_all, fields(bucket = %self.bucket, prefix))]
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let root = join_key(&self.prefix, "");
        let full_prefix = format!("{root}{prefix}");
        let err_key = format!("{prefix}*");
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&full_prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| self.map_err(&err_key, &e))?;
            out.extend(page.contents().iter().filter_map(|o| {
                Some(ObjectInfo {
                    key: o.key()?.strip_prefix(&root)?.to_string(),
                    size: o.size().map_or(0, |n| u64::try_from(n).unwrap_or(0)),
                    last_modified: o.last_modified().and_then(from_aws_time),
                    retention: None,
                })
            }));
            token = page.next_continuation_token().map(str::to_string);
            if !page.is_truncated().unwrap_or(false) || token.is_none() {
                return Ok(out);
            }
        }
    }

    #[instrument(skip_all, fields(bucket = %self.bucket, key))]
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.check_key(key)?;
        let full_key = self.full_key(key);
        let versions = self.versions_of(key, &full_key).await?;
        debug!(versions = versions.len(), "deleting every version");
        for version_id in versions {
            let Err(e) = self
                .client
                .delete_object()
                .bucket(&self.bucket)
                .key(&full_key)
                .version_id(&version_id)
                .send()
                .await
            else {
                continue;
            };
            let err = self.map_err(key, &e);
            if !matches!(err, StoreError::AccessDenied { .. }) {
                return Err(err);
            }
            // S3 answers AccessDenied both for a missing permission and for a lock.
            return Err(match self.lock_of_version(&full_key, &version_id).await {
                Ok(Some(until)) => StoreError::Locked {
                    location: self.location(),
                    key: key.to_string(),
                    until,
                },
                Ok(None) => err,
                Err(head_detail) => StoreError::AccessDenied {
                    location: self.location(),
                    key: key.to_string(),
                    detail: format!(
                        "{} (the version may be under Object Lock; HeadObject failed: {head_detail})",
                        Failure::from_sdk(&e).detail()
                    ),
                },
            });
        }
        Ok(())
    }

    #[instrument(skip_all, fields(bucket = %self.bucket, key, mode = %retention.mode, until = %retention.until))]
    async fn set_retention(&self, key: &str, retention: Retention) -> Result<(), StoreError> {
        let current = self
            .head(key)
            .await?
            .retention
            .filter(|r| r.is_active(Utc::now()));
        if let Some(cur) = current.filter(|cur| cur.until >= retention.until) {
            debug!(current = %cur.until, "retention already lasts long enough; never shortened");
            return Ok(());
        }
        let lock = ObjectLockRetention::builder()
            .mode(retention_mode(retention.mode))
            .retain_until_date(to_aws_time(retention.until))
            .build();
        self.client
            .put_object_retention()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .retention(lock)
            .send()
            .await
            .map_err(|e| match (self.map_err(key, &e), current) {
                // A compliance lock cannot be turned into a governance one.
                (StoreError::AccessDenied { .. }, Some(cur)) => StoreError::Locked {
                    location: self.location(),
                    key: key.to_string(),
                    until: format!("{} ({})", cur.until.to_rfc3339(), cur.mode),
                },
                (err, _) => err,
            })?;
        Ok(())
    }
}

async fn read_body(body: ByteStream) -> Result<Bytes, String> {
    body.collect().await.map(|b| b.into_bytes()).map_err(|e| {
        format!(
            "reading the response body failed: {}",
            DisplayErrorContext(&e)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(prefix: &str) -> S3Store {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .build();
        S3Store::from_client(Client::from_conf(config), "bkt", prefix)
    }

    #[test]
    fn keys_join_without_stray_slashes() {
        assert_eq!(store("").full_key("config"), "config");
        assert_eq!(store("repo").full_key("data/ab/abc"), "repo/data/ab/abc");
        assert_eq!(store("/a/b/").full_key("config"), "a/b/config");
        assert_eq!(store("").location(), "s3://bkt");
        assert_eq!(store("/a/b/").location(), "s3://bkt/a/b");
        assert!(store("").check_key("/abs").is_err());
        assert!(store("").check_key("").is_err());
    }

    #[test]
    fn path_style_is_opt_in() {
        // Only the parsing: the variable itself is process-wide state.
        for (value, expected) in [
            ("true", true),
            ("1", true),
            (" TRUE ", true),
            ("0", false),
            ("yes", false),
        ] {
            assert_eq!(parse_flag(value), expected, "{value:?}");
        }
    }
}
