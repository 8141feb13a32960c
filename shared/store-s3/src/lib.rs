//! The S3 implementation of [`lifeboat_store::ObjectStore`]: AWS S3 or any
//! S3-compatible store (moto, MinIO), configured the standard AWS way, with
//! Object Lock retention on every write when the repository asks for it.
//!
//! It lives apart from the store trait so that the repository format and the
//! operations build and fuzz without the AWS SDK.

mod s3;

pub use s3::S3Store;

use lifeboat_store::{LocalStore, ObjectStore, StoreError, StoreUrl};
use std::sync::Arc;

/// Open the store a repository URL names (a path, `file:///path` or
/// `s3://bucket/prefix`); `region` overrides the configured one for S3.
pub async fn open_url(url: &str, region: Option<&str>) -> Result<Arc<dyn ObjectStore>, StoreError> {
    Ok(match StoreUrl::parse(url)? {
        StoreUrl::Local(p) => Arc::new(LocalStore::new(p)),
        StoreUrl::S3 { bucket, prefix } => {
            Arc::new(S3Store::connect_in(&bucket, &prefix, region).await?)
        }
    })
}
