//! Errors from AWS calls, each naming what was asked for (the cluster, secret,
//! state machine or queue, and the region) and saying whether a retry can help.

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_eks::config::http::HttpResponse;
use aws_sdk_eks::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// What went wrong talking to AWS (or to the cluster an AWS call led to).
///
/// The variants match the workflow error names (`Lifeboat.NotFound`,
/// `Lifeboat.PermissionDenied`, `Lifeboat.Retryable`, `Lifeboat.InvalidInput`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AwsError {
    /// No such cluster, secret, state machine, execution, queue or topic.
    #[error("{what}: not found: {message}")]
    NotFound { what: String, message: String },
    /// AWS refused the credentials or the credentials lack a permission.
    #[error("{what}: permission denied: {message}")]
    PermissionDenied { what: String, message: String },
    /// Throttling, a 5xx, a timeout or a connection that failed: a retry may succeed.
    #[error("{what}: {message} (temporary, a retry may succeed)")]
    Retryable { what: String, message: String },
    /// The caller passed something unusable (an empty name, a malformed ARN).
    #[error("{0}")]
    InvalidInput(String),
    /// Connecting to the cluster failed after AWS answered.
    #[error("{what}: {source}")]
    Cluster {
        what: String,
        #[source]
        source: lifeboat_kube::KubeError,
    },
    /// Anything else AWS refused or answered unexpectedly.
    #[error("{what}: {message}")]
    Other { what: String, message: String },
}

impl AwsError {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            AwsError::Retryable { .. } => true,
            AwsError::Cluster { source, .. } => source.is_retryable(),
            _ => false,
        }
    }

    pub(crate) fn other(what: impl Into<String>, message: impl Into<String>) -> Self {
        AwsError::Other {
            what: what.into(),
            message: message.into(),
        }
    }
}

/// How an error is classified; the variant of [`AwsError`] to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    NotFound,
    PermissionDenied,
    Retryable,
    Other,
}

impl Kind {
    fn build(self, what: String, message: String) -> AwsError {
        match self {
            Kind::NotFound => AwsError::NotFound { what, message },
            Kind::PermissionDenied => AwsError::PermissionDenied { what, message },
            Kind::Retryable => AwsError::Retryable { what, message },
            Kind::Other => AwsError::Other { what, message },
        }
    }
}

const NOT_FOUND_CODES: &[&str] = &[
    "ResourceNotFoundException",
    "NotFoundException",
    "StateMachineDoesNotExist",
    "ExecutionDoesNotExist",
    "QueueDoesNotExist",
    "NonExistentQueue",
    // SNS: no such topic.
    "NotFound",
];

const DENIED_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "AuthFailure",
    // SNS.
    "AuthorizationError",
    "DecryptionFailure",
    "ExpiredToken",
    "ExpiredTokenException",
    "IncompleteSignature",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "KmsAccessDeniedException",
    "KMS.AccessDeniedException",
    "MissingAuthenticationToken",
    "NotAuthorized",
    "SignatureDoesNotMatch",
    "UnauthorizedOperation",
    "UnrecognizedClientException",
];

const RETRYABLE_CODES: &[&str] = &[
    "BandwidthLimitExceeded",
    "EC2ThrottledException",
    "ExecutionLimitExceeded",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "InternalServiceError",
    "KmsThrottlingException",
    "PriorRequestNotComplete",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "RequestTimeout",
    "RequestTimeoutException",
    "ServerException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
];

/// Classify a service's error by its code, then (for a code not listed) by
/// its HTTP status.
fn kind_of(code: &str, status: u16) -> Kind {
    // SQS's query-compatible codes come as `AWS.SimpleQueueService.<Code>`.
    let code = code.strip_prefix("AWS.SimpleQueueService.").unwrap_or(code);
    if NOT_FOUND_CODES.contains(&code) {
        Kind::NotFound
    } else if DENIED_CODES.contains(&code) {
        Kind::PermissionDenied
    } else if RETRYABLE_CODES.contains(&code) || code.contains("Throttl") {
        Kind::Retryable
    } else {
        match status {
            429 | 500..=599 => Kind::Retryable,
            404 => Kind::NotFound,
            401 | 403 => Kind::PermissionDenied,
            _ => Kind::Other,
        }
    }
}

/// A credentials provider's failure, if that is what `e` comes from.
fn credentials_kind(e: &(dyn std::error::Error + 'static)) -> Option<Kind> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(c) = err.downcast_ref::<CredentialsError>() {
            return Some(match c {
                CredentialsError::ProviderTimedOut(_) | CredentialsError::ProviderError(_) => {
                    Kind::Retryable
                }
                _ => Kind::Other,
            });
        }
        cur = err.source();
    }
    None
}

/// Map an SDK error for the call described by `what` (which names the
/// resource and region, e.g. `EKS cluster "shop-prod" in us-east-1`).
pub(crate) fn from_sdk<E>(what: impl Into<String>, err: SdkError<E, HttpResponse>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let what = what.into();
    let kind = match &err {
        SdkError::ServiceError(ctx) => {
            let code = ctx.err().code().unwrap_or_default();
            let status = ctx.raw().status().as_u16();
            let message = match (code, ctx.err().message()) {
                ("", _) => format!("{} (HTTP {status})", DisplayErrorContext(ctx.err())),
                (code, Some(m)) if !m.is_empty() => format!("{code}: {m}"),
                (code, _) => format!("{code} (HTTP {status})"),
            };
            return kind_of(code, status).build(what, message);
        }
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => Kind::Retryable,
        SdkError::DispatchFailure(d) => match credentials_kind(&err) {
            Some(kind) => kind,
            None if d.is_user() => Kind::Other,
            None => Kind::Retryable,
        },
        SdkError::ConstructionFailure(_) => credentials_kind(&err).unwrap_or(Kind::Other),
        _ => Kind::Other,
    };
    kind.build(what, DisplayErrorContext(&err).to_string())
}

/// Map a credentials provider's failure for the call described by `what`.
pub(crate) fn from_credentials(what: &str, e: CredentialsError) -> AwsError {
    let kind = credentials_kind(&e).unwrap_or(Kind::Other);
    kind.build(
        what.to_string(),
        format!("no AWS credentials: {}", DisplayErrorContext(&e)),
    )
}

/// The region of `sdk`, or an error saying how to set one.
pub(crate) fn region(sdk: &aws_config::SdkConfig) -> Result<String, AwsError> {
    sdk.region().map(|r| r.to_string()).ok_or_else(|| {
        AwsError::InvalidInput("no AWS region is configured: set AWS_REGION".to_string())
    })
}

/// The region of `sdk` for messages (`(no region)` when there is none).
pub(crate) fn region_name(sdk: &aws_config::SdkConfig) -> String {
    sdk.region()
        .map_or_else(|| "(no region)".to_string(), |r| r.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_come_before_statuses() {
        assert_eq!(kind_of("ResourceNotFoundException", 404), Kind::NotFound);
        assert_eq!(kind_of("StateMachineDoesNotExist", 400), Kind::NotFound);
        assert_eq!(
            kind_of("AWS.SimpleQueueService.NonExistentQueue", 400),
            Kind::NotFound
        );
        assert_eq!(
            kind_of("AccessDeniedException", 403),
            Kind::PermissionDenied
        );
        assert_eq!(
            kind_of("ExpiredTokenException", 400),
            Kind::PermissionDenied
        );
        assert_eq!(kind_of("ThrottlingException", 400), Kind::Retryable);
        assert_eq!(kind_of("SomethingThrottled", 400), Kind::Retryable);
        assert_eq!(kind_of("ServerException", 500), Kind::Retryable);
        assert_eq!(kind_of("InvalidParameterException", 400), Kind::Other);
        assert_eq!(kind_of("ClientException", 400), Kind::Other);
        // A code nobody listed on a 5xx is still the server's problem.
        assert_eq!(kind_of("SomethingBroke", 502), Kind::Retryable);
    }

    #[test]
    fn without_a_code_the_status_decides() {
        assert_eq!(kind_of("", 404), Kind::NotFound);
        assert_eq!(kind_of("", 403), Kind::PermissionDenied);
        assert_eq!(kind_of("", 429), Kind::Retryable);
        assert_eq!(kind_of("", 503), Kind::Retryable);
        assert_eq!(kind_of("", 400), Kind::Other);
    }

    #[test]
    fn only_retryable_errors_say_so() {
        let e = Kind::Retryable.build("EKS cluster \"a\" in us-east-1".into(), "slow".into());
        assert!(e.is_retryable());
        assert!(
            e.to_string().contains("EKS cluster \"a\" in us-east-1"),
            "{e}"
        );
        assert!(!Kind::NotFound.build("x".into(), "y".into()).is_retryable());
        assert!(!AwsError::InvalidInput("bad".into()).is_retryable());
    }

    #[test]
    fn credentials_that_did_not_load_are_not_retried() {
        let e = CredentialsError::not_loaded("no credentials in the environment");
        assert_eq!(credentials_kind(&e), Some(Kind::Other));
        let e = CredentialsError::provider_timed_out(std::time::Duration::from_secs(5));
        assert_eq!(credentials_kind(&e), Some(Kind::Retryable));
    }
}
