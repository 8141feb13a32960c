//! Set-up and tampering that tests need and the product must never do:
//! creating buckets, and shortening a lock behind Lifeboat's back.

use crate::{block_on, moto_sdk};
use aws_sdk_s3::primitives::DateTime as AwsDateTime;
use aws_sdk_s3::types::{ObjectLockRetention, ObjectLockRetentionMode};
use aws_sdk_s3::Client;

async fn client() -> Client {
    let sdk = moto_sdk().await;
    Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    )
}

/// Create a bucket on moto, with Object Lock enabled or not.
pub fn create_bucket(name: &str, object_lock: bool) -> Result<(), String> {
    block_on(async {
        client()
            .await
            .create_bucket()
            .bucket(name)
            .object_lock_enabled_for_bucket(object_lock)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("{}", aws_sdk_s3::error::DisplayErrorContext(e)))
    })
}

/// Set an object's GOVERNANCE retention, bypassing governance (so it may shorten it).
pub fn force_governance_retention(
    bucket: &str,
    key: &str,
    until: chrono::DateTime<chrono::Utc>,
) -> Result<(), String> {
    block_on(async {
        let r = ObjectLockRetention::builder()
            .mode(ObjectLockRetentionMode::Governance)
            .retain_until_date(AwsDateTime::from_secs(until.timestamp()))
            .build();
        client()
            .await
            .put_object_retention()
            .bucket(bucket)
            .key(key)
            .retention(r)
            .bypass_governance_retention(true)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("{}", aws_sdk_s3::error::DisplayErrorContext(e)))
    })
}
