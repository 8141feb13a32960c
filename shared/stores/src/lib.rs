//! The store registry: one function, [`open`], turns a repository URL into
//! the [`ObjectStore`] behind it. Each cloud's store lives in a crate of its
//! own behind a cargo feature, so the repository format, the operations and
//! the other clouds build without its SDK (the shape of rustic's backend
//! chooser).

mod forward;

pub use forward::forwarded_env;
use lifeboat_store::{LocalStore, ObjectStore, StoreError, StoreUrl};
use std::sync::Arc;

/// How to reach a store beyond what its URL says. Credentials are not here:
/// each cloud's store finds them the standard way of that cloud (see
/// docs/stores.md).
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// The region of an `s3://` bucket, overriding the configured one (the
    /// DR replica's bucket lives in another region).
    pub region: Option<String>,
}

/// Open the store `url` names: a path, `file:///path`, `s3://bucket/prefix`,
/// `azure://account/container/prefix` or `gs://bucket/prefix`.
pub async fn open(url: &str, opts: &StoreOptions) -> Result<Arc<dyn ObjectStore>, StoreError> {
    let parsed = StoreUrl::parse(url)?;
    Ok(match parsed {
        StoreUrl::Local(p) => Arc::new(LocalStore::new(p)),
        #[cfg(feature = "s3")]
        StoreUrl::S3 { bucket, prefix } => Arc::new(
            lifeboat_store_s3::S3Store::connect_in(&bucket, &prefix, opts.region.as_deref())
                .await?,
        ),
        #[cfg(not(feature = "s3"))]
        StoreUrl::S3 { .. } => return Err(not_built(url, "S3")),
        #[cfg(feature = "azure")]
        StoreUrl::Azure {
            account,
            container,
            prefix,
        } => Arc::new(
            lifeboat_store_azure::AzureStore::connect(&account, &container, &prefix).await?,
        ),
        #[cfg(not(feature = "azure"))]
        StoreUrl::Azure { .. } => return Err(not_built(url, "Azure Blob")),
        #[cfg(feature = "gcs")]
        StoreUrl::Gcs { bucket, prefix } => {
            Arc::new(lifeboat_store_gcs::GcsStore::connect(&bucket, &prefix)?)
        }
        #[cfg(not(feature = "gcs"))]
        StoreUrl::Gcs { .. } => return Err(not_built(url, "Google Cloud Storage")),
    })
}

/// The error for a URL whose store this build leaves out (a cargo feature
/// turned off).
#[cfg_attr(
    all(feature = "s3", feature = "azure", feature = "gcs"),
    allow(dead_code)
)]
fn not_built(url: &str, what: &str) -> StoreError {
    StoreError::InvalidUrl {
        url: url.to_string(),
        reason: format!("this build of Lifeboat has no {what} store"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn a_path_opens_a_local_store_and_junk_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("repo");
        let store = open(path.to_str().unwrap(), &StoreOptions::default())
            .await
            .unwrap();
        assert_eq!(store.location(), path.display().to_string());
        let err = open("ftp://host/x", &StoreOptions::default())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("ftp"), "{err}");
    }

    /// Connecting sends nothing: the store is made from the URL and the
    /// environment's configuration (docs/stores.md).
    #[cfg(feature = "gcs")]
    #[tokio::test]
    async fn a_gs_url_opens_a_cloud_storage_store() {
        let store = open("gs://my-bucket/team/repo/", &StoreOptions::default())
            .await
            .unwrap();
        assert_eq!(store.location(), "gs://my-bucket/team/repo");
    }
}
