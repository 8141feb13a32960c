//! Large objects: Put Block for each slice, then one Put Block List that
//! commits them, conditional like a single Put Blob.
//!
//! Block ids carry a random nonce per upload, so two writers of the same key
//! never stage into each other's blocks: only the commit decides, and only
//! one commit of a new blob succeeds.

use crate::failure::Op;
use crate::ops::with_create_headers;
use crate::store::AzureStore;
use crate::transport::BlobRequest;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use http::Method;
use lifeboat_store::{ObjectStore, Retention, StoreError};
use tracing::debug;

impl AzureStore {
    pub(crate) async fn put_in_blocks(
        &self,
        key: &str,
        data: Bytes,
        lock: Option<Retention>,
    ) -> Result<(), StoreError> {
        // Fail before uploading megabytes that the commit would refuse.
        if !lifeboat_store::may_overwrite(key) {
            match self.head(key).await {
                Ok(_) => {
                    return Err(StoreError::AlreadyExists {
                        location: self.location(),
                        key: key.to_string(),
                    })
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        let nonce = upload_nonce();
        let path = self.blob_path(key);
        let mut ids = Vec::new();
        let mut offset = 0;
        while offset < data.len() {
            let end = (offset + self.block_size).min(data.len());
            let id = block_id(&nonce, ids.len());
            let req = BlobRequest::new(Method::PUT, path.clone())
                .query("comp", "block")
                .query("blockid", &id)
                .body(data.slice(offset..end));
            self.call(key, Op::Other, req).await?;
            ids.push(id);
            offset = end;
        }
        debug!(blocks = ids.len(), "blocks staged; committing");
        let req = BlobRequest::new(Method::PUT, path)
            .query("comp", "blocklist")
            .header("content-type", "application/xml")
            .header("x-ms-blob-content-type", "application/octet-stream")
            .body(Bytes::from(block_list(&ids)));
        self.call(key, Op::Create, with_create_headers(req, key, lock))
            .await?;
        Ok(())
    }
}

/// Eight random bytes, hex: unique per upload.
fn upload_nonce() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::getrandom(&mut bytes).is_err() {
        // Without the OS generator, the time still separates writers in practice.
        let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        bytes = nanos.to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Base64 of `<nonce>-<index>`: every id of a blob has the same length, as
/// the service requires.
fn block_id(nonce: &str, index: usize) -> String {
    BASE64.encode(format!("{nonce}-{index:06}"))
}

fn block_list(ids: &[String]) -> String {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
    for id in ids {
        // Base64 has no characters XML would need escaped.
        xml.push_str("<Latest>");
        xml.push_str(id);
        xml.push_str("</Latest>");
    }
    xml.push_str("</BlockList>");
    xml
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn block_ids_are_equal_length_and_unique_per_upload() {
        let (a, b) = (upload_nonce(), upload_nonce());
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
        let ids: Vec<String> = [0, 9, 999_999].iter().map(|i| block_id(&a, *i)).collect();
        assert!(ids.iter().all(|id| id.len() == ids[0].len()));
        assert_eq!(
            String::from_utf8(BASE64.decode(&ids[1]).unwrap()).unwrap(),
            format!("{a}-000009")
        );
        assert_eq!(
            block_list(&["QQ==".into(), "Qg==".into()]),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList><Latest>QQ==</Latest><Latest>Qg==</Latest></BlockList>"
        );
    }
}
