//! `AzureStore` against a real Blob service API: Azurite on 127.0.0.1.
//!
//! Start it first: `tests/substrate/azure up && cargo test -p lifeboat-tests --test azure_store`.
//! Every test makes its own container with a unique name, so reruns against
//! the same Azurite do not collide. Azurite checks Shared Key signatures and
//! conditional writes, but it stores no immutability policy and never
//! throttles: retention is shown here as refused with the way to enable it,
//! and throttling and 5xx come from the fault proxy (docs/stores.md).

use anyhow::{bail, ensure, Context, Result};
use bytes::Bytes;
use lifeboat_store::conformance::{run, Capabilities, RetentionSupport};
use lifeboat_store::{LockMode, ObjectStore, PutOptions, Retention, StoreError};
use lifeboat_store_azure::{
    AzureCredentials, AzureOptions, AzureStore, RetryPolicy, Secret, DEV_ACCOUNT,
};
use lifeboat_tests::fault_proxy::FaultProxy;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Point the process environment at Azurite, once, before any test reads it.
fn use_azurite() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        for (key, value) in lifeboat_tests::azure_env() {
            std::env::set_var(key, value);
        }
    });
}

/// A container name no earlier run on the same Azurite has used.
fn unique_container(tag: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "lb-{tag}-{}-{n}-{}",
        std::process::id(),
        nanos % 1_000_000_000
    )
}

/// Options from the environment Azurite's env file sets, with quick retries.
fn options() -> Result<AzureOptions> {
    use_azurite();
    let mut opts = AzureOptions::from_env(DEV_ACCOUNT).map_err(anyhow::Error::msg)?;
    opts.retry = RetryPolicy {
        base_delay: Duration::from_millis(10),
        ..RetryPolicy::default()
    };
    Ok(opts)
}

/// A fresh container, created through the store's own client.
async fn fresh_store(tag: &str, prefix: &str, opts: AzureOptions) -> Result<AzureStore> {
    let container = unique_container(tag);
    let store = AzureStore::with_options(DEV_ACCOUNT, &container, prefix, opts)?;
    store
        .create_container()
        .await
        .with_context(|| format!("creating container {container}"))?;
    Ok(store)
}

fn endpoint() -> Result<String> {
    use_azurite();
    lifeboat_tests::azure_env()
        .into_iter()
        .find(|(k, _)| k == "AZURE_STORAGE_BLOB_ENDPOINT")
        .map(|(_, v)| v)
        .context("no AZURE_STORAGE_BLOB_ENDPOINT in azure.env")
}

/// The suite every store passes. Azurite has no version-level immutability,
/// so the container does not advertise it and retention is refused as
/// unsupported (`RetentionSupport::None`); uploads above 8 MiB go in 4 MiB
/// blocks so the large-object check commits a block list; 5100 objects cross
/// Azure's 5000-blob listing page.
#[tokio::test]
async fn the_azure_store_conforms_on_azurite() -> Result<()> {
    let mut opts = options()?;
    opts.single_put_limit = 8 << 20;
    opts.block_size = 4 << 20;
    let store = fresh_store("conf", "repo/conformance", opts).await?;
    let caps = Capabilities {
        retention: RetentionSupport::None,
        many_objects: 5100,
        ..Capabilities::default()
    };
    let location = store.location();
    match run(Arc::new(store), &caps).await {
        Ok(passed) => {
            ensure!(passed.len() == 10, "only {passed:?} ran");
            Ok(())
        }
        Err(failed) => bail!("{location}: {failed:#?}"),
    }
}

/// `lifeboat_stores::open` reaches Azurite from a URL and the environment
/// alone (the connection string of azure.env).
#[tokio::test]
async fn an_azure_url_opens_through_the_registry() -> Result<()> {
    let seed = fresh_store("registry", "", options()?).await?;
    let url = format!("azure://{DEV_ACCOUNT}/{}/team/a/", seed.container());
    let store = lifeboat_stores::open(&url, &Default::default()).await?;
    assert_eq!(
        store.location(),
        format!("azure://{DEV_ACCOUNT}/{}/team/a", seed.container())
    );
    ensure!(store.exists().await?);
    store
        .put("config", Bytes::from_static(b"{}"), &PutOptions::default())
        .await?;
    // Stored under the prefix, read back by a store at the container root.
    assert_eq!(seed.get("team/a/config").await?, "{}");
    assert_eq!(store.list("").await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_wrong_account_key_is_access_denied_naming_account_and_container() -> Result<()> {
    let good = fresh_store("badkey", "p", options()?).await?;
    good.put("config", Bytes::from_static(b"x"), &PutOptions::default())
        .await?;
    let mut opts = options()?;
    opts.credentials = AzureCredentials::SharedKey {
        // Valid base64, not the account's key.
        account_key: Secret::new("d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5"),
    };
    let bad = AzureStore::with_options(DEV_ACCOUNT, good.container(), "p", opts)?;
    for (what, result) in [
        ("get", bad.get("config").await.map(|_| ())),
        ("exists", bad.exists().await.map(|_| ())),
        (
            "put",
            bad.put("data/x", Bytes::from_static(b"y"), &PutOptions::default())
                .await,
        ),
    ] {
        let err = result
            .err()
            .with_context(|| format!("{what} with a wrong key succeeded"))?;
        ensure!(
            matches!(err, StoreError::AccessDenied { .. }),
            "{what}: {err:?}"
        );
        ensure!(!err.is_retryable(), "{what}: {err:?}");
        let text = err.to_string();
        ensure!(
            text.contains(DEV_ACCOUNT) && text.contains(good.container()) && text.contains("403"),
            "{what}: {text}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_missing_container_is_store_missing() -> Result<()> {
    let container = unique_container("missing");
    let store = AzureStore::with_options(DEV_ACCOUNT, &container, "p", options()?)?;
    ensure!(!store.exists().await?, "exists() for a missing container");
    for (what, result) in [
        ("create", store.create().await),
        ("list", store.list("").await.map(|_| ())),
        (
            "put",
            store
                .put("config", Bytes::from_static(b"{}"), &PutOptions::default())
                .await,
        ),
        ("ensure_lock_support", store.ensure_lock_support().await),
    ] {
        let err = result
            .err()
            .with_context(|| format!("{what} on a missing container succeeded"))?;
        ensure!(
            matches!(err, StoreError::StoreMissing { .. }),
            "{what}: {err:?}"
        );
        let text = err.to_string();
        ensure!(
            text.contains(DEV_ACCOUNT) && text.contains(&container),
            "{what}: {text}"
        );
    }
    Ok(())
}

/// An object written behind the store's back (by a store at the container
/// root) is never replaced, by a single put or by a block upload; a lock
/// record is.
#[tokio::test]
async fn a_planted_object_is_never_overwritten() -> Result<()> {
    let mut opts = options()?;
    opts.single_put_limit = 1 << 20;
    opts.block_size = 512 << 10;
    let root = fresh_store("planted", "", opts.clone()).await?;
    let store = AzureStore::with_options(DEV_ACCOUNT, root.container(), "repo", opts)?;
    root.put(
        "repo/snapshots/s1",
        Bytes::from_static(b"planted"),
        &PutOptions::default(),
    )
    .await?;
    let small = store
        .put(
            "snapshots/s1",
            Bytes::from_static(b"mine"),
            &PutOptions::default(),
        )
        .await;
    ensure!(
        small.as_ref().is_err_and(StoreError::is_already_exists),
        "{small:?}"
    );
    let large = store
        .put(
            "snapshots/s1",
            Bytes::from(vec![7u8; 3 << 20]),
            &PutOptions::default(),
        )
        .await;
    ensure!(
        large.as_ref().is_err_and(StoreError::is_already_exists),
        "{large:?}"
    );
    assert_eq!(store.get("snapshots/s1").await?, "planted");

    // Racing block uploads of one new key: exactly one commit wins.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..4u8 {
        let store = store.clone();
        tasks.spawn(async move {
            let data = Bytes::from(vec![i; (2 << 20) + 100]);
            (
                data.clone(),
                store.put("data/big", data, &PutOptions::default()).await,
            )
        });
    }
    let mut winners = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (data, result) = joined?;
        match result {
            Ok(()) => winners.push(data),
            Err(e) if e.is_already_exists() => {}
            Err(e) => bail!("a racing block upload failed otherwise: {e}"),
        }
    }
    ensure!(winners.len() == 1, "{} block uploads won", winners.len());
    ensure!(
        store.get("data/big").await? == winners[0],
        "the stored blob is not the winner's"
    );

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
            Bytes::from(vec![1u8; 3 << 20]),
            &PutOptions::default(),
        )
        .await?;
    assert_eq!(store.get("locks/l1").await?.len(), 3 << 20);
    Ok(())
}

/// Azurite has no version-level immutability: the store says so, with the
/// way to enable it, before sending any locked write (docs/stores.md).
#[tokio::test]
async fn retention_on_a_container_without_immutability_is_refused_with_the_fix() -> Result<()> {
    let store = fresh_store("nolock", "p", options()?).await?;
    let err = store
        .ensure_lock_support()
        .await
        .err()
        .context("lock support on Azurite")?;
    let text = err.to_string();
    ensure!(matches!(err, StoreError::Unsupported { .. }), "{err:?}");
    ensure!(
        text.contains(store.container())
            && text.contains("version-level immutability")
            && text.contains("--enable-vlw"),
        "{text}"
    );
    let lock = Retention {
        mode: LockMode::Compliance,
        until: chrono::Utc::now() + chrono::Duration::days(1),
    };
    let put = store
        .put(
            "snapshots/s",
            Bytes::from_static(b"x"),
            &PutOptions {
                retention: Some(lock),
            },
        )
        .await;
    ensure!(
        matches!(put, Err(StoreError::Unsupported { .. })),
        "{put:?}"
    );
    ensure!(
        store
            .get("snapshots/s")
            .await
            .is_err_and(|e| e.is_not_found()),
        "a refused locked write left an object"
    );
    store
        .put(
            "snapshots/t",
            Bytes::from_static(b"x"),
            &PutOptions::default(),
        )
        .await?;
    let set = store.set_retention("snapshots/t", lock).await;
    ensure!(
        matches!(set, Err(StoreError::Unsupported { .. })),
        "{set:?}"
    );
    Ok(())
}

/// Throttling and server errors are retried, and a persisting one ends as a
/// retryable error naming the key: faults injected by a proxy in front of
/// Azurite, which never fails on its own.
#[tokio::test]
async fn throttling_and_server_errors_are_retried_and_named() -> Result<()> {
    let seed = fresh_store("faults", "", options()?).await?;
    let upstream = endpoint()?;
    let proxy = FaultProxy::start(&upstream).await?;
    let account_path = upstream
        .trim_start_matches("http://")
        .split_once('/')
        .map(|(_, p)| p.to_string())
        .unwrap_or_default();
    let mut opts = options()?;
    opts.endpoint = Some(format!("{}/{account_path}", proxy.url()));
    let store = AzureStore::with_options(DEV_ACCOUNT, seed.container(), "repo", opts)?;

    proxy.fail_next(2, 503);
    proxy.fail_next(1, 429);
    store
        .put("index/ab", Bytes::from_static(b"i"), &PutOptions::default())
        .await
        .context("a put behind two 503s and a 429")?;
    ensure!(proxy.injected() == 3, "{} faults used", proxy.injected());
    ensure!(
        proxy.requests() == 4,
        "{} requests for one put",
        proxy.requests()
    );
    assert_eq!(store.get("index/ab").await?, "i");

    let before = proxy.requests();
    proxy.fail_next(6, 500);
    let err = store.get("index/ab").await.err().context("six 500s")?;
    ensure!(matches!(err, StoreError::Transient { .. }), "{err:?}");
    ensure!(err.is_retryable(), "{err:?}");
    let text = err.to_string();
    ensure!(
        text.contains("index/ab") && text.contains("6 attempts"),
        "{text}"
    );
    ensure!(
        proxy.requests() - before == 6,
        "{} attempts",
        proxy.requests() - before
    );

    proxy.fail_next(1, 403);
    let err = store.get("index/ab").await.err().context("a 403")?;
    ensure!(matches!(err, StoreError::AccessDenied { .. }), "{err:?}");
    let text = err.to_string();
    ensure!(
        text.contains(seed.container()) && text.contains(DEV_ACCOUNT) && text.contains("index/ab"),
        "{text}"
    );
    Ok(())
}
