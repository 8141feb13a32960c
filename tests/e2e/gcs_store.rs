//! `GcsStore` against a real Cloud Storage JSON API: fake-gcs-server on 127.0.0.1.
//!
//! Start it first: `tests/substrate/gcs up && cargo test -p lifeboat-tests --test gcs_store`.
//! Every test makes its own bucket with a unique name, so reruns against the
//! same server do not collide.
//!
//! What fake-gcs-server cannot show (docs/stores.md, "Google Cloud Storage"):
//! it has no Object Retention Lock setting on buckets (so
//! `ensure_lock_support` refuses there), records object retention without
//! enforcing it (deletes are not blocked), refuses any change to a `Locked`
//! retention (even an extension), authenticates nothing and never throttles.

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use chrono::{Duration, SubsecRound, Utc};
use lifeboat_store::conformance::{self, Capabilities, RetentionSupport};
use lifeboat_store::{LockMode, ObjectInfo, ObjectStore, PutOptions, Retention, StoreError};
use lifeboat_store_gcs::{GcsOptions, GcsStore};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The emulator's `STORAGE_EMULATOR_HOST`, as the substrate wrote it.
fn emulator() -> String {
    lifeboat_tests::gcs_env()
        .into_iter()
        .find(|(k, _)| k == "STORAGE_EMULATOR_HOST")
        .map(|(_, v)| v)
        .unwrap_or_default()
}

/// Options as `GcsStore::connect` builds them, from the substrate's
/// environment file instead of the process environment.
fn options() -> Result<GcsOptions> {
    let env = lifeboat_tests::gcs_env();
    GcsOptions::from_lookup(|name| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
        .map_err(anyhow::Error::msg)
}

fn unique_bucket(tag: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "lb-{tag}-{}-{n}-{}",
        std::process::id(),
        nanos % 1_000_000_000
    )
}

/// One plain HTTP/1.1 request to the emulator (what the store must not do
/// itself: creating buckets, planting objects, looking behind its back).
async fn raw(method: &str, path: &str, content_type: &str, body: &[u8]) -> Result<(u16, Vec<u8>)> {
    let host = emulator();
    let addr = host.trim_start_matches("http://");
    let mut conn = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to fake-gcs-server at {addr}"))?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(body).await?;
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await?;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of headers in the answer")?;
    let head = String::from_utf8_lossy(&answer[..split]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status in the answer")?;
    let mut body = answer[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body)?;
    }
    Ok((status, body))
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("chunk size line")?;
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..eol]).trim(), 16)?;
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 2 + size + 2..];
    }
}

/// A fresh bucket, asked for with object retention enabled (which
/// fake-gcs-server accepts and ignores).
async fn create_bucket(tag: &str) -> Result<String> {
    let name = unique_bucket(tag);
    let body = serde_json::json!({ "name": name }).to_string();
    let (status, answer) = raw(
        "POST",
        "/storage/v1/b?project=lifeboat-tests&enableObjectRetention=true",
        "application/json",
        body.as_bytes(),
    )
    .await?;
    ensure!(
        status == 200,
        "creating bucket {name}: HTTP {status} {}",
        String::from_utf8_lossy(&answer)
    );
    Ok(name)
}

/// Write an object behind the store's back (a simple media upload, no precondition).
async fn plant(bucket: &str, name: &str, data: &[u8]) -> Result<()> {
    let path = format!("/upload/storage/v1/b/{bucket}/o?uploadType=media&name={name}");
    let (status, answer) = raw("POST", &path, "application/octet-stream", data).await?;
    ensure!(
        status == 200,
        "planting {name}: HTTP {status} {}",
        String::from_utf8_lossy(&answer)
    );
    Ok(())
}

async fn read_raw(bucket: &str, name: &str) -> Result<Vec<u8>> {
    let encoded = name.replace('/', "%2F");
    let (status, body) = raw(
        "GET",
        &format!("/storage/v1/b/{bucket}/o/{encoded}?alt=media"),
        "text/plain",
        b"",
    )
    .await?;
    ensure!(status == 200, "reading {name}: HTTP {status}");
    Ok(body)
}

fn store(bucket: &str, prefix: &str) -> Result<GcsStore> {
    Ok(GcsStore::with_options(bucket, prefix, options()?)?)
}

fn locked(mode: LockMode, from_now: Duration) -> Retention {
    Retention {
        mode,
        until: Utc::now().trunc_subsecs(0) + from_now,
    }
}

/// The store, except that `ensure_lock_support` accepts the emulator's
/// buckets after checking that the real call refuses them for the right
/// reason: fake-gcs-server has no bucket-level Object Retention Lock setting.
/// Everything else goes to the store unchanged.
#[derive(Debug)]
struct EmulatorBucket(GcsStore);

#[async_trait::async_trait]
impl ObjectStore for EmulatorBucket {
    fn location(&self) -> String {
        self.0.location()
    }
    async fn exists(&self) -> Result<bool, StoreError> {
        self.0.exists().await
    }
    async fn create(&self) -> Result<(), StoreError> {
        self.0.create().await
    }
    async fn ensure_lock_support(&self) -> Result<(), StoreError> {
        match self.0.ensure_lock_support().await {
            Err(StoreError::Unsupported { what, .. })
                if what.contains("--enable-per-object-retention") =>
            {
                Ok(())
            }
            other => Err(StoreError::Backend {
                location: self.location(),
                key: "(bucket)".into(),
                detail: format!(
                    "expected the emulator's bucket to lack object retention, got {other:?}"
                ),
            }),
        }
    }
    async fn put(&self, key: &str, data: Bytes, opts: &PutOptions) -> Result<(), StoreError> {
        self.0.put(key, data, opts).await
    }
    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        self.0.get(key).await
    }
    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Bytes, StoreError> {
        self.0.get_range(key, offset, len).await
    }
    async fn head(&self, key: &str) -> Result<ObjectInfo, StoreError> {
        self.0.head(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        self.0.list(prefix).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.0.delete(key).await
    }
    async fn set_retention(&self, key: &str, retention: Retention) -> Result<(), StoreError> {
        self.0.set_retention(key, retention).await
    }
}

#[tokio::test]
async fn the_store_passes_the_conformance_suite() -> Result<()> {
    let bucket = create_bucket("conf").await?;
    let store = store(&bucket, "team/repo")?;
    assert_eq!(store.location(), format!("gs://{bucket}/team/repo"));
    // repo check says the emulator's retention is no proof.
    ensure!(store
        .retention_caveat()
        .is_some_and(|c| c.contains("emulator")));
    let caps = Capabilities {
        // Retention is stored and reported; deletes are not refused.
        retention: RetentionSupport::Recorded,
        ..Capabilities::default()
    };
    match conformance::run(Arc::new(EmulatorBucket(store)), &caps).await {
        Ok(passed) => {
            ensure!(passed.len() == 10, "only {passed:?} ran");
            Ok(())
        }
        Err(failed) => anyhow::bail!("conformance failures:\n{}", failed.join("\n")),
    }
}

#[tokio::test]
async fn a_missing_bucket_is_named() -> Result<()> {
    let bucket = unique_bucket("missing");
    let store = store(&bucket, "repo")?;
    ensure!(!store.exists().await?, "a never-created bucket exists");
    for (what, result) in [
        ("create", store.create().await),
        ("ensure_lock_support", store.ensure_lock_support().await),
        ("list", store.list("").await.map(|_| ())),
    ] {
        match result {
            Err(e @ StoreError::StoreMissing { .. }) => {
                ensure!(e.to_string().contains(&bucket), "{what}: {e}")
            }
            other => anyhow::bail!("{what} on a missing bucket gave {other:?}"),
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_planted_object_is_never_overwritten_but_a_lock_record_is() -> Result<()> {
    let bucket = create_bucket("planted").await?;
    plant(&bucket, "repo/config", b"planted").await?;
    plant(&bucket, "repo/locks/l1", b"old lock").await?;
    let store = store(&bucket, "repo")?;
    let err = store
        .put(
            "config",
            Bytes::from_static(b"mine"),
            &PutOptions::default(),
        )
        .await
        .expect_err("an existing object was overwritten");
    ensure!(
        err.is_already_exists() && err.to_string().contains("config"),
        "{err}"
    );
    assert_eq!(read_raw(&bucket, "repo/config").await?, b"planted");
    store
        .put(
            "locks/l1",
            Bytes::from_static(b"new lock"),
            &PutOptions::default(),
        )
        .await?;
    assert_eq!(read_raw(&bucket, "repo/locks/l1").await?, b"new lock");
    Ok(())
}

#[tokio::test]
async fn a_large_object_goes_up_resumably_with_its_retention_and_its_condition() -> Result<()> {
    let bucket = create_bucket("resumable").await?;
    let mut opts = options()?;
    opts.resumable_threshold = 1 << 20;
    opts.resumable_chunk = 256 << 10;
    let store = GcsStore::with_options(&bucket, "repo", opts)?;
    let data: Vec<u8> = (0..(3usize << 20) + 1234)
        .map(|i| (i * 31 % 253) as u8)
        .collect();
    let lock = locked(LockMode::Governance, Duration::days(2));
    let with_lock = PutOptions {
        retention: Some(lock),
    };
    store
        .put("data/ff/big", Bytes::from(data.clone()), &with_lock)
        .await?;
    ensure!(
        store.get("data/ff/big").await? == data,
        "the object read back differs"
    );
    let info = store.head("data/ff/big").await?;
    assert_eq!(info.size, data.len() as u64);
    assert_eq!(info.retention, Some(lock));
    // ifGenerationMatch=0 holds through the session to its last chunk.
    let err = store
        .put(
            "data/ff/big",
            Bytes::from(vec![0u8; 2 << 20]),
            &PutOptions::default(),
        )
        .await
        .expect_err("a resumable upload replaced an object");
    ensure!(err.is_already_exists(), "{err}");
    ensure!(
        store.get("data/ff/big").await? == data,
        "the object changed"
    );
    Ok(())
}

/// What the emulator does with retention, pinned down so docs/stores.md
/// stays true: a change here means the documented gap changed.
#[tokio::test]
async fn the_emulator_records_retention_but_does_not_enforce_it() -> Result<()> {
    let bucket = create_bucket("retention").await?;
    let store = store(&bucket, "")?;
    let lock = locked(LockMode::Compliance, Duration::days(1));
    store
        .put(
            "snapshots/s1",
            Bytes::from_static(b"x"),
            &PutOptions {
                retention: Some(lock),
            },
        )
        .await?;
    assert_eq!(store.head("snapshots/s1").await?.retention, Some(lock));
    // Shortening is refused by the store itself, before any request.
    let shorter = Retention {
        until: lock.until - Duration::hours(1),
        ..lock
    };
    match store.set_retention("snapshots/s1", shorter).await {
        Err(StoreError::Locked { .. }) => {}
        other => anyhow::bail!("shortening gave {other:?}"),
    }
    // fake-gcs-server refuses any change to a Locked retention, even an
    // extension, which Cloud Storage allows.
    let longer = Retention {
        until: lock.until + Duration::days(1),
        ..lock
    };
    let refused = store.set_retention("snapshots/s1", longer).await;
    ensure!(
        matches!(&refused, Err(StoreError::Backend { detail, .. }) if detail.contains("locked retention")),
        "extending a Locked retention on the emulator gave {refused:?}"
    );
    assert_eq!(store.head("snapshots/s1").await?.retention, Some(lock));
    // And it deletes a retained object, which Cloud Storage refuses.
    store.delete("snapshots/s1").await?;
    ensure!(store
        .get("snapshots/s1")
        .await
        .is_err_and(|e| e.is_not_found()));
    Ok(())
}

/// Throttling and 5xx are retried, a persisting 5xx ends as a retryable
/// error naming the key, and a 403 is a permission error naming bucket and
/// key: faults injected by a proxy in front of fake-gcs-server, which never
/// fails on its own.
#[tokio::test]
async fn throttling_and_server_errors_are_retried_and_named() -> Result<()> {
    use lifeboat_tests::fault_proxy::FaultProxy;
    let bucket = create_bucket("faults").await?;
    let proxy = FaultProxy::start(&emulator()).await?;
    // The store's own policy (six attempts), with shorter waits.
    let mut opts = GcsOptions::emulator(proxy.url());
    opts.retry.base_delay = std::time::Duration::from_millis(20);
    let store = GcsStore::with_options(&bucket, "repo", opts)?;
    proxy.fail_next(2, 503);
    proxy.fail_next(1, 429);
    store
        .put("index/ab", Bytes::from_static(b"i"), &PutOptions::default())
        .await
        .context("a put behind two 503s and a 429")?;
    ensure!(proxy.injected() == 3, "{} faults used", proxy.injected());
    assert_eq!(store.get("index/ab").await?, "i");

    proxy.fail_next(6, 500);
    let err = store.get("index/ab").await.err().context("six 500s")?;
    ensure!(matches!(err, StoreError::Transient { .. }), "{err:?}");
    ensure!(err.to_string().contains("index/ab"), "{err}");
    ensure!(
        proxy.faults_left() == 0,
        "{} of the 500s unused",
        proxy.faults_left()
    );

    proxy.fail_next(1, 403);
    let err = store.get("index/ab").await.err().context("a 403")?;
    ensure!(matches!(err, StoreError::AccessDenied { .. }), "{err:?}");
    ensure!(
        err.to_string().contains(&bucket) && err.to_string().contains("index/ab"),
        "{err}"
    );
    ensure!(
        proxy.injected() == 10,
        "the 403 was retried: {} faults used",
        proxy.injected()
    );
    Ok(())
}
