//! Access tokens, their lifetime, and what goes wrong getting one.

use chrono::{DateTime, Utc};
use serde_json::Value;
use std::fmt;
use std::time::{Duration, Instant};

/// A token is replaced this long before it expires, so a request never
/// carries one that lapses on the way.
pub(crate) const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// A bearer token and when it stops working.
#[derive(Clone)]
pub(crate) struct AccessToken {
    pub(crate) secret: String,
    pub(crate) expires_at: Instant,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("secret", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl AccessToken {
    /// Whether the token is still good for a request sent at `now`.
    pub(crate) fn fresh(&self, now: Instant) -> bool {
        now + REFRESH_MARGIN < self.expires_at
    }
}

/// Why no token could be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuthError {
    pub(crate) kind: AuthErrorKind,
    pub(crate) detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthErrorKind {
    /// The token endpoint refused the credentials.
    Denied,
    /// The endpoint failed or could not be reached (after retries).
    Transient,
    /// The credentials cannot be used as configured.
    Config,
}

impl AuthError {
    pub(crate) fn new(kind: AuthErrorKind, detail: impl Into<String>) -> AuthError {
        AuthError {
            kind,
            detail: detail.into(),
        }
    }
}

/// An OAuth token endpoint's answer: `access_token` and `expires_in`.
pub(crate) fn parse_oauth(body: &[u8], now: Instant) -> Result<AccessToken, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("the token answer is not JSON: {e}"))?;
    let secret = v
        .get("access_token")
        .and_then(Value::as_str)
        .ok_or("the token answer has no access_token")?;
    let secs = v
        .get("expires_in")
        .and_then(|e| e.as_u64().or_else(|| e.as_str()?.parse().ok()))
        .unwrap_or(3600);
    Ok(AccessToken {
        secret: secret.to_string(),
        expires_at: now + Duration::from_secs(secs),
    })
}

/// The IAM Credentials `generateAccessToken` answer: `accessToken` and
/// `expireTime` (RFC 3339).
pub(crate) fn parse_impersonated(
    body: &[u8],
    now: Instant,
    wall: DateTime<Utc>,
) -> Result<AccessToken, String> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| format!("the impersonation answer is not JSON: {e}"))?;
    let secret = v
        .get("accessToken")
        .and_then(Value::as_str)
        .ok_or("the impersonation answer has no accessToken")?;
    let expire = v
        .get("expireTime")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .ok_or("the impersonation answer has no valid expireTime")?;
    let left = (expire.with_timezone(&Utc) - wall)
        .to_std()
        .unwrap_or(Duration::ZERO);
    Ok(AccessToken {
        secret: secret.to_string(),
        expires_at: now + left,
    })
}

/// The OAuth error of a refused token request, without echoing secrets:
/// only `error` and `error_description` are kept.
pub(crate) fn oauth_refusal(status: u16, body: &[u8]) -> String {
    let v = serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
    let field = |name: &str| v.get(name).and_then(Value::as_str).map(str::to_string);
    let nested = v
        .get("error")
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .map(str::to_string);
    match (field("error"), field("error_description").or(nested)) {
        (Some(e), Some(d)) => format!("HTTP {status} {e}: {d}"),
        (Some(e), None) => format!("HTTP {status} {e}"),
        (None, Some(d)) => format!("HTTP {status}: {d}"),
        (None, None) => format!("HTTP {status}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn token_answers_are_read_and_expire_early() {
        let now = Instant::now();
        let t = parse_oauth(
            br#"{"access_token":"ya29.x","expires_in":3599,"token_type":"Bearer"}"#,
            now,
        )
        .unwrap();
        assert_eq!(t.secret, "ya29.x");
        assert!(t.fresh(now));
        assert!(!t.fresh(now + Duration::from_secs(3599) - REFRESH_MARGIN));
        assert!(!format!("{t:?}").contains("ya29"));
        assert!(parse_oauth(br#"{"expires_in":1}"#, now).is_err());

        let wall = DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let t = parse_impersonated(
            br#"{"accessToken":"ya29.i","expireTime":"2026-12-01T11:00:00Z"}"#,
            now,
            wall,
        )
        .unwrap();
        assert_eq!(t.expires_at - now, Duration::from_secs(3600));
    }

    #[test]
    fn refusals_keep_only_the_error_fields() {
        let body = br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature.","assertion":"secret"}"#;
        let text = oauth_refusal(400, body);
        assert_eq!(text, "HTTP 400 invalid_grant: Invalid JWT Signature.");
        assert_eq!(oauth_refusal(503, b"<html>"), "HTTP 503");
        let google = br#"{"error":{"code":403,"message":"Permission 'iam.serviceAccounts.getAccessToken' denied"}}"#;
        assert!(oauth_refusal(403, google).contains("getAccessToken' denied"));
    }
}
