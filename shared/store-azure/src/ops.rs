//! The [`ObjectStore`] operations on the Blob REST API: container
//! properties, Put Blob, Get Blob (whole and ranged), Get Blob Properties,
//! List Blobs; delete and retention live in `lock.rs`, uploads in `upload.rs`.

use crate::failure::Op;
use crate::retention;
use crate::store::{AzureStore, CONTAINER_KEY};
use crate::transport::BlobRequest;
use crate::xml::{parse_http_date, parse_list};
use async_trait::async_trait;
use bytes::Bytes;
use http::Method;
use lifeboat_store::{ObjectInfo, ObjectStore, PutOptions, Retention, StoreError};
use lifeboat_store_http::{ByteRange, RangeFailure};
use tracing::instrument;

#[async_trait]
impl ObjectStore for AzureStore {
    fn location(&self) -> String {
        self.place.location.clone()
    }

    fn retention_caveat(&self) -> Option<String> {
        // Azurite's well-known account: it stores no immutability policy at all.
        (self.place.account == crate::credentials::DEV_ACCOUNT).then(|| {
            "Azurite (the development account) keeps no immutability policies: \
             retention there is neither stored nor enforced"
                .to_string()
        })
    }

    #[instrument(skip_all, fields(account = %self.place.account, container = %self.place.container))]
    async fn exists(&self) -> Result<bool, StoreError> {
        let req =
            BlobRequest::new(Method::HEAD, self.container_path()).query("restype", "container");
        match self.call(CONTAINER_KEY, Op::Other, req).await {
            Ok(_) => Ok(true),
            Err(StoreError::StoreMissing { .. } | StoreError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Containers are never created implicitly: where and how (immutability,
    /// versioning, replication) is a decision for whoever owns the account.
    async fn create(&self) -> Result<(), StoreError> {
        if self.exists().await? {
            Ok(())
        } else {
            Err(StoreError::StoreMissing {
                location: self.location(),
            })
        }
    }

    #[instrument(skip_all, fields(account = %self.place.account, container = %self.place.container))]
    async fn ensure_lock_support(&self) -> Result<(), StoreError> {
        self.check_lock_support().await
    }

    #[instrument(skip_all, fields(account = %self.place.account, container = %self.place.container, key, size = data.len()))]
    async fn put(&self, key: &str, data: Bytes, opts: &PutOptions) -> Result<(), StoreError> {
        self.check_key(key)?;
        if opts.retention.is_some() {
            // Refuse before sending: a container without version-level
            // immutability would store the blob unprotected or fail obscurely.
            self.lock_support_cached().await?;
        }
        if data.len() > self.single_put_limit {
            return self.put_in_blocks(key, data, opts.retention).await;
        }
        let mut req = BlobRequest::new(Method::PUT, self.blob_path(key))
            .header("x-ms-blob-type", "BlockBlob")
            .header("content-type", "application/octet-stream")
            .body(data);
        req = with_create_headers(req, key, opts.retention);
        self.call(key, Op::Create, req).await?;
        Ok(())
    }

    #[instrument(skip_all, fields(account = %self.place.account, container = %self.place.container, key))]
    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        self.check_key(key)?;
        let req = BlobRequest::new(Method::GET, self.blob_path(key));
        Ok(self.call(key, Op::Other, req).await?.body)
    }

    #[instrument(skip_all, fields(account = %self.place.account, container = %self.place.container, key, offset, len))]
    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Bytes, StoreError> {
        self.check_key(key)?;
        let range = ByteRange::new(offset, len);
        let outcome = match range.header_value() {
            None => range.empty_within(self.head(key).await?.size),
            Some(value) => {
                let req =
                    BlobRequest::new(Method::GET, self.blob_path(key)).header("x-ms-range", &value);
                range.from_reply(self.answer(key, Op::Other, req).await?)
            }
        };
        outcome.map_err(|failure| match failure {
            RangeFailure::Beyond(what) => range.beyond_error(self.location(), key, &what),
            RangeFailure::Failed(reply) => self.refusal(key, Op::Other, &reply),
        })
    }

    #[instrument(skip_all, fields(account = %self.place.account, container = %self.place.container, key))]
    async fn head(&self, key: &str) -> Result<ObjectInfo, StoreError> {
        self.check_key(key)?;
        let req = BlobRequest::new(Method::HEAD, self.blob_path(key));
        let reply = self.call(key, Op::Other, req).await?;
        Ok(ObjectInfo {
            key: key.to_string(),
            size: reply
                .header("content-length")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0),
            last_modified: reply.header("last-modified").and_then(parse_http_date),
            retention: retention::from_headers(
                reply.header("x-ms-immutability-policy-until-date"),
                reply.header("x-ms-immutability-policy-mode"),
            ),
        })
    }

    #[instrument(skip_all, fields(account = %self.place.account, container = %self.place.container, prefix))]
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let root = self.blob_name("");
        let full_prefix = format!("{root}{prefix}");
        let err_key = format!("{prefix}*");
        let mut out = Vec::new();
        for blob in self.list_blobs(&full_prefix, &err_key, false).await? {
            let Some(key) = blob.name.strip_prefix(&root) else {
                continue;
            };
            out.push(ObjectInfo {
                key: key.to_string(),
                size: blob.size,
                last_modified: blob.last_modified,
                retention: None,
            });
        }
        Ok(out)
    }

    #[instrument(skip_all, fields(account = %self.place.account, container = %self.place.container, key))]
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.check_key(key)?;
        self.delete_every_version(key).await
    }

    #[instrument(skip_all, fields(account = %self.place.account, container = %self.place.container, key, mode = %retention.mode, until = %retention.until))]
    async fn set_retention(&self, key: &str, retention: Retention) -> Result<(), StoreError> {
        self.check_key(key)?;
        self.extend_retention(key, retention).await
    }
}

/// The headers of a create: `If-None-Match: *` outside `locks/`, and the
/// immutability policy when asked.
pub(crate) fn with_create_headers(
    mut req: BlobRequest,
    key: &str,
    lock: Option<Retention>,
) -> BlobRequest {
    if !lifeboat_store::may_overwrite(key) {
        req = req.header("if-none-match", "*");
    }
    if let Some(r) = lock {
        req = req
            .header(
                "x-ms-immutability-policy-until-date",
                &retention::until_header(r.until),
            )
            .header(
                "x-ms-immutability-policy-mode",
                retention::policy_mode(r.mode),
            );
    }
    req
}

impl AzureStore {
    /// Every blob whose name starts with `full_prefix`, following the markers;
    /// with `versions`, every version of each (where the account keeps them).
    pub(crate) async fn list_blobs(
        &self,
        full_prefix: &str,
        err_key: &str,
        versions: bool,
    ) -> Result<Vec<crate::xml::ListedBlob>, StoreError> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut req = BlobRequest::new(Method::GET, self.container_path())
                .query("restype", "container")
                .query("comp", "list");
            if !full_prefix.is_empty() {
                req = req.query("prefix", full_prefix);
            }
            if versions {
                req = req.query("include", "versions");
            }
            if let Some(m) = &marker {
                req = req.query("marker", m);
            }
            let reply = self.call(err_key, Op::Other, req).await?;
            let page = parse_list(&String::from_utf8_lossy(&reply.body)).map_err(|detail| {
                StoreError::Backend {
                    location: self.location(),
                    key: err_key.to_string(),
                    detail: format!("List Blobs answer not understood: {detail}"),
                }
            })?;
            out.extend(page.blobs);
            match page.next_marker {
                Some(m) => marker = Some(m),
                None => return Ok(out),
            }
        }
    }
}
