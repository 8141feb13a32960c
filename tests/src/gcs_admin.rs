//! Set-up and inspection the GCS tests need and the product never does, on
//! fake-gcs-server (no authentication): creating buckets, reading an
//! object's resource as the service keeps it, and shortening a retention
//! behind Lifeboat's back. Plain HTTP/1.1 over a socket, one request each.

use crate::fault_proxy::{Answer, Rewrite};
use crate::gcs_env;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

/// The emulator's address, `http://host:port`, as `tests/substrate/gcs up`
/// wrote it.
pub fn emulator() -> Result<String, String> {
    gcs_env()
        .into_iter()
        .find(|(k, _)| k == "STORAGE_EMULATOR_HOST")
        .map(|(_, v)| {
            let v = v.trim_end_matches('/');
            if v.starts_with("http://") {
                v.to_string()
            } else {
                format!("http://{v}")
            }
        })
        .ok_or_else(|| "gcs.env has no STORAGE_EMULATOR_HOST".to_string())
}

/// One request to the emulator; the status and the (de-chunked) body. A
/// read (GET) whose connection fails is sent again, twice at most: the
/// emulator sometimes resets a connection under load (seen in CI), and a
/// read changes nothing.
fn call(method: &str, path: &str, body: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let attempts = if method == "GET" { 3 } else { 1 };
    let mut last = String::new();
    for _ in 0..attempts {
        match call_once(method, path, body) {
            Ok(answer) => return Ok(answer),
            Err(CallError::Io(e)) => last = e,
            Err(CallError::Answer(e)) => return Err(e),
        }
    }
    Err(last)
}

/// Why a call failed: the connection (may pass), or the answer (will not).
enum CallError {
    Io(String),
    Answer(String),
}

fn call_once(method: &str, path: &str, body: &[u8]) -> Result<(u16, Vec<u8>), CallError> {
    let base = emulator().map_err(CallError::Answer)?;
    let addr = base.trim_start_matches("http://");
    let io = |e: std::io::Error| {
        CallError::Io(format!("{method} {path} on fake-gcs-server at {addr}: {e}"))
    };
    let mut conn = TcpStream::connect(addr).map_err(io)?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).map_err(io)?;
    conn.write_all(body).map_err(io)?;
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).map_err(io)?;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            CallError::Answer(format!("{method} {path}: no end of headers in the answer"))
        })?;
    let head = String::from_utf8_lossy(&answer[..split]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| CallError::Answer(format!("{method} {path}: no status in the answer")))?;
    let mut body = answer[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = crate::fault_proxy::dechunk(&body).ok_or_else(|| {
            CallError::Answer(format!(
                "{method} {path}: a chunked body that does not parse"
            ))
        })?;
    }
    Ok((status, body))
}

fn json_call(
    method: &str,
    path: &str,
    body: &serde_json::Value,
) -> Result<serde_json::Value, String> {
    let (status, answer) = call(method, path, body.to_string().as_bytes())?;
    let text = String::from_utf8_lossy(&answer);
    if status != 200 {
        return Err(format!("{method} {path}: HTTP {status} {text}"));
    }
    serde_json::from_slice(&answer).map_err(|e| format!("{method} {path}: {e}: {text}"))
}

/// An object name as one path segment (`/` included).
fn encode(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Create a bucket.
pub fn create_bucket(name: &str) -> Result<(), String> {
    json_call(
        "POST",
        "/storage/v1/b?project=lifeboat-tests",
        &serde_json::json!({ "name": name }),
    )
    .map(|_| ())
}

/// The resources of the objects whose names start with `prefix`, as the
/// emulator keeps them (names, sizes, `retention`).
pub fn list_objects(bucket: &str, prefix: &str) -> Result<Vec<serde_json::Value>, String> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let mut path = format!("/storage/v1/b/{bucket}/o?prefix={}", encode(prefix));
        if !token.is_empty() {
            path.push_str(&format!("&pageToken={}", encode(&token)));
        }
        let page = json_call("GET", &path, &serde_json::Value::Null)?;
        out.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["nextPageToken"].as_str() {
            Some(t) if !t.is_empty() => token = t.to_string(),
            _ => return Ok(out),
        }
    }
}

/// Set an object's retention as given, overriding an `Unlocked` one (so it
/// may shorten it, which fake-gcs-server allows).
pub fn force_retention(
    bucket: &str,
    name: &str,
    mode: &str,
    until: chrono::DateTime<chrono::Utc>,
) -> Result<(), String> {
    let body = serde_json::json!({
        "retention": { "mode": mode, "retainUntilTime": until.to_rfc3339() }
    });
    json_call(
        "PATCH",
        &format!(
            "/storage/v1/b/{bucket}/o/{}?overrideUnlockedRetention=true",
            encode(name)
        ),
        &body,
    )
    .map(|_| ())
}

/// For a [`crate::fault_proxy::FaultProxy`] in front of fake-gcs-server: the
/// bucket resource gains `objectRetention: {mode: Enabled}`, what Cloud
/// Storage answers for a bucket with Object Retention Lock. fake-gcs-server
/// keeps no such setting (docs/stores.md), so without this `repo init
/// --lock-mode` refuses every emulator bucket.
pub fn object_retention_enabled() -> Rewrite {
    Arc::new(|line: &str, answer: &mut Answer| {
        let Some(path) = line.split_whitespace().nth(1) else {
            return false;
        };
        let path = path.split('?').next().unwrap_or_default();
        let bucket = path.strip_prefix("/storage/v1/b/").unwrap_or_default();
        if !line.starts_with("GET ") || bucket.is_empty() || bucket.contains('/') {
            return false;
        }
        let Ok(mut resource) = serde_json::from_slice::<serde_json::Value>(&answer.body) else {
            return false;
        };
        let Some(fields) = resource.as_object_mut() else {
            return false;
        };
        fields.insert(
            "objectRetention".into(),
            serde_json::json!({ "mode": "Enabled" }),
        );
        answer.body = resource.to_string().into_bytes();
        true
    })
}
