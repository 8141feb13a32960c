//! Reading secrets from Secrets Manager: kubeconfigs of clusters outside EKS
//! and the repository passphrase. A secret's value is never logged, and no
//! error built here contains it.

use crate::error::{from_sdk, region_name, AwsError};
use aws_config::SdkConfig;

/// The current value of the secret `id` (a name or an ARN) as text.
///
/// A secret stored as binary is accepted when it is UTF-8.
pub async fn get_secret_string(sdk: &SdkConfig, id: &str) -> Result<String, AwsError> {
    let what = format!("secret {id:?} in {}", region_name(sdk));
    if id.is_empty() {
        return Err(AwsError::InvalidInput(format!("{what}: empty id")));
    }
    let out = aws_sdk_secretsmanager::Client::new(sdk)
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .map_err(|e| from_sdk(&what, e))?;
    let value = match (out.secret_string(), out.secret_binary()) {
        (Some(text), _) => text.to_string(),
        (None, Some(blob)) => String::from_utf8(blob.as_ref().to_vec())
            .map_err(|_| AwsError::other(&what, "is binary and not UTF-8 text"))?,
        (None, None) => return Err(AwsError::other(&what, "has no value")),
    };
    tracing::debug!(secret = id, bytes = value.len(), "read secret");
    Ok(value)
}
