//! From a failed Blob service call to a [`StoreError`] a caller can act on:
//! one line naming account, container and key, saying whether a retry helps.

use crate::redact::scrub;
use crate::transport::NoReply;
use crate::xml::parse_error;
use http::StatusCode;
use lifeboat_store::StoreError;
use lifeboat_store_http::{FailedCall, Reply};

/// What the failed call was doing, where that changes the meaning of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// A conditional create (`If-None-Match: *`): 409 or 412 mean "exists".
    Create,
    /// Anything else.
    Other,
}

/// Where the store is, for the errors' wording.
#[derive(Debug, Clone)]
pub(crate) struct Place {
    /// `azure://account/container/prefix`.
    pub location: String,
    pub account: String,
    pub container: String,
}

/// What a failed call tells, reduced to what the mapping needs.
#[derive(Debug, Default)]
pub(crate) struct Failure {
    pub status: Option<u16>,
    pub code: Option<String>,
    pub message: Option<String>,
    pub attempts: u32,
    /// No answer came (connection failure, timeout) or Entra ID refused a token.
    pub no_reply: Option<NoReply>,
}

impl Failure {
    pub fn from_reply(reply: &Reply) -> Failure {
        let (body_code, message) = parse_error(&String::from_utf8_lossy(&reply.body));
        // HEAD answers have no body: the code comes in a header.
        let code = reply
            .header("x-ms-error-code")
            .map(str::to_string)
            .or(body_code);
        Failure {
            status: Some(reply.status.as_u16()),
            code,
            message,
            attempts: reply.attempts,
            no_reply: None,
        }
    }

    pub fn from_no_reply(e: NoReply) -> Failure {
        Failure {
            attempts: e.attempts,
            no_reply: Some(e),
            ..Failure::default()
        }
    }

    /// The service's code and message, or what went wrong on the way.
    pub fn detail(&self) -> String {
        if let Some(e) = &self.no_reply {
            return scrub(&e.detail);
        }
        let status = self
            .status
            .map(|s| format!(" (HTTP {s})"))
            .unwrap_or_default();
        let text = match (&self.code, &self.message) {
            (Some(code), Some(message)) => format!("{code}{status}: {message}"),
            (Some(code), None) => format!("{code}{status}"),
            (None, Some(message)) => format!("HTTP{status}: {message}"),
            (None, None) => format!("no error details{status}"),
        };
        scrub(&text)
    }

    /// The error for `key` of the store at `place`. Retries are already spent.
    pub fn into_store_error(self, place: &Place, key: &str, op: Op) -> StoreError {
        let call = FailedCall {
            location: place.location.clone(),
            key: key.to_string(),
            detail: self.detail(),
            attempts: self.attempts,
            denied_hint: None,
        };
        if let Some(e) = &self.no_reply {
            return if e.retryable {
                call.transient()
            } else if !e.auth {
                call.backend()
            } else {
                FailedCall {
                    denied_hint: Some(format!(
                        "not retried (account {}, container {})",
                        place.account, place.container
                    )),
                    ..call
                }
                .access_denied()
            };
        }
        let code = self.code.as_deref().unwrap_or("");
        match code {
            "ContainerNotFound" => StoreError::StoreMissing {
                location: call.location,
            },
            "BlobAlreadyExists" if op == Op::Create => call.already_exists(),
            "BlobNotFound" => call.not_found(),
            "BlobImmutableDueToPolicy" | "BlobImmutableDueToLegalHold" => StoreError::Locked {
                location: call.location,
                key: call.key,
                until: if code.ends_with("LegalHold") {
                    "its legal hold is removed".into()
                } else {
                    "its immutability policy expires".into()
                },
            },
            // Codes Azure sends with a 500 or 503, which the status says too;
            // kept in case a proxy rewrites the status.
            "ServerBusy" | "InternalError" | "OperationTimedOut" | "ServiceUnavailable" => {
                call.transient()
            }
            _ => {
                let Some(status) = self.status.and_then(|s| StatusCode::from_u16(s).ok()) else {
                    return call.backend();
                };
                let exists_on: &[u16] = match op {
                    Op::Create => &[409, 412],
                    Op::Other => &[],
                };
                FailedCall {
                    denied_hint: Some(format!(
                        "not retried: check the credentials for storage account {} \
                         and their access to container {} (account key, SAS permissions, \
                         or the Storage Blob Data role of the Entra ID identity)",
                        place.account, place.container
                    )),
                    ..call
                }
                .status_error(status, exists_on)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn place() -> Place {
        Place {
            location: "azure://acct/cont/p".into(),
            account: "acct".into(),
            container: "cont".into(),
        }
    }

    fn failure(status: u16, code: Option<&str>) -> Failure {
        Failure {
            status: Some(status),
            code: code.map(str::to_string),
            message: Some("said the service".into()),
            attempts: 1,
            no_reply: None,
        }
    }

    fn map(f: Failure, op: Op) -> StoreError {
        f.into_store_error(&place(), "data/k", op)
    }

    #[test]
    fn missing_things_are_named() {
        let e = map(failure(404, Some("ContainerNotFound")), Op::Other);
        assert!(matches!(e, StoreError::StoreMissing { .. }), "{e:?}");
        assert!(e.to_string().contains("azure://acct/cont/p"));
        let e = map(failure(404, Some("BlobNotFound")), Op::Other);
        assert!(e.is_not_found() && e.to_string().contains("data/k"), "{e}");
        assert!(map(failure(404, None), Op::Other).is_not_found());
    }

    #[test]
    fn conditional_creates_of_existing_blobs_are_already_exists() {
        for f in [
            failure(409, Some("BlobAlreadyExists")),
            failure(412, Some("ConditionNotMet")),
        ] {
            assert!(map(f, Op::Create).is_already_exists());
        }
        // Only a create means "exists" by 409.
        let e = map(failure(409, Some("LeaseIdMissing")), Op::Other);
        assert!(matches!(e, StoreError::Backend { .. }), "{e:?}");
    }

    #[test]
    fn immutable_blobs_are_locked() {
        let e = map(failure(409, Some("BlobImmutableDueToPolicy")), Op::Other);
        assert!(matches!(e, StoreError::Locked { .. }), "{e:?}");
        let e = map(
            failure(409, Some("BlobImmutableDueToLegalHold")),
            Op::Create,
        );
        assert!(e.to_string().contains("legal hold"), "{e}");
    }

    #[test]
    fn refusals_name_account_and_container_and_are_not_retryable() {
        let e = map(failure(403, Some("AuthenticationFailed")), Op::Other);
        assert!(matches!(e, StoreError::AccessDenied { .. }) && !e.is_retryable());
        let text = e.to_string();
        assert!(
            text.contains("AuthenticationFailed (HTTP 403): said the service")
                && text.contains("storage account acct")
                && text.contains("container cont")
                && text.contains("data/k"),
            "{text}"
        );
        let token_refused = Failure::from_no_reply(NoReply {
            retryable: false,
            auth: true,
            attempts: 1,
            detail: "Entra ID refused a token".into(),
        });
        let e = map(token_refused, Op::Other);
        assert!(matches!(e, StoreError::AccessDenied { .. }), "{e:?}");
    }

    #[test]
    fn throttling_server_and_network_failures_are_transient() {
        let mut f = failure(503, Some("ServerBusy"));
        f.attempts = 6;
        let e = map(f, Op::Other);
        assert!(e.is_retryable());
        assert!(e.to_string().contains("after 6 attempts"), "{e}");
        assert!(map(failure(500, None), Op::Other).is_retryable());
        assert!(map(failure(429, None), Op::Other).is_retryable());
        let e = map(
            Failure::from_no_reply(NoReply {
                retryable: true,
                auth: false,
                attempts: 6,
                detail: "connection refused; url ?sig=secret".into(),
            }),
            Op::Other,
        );
        assert!(e.is_retryable());
        assert!(!e.to_string().contains("secret"), "{e}");
        let e = map(failure(400, Some("InvalidHeaderValue")), Op::Other);
        assert!(!e.is_retryable());
    }
}
