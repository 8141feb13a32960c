//! What an HTTP status means as a [`StoreError`], where the service's own
//! error code said nothing more precise: the mapping every REST store shares,
//! worded with the store's location and the key so that an operator knows
//! where to look.

use crate::retry::retryable_status;
use http::StatusCode;
use lifeboat_store::StoreError;

/// A call that failed, with what its error is worded from. The retries are
/// spent: a transient failure here is final for this call.
#[derive(Debug, Clone)]
pub struct FailedCall {
    /// The store's location: `azure://account/container/prefix`, `gs://bucket/prefix`.
    pub location: String,
    /// The repository key (or a placeholder for the container or bucket).
    pub key: String,
    /// What the service said (code, status, message), or why nothing came.
    pub detail: String,
    /// Attempts made; more than one is told in a transient error.
    pub attempts: u32,
    /// Added to an access-denied detail: which credentials to check for
    /// which account, container or bucket.
    pub denied_hint: Option<String>,
}

impl FailedCall {
    /// The error `status` means. `exists_on` lists the statuses that mean the
    /// object exists: a conditional create's failed precondition (412, and
    /// 409 on Azure); empty for any other call.
    pub fn status_error(self, status: StatusCode, exists_on: &[u16]) -> StoreError {
        let code = status.as_u16();
        match code {
            404 => self.not_found(),
            _ if exists_on.contains(&code) => self.already_exists(),
            401 | 403 => self.access_denied(),
            _ if retryable_status(status) => self.transient(),
            _ => self.backend(),
        }
    }

    /// [`StoreError::NotFound`] for the key.
    pub fn not_found(self) -> StoreError {
        StoreError::NotFound {
            location: self.location,
            key: self.key,
        }
    }

    /// [`StoreError::AlreadyExists`] for the key.
    pub fn already_exists(self) -> StoreError {
        StoreError::AlreadyExists {
            location: self.location,
            key: self.key,
        }
    }

    /// [`StoreError::AccessDenied`], with the hint of what to check.
    pub fn access_denied(self) -> StoreError {
        let detail = match &self.denied_hint {
            Some(hint) => format!("{}; {hint}", self.detail),
            None => self.detail,
        };
        StoreError::AccessDenied {
            location: self.location,
            key: self.key,
            detail,
        }
    }

    /// [`StoreError::Transient`], saying how many attempts were made.
    pub fn transient(self) -> StoreError {
        let detail = if self.attempts > 1 {
            format!("{} after {} attempts", self.detail, self.attempts)
        } else {
            self.detail
        };
        StoreError::Transient {
            location: self.location,
            key: self.key,
            detail,
        }
    }

    /// [`StoreError::Backend`]: a failure a retry will not mend.
    pub fn backend(self) -> StoreError {
        StoreError::Backend {
            location: self.location,
            key: self.key,
            detail: self.detail,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn call(attempts: u32) -> FailedCall {
        FailedCall {
            location: "azure://acct/cont/p".into(),
            key: "data/k".into(),
            detail: "Code (HTTP n): said the service".into(),
            attempts,
            denied_hint: Some("check account acct and container cont".into()),
        }
    }

    fn map(status: u16, exists_on: &[u16]) -> StoreError {
        call(1).status_error(StatusCode::from_u16(status).unwrap(), exists_on)
    }

    #[test]
    fn a_missing_object_is_named() {
        let e = map(404, &[]);
        assert!(e.is_not_found(), "{e:?}");
        let text = e.to_string();
        assert!(
            text.contains("azure://acct/cont/p") && text.contains("data/k"),
            "{text}"
        );
    }

    #[test]
    fn only_a_create_reads_a_conflict_as_already_exists() {
        assert!(map(412, &[412]).is_already_exists());
        assert!(map(409, &[409, 412]).is_already_exists());
        for e in [map(412, &[]), map(409, &[412]), map(416, &[409, 412])] {
            assert!(matches!(e, StoreError::Backend { .. }), "{e:?}");
        }
    }

    #[test]
    fn refusals_keep_the_service_message_and_say_what_to_check() {
        for status in [401, 403] {
            let e = map(status, &[]);
            assert!(
                matches!(e, StoreError::AccessDenied { .. }) && !e.is_retryable(),
                "{e:?}"
            );
            let text = e.to_string();
            assert!(
                text.contains("said the service; check account acct and container cont"),
                "{text}"
            );
        }
        let plain = FailedCall {
            denied_hint: None,
            ..call(1)
        };
        let text = plain.access_denied().to_string();
        assert!(
            text.contains("said the service") && !text.contains("; check"),
            "{text}"
        );
    }

    #[test]
    fn throttling_and_server_errors_are_transient_and_tell_the_attempts() {
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(map(status, &[]).is_retryable(), "{status}");
        }
        let e = call(6).status_error(StatusCode::SERVICE_UNAVAILABLE, &[]);
        assert!(
            e.to_string().contains("said the service after 6 attempts"),
            "{e}"
        );
        assert!(!map(503, &[]).to_string().contains("attempts"));
        for status in [400, 405, 416, 501] {
            let e = map(status, &[]);
            assert!(matches!(e, StoreError::Backend { .. }), "{status}: {e:?}");
        }
    }
}
