//! The bearer token an EKS API server accepts, made the way
//! `aws-iam-authenticator token` and `aws eks get-token` make it.
//!
//! The token is a SigV4 *presigned* URL for STS
//! `GET /?Action=GetCallerIdentity&Version=2011-06-15`, with the header
//! `x-k8s-aws-id: <cluster name>` among the signed headers (so a token for one
//! cluster is refused by another), `X-Amz-Expires=60` and the session token
//! (`X-Amz-Security-Token`) when the credentials have one. The URL is signed
//! for service `sts` in the client's region, against the regional endpoint
//! `https://sts.<region>.amazonaws.com/` unless configuration names another
//! (`AWS_ENDPOINT_URL_STS`, then `AWS_ENDPOINT_URL`). The token is
//! `k8s-aws-v1.` followed by the URL in unpadded base64url.
//!
//! The cluster's authenticator calls that URL and so learns who signed it.
//! STS honours a presigned GetCallerIdentity for 15 minutes after its
//! `X-Amz-Date` whatever `X-Amz-Expires` says (60 is kept for old
//! authenticators, which insist on at most 60), so a token is good for about
//! 15 minutes; [`EksToken::expires_at`] leaves a minute of margin.

use crate::error::{from_credentials, region, AwsError};
use aws_config::SdkConfig;
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4;
use aws_types::service_config::ServiceConfigKey;
use base64::Engine;
use std::time::{Duration, SystemTime};

/// What every EKS token starts with.
pub const TOKEN_PREFIX: &str = "k8s-aws-v1.";
/// The signed header that binds a token to one cluster.
pub const CLUSTER_ID_HEADER: &str = "x-k8s-aws-id";
/// The query of the presigned request, before the signature's parameters.
const QUERY: &str = "Action=GetCallerIdentity&Version=2011-06-15";
/// `X-Amz-Expires`: ignored by STS, checked (at most 60) by old authenticators.
const PRESIGN_EXPIRES: Duration = Duration::from_secs(60);
/// How long STS honours a presigned GetCallerIdentity after its `X-Amz-Date`.
const URL_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// Margin taken off [`URL_LIFETIME`] for [`EksToken::expires_at`].
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// An EKS bearer token. Its [`Debug`](std::fmt::Debug) hides the token.
#[derive(Clone)]
pub struct EksToken {
    token: String,
    expires_at: SystemTime,
}

impl EksToken {
    /// The token, to send as `Authorization: Bearer <token>`.
    pub fn as_str(&self) -> &str {
        &self.token
    }

    /// The token, consumed.
    pub fn into_string(self) -> String {
        self.token
    }

    /// When to stop using the token: a minute before STS stops honouring it.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }
}

impl std::fmt::Debug for EksToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EksToken")
            .field("token", &format_args!("{TOKEN_PREFIX}** redacted **"))
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A token for the EKS cluster `cluster`, signed with the credentials of
/// `sdk` for its region, at the time of its time source.
pub async fn get_token(sdk: &SdkConfig, cluster: &str) -> Result<EksToken, AwsError> {
    let region = region(sdk)?;
    let what = format!("EKS token for cluster {cluster:?} in {region}");
    let provider = sdk
        .credentials_provider()
        .ok_or_else(|| AwsError::other(&what, "no AWS credentials provider is configured"))?;
    let credentials = provider
        .provide_credentials()
        .await
        .map_err(|e| from_credentials(&what, e))?;
    let now = sdk.time_source().map_or_else(SystemTime::now, |t| t.now());
    presign(
        &credentials,
        &region,
        &sts_endpoint(sdk, &region),
        cluster,
        now,
    )
}

/// The STS endpoint to sign for: the one configured for STS
/// (`AWS_ENDPOINT_URL_STS`, or `endpoint_url` in the profile's `sts` services
/// section), else the configured global one (`AWS_ENDPOINT_URL`), else the
/// regional endpoint of `region`.
pub fn sts_endpoint(sdk: &SdkConfig, region: &str) -> String {
    let key = ServiceConfigKey::builder()
        .service_id("STS")
        .env("AWS_ENDPOINT_URL")
        .profile("endpoint_url")
        .build();
    let for_sts = match (sdk.service_config(), key) {
        (Some(config), Ok(key)) => config.load_config(key),
        _ => None,
    };
    for_sts
        .or_else(|| sdk.endpoint_url().map(str::to_string))
        .unwrap_or_else(|| regional_sts_endpoint(region))
}

/// The regional STS endpoint, in the partition `region` belongs to.
pub fn regional_sts_endpoint(region: &str) -> String {
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else if region.starts_with("us-isob-") {
        "sc2s.sgov.gov"
    } else if region.starts_with("us-iso-") {
        "c2s.ic.gov"
    } else {
        "amazonaws.com"
    };
    format!("https://sts.{region}.{suffix}/")
}

/// Presign the token for `cluster` with `credentials` at `now`, for STS in
/// `region` at `sts_endpoint`. Pure: the same inputs give the same token.
pub fn presign(
    credentials: &Credentials,
    region: &str,
    sts_endpoint: &str,
    cluster: &str,
    now: SystemTime,
) -> Result<EksToken, AwsError> {
    let what = format!("EKS token for cluster {cluster:?} in {region}");
    if cluster.is_empty() || cluster.chars().any(char::is_control) {
        return Err(AwsError::InvalidInput(format!(
            "{what}: not a cluster name"
        )));
    }
    let url = format!("{}/?{QUERY}", sts_endpoint.trim_end_matches('/'));

    let identity = credentials.clone().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(PRESIGN_EXPIRES);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| AwsError::other(&what, format!("cannot sign: {e}")))?
        .into();
    // Like aws-iam-authenticator (aws-sdk-go's presigner for a service other
    // than S3), the payload hash is that of the empty body.
    let request = SignableRequest::new(
        "GET",
        url.as_str(),
        std::iter::once((CLUSTER_ID_HEADER, cluster)),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| AwsError::other(&what, format!("cannot sign {sts_endpoint}: {e}")))?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|e| AwsError::other(&what, format!("cannot sign: {e}")))?
        .into_parts();

    let mut presigned = url.clone();
    for (name, value) in instructions.params() {
        presigned.push('&');
        presigned.push_str(name);
        presigned.push('=');
        presigned.push_str(&percent_encode(value));
    }
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(presigned);
    Ok(EksToken {
        token: format!("{TOKEN_PREFIX}{encoded}"),
        expires_at: now + URL_LIFETIME - EXPIRY_MARGIN,
    })
}

/// Percent-encode all but RFC 3986's unreserved characters, as SigV4 does.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
