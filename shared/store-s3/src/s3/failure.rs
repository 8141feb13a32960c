//! From a failed S3 call to a [`StoreError`] a caller can act on.

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use lifeboat_store::StoreError;
use std::error::Error as StdError;

/// What a failed S3 call tells, reduced to what the error mapping needs.
#[derive(Debug, Default)]
pub(super) struct Failure {
    pub(super) status: Option<u16>,
    pub(super) code: Option<String>,
    pub(super) message: Option<String>,
    /// No usable answer arrived (timeout, connection failure, truncated response).
    pub(super) transient: bool,
    /// The SDK's full description with its causes.
    pub(super) context: String,
}

impl Failure {
    pub(super) fn from_sdk<E>(err: &SdkError<E>) -> Failure
    where
        E: ProvideErrorMetadata + StdError + 'static,
    {
        let transient = match err {
            SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
            // Not credential or endpoint resolution failures: retrying cannot fix those.
            SdkError::DispatchFailure(d) => d.is_io() || d.is_timeout(),
            _ => false,
        };
        Failure {
            status: err.raw_response().map(|r| r.status().as_u16()),
            code: err.code().map(str::to_string),
            message: err.message().map(str::to_string),
            transient,
            context: DisplayErrorContext(err).to_string(),
        }
    }

    /// The service's own code and message when it sent them, else the SDK's account.
    pub(super) fn detail(&self) -> String {
        let status = self
            .status
            .map(|s| format!(" (HTTP {s})"))
            .unwrap_or_default();
        match (&self.code, &self.message) {
            (Some(code), Some(message)) => format!("{code}{status}: {message}"),
            (Some(code), None) => format!("{code}{status}"),
            _ => self.context.clone(),
        }
    }

    /// The error for `key` of the store at `location` in `bucket`. The SDK has
    /// already retried what it could, so transient failures here are final.
    pub(super) fn into_store_error(self, location: String, bucket: &str, key: &str) -> StoreError {
        let key = key.to_string();
        let code = self.code.as_deref().unwrap_or("");
        let detail = self.detail();
        if code == "NoSuchBucket" {
            StoreError::StoreMissing { location }
        } else if code == "PreconditionFailed" || self.status == Some(412) {
            // Only conditional writes (If-None-Match: *) send a precondition.
            StoreError::AlreadyExists { location, key }
        } else if matches!(code, "NoSuchKey" | "NotFound" | "NoSuchVersion")
            || self.status == Some(404)
        {
            StoreError::NotFound { location, key }
        } else if self.status == Some(403)
            || matches!(
                code,
                "AccessDenied"
                    | "InvalidAccessKeyId"
                    | "SignatureDoesNotMatch"
                    | "ExpiredToken"
                    | "InvalidToken"
                    | "AllAccessDisabled"
            )
        {
            StoreError::AccessDenied {
                location,
                key,
                detail,
            }
        } else if code == "InvalidRequest"
            && self.message.as_deref().is_some_and(mentions_object_lock)
        {
            // What S3 answers to retention on a bucket created without Object Lock.
            lock_not_enabled(location, bucket)
        } else if self.transient
            || self.status.is_some_and(|s| s == 429 || s >= 500)
            || matches!(
                code,
                "SlowDown"
                    | "Throttling"
                    | "ThrottlingException"
                    | "RequestTimeout"
                    | "InternalError"
                    | "ServiceUnavailable"
                    | "RequestLimitExceeded"
                    | "TooManyRequestsException"
                    | "ConditionalRequestConflict"
            )
        {
            StoreError::Transient {
                location,
                key,
                detail,
            }
        } else {
            StoreError::Backend {
                location,
                key,
                detail,
            }
        }
    }
}

/// The bucket exists but cannot hold locked objects.
pub(super) fn lock_not_enabled(location: String, bucket: &str) -> StoreError {
    StoreError::Unsupported {
        location,
        what: format!(
            "Object Lock: bucket {bucket} does not have S3 Object Lock enabled \
             (create it with --object-lock-enabled-for-bucket)"
        ),
    }
}

/// "Object Lock", "ObjectLock", "object lock" alike.
fn mentions_object_lock(message: &str) -> bool {
    message
        .to_ascii_lowercase()
        .split_whitespace()
        .collect::<String>()
        .contains("objectlock")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(status: Option<u16>, code: Option<&str>, message: Option<&str>) -> Failure {
        Failure {
            status,
            code: code.map(str::to_string),
            message: message.map(str::to_string),
            transient: false,
            context: "sdk context".into(),
        }
    }

    fn map(f: Failure) -> StoreError {
        f.into_store_error("s3://bkt/p".into(), "bkt", "k")
    }

    #[test]
    fn missing_things_are_named() {
        let missing = map(failure(Some(404), Some("NoSuchKey"), Some("gone")));
        assert!(
            matches!(&missing, StoreError::NotFound { location, key } if location == "s3://bkt/p" && key == "k"),
            "{missing:?}"
        );
        // HEAD answers carry no body, hence no code.
        assert!(map(failure(Some(404), None, None)).is_not_found());
        assert!(matches!(
            map(failure(Some(404), Some("NoSuchBucket"), None)),
            StoreError::StoreMissing { .. }
        ));
    }

    #[test]
    fn refusals_keep_the_service_message() {
        let denied = map(failure(
            Some(403),
            Some("InvalidAccessKeyId"),
            Some("no such key id"),
        ));
        assert!(matches!(denied, StoreError::AccessDenied { .. }));
        let text = denied.to_string();
        assert!(
            text.contains("s3://bkt/p")
                && text.contains("InvalidAccessKeyId (HTTP 403): no such key id"),
            "{text}"
        );
        let other = map(failure(
            Some(400),
            Some("InvalidArgument"),
            Some("bad header"),
        ));
        assert!(matches!(other, StoreError::Backend { .. }));
        assert!(other
            .to_string()
            .contains("InvalidArgument (HTTP 400): bad header"));
        // Without service metadata the SDK's own description is kept.
        assert!(map(failure(None, None, None))
            .to_string()
            .contains("sdk context"));
    }

    #[test]
    fn only_throttling_server_and_network_failures_are_retryable() {
        for f in [
            failure(
                Some(503),
                Some("SlowDown"),
                Some("reduce your request rate"),
            ),
            failure(Some(500), None, None),
            failure(Some(400), Some("RequestTimeout"), None),
            Failure {
                transient: true,
                ..failure(None, None, None)
            },
        ] {
            let err = map(f);
            assert!(err.is_retryable(), "{err:?}");
        }
        for f in [
            failure(Some(403), Some("AccessDenied"), None),
            failure(Some(400), Some("InvalidArgument"), None),
            failure(None, None, None),
        ] {
            let err = map(f);
            assert!(!err.is_retryable(), "{err:?}");
        }
    }

    #[test]
    fn retention_on_a_bucket_without_object_lock_is_unsupported() {
        // Real S3 and moto word it differently.
        for message in [
            "Bucket is missing Object Lock Configuration",
            "Bucket is missing ObjectLockConfiguration",
        ] {
            let err = map(failure(Some(400), Some("InvalidRequest"), Some(message)));
            assert!(matches!(err, StoreError::Unsupported { .. }), "{err:?}");
            let text = err.to_string();
            assert!(
                text.contains("bucket bkt") && text.contains("--object-lock-enabled-for-bucket"),
                "{text}"
            );
        }
    }
}
