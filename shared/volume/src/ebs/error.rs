//! SDK errors of the EBS direct APIs as [`VolumeError::Ebs`], saying whether a
//! retry can help.

use crate::VolumeError;
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_ebs::config::http::HttpResponse;
use aws_sdk_ebs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// Codes that mean "not now" rather than "not like this". The EBS direct APIs
/// document ThrottlingException and RequestThrottledException (and any 5xx)
/// as the errors to retry.
const RETRYABLE_CODES: &[&str] = &[
    "InternalServerException",
    "RequestThrottledException",
    "RequestTimeout",
    "RequestTimeoutException",
    "ServiceUnavailableException",
    "ThrottlingException",
];

/// Whether a service error with `code` (empty if none) and HTTP `status` may
/// succeed when tried again.
fn retryable(code: &str, status: u16) -> bool {
    RETRYABLE_CODES.contains(&code)
        || code.contains("Throttl")
        || status == 429
        || (500..=599).contains(&status)
}

/// Whether a service error with `code` and HTTP `status` says the caller
/// lacks the permission.
fn denied(code: &str, status: u16) -> bool {
    code.contains("AccessDenied") || status == 403
}

/// Whether `e` comes from a credentials provider, and if so whether its
/// failure may pass (a provider that timed out or failed to answer).
fn credentials_retryable(e: &(dyn std::error::Error + 'static)) -> Option<bool> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(c) = err.downcast_ref::<CredentialsError>() {
            return Some(matches!(
                c,
                CredentialsError::ProviderTimedOut(_) | CredentialsError::ProviderError(_)
            ));
        }
        cur = err.source();
    }
    None
}

/// Map the SDK error of `operation` (e.g. `GetSnapshotBlock`) on `target`
/// (e.g. `snap-0abc block 17`).
pub(super) fn sdk_error<E>(
    operation: &'static str,
    target: impl Into<String>,
    err: SdkError<E, HttpResponse>,
) -> VolumeError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (message, retryable, denied) = match &err {
        SdkError::ServiceError(ctx) => {
            let code = ctx.err().code().unwrap_or_default();
            let status = ctx.raw().status().as_u16();
            let message = match (code, ctx.err().message()) {
                ("", _) => format!("HTTP {status}: {}", DisplayErrorContext(ctx.err())),
                (code, Some(m)) if !m.is_empty() => format!("{code}: {m}"),
                (code, _) => format!("{code} (HTTP {status})"),
            };
            (message, retryable(code, status), denied(code, status))
        }
        SdkError::ResponseError(ctx) => {
            // A body that could not be read: a garbled answer may come right
            // next time, a client error (a proxy's HTML page) will not.
            let status = ctx.raw().status().as_u16();
            let why = std::error::Error::source(&err)
                .map_or_else(String::new, |e| format!(": {}", DisplayErrorContext(e)));
            let message = format!("HTTP {status}, a response that could not be read{why}");
            (
                message,
                !(400..=499).contains(&status) || retryable("", status),
                status == 403,
            )
        }
        SdkError::TimeoutError(_) => (DisplayErrorContext(&err).to_string(), true, false),
        SdkError::DispatchFailure(d) => {
            let retry = credentials_retryable(&err).unwrap_or(!d.is_user());
            (DisplayErrorContext(&err).to_string(), retry, false)
        }
        _ => {
            let retry = credentials_retryable(&err).unwrap_or(false);
            (DisplayErrorContext(&err).to_string(), retry, false)
        }
    };
    VolumeError::Ebs {
        operation,
        target: target.into(),
        message,
        retryable,
        denied,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ebs::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_ebs::operation::get_snapshot_block::GetSnapshotBlockError;
    use aws_sdk_ebs::primitives::SdkBody;

    fn service_error(code: &str, status: u16) -> SdkError<GetSnapshotBlockError, HttpResponse> {
        let meta = ErrorMetadata::builder()
            .code(code)
            .message("the service says so")
            .build();
        let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        SdkError::service_error(GetSnapshotBlockError::generic(meta), raw)
    }

    #[test]
    fn throttling_and_server_errors_are_retryable() {
        assert!(retryable("ThrottlingException", 400));
        assert!(retryable("RequestThrottledException", 400));
        assert!(retryable("InternalServerException", 500));
        assert!(retryable("", 503));
        assert!(retryable("", 429));
        assert!(!retryable("AccessDeniedException", 403));
        assert!(!retryable("ValidationException", 400));
        assert!(!retryable("ResourceNotFoundException", 404));
        assert!(!retryable("ServiceQuotaExceededException", 402));
        assert!(denied("AccessDeniedException", 400));
        assert!(denied("", 403));
        assert!(!denied("ValidationException", 400));
    }

    #[test]
    fn service_errors_name_operation_target_and_code() {
        let e = sdk_error(
            "GetSnapshotBlock",
            "snap-0abc block 17",
            service_error("AccessDeniedException", 403),
        );
        assert!(!e.is_retryable());
        let text = e.to_string();
        for part in [
            "GetSnapshotBlock",
            "snap-0abc block 17",
            "AccessDeniedException",
            "the service says so",
        ] {
            assert!(text.contains(part), "{text} lacks {part}");
        }
        let e = sdk_error(
            "GetSnapshotBlock",
            "x",
            service_error("ThrottlingException", 400),
        );
        assert!(e.is_retryable());
    }

    #[test]
    fn connection_failures_and_timeouts_are_retryable() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let e = sdk_error(
            "PutSnapshotBlock",
            "snap-1 block 2",
            SdkError::<GetSnapshotBlockError, HttpResponse>::dispatch_failure(ConnectorError::io(
                io.into(),
            )),
        );
        assert!(e.is_retryable());
        assert!(e.to_string().contains("reset by peer"), "{e}");
        let e = sdk_error(
            "PutSnapshotBlock",
            "snap-1 block 2",
            SdkError::<GetSnapshotBlockError, HttpResponse>::timeout_error("too slow"),
        );
        assert!(e.is_retryable());
        let e = sdk_error(
            "PutSnapshotBlock",
            "snap-1 block 2",
            SdkError::<GetSnapshotBlockError, HttpResponse>::construction_failure("bad input"),
        );
        assert!(!e.is_retryable());
    }

    #[test]
    fn unreadable_responses_say_their_status() {
        let unreadable = |status: u16| {
            let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::from("<html>"));
            sdk_error(
                "ListSnapshotBlocks",
                "snap-1",
                SdkError::<GetSnapshotBlockError, HttpResponse>::response_error("not JSON", raw),
            )
        };
        let e = unreadable(500);
        assert!(e.is_retryable());
        let text = e.to_string();
        assert!(
            text.contains("HTTP 500") && text.contains("not JSON") && !text.contains("<html>"),
            "{text}"
        );
        assert!(!unreadable(403).is_retryable());
        assert!(unreadable(429).is_retryable());
    }

    #[test]
    fn missing_credentials_are_not_retryable() {
        let creds = CredentialsError::not_loaded("no credentials in the environment");
        let e = sdk_error(
            "ListSnapshotBlocks",
            "snap-1",
            SdkError::<GetSnapshotBlockError, HttpResponse>::dispatch_failure(
                ConnectorError::other(creds.into(), None),
            ),
        );
        assert!(!e.is_retryable(), "{e}");
        let creds = CredentialsError::provider_timed_out(std::time::Duration::from_secs(5));
        let e = sdk_error(
            "ListSnapshotBlocks",
            "snap-1",
            SdkError::<GetSnapshotBlockError, HttpResponse>::dispatch_failure(
                ConnectorError::other(creds.into(), None),
            ),
        );
        assert!(e.is_retryable(), "{e}");
    }
}
