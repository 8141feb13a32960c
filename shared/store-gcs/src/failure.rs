//! From a failed Cloud Storage call to a [`StoreError`] a caller can act on.

use crate::auth::{AuthError, AuthErrorKind};
use http::StatusCode;
use lifeboat_store::StoreError;
use lifeboat_store_http::{FailedCall, Reply, SendError};

/// The key named in errors about the bucket as a whole rather than one object.
pub(crate) const BUCKET_KEY: &str = "(bucket)";

/// Longest piece of a non-JSON error body kept in a message.
const MAX_BODY_IN_MESSAGE: usize = 300;

/// What a failed call tells, reduced to what the error mapping needs.
#[derive(Debug, Default, Clone)]
pub(crate) struct Failure {
    pub(crate) status: Option<StatusCode>,
    /// The JSON API's `errors[0].reason` (`notFound`, `conditionNotMet`...).
    pub(crate) reason: Option<String>,
    pub(crate) message: Option<String>,
    /// No usable answer arrived, after the retries.
    pub(crate) transport: Option<String>,
    /// No access token could be had.
    pub(crate) auth: Option<AuthError>,
}

impl Failure {
    pub(crate) fn from_response(resp: &Reply) -> Failure {
        let parsed = serde_json::from_slice::<serde_json::Value>(&resp.body).ok();
        let error = parsed.as_ref().and_then(|v| v.get("error"));
        let message = error
            .and_then(|e| e.get("message"))
            .and_then(|m| m.as_str())
            .map(str::to_string)
            .or_else(|| {
                let text = String::from_utf8_lossy(&resp.body);
                let text = text.trim();
                (!text.is_empty()).then(|| text.chars().take(MAX_BODY_IN_MESSAGE).collect())
            });
        let reason = error
            .and_then(|e| e.get("errors"))
            .and_then(|e| e.get(0))
            .and_then(|e| e.get("reason"))
            .and_then(|r| r.as_str())
            .map(str::to_string);
        Failure {
            status: Some(resp.status),
            reason,
            message,
            transport: None,
            auth: None,
        }
    }

    pub(crate) fn from_transport(err: SendError) -> Failure {
        Failure {
            transport: Some(err.detail),
            ..Failure::default()
        }
    }

    /// One line: the status, the service's reason and message.
    pub(crate) fn detail(&self) -> String {
        if let Some(a) = &self.auth {
            return format!("getting a Google access token: {}", a.detail);
        }
        if let Some(t) = &self.transport {
            return t.clone();
        }
        let mut out = self.status.map_or_else(
            || "no answer".to_string(),
            |s| format!("HTTP {}", s.as_u16()),
        );
        if let Some(r) = &self.reason {
            out.push(' ');
            out.push_str(r);
        }
        if let Some(m) = &self.message {
            out.push_str(": ");
            out.push_str(&m.replace('\n', " "));
        }
        out
    }

    fn says(&self, words: &[&str]) -> bool {
        let text = self.message.as_deref().unwrap_or("").to_ascii_lowercase();
        words.iter().all(|w| text.contains(w))
    }

    /// Whether the answer says the bucket (not the object) does not exist.
    pub(crate) fn bucket_missing(&self, key: &str) -> bool {
        self.status == Some(StatusCode::NOT_FOUND)
            && (key == BUCKET_KEY
                || self.says(&["bucket", "does not exist"])
                || self.says(&["bucket", "not found"]))
    }

    /// The error for `key` in `bucket`, the store at `location`. The retries
    /// are done, so transient failures here are final.
    pub(crate) fn into_store_error(self, location: String, bucket: &str, key: &str) -> StoreError {
        if self.bucket_missing(key) {
            return StoreError::StoreMissing { location };
        }
        let call = FailedCall {
            location,
            key: key.to_string(),
            detail: self.detail(),
            attempts: 1,
            denied_hint: None,
        };
        if let Some(auth) = &self.auth {
            return match auth.kind {
                AuthErrorKind::Denied => call.access_denied(),
                AuthErrorKind::Transient => call.transient(),
                AuthErrorKind::Config => call.backend(),
            };
        }
        let Some(status) = self.status else {
            return call.transient();
        };
        if status == StatusCode::BAD_REQUEST && self.says(&["retention", "not enabled"]) {
            return lock_not_enabled(call.location, bucket);
        }
        // Only creates send a precondition (ifGenerationMatch=0).
        call.status_error(status, &[412])
    }
}

/// The bucket exists but cannot hold objects with a retention of their own.
pub(crate) fn lock_not_enabled(location: String, bucket: &str) -> StoreError {
    StoreError::Unsupported {
        location,
        what: format!(
            "object retention: bucket {bucket} does not have Object Retention Lock enabled \
             (create it with `gcloud storage buckets create gs://{bucket} --enable-per-object-retention`, \
             or enable it on the bucket's Protection tab in the Google Cloud console)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    fn answer(status: u16, body: &str) -> Failure {
        Failure::from_response(&Reply {
            status: http::StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: bytes::Bytes::from(body.to_string()),
            attempts: 1,
        })
    }

    fn json_error(status: u16, reason: &str, message: &str) -> Failure {
        answer(
            status,
            &serde_json::json!({"error": {"code": status, "message": message,
                "errors": [{"domain": "global", "reason": reason, "message": message}]}})
            .to_string(),
        )
    }

    fn map(f: Failure, key: &str) -> StoreError {
        f.into_store_error("gs://bkt/p".into(), "bkt", key)
    }

    #[test]
    fn a_missing_object_and_a_missing_bucket_differ() {
        let gone = map(json_error(404, "notFound", "No such object: bkt/p/k"), "k");
        assert!(
            matches!(&gone, StoreError::NotFound { location, key } if location == "gs://bkt/p" && key == "k"),
            "{gone:?}"
        );
        let no_bucket = map(
            json_error(404, "notFound", "The specified bucket does not exist."),
            "k",
        );
        assert!(
            matches!(no_bucket, StoreError::StoreMissing { .. }),
            "{no_bucket:?}"
        );
        assert!(no_bucket.to_string().contains("gs://bkt/p"));
        // A bucket-level call's 404 is the bucket, whatever the message.
        let head_bucket = map(answer(404, ""), BUCKET_KEY);
        assert!(matches!(head_bucket, StoreError::StoreMissing { .. }));
    }

    #[test]
    fn refusals_keep_the_service_message_and_name_bucket_and_key() {
        let denied = map(
            json_error(
                403,
                "forbidden",
                "sa@p.iam does not have storage.objects.get access",
            ),
            "data/ab/x",
        );
        assert!(matches!(denied, StoreError::AccessDenied { .. }));
        let text = denied.to_string();
        assert!(
            text.contains("gs://bkt/p")
                && text.contains("data/ab/x")
                && text.contains("HTTP 403 forbidden: sa@p.iam does not have"),
            "{text}"
        );
        let conflict = map(json_error(412, "conditionNotMet", "At least one"), "k");
        assert!(conflict.is_already_exists());
        // A proxy's plain-text answer is kept, cut short.
        let long = "x".repeat(1000);
        let text = map(answer(400, &long), "k").to_string();
        assert!(text.len() < 500 && text.contains("HTTP 400: xxx"), "{text}");
    }

    #[test]
    fn only_throttling_server_and_network_failures_are_transient() {
        for f in [
            answer(429, ""),
            answer(500, ""),
            answer(503, "{}"),
            Failure::from_transport(SendError {
                detail: "connection refused".into(),
                retryable: true,
            }),
        ] {
            let err = map(f, "k");
            assert!(err.is_retryable(), "{err:?}");
            assert!(err.to_string().contains("after retries"), "{err}");
        }
        for f in [answer(400, ""), answer(403, ""), answer(501, "")] {
            let err = map(f, "k");
            assert!(!err.is_retryable(), "{err:?}");
        }
    }

    #[test]
    fn retention_on_a_bucket_without_it_says_how_to_enable_it() {
        let err = map(
            json_error(
                400,
                "invalid",
                "Object retention is not enabled for this bucket.",
            ),
            "k",
        );
        assert!(matches!(err, StoreError::Unsupported { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("bucket bkt") && text.contains("--enable-per-object-retention"),
            "{text}"
        );
    }
}
