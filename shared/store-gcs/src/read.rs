//! Reading: object bytes (whole and by range), metadata, listings.

use crate::failure::Failure;
use crate::retention;
use crate::store::GcsStore;
use crate::transport::Request;
use crate::upload::crc32c;
use bytes::Bytes;
use http::header::RANGE;
use http::{Method, StatusCode};
use lifeboat_store::{ObjectInfo, ObjectStore, StoreError};
use lifeboat_store_http::{ByteRange, RangeFailure};
use serde_json::Value;

impl GcsStore {
    pub(crate) async fn get_object(&self, key: &str) -> Result<Bytes, StoreError> {
        self.check_key(key)?;
        let req = Request::new(Method::GET, self.client().api.media(&self.full_key(key)));
        let resp = self
            .client()
            .call_ok(req)
            .await
            .map_err(|f| self.error(key, f))?;
        // Cloud Storage sends the CRC32C it stored; a mismatch is damage on the way.
        if let Some(want) = resp.header("x-goog-hash").and_then(stored_crc32c) {
            let got = crc32c(&resp.body);
            if got != want {
                return Err(StoreError::Transient {
                    location: self.location(),
                    key: key.to_string(),
                    detail: format!("the bytes read have CRC32C {got}, the object {want}"),
                });
            }
        }
        Ok(resp.body)
    }

    pub(crate) async fn get_object_range(
        &self,
        key: &str,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, StoreError> {
        self.check_key(key)?;
        let range = ByteRange::new(offset, len);
        let outcome = match range.header_value() {
            None => range.empty_within(self.head(key).await?.size),
            Some(value) => {
                let req = Request::new(Method::GET, self.client().api.media(&self.full_key(key)))
                    .header(RANGE, value);
                let resp = self
                    .client()
                    .call(req)
                    .await
                    .map_err(|f| self.error(key, f))?;
                range.from_reply(resp)
            }
        };
        outcome.map_err(|failure| match failure {
            RangeFailure::Beyond(what) => range.beyond_error(self.location(), key, &what),
            RangeFailure::Failed(resp) => self.error(key, Failure::from_response(&resp)),
        })
    }

    /// The object resource (JSON metadata) of `key`.
    pub(crate) async fn object_resource(&self, key: &str) -> Result<Value, StoreError> {
        self.check_key(key)?;
        let req = Request::new(Method::GET, self.client().api.object(&self.full_key(key)));
        let resp = self
            .client()
            .call_ok(req)
            .await
            .map_err(|f| self.error(key, f))?;
        serde_json::from_slice(&resp.body).map_err(|e| StoreError::Backend {
            location: self.location(),
            key: key.to_string(),
            detail: format!("the object resource is not JSON: {e}"),
        })
    }

    pub(crate) fn info_of(&self, key: &str, resource: &Value) -> ObjectInfo {
        ObjectInfo {
            key: key.to_string(),
            size: size_of(resource),
            last_modified: resource.get("updated").and_then(retention::time),
            retention: retention::of_object(resource),
        }
    }

    pub(crate) async fn list_objects(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let root = self.full_key("");
        let full_prefix = format!("{root}{prefix}");
        let err_key = format!("{prefix}*");
        let page_size = self.inner().list_page_size;
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let url = self
                .client()
                .api
                .list(&full_prefix, page_size, token.as_deref());
            let resp = self
                .client()
                .call_ok(Request::new(Method::GET, url))
                .await
                .map_err(|f| match f.status {
                    // Listing a bucket: only the bucket can be missing.
                    Some(StatusCode::NOT_FOUND) => StoreError::StoreMissing {
                        location: self.location(),
                    },
                    _ => self.error(&err_key, f),
                })?;
            let page: Value =
                serde_json::from_slice(&resp.body).map_err(|e| StoreError::Backend {
                    location: self.location(),
                    key: err_key.clone(),
                    detail: format!("a listing page is not JSON: {e}"),
                })?;
            let items = page.get("items").and_then(Value::as_array);
            out.extend(items.into_iter().flatten().filter_map(|item| {
                let name = item.get("name")?.as_str()?;
                Some(ObjectInfo {
                    key: name.strip_prefix(&root)?.to_string(),
                    size: size_of(item),
                    last_modified: item.get("updated").and_then(retention::time),
                    retention: None,
                })
            }));
            token = page
                .get("nextPageToken")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(str::to_string);
            if token.is_none() {
                return Ok(out);
            }
        }
    }
}

/// `size` is a decimal string in the JSON API (a uint64).
fn size_of(resource: &Value) -> u64 {
    resource
        .get("size")
        .and_then(|s| {
            s.as_str()
                .and_then(|s| s.parse().ok())
                .or_else(|| s.as_u64())
        })
        .unwrap_or(0)
}

/// The `crc32c=` part of an `x-goog-hash` header.
fn stored_crc32c(header: &str) -> Option<String> {
    header
        .split(',')
        .filter_map(|part| part.trim().strip_prefix("crc32c="))
        .map(str::to_string)
        .next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes_come_as_strings_or_numbers() {
        assert_eq!(size_of(&json!({"size": "12345"})), 12345);
        assert_eq!(size_of(&json!({"size": 7})), 7);
        assert_eq!(size_of(&json!({})), 0);
    }

    #[test]
    fn the_crc32c_is_found_among_the_hashes() {
        assert_eq!(
            stored_crc32c("crc32c=n03x6A==,md5=Ojk9c3dhfxgoKVVHYwFbHQ=="),
            Some("n03x6A==".into())
        );
        assert_eq!(
            stored_crc32c("md5=Ojk9c3dhfxgoKVVHYwFbHQ==, crc32c=AAAAAA=="),
            Some("AAAAAA==".into())
        );
        assert_eq!(stored_crc32c("md5=x"), None);
    }
}
