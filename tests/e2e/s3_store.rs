//! `S3Store` against a real S3 API: moto in server mode on 127.0.0.1.
//!
//! Start it first: `tests/substrate/aws up && cargo test -p lifeboat-tests --test s3_store`.
//! Every test makes its own buckets with unique names, so reruns against the
//! same moto server do not collide.

use anyhow::{bail, ensure, Context, Result};
use aws_config::BehaviorVersion;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::Credentials;
use aws_sdk_s3::types::ChecksumMode;
use aws_sdk_s3::Client;
use bytes::Bytes;
use chrono::{Duration, SubsecRound, Utc};
use lifeboat_store::{LockMode, ObjectStore, PutOptions, Retention, StoreError};
use lifeboat_store_s3::S3Store;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// Point the process environment at moto, once, before any test reads it.
/// `OnceLock` makes every other test wait until the variables are set, so no
/// thread reads the environment while it is being written.
fn use_moto() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        for (key, value) in lifeboat_tests::aws_env() {
            std::env::set_var(key, value);
        }
    });
}

/// A bucket name no earlier run on the same server has used.
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

/// A plain SDK client for what the store must not do itself (creating buckets)
/// and for looking behind its back.
async fn admin_client() -> Client {
    use_moto();
    let shared = aws_config::defaults(BehaviorVersion::latest()).load().await;
    Client::from_conf(
        aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(true)
            .build(),
    )
}

async fn create_bucket(client: &Client, tag: &str, object_lock: bool) -> Result<String> {
    let name = unique_bucket(tag);
    client
        .create_bucket()
        .bucket(&name)
        .object_lock_enabled_for_bucket(object_lock)
        .send()
        .await
        .with_context(|| format!("creating bucket {name}"))?;
    Ok(name)
}

/// Retention that S3 stores exactly (whole seconds).
fn retention(mode: LockMode, from_now: Duration) -> Retention {
    Retention {
        mode,
        until: Utc::now().trunc_subsecs(0) + from_now,
    }
}

fn locked(retention: Retention) -> PutOptions {
    PutOptions {
        retention: Some(retention),
    }
}

/// Every version and delete marker of exactly `key`.
async fn version_count(client: &Client, bucket: &str, key: &str) -> Result<usize> {
    let out = client
        .list_object_versions()
        .bucket(bucket)
        .prefix(key)
        .send()
        .await?;
    let versions = out
        .versions()
        .iter()
        .filter(|v| v.key() == Some(key))
        .count();
    let markers = out
        .delete_markers()
        .iter()
        .filter(|m| m.key() == Some(key))
        .count();
    Ok(versions + markers)
}

#[tokio::test]
async fn roundtrip_under_a_prefix() -> Result<()> {
    let admin = admin_client().await;
    let bucket = create_bucket(&admin, "plain", false).await?;
    let store = S3Store::connect(&bucket, "/team/repo/").await?;
    assert_eq!(store.location(), format!("s3://{bucket}/team/repo"));
    ensure!(store.exists().await?);
    store.create().await?;

    let before = Utc::now().trunc_subsecs(0);
    store
        .put("config", Bytes::from_static(b"{}"), &PutOptions::default())
        .await?;
    store
        .put(
            "data/ab/abc",
            Bytes::from_static(b"hello world"),
            &PutOptions::default(),
        )
        .await?;
    assert_eq!(store.get("data/ab/abc").await?, "hello world");
    assert_eq!(store.get_range("data/ab/abc", 6, 5).await?, "world");
    assert_eq!(store.get_range("data/ab/abc", 0, 1).await?, "h");
    assert_eq!(store.get_range("data/ab/abc", 3, 0).await?, "");
    let past_end = store.get_range("data/ab/abc", 6, 10).await;
    ensure!(
        past_end.is_err(),
        "a range past the end must fail: {past_end:?}"
    );

    let info = store.head("data/ab/abc").await?;
    assert_eq!((info.key.as_str(), info.size), ("data/ab/abc", 11));
    let modified = info
        .last_modified
        .context("HeadObject gave no Last-Modified")?;
    ensure!(
        modified >= before - Duration::seconds(5),
        "{modified} is before {before}"
    );
    assert_eq!(info.retention, None);
    // Every write carries a checksum (Object Lock requires one on real S3).
    let raw_head = admin
        .head_object()
        .bucket(&bucket)
        .key("team/repo/data/ab/abc")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await?;
    ensure!(
        raw_head.checksum_crc32_c().is_some(),
        "no CRC32C checksum stored: {raw_head:?}"
    );

    // Keys come back relative to the prefix, and the prefix is joined with one slash.
    let mut keys: Vec<String> = store.list("").await?.into_iter().map(|o| o.key).collect();
    keys.sort();
    assert_eq!(keys, ["config", "data/ab/abc"]);
    let data = store.list("data/").await?;
    assert_eq!(data.len(), 1);
    assert_eq!(data[0].size, 11);
    ensure!(store.list("snapshots/").await?.is_empty());
    let raw = admin.list_objects_v2().bucket(&bucket).send().await?;
    let mut raw_keys: Vec<&str> = raw.contents().iter().filter_map(|o| o.key()).collect();
    raw_keys.sort_unstable();
    assert_eq!(raw_keys, ["team/repo/config", "team/repo/data/ab/abc"]);

    // A store at the bucket root sees the full keys, without a leading slash.
    let root = S3Store::connect(&bucket, "").await?;
    assert_eq!(root.get("team/repo/config").await?, "{}");
    assert_eq!(root.list("team/").await?.len(), 2);

    store.delete("data/ab/abc").await?;
    ensure!(store
        .get("data/ab/abc")
        .await
        .is_err_and(|e| e.is_not_found()));
    // Deleting what is gone succeeds.
    store.delete("data/ab/abc").await?;
    assert_eq!(store.list("").await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn list_follows_pagination() -> Result<()> {
    let admin = admin_client().await;
    let bucket = create_bucket(&admin, "many", false).await?;
    let store = S3Store::connect(&bucket, "p").await?;
    // ListObjectsV2 returns at most 1000 keys a page.
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in 0..8u32 {
        let store = store.clone();
        tasks.spawn(async move {
            for i in (chunk..1003).step_by(8) {
                store
                    .put(
                        &format!("data/{i:04}"),
                        Bytes::new(),
                        &PutOptions::default(),
                    )
                    .await?;
            }
            Ok::<_, StoreError>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let listed = store.list("data/").await?;
    assert_eq!(listed.len(), 1003);
    Ok(())
}

#[tokio::test]
async fn delete_removes_every_version() -> Result<()> {
    let admin = admin_client().await;
    let bucket = create_bucket(&admin, "versions", true).await?;
    let store = S3Store::connect(&bucket, "r").await?;
    store
        .put("obj", Bytes::from_static(b"one"), &PutOptions::default())
        .await?;
    // A second version, written behind the store's back (it never overwrites).
    admin
        .put_object()
        .bucket(&bucket)
        .key("r/obj")
        .body(Bytes::from_static(b"two").into())
        .send()
        .await?;
    store
        .put(
            "obj-sibling",
            Bytes::from_static(b"x"),
            &PutOptions::default(),
        )
        .await?;
    assert_eq!(version_count(&admin, &bucket, "r/obj").await?, 2);

    store.delete("obj").await?;
    assert_eq!(version_count(&admin, &bucket, "r/obj").await?, 0);
    ensure!(store.get("obj").await.is_err_and(|e| e.is_not_found()));
    // Only the exact key goes, not every key it is a prefix of.
    assert_eq!(store.get("obj-sibling").await?, "x");
    Ok(())
}

/// moto answers a second `If-None-Match: *` create with 412, as S3 does.
#[tokio::test]
async fn existing_objects_are_never_overwritten() -> Result<()> {
    let admin = admin_client().await;
    let bucket = create_bucket(&admin, "create-new", true).await?;
    let store = S3Store::connect(&bucket, "repo").await?;
    let r = retention(LockMode::Compliance, Duration::hours(1));
    for key in ["config", "keys/k1", "snapshots/s1", "data/ab/abc"] {
        store
            .put(key, Bytes::from_static(b"original"), &locked(r))
            .await?;
        match store
            .put(
                key,
                Bytes::from_static(b"replacement"),
                &PutOptions::default(),
            )
            .await
        {
            Err(StoreError::AlreadyExists { location, key: k }) => {
                assert_eq!(location, format!("s3://{bucket}/repo"));
                assert_eq!(k, key);
            }
            other => bail!("overwriting {key}: expected AlreadyExists, got {other:?}"),
        }
        assert_eq!(store.get(key).await?, "original", "{key}");
        assert_eq!(
            version_count(&admin, &bucket, &format!("repo/{key}")).await?,
            1,
            "{key} got a second version"
        );
    }
    // Lock records are refreshed in place.
    store
        .put(
            "locks/l1",
            Bytes::from_static(b"one"),
            &PutOptions::default(),
        )
        .await?;
    store
        .put(
            "locks/l1",
            Bytes::from_static(b"two"),
            &PutOptions::default(),
        )
        .await?;
    assert_eq!(store.get("locks/l1").await?, "two");
    Ok(())
}

#[tokio::test]
async fn locked_objects_keep_their_data() -> Result<()> {
    let admin = admin_client().await;
    let bucket = create_bucket(&admin, "locked", true).await?;
    let store = S3Store::connect(&bucket, "repo").await?;
    store.ensure_lock_support().await?;

    for (key, mode) in [
        ("compliance", LockMode::Compliance),
        ("governance", LockMode::Governance),
    ] {
        let r = retention(mode, Duration::hours(1));
        store
            .put(key, Bytes::from_static(b"precious"), &locked(r))
            .await?;
        assert_eq!(store.head(key).await?.retention, Some(r), "{key}");

        match store.delete(key).await {
            Err(StoreError::Locked {
                location,
                key: k,
                until,
            }) => {
                assert_eq!(
                    (location.as_str(), k.as_str()),
                    (format!("s3://{bucket}/repo").as_str(), key)
                );
                ensure!(
                    until.contains(&r.until.to_rfc3339()),
                    "{until:?} should name {}",
                    r.until
                );
            }
            other => bail!("deleting locked {key}: expected Locked, got {other:?}"),
        }
        assert_eq!(store.get(key).await?, "precious");
        assert_eq!(
            version_count(&admin, &bucket, &format!("repo/{key}")).await?,
            1
        );
    }
    Ok(())
}

#[tokio::test]
async fn retention_is_extended_never_shortened() -> Result<()> {
    let admin = admin_client().await;
    let bucket = create_bucket(&admin, "extend", true).await?;
    let store = S3Store::connect(&bucket, "").await?;
    let first = retention(LockMode::Compliance, Duration::hours(1));
    store
        .put("pack", Bytes::from_static(b"p"), &locked(first))
        .await?;

    let later = Retention {
        until: first.until + Duration::hours(1),
        ..first
    };
    store.set_retention("pack", later).await?;
    assert_eq!(store.head("pack").await?.retention, Some(later));

    // moto would accept the shorter date even in compliance mode (real S3 refuses);
    // the store must not even ask.
    let shorter = Retention {
        until: first.until - Duration::minutes(30),
        ..first
    };
    store.set_retention("pack", shorter).await?;
    assert_eq!(store.head("pack").await?.retention, Some(later));

    // An object written without a lock gets one.
    store
        .put("index", Bytes::from_static(b"i"), &PutOptions::default())
        .await?;
    assert_eq!(store.head("index").await?.retention, None);
    store.set_retention("index", first).await?;
    assert_eq!(store.head("index").await?.retention, Some(first));

    ensure!(store
        .set_retention("missing", first)
        .await
        .is_err_and(|e| e.is_not_found()));
    Ok(())
}

#[tokio::test]
async fn bucket_without_object_lock_is_refused_clearly() -> Result<()> {
    let admin = admin_client().await;
    let bucket = create_bucket(&admin, "nolock", false).await?;
    let store = S3Store::connect(&bucket, "repo").await?;
    let err = store
        .ensure_lock_support()
        .await
        .err()
        .context("a bucket without Object Lock passed ensure_lock_support")?;
    ensure!(matches!(err, StoreError::Unsupported { .. }), "{err:?}");
    let text = err.to_string();
    ensure!(
        text.contains(&bucket) && text.contains("--object-lock-enabled-for-bucket"),
        "{text}"
    );

    let r = retention(LockMode::Compliance, Duration::hours(1));
    let err = store
        .put("x", Bytes::from_static(b"x"), &locked(r))
        .await
        .err()
        .context("a locked write to a bucket without Object Lock succeeded")?;
    ensure!(matches!(err, StoreError::Unsupported { .. }), "{err:?}");
    Ok(())
}

#[tokio::test]
async fn missing_key_names_bucket_and_key() -> Result<()> {
    let admin = admin_client().await;
    let bucket = create_bucket(&admin, "nokey", false).await?;
    let store = S3Store::connect(&bucket, "repo").await?;
    for result in [
        store.get("snapshots/nope").await.map(|_| ()),
        store.get_range("snapshots/nope", 0, 4).await.map(|_| ()),
        store.head("snapshots/nope").await.map(|_| ()),
    ] {
        match result {
            Err(StoreError::NotFound { location, key }) => {
                assert_eq!(location, format!("s3://{bucket}/repo"));
                assert_eq!(key, "snapshots/nope");
            }
            other => bail!("expected NotFound, got {other:?}"),
        }
    }
    Ok(())
}

#[tokio::test]
async fn missing_bucket_is_store_missing() -> Result<()> {
    use_moto();
    let bucket = unique_bucket("absent");
    let store = S3Store::connect(&bucket, "repo").await?;
    ensure!(!store.exists().await?);
    // Buckets are never created implicitly.
    let created = store.create().await;
    ensure!(
        matches!(created, Err(StoreError::StoreMissing { .. })),
        "{created:?}"
    );
    ensure!(!store.exists().await?);
    for (op, result) in [
        ("get", store.get("config").await.map(|_| ())),
        ("list", store.list("").await.map(|_| ())),
        (
            "put",
            store
                .put("config", Bytes::new(), &PutOptions::default())
                .await,
        ),
    ] {
        match result {
            Err(StoreError::StoreMissing { location }) => {
                assert_eq!(location, format!("s3://{bucket}/repo"), "{op}");
            }
            other => bail!("{op}: expected StoreMissing, got {other:?}"),
        }
    }
    Ok(())
}

#[tokio::test]
async fn wrong_credentials_give_a_clear_error() -> Result<()> {
    let admin = admin_client().await;
    let bucket = create_bucket(&admin, "creds", false).await?;
    let config = admin
        .config()
        .to_builder()
        .credentials_provider(Credentials::new(
            "AKIALIFEBOATWRONG",
            "wrong-secret",
            None,
            None,
            "test",
        ))
        .build();
    let store = S3Store::from_client(Client::from_conf(config), &bucket, "repo");
    match store.list("").await {
        // moto in server mode does not check keys or signatures (unless it is
        // started with INITIAL_NO_AUTH_ACTION_COUNT and IAM users, which would make
        // every other test create its own keys), so there is nothing to assert
        // here. How 403 InvalidAccessKeyId / SignatureDoesNotMatch answers map to
        // AccessDenied is unit-tested in shared/store/src/s3.rs.
        Ok(_) => {}
        Err(err) => {
            ensure!(matches!(err, StoreError::AccessDenied { .. }), "{err:?}");
            ensure!(err.to_string().contains(&bucket), "{err}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn unreachable_endpoint_is_transient() -> Result<()> {
    let admin = admin_client().await;
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config = admin
        .config()
        .to_builder()
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(2)
                .with_initial_backoff(std::time::Duration::from_millis(10)),
        )
        .build();
    let store = S3Store::from_client(Client::from_conf(config), "any-bucket", "");
    let err = store
        .get("config")
        .await
        .err()
        .context("a GET from a closed port succeeded")?;
    ensure!(err.is_retryable(), "{err:?}");
    Ok(())
}

/// The conformance suite every store passes, against moto: a bucket with
/// Object Lock (which moto enforces) and one without.
#[tokio::test]
async fn s3_passes_the_store_conformance_suite() -> Result<()> {
    use lifeboat_store::conformance::{run, Capabilities, RetentionSupport};
    let admin = admin_client().await;
    for (lock, retention) in [
        (true, RetentionSupport::Enforced),
        (false, RetentionSupport::None),
    ] {
        let bucket = create_bucket(&admin, "conform", lock).await?;
        let store = S3Store::connect(&bucket, "suite").await?;
        let caps = Capabilities {
            retention,
            ..Capabilities::default()
        };
        if let Err(failed) = run(std::sync::Arc::new(store), &caps).await {
            bail!("s3://{bucket} (object lock {lock}): {failed:#?}");
        }
    }
    Ok(())
}

/// Throttling and 5xx are retried, a persisting 5xx ends as a retryable
/// error naming the key, and a 403 is a permission error naming bucket and
/// key: faults injected by a proxy in front of moto, which never fails on
/// its own.
#[tokio::test]
async fn throttling_and_server_errors_are_retried_and_named() -> Result<()> {
    use lifeboat_tests::fault_proxy::FaultProxy;
    let admin = admin_client().await;
    let bucket = create_bucket(&admin, "faults", false).await?;
    let upstream = lifeboat_tests::aws_env()
        .into_iter()
        .find(|(k, _)| k == "AWS_ENDPOINT_URL")
        .map(|(_, v)| v)
        .context("no AWS_ENDPOINT_URL in aws.env")?;
    let proxy = FaultProxy::start(&upstream).await?;
    let shared = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(proxy.url())
        .retry_config(
            RetryConfig::standard().with_initial_backoff(std::time::Duration::from_millis(20)),
        )
        .load()
        .await;
    // The client Lifeboat itself makes (six attempts, 429 retried).
    let store = S3Store::from_sdk_config(&shared, &bucket, "repo");
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
    ensure!(err.is_retryable(), "{err:?}");
    ensure!(err.to_string().contains("index/ab"), "{err}");

    proxy.fail_next(1, 403);
    let err = store.get("index/ab").await.err().context("a 403")?;
    ensure!(matches!(err, StoreError::AccessDenied { .. }), "{err:?}");
    ensure!(
        err.to_string().contains(&bucket) && err.to_string().contains("index/ab"),
        "{err}"
    );
    Ok(())
}
