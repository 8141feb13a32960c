//! Finding an EKS cluster's API server and connecting to it with an EKS token.

use crate::eks_token;
use crate::error::{from_sdk, region_name, AwsError};
use aws_config::SdkConfig;
use base64::Engine;
use lifeboat_kube::{Cluster, ExpiringToken, KubeError, TokenSource};
use std::sync::Arc;

/// Where an EKS cluster's API server is and which CA signed its certificate.
#[derive(Clone, PartialEq, Eq)]
pub struct EksEndpoint {
    /// The API server URL (`https://<id>.<zone>.<region>.eks.amazonaws.com`).
    pub endpoint: String,
    /// The cluster CA's certificate, PEM (decoded from `certificateAuthority.data`).
    pub ca_pem: Vec<u8>,
    /// The cluster's ARN.
    pub arn: String,
}

impl std::fmt::Debug for EksEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EksEndpoint")
            .field("endpoint", &self.endpoint)
            .field("ca_pem", &format_args!("{} bytes", self.ca_pem.len()))
            .field("arn", &self.arn)
            .finish()
    }
}

/// Look up the EKS cluster `name` in the region of `sdk`.
pub async fn describe_cluster(sdk: &SdkConfig, name: &str) -> Result<EksEndpoint, AwsError> {
    let what = format!("EKS cluster {name:?} in {}", region_name(sdk));
    if name.is_empty() {
        return Err(AwsError::InvalidInput(format!("{what}: empty name")));
    }
    let out = aws_sdk_eks::Client::new(sdk)
        .describe_cluster()
        .name(name)
        .send()
        .await
        .map_err(|e| from_sdk(&what, e))?;
    let cluster = out
        .cluster()
        .ok_or_else(|| AwsError::other(&what, "DescribeCluster answered without a cluster"))?;
    let status = cluster
        .status()
        .map_or_else(|| "unknown".to_string(), |s| s.as_str().to_string());
    let endpoint = cluster
        .endpoint()
        .filter(|e| !e.is_empty())
        .ok_or_else(|| {
            AwsError::other(
                &what,
                format!("has no API server endpoint yet (status {status})"),
            )
        })?
        .to_string();
    let ca_data = cluster
        .certificate_authority()
        .and_then(|c| c.data())
        .filter(|d| !d.is_empty())
        .ok_or_else(|| {
            AwsError::other(
                &what,
                format!("has no certificate authority yet (status {status})"),
            )
        })?;
    let ca_pem = base64::engine::general_purpose::STANDARD
        .decode(ca_data.trim())
        .map_err(|e| AwsError::other(&what, format!("certificate authority is not base64: {e}")))?;
    let arn = cluster.arn().unwrap_or_default().to_string();
    tracing::debug!(cluster = name, %endpoint, %status, "described EKS cluster");
    Ok(EksEndpoint {
        endpoint,
        ca_pem,
        arn,
    })
}

/// Connect to the EKS cluster `name`: its endpoint and CA from
/// DescribeCluster, EKS tokens from the credentials of `sdk`. A token lasts
/// about 15 minutes; the client renews it before then for as long as it
/// lives, so a long run (a local workflow, a large restore) keeps working.
pub async fn connect_eks(sdk: &SdkConfig, name: &str) -> Result<Cluster, AwsError> {
    let endpoint = describe_cluster(sdk, name).await?;
    let tokens = Arc::new(EksTokens {
        sdk: sdk.clone(),
        cluster: name.to_string(),
    });
    Cluster::with_renewed_token(&endpoint.endpoint, Some(&endpoint.ca_pem), tokens, name)
        .await
        .map_err(|source| AwsError::Cluster {
            what: format!("EKS cluster {name:?} in {}", region_name(sdk)),
            source,
        })
}

/// Fresh EKS tokens for one cluster (presigned locally: no request is made
/// until the API server checks one).
struct EksTokens {
    sdk: SdkConfig,
    cluster: String,
}

#[async_trait::async_trait]
impl TokenSource for EksTokens {
    async fn fetch(&self) -> Result<ExpiringToken, KubeError> {
        let token = eks_token::get_token(&self.sdk, &self.cluster)
            .await
            .map_err(|e| KubeError::Credentials {
                cluster: self.cluster.clone(),
                message: e.to_string(),
            })?;
        Ok(ExpiringToken {
            expires_at: token.expires_at(),
            token: token.into_string(),
        })
    }
}
