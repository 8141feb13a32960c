//! Writing: creating objects, deleting them, setting and extending their
//! retention.

use crate::failure::Failure;
use crate::retention;
use crate::store::GcsStore;
use crate::transport::Request;
use crate::upload::{multipart, resumable, Upload};
use bytes::Bytes;
use chrono::Utc;
use http::header::CONTENT_TYPE;
use http::Method;
use lifeboat_store::{may_overwrite, LockMode, ObjectStore, PutOptions, Retention, StoreError};
use serde_json::{json, Value};
use tracing::debug;

impl GcsStore {
    pub(crate) async fn put_object(
        &self,
        key: &str,
        data: Bytes,
        opts: &PutOptions,
    ) -> Result<(), StoreError> {
        self.check_key(key)?;
        let name = self.full_key(key);
        let large = data.len() > self.inner().resumable_threshold;
        let up = Upload {
            name: &name,
            data,
            retention: opts.retention,
            // Objects are created, never replaced: 412 when the name exists.
            create_only: !may_overwrite(key),
        };
        let outcome = if large {
            resumable(self.client(), &up, self.inner().resumable_chunk).await
        } else {
            multipart(self.client(), &up).await.map(|_| ())
        };
        outcome.map_err(|f| self.error(key, f))
    }

    pub(crate) async fn delete_object(&self, key: &str) -> Result<(), StoreError> {
        self.check_key(key)?;
        let req = Request::new(
            Method::DELETE,
            self.client().api.object(&self.full_key(key)),
        );
        let resp = self
            .client()
            .call(req)
            .await
            .map_err(|f| self.error(key, f))?;
        let failure = Failure::from_response(&resp);
        match resp.status.as_u16() {
            s if (200..300).contains(&s) => Ok(()),
            // Already gone (but a missing bucket is an error).
            404 if !failure.bucket_missing(key) => Ok(()),
            // Cloud Storage answers 403 both for a missing permission and for
            // retention or a hold: find out which, and until when.
            403 | 412 => Err(match self.what_protects(key).await {
                Some(until) => StoreError::Locked {
                    location: self.location(),
                    key: key.to_string(),
                    until,
                },
                None => self.error(key, failure),
            }),
            _ => Err(self.error(key, failure)),
        }
    }

    /// Why an object cannot be deleted now: its retention date, or a hold.
    async fn what_protects(&self, key: &str) -> Option<String> {
        let resource = self.object_resource(key).await.ok()?;
        if let Some(r) = retention::of_object(&resource).filter(|r| r.is_active(Utc::now())) {
            return Some(format!("{} ({})", r.until.to_rfc3339(), r.mode));
        }
        let held = |name: &str| resource.get(name).and_then(Value::as_bool) == Some(true);
        if held("temporaryHold") || held("eventBasedHold") {
            return Some("its hold is released".into());
        }
        None
    }

    /// Set or extend the object's own retention. The current one is read
    /// first: a shorter date is refused as [`StoreError::Locked`] (Cloud
    /// Storage would accept it on an `Unlocked` retention from a principal
    /// allowed to override, which Lifeboat never asks for).
    pub(crate) async fn set_object_retention(
        &self,
        key: &str,
        wanted: Retention,
    ) -> Result<(), StoreError> {
        let resource = self.object_resource(key).await?;
        let current = own_retention(&resource).filter(|r| r.is_active(Utc::now()));
        if let Some(cur) = current {
            if cur.until > wanted.until {
                return Err(StoreError::Locked {
                    location: self.location(),
                    key: key.to_string(),
                    until: format!(
                        "{} ({}); a retention is never shortened",
                        cur.until.to_rfc3339(),
                        cur.mode
                    ),
                });
            }
            if cur.until == wanted.until
                && (cur.mode == wanted.mode || cur.mode == LockMode::Compliance)
            {
                debug!("retention already as asked");
                return Ok(());
            }
        }
        let lock = retention::merged_mode(current, wanted);
        let body = json!({ "retention": retention::to_json(lock) });
        let req = Request::new(Method::PATCH, self.client().api.object(&self.full_key(key)))
            .header(CONTENT_TYPE, "application/json")
            .body(Bytes::from(body.to_string()));
        self.client()
            .call_ok(req)
            .await
            .map_err(|f| self.error(key, f))?;
        Ok(())
    }
}

/// The object's own retention (not a bucket policy's, which is not ours to set).
fn own_retention(resource: &Value) -> Option<Retention> {
    let own = resource.get("retention")?;
    retention::of_object(&json!({ "retention": own }))
}
