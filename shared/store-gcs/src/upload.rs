//! Writing an object: one multipart request (metadata and bytes together),
//! or a resumable upload in chunks for large objects. Both carry the
//! object's CRC32C, which Cloud Storage checks before it keeps the object,
//! and its retention, so an object never exists without its lock.

use crate::client::Client;
use crate::failure::Failure;
use crate::retention;
use crate::transport::Request;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use http::header::{CONTENT_RANGE, CONTENT_TYPE, LOCATION};
use http::{HeaderName, Method, StatusCode};
use lifeboat_store::Retention;
use lifeboat_store_http::{retryable_status, Reply};
use serde_json::{json, Value};
use tracing::{debug, warn};

/// What to write.
#[derive(Debug)]
pub(crate) struct Upload<'a> {
    /// The full object name (prefix included).
    pub(crate) name: &'a str,
    pub(crate) data: Bytes,
    pub(crate) retention: Option<Retention>,
    /// Add `ifGenerationMatch=0`: fail with 412 when the object exists.
    pub(crate) create_only: bool,
}

impl Upload<'_> {
    fn metadata(&self) -> Value {
        let mut meta = json!({
            "name": self.name,
            "contentType": "application/octet-stream",
            "crc32c": crc32c(&self.data),
        });
        if let Some(r) = self.retention {
            meta["retention"] = retention::to_json(r);
        }
        meta
    }
}

/// The base64 big-endian CRC32C Cloud Storage reports and checks.
pub(crate) fn crc32c(data: &[u8]) -> String {
    let crc = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, data) as u32;
    STANDARD.encode(crc.to_be_bytes())
}

/// `uploadType=multipart`: one request, retried whole.
pub(crate) async fn multipart(client: &Client, up: &Upload<'_>) -> Result<Reply, Failure> {
    let boundary = boundary_for(&up.data);
    let body = multipart_body(&boundary, &up.metadata(), &up.data);
    let req = Request::new(Method::POST, client.api.upload("multipart", up.create_only))
        .header(
            CONTENT_TYPE,
            format!("multipart/related; boundary={boundary}"),
        )
        .body(body);
    client.call_ok(req).await
}

/// A boundary that does not occur in `data`.
fn boundary_for(data: &[u8]) -> String {
    loop {
        let b = format!(
            "lifeboat-{:016x}{:016x}",
            fastrand::u64(..),
            fastrand::u64(..)
        );
        if !data.windows(b.len()).any(|w| w == b.as_bytes()) {
            return b;
        }
    }
}

fn multipart_body(boundary: &str, meta: &Value, data: &[u8]) -> Bytes {
    let meta = meta.to_string();
    let mut body = BytesMut::with_capacity(data.len() + meta.len() + 4 * boundary.len() + 200);
    body.put_slice(
        format!("--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n").as_bytes(),
    );
    body.put_slice(meta.as_bytes());
    body.put_slice(
        format!("\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
    );
    body.put_slice(data);
    body.put_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body.freeze()
}

/// `uploadType=resumable`: a session, then chunks of `chunk` bytes (a
/// multiple of 256 KiB). After a failed chunk the session is asked how much
/// it has, and the upload goes on from there.
pub(crate) async fn resumable(
    client: &Client,
    up: &Upload<'_>,
    chunk: usize,
) -> Result<(), Failure> {
    let total = up.data.len();
    let start = Request::new(Method::POST, client.api.upload("resumable", up.create_only))
        .header(CONTENT_TYPE, "application/json; charset=UTF-8")
        .header(
            HeaderName::from_static("x-upload-content-type"),
            "application/octet-stream",
        )
        .header(
            HeaderName::from_static("x-upload-content-length"),
            total.to_string(),
        )
        .body(Bytes::from(up.metadata().to_string()));
    let resp = client.call_ok(start).await?;
    let session = resp
        .header(LOCATION.as_str())
        .ok_or_else(|| protocol("the resumable upload answer has no Location"))?
        .to_string();
    let policy = client.http.retry;
    let (mut offset, mut failures) = (0usize, 0u32);
    loop {
        let end = (offset + chunk.max(1)).min(total);
        let put = Request::new(Method::PUT, session.as_str())
            .header(
                CONTENT_RANGE,
                format!("bytes {offset}-{}/{total}", end.saturating_sub(1)),
            )
            .body(up.data.slice(offset..end));
        let outcome = client.http.send_once(&put).await;
        match outcome.as_ref().map(|r| r.status) {
            Ok(StatusCode::OK | StatusCode::CREATED) => return Ok(()),
            Ok(StatusCode::PERMANENT_REDIRECT) => {
                offset = outcome.as_ref().map_or(0, persisted);
                failures = 0;
                continue;
            }
            Ok(StatusCode::NOT_FOUND | StatusCode::GONE) => {
                return Err(protocol("the upload session expired or was cancelled"))
            }
            Ok(s) if !retryable_status(s) => {
                return Err(
                    outcome.map_or_else(Failure::from_transport, |r| Failure::from_response(&r))
                )
            }
            _ => {}
        }
        failures += 1;
        if failures >= policy.max_attempts.max(1) {
            return Err(
                outcome.map_or_else(Failure::from_transport, |r| Failure::from_response(&r))
            );
        }
        let wait = policy.delay(failures, None);
        warn!(
            offset,
            failures,
            wait_ms = wait.as_millis() as u64,
            "a chunk failed; asking the session how much it has"
        );
        tokio::time::sleep(wait).await;
        let query = Request::new(Method::PUT, session.as_str())
            .header(CONTENT_RANGE, format!("bytes */{total}"));
        match client.http.send_once(&query).await {
            Ok(r) if matches!(r.status.as_u16(), 200 | 201) => return Ok(()),
            Ok(r) if r.status == 308 => offset = persisted(&r),
            Ok(r) => debug!(
                status = r.status.as_u16(),
                "the status query failed; resending the chunk"
            ),
            Err(e) => debug!(error = %e.detail, "the status query failed; resending the chunk"),
        }
    }
}

/// The next offset after a 308: one past the `Range: bytes=0-N` it reports,
/// or 0 when it has nothing yet.
fn persisted(resp: &Reply) -> usize {
    resp.header("range")
        .and_then(|r| r.strip_prefix("bytes=0-"))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .map_or(0, |last| last + 1)
}

fn protocol(what: &str) -> Failure {
    Failure {
        status: Some(http::StatusCode::BAD_GATEWAY),
        message: Some(what.to_string()),
        ..Failure::default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::DateTime;
    use lifeboat_store::LockMode;

    #[test]
    fn crc32c_is_base64_big_endian() {
        // The CRC32C check value of "123456789" is 0xE3069283.
        assert_eq!(
            crc32c(b"123456789"),
            STANDARD.encode([0xE3, 0x06, 0x92, 0x83])
        );
        assert_eq!(crc32c(b""), "AAAAAA==");
    }

    #[test]
    fn the_multipart_body_holds_metadata_then_bytes() {
        let up = Upload {
            name: "p/data/x",
            data: Bytes::from_static(b"\x00bytes\r\n--"),
            retention: Some(Retention {
                mode: LockMode::Governance,
                until: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            }),
            create_only: true,
        };
        let boundary = boundary_for(&up.data);
        let body = multipart_body(&boundary, &up.metadata(), &up.data);
        let text = String::from_utf8_lossy(&body);
        let parts: Vec<&str> = text.split(&format!("--{boundary}")).collect();
        assert_eq!(parts.len(), 4, "{text}");
        let meta_part = parts[1].split("\r\n\r\n").nth(1).unwrap().trim_end();
        let meta: Value = serde_json::from_str(meta_part).unwrap();
        assert_eq!(meta["name"], "p/data/x");
        assert_eq!(meta["retention"]["mode"], "Unlocked");
        assert_eq!(meta["crc32c"], crc32c(b"\x00bytes\r\n--"));
        assert!(
            parts[2].ends_with("\r\n\r\n\u{0}bytes\r\n--\r\n"),
            "{:?}",
            parts[2]
        );
        assert_eq!(parts[3], "--\r\n");
    }

    #[test]
    fn the_boundary_never_occurs_in_the_data() {
        let b = boundary_for(b"abc");
        assert!(b.starts_with("lifeboat-") && b.len() == 41, "{b}");
    }

    #[test]
    fn a_308_says_where_to_go_on() {
        let mut headers = http::HeaderMap::new();
        headers.insert("range", "bytes=0-262143".parse().unwrap());
        let resp = Reply {
            status: http::StatusCode::PERMANENT_REDIRECT,
            headers,
            body: Bytes::new(),
            attempts: 1,
        };
        assert_eq!(persisted(&resp), 262_144);
        let none = Reply {
            status: http::StatusCode::PERMANENT_REDIRECT,
            headers: http::HeaderMap::new(),
            body: Bytes::new(),
            attempts: 1,
        };
        assert_eq!(persisted(&none), 0);
    }
}
