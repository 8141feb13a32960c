//! Immutability: whether the container supports version-level policies, Set
//! Blob Immutability Policy (extend, never shorten), and deletes that remove
//! every version or say until when a locked one stays.

use crate::failure::Op;
use crate::retention::{self, Plan};
use crate::store::{AzureStore, CONTAINER_KEY};
use crate::transport::BlobRequest;
use chrono::Utc;
use http::Method;
use lifeboat_store::{ObjectStore, Retention, StoreError};
use tracing::debug;

impl AzureStore {
    /// Get Container Properties must show version-level immutability.
    pub(crate) async fn check_lock_support(&self) -> Result<(), StoreError> {
        let req =
            BlobRequest::new(Method::GET, self.container_path()).query("restype", "container");
        let reply = self.call(CONTAINER_KEY, Op::Other, req).await?;
        let enabled = reply
            .header("x-ms-immutable-storage-with-versioning-enabled")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        if enabled {
            Ok(())
        } else {
            Err(self.unsupported_lock("does not have version-level immutability enabled"))
        }
    }

    /// [`AzureStore::check_lock_support`], asked once per store when it succeeds.
    pub(crate) async fn lock_support_cached(&self) -> Result<(), StoreError> {
        self.lock_support
            .get_or_try_init(|| self.check_lock_support())
            .await
            .map(|_| ())
    }

    pub(crate) async fn extend_retention(
        &self,
        key: &str,
        wanted: Retention,
    ) -> Result<(), StoreError> {
        self.lock_support_cached().await?;
        let current = self.head(key).await?.retention;
        let policy = match retention::plan(current, wanted, Utc::now()) {
            Plan::Keep => {
                debug!("retention already lasts long enough; never shortened");
                return Ok(());
            }
            Plan::Refuse { current } => {
                return Err(StoreError::Locked {
                    location: self.location(),
                    key: key.to_string(),
                    until: format!(
                        "{} ({}); a shorter retention ({}) is refused, never sent",
                        current.until.to_rfc3339(),
                        current.mode,
                        wanted.until.to_rfc3339()
                    ),
                })
            }
            Plan::Set(policy) => policy,
        };
        let req = BlobRequest::new(Method::PUT, self.blob_path(key))
            .query("comp", "immutabilityPolicies")
            .header(
                "x-ms-immutability-policy-until-date",
                &retention::until_header(policy.until),
            )
            .header(
                "x-ms-immutability-policy-mode",
                retention::policy_mode(policy.mode),
            );
        self.call(key, Op::Other, req).await?;
        Ok(())
    }

    /// Until when a blob (or one version of it) is protected, if it is.
    async fn protection(
        &self,
        key: &str,
        version: Option<&str>,
    ) -> Result<Option<String>, StoreError> {
        let mut req = BlobRequest::new(Method::HEAD, self.blob_path(key));
        if let Some(v) = version {
            req = req.query("versionid", v);
        }
        let reply = match self.call(key, Op::Other, req).await {
            Ok(r) => r,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        if reply
            .header("x-ms-legal-hold")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        {
            return Ok(Some("its legal hold is removed".into()));
        }
        let policy = retention::from_headers(
            reply.header("x-ms-immutability-policy-until-date"),
            reply.header("x-ms-immutability-policy-mode"),
        );
        Ok(policy
            .filter(|r| r.is_active(Utc::now()))
            .map(|r| format!("{} ({})", r.until.to_rfc3339(), r.mode)))
    }

    fn locked(&self, key: &str, until: String) -> StoreError {
        StoreError::Locked {
            location: self.location(),
            key: key.to_string(),
            until,
        }
    }

    /// Delete the blob, then every version the account kept of it (as
    /// S3Store deletes every version: a plain delete would only turn the
    /// data into a previous version). A missing blob is deleted already.
    pub(crate) async fn delete_every_version(&self, key: &str) -> Result<(), StoreError> {
        // Refuse up front rather than leave the current version half-deleted.
        if let Some(until) = self.protection(key, None).await? {
            return Err(self.locked(key, until));
        }
        let req = BlobRequest::new(Method::DELETE, self.blob_path(key))
            .header("x-ms-delete-snapshots", "include");
        match self.call(key, Op::Other, req).await {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(StoreError::Locked { .. }) => {
                let until = self
                    .protection(key, None)
                    .await?
                    .unwrap_or_else(|| "its policy expires".into());
                return Err(self.locked(key, until));
            }
            Err(e) => return Err(e),
        }
        let name = self.blob_name(key);
        let versions: Vec<String> = self
            .list_blobs(&name, key, true)
            .await?
            .into_iter()
            .filter(|b| b.name == name)
            .filter_map(|b| b.version_id)
            .collect();
        debug!(versions = versions.len(), "deleting the versions kept");
        for version in versions {
            let req =
                BlobRequest::new(Method::DELETE, self.blob_path(key)).query("versionid", &version);
            match self.call(key, Op::Other, req).await {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(StoreError::Locked { until, .. }) => {
                    let until = self.protection(key, Some(&version)).await?.unwrap_or(until);
                    return Err(self.locked(key, format!("{until} (version {version})")));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
