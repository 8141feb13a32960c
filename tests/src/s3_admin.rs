//! Set-up and tampering that tests need and the product must never do:
//! creating buckets, and shortening a lock behind Lifeboat's back.

use crate::aws_env;
use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::primitives::DateTime as AwsDateTime;
use aws_sdk_s3::types::{ObjectLockRetention, ObjectLockRetentionMode};
use aws_sdk_s3::Client;

pub(crate) fn value(env: &[(String, String)], key: &str) -> String {
    env.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

pub(crate) fn block_on<F: std::future::Future>(f: F) -> F::Output {
    #[allow(clippy::expect_used)]
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a test runtime")
        .block_on(f)
}

async fn client() -> Client {
    let env = aws_env();
    let creds = Credentials::new(
        value(&env, "AWS_ACCESS_KEY_ID"),
        value(&env, "AWS_SECRET_ACCESS_KEY"),
        None,
        None,
        "lifeboat-tests",
    );
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .endpoint_url(value(&env, "AWS_ENDPOINT_URL"))
        .region(Region::new(value(&env, "AWS_REGION")))
        .credentials_provider(creds)
        .force_path_style(true)
        .build();
    Client::from_conf(conf)
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
