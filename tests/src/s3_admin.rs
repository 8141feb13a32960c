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

/// Overwrite an object behind Lifeboat's back (rot, or an attacker with
/// write access to a bucket without Object Lock).
pub fn overwrite_object(bucket: &str, key: &str, data: &[u8]) -> Result<(), String> {
    let body = aws_sdk_s3::primitives::ByteStream::from(data.to_vec());
    block_on(async {
        client()
            .await
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(body)
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

/// Every version of every object in a bucket, as (key, version id), sorted:
/// two listings that compare equal saw no write, overwrite or delete between them.
pub fn object_versions(bucket: &str) -> Result<Vec<(String, String)>, String> {
    block_on(async {
        let client = client().await;
        let mut out = Vec::new();
        let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
        loop {
            let page = client
                .list_object_versions()
                .bucket(bucket)
                .set_key_marker(key_marker.clone())
                .set_version_id_marker(version_marker.clone())
                .send()
                .await
                .map_err(|e| format!("{}", aws_sdk_s3::error::DisplayErrorContext(e)))?;
            for v in page.versions() {
                out.push((
                    v.key().unwrap_or_default().to_string(),
                    v.version_id().unwrap_or_default().to_string(),
                ));
            }
            for m in page.delete_markers() {
                out.push((
                    format!("{} (delete marker)", m.key().unwrap_or_default()),
                    m.version_id().unwrap_or_default().to_string(),
                ));
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_string);
            version_marker = page.next_version_id_marker().map(str::to_string);
        }
        out.sort();
        Ok(out)
    })
}
