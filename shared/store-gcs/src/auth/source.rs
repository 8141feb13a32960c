//! The token every request carries, fetched once and reused until shortly
//! before it expires.

use super::flows::fetch;
use super::token::{AccessToken, AuthError};
use super::{GcsCredentials, STORAGE_SCOPE};
use crate::transport::Http;
use std::time::Instant;
use tokio::sync::Mutex;
use tracing::debug;

/// Credentials and their cached token.
#[derive(Debug)]
pub(crate) struct Auth {
    creds: GcsCredentials,
    http: Http,
    /// Held across a refresh, so concurrent requests wait for one token
    /// request instead of each sending their own.
    cache: Mutex<Option<AccessToken>>,
}

impl Auth {
    pub(crate) fn new(creds: GcsCredentials, http: Http) -> Auth {
        Auth {
            creds,
            http,
            cache: Mutex::new(None),
        }
    }

    pub(crate) fn credentials(&self) -> &GcsCredentials {
        &self.creds
    }

    /// The `Authorization` header value, or `None` for anonymous access.
    pub(crate) async fn header(&self) -> Result<Option<String>, AuthError> {
        let mut cache = self.cache.lock().await;
        if let Some(token) = cache.as_ref().filter(|t| t.fresh(Instant::now())) {
            return Ok(Some(format!("Bearer {}", token.secret)));
        }
        let Some(token) = fetch(&self.creds, &self.http, STORAGE_SCOPE).await? else {
            return Ok(None);
        };
        debug!(credentials = %self.creds.kind(), "new access token");
        let header = format!("Bearer {}", token.secret);
        *cache = Some(token);
        Ok(Some(header))
    }

    /// Forget the cached token (the service refused it: revoked, or expired
    /// early), so the next request fetches a new one.
    pub(crate) async fn invalidate(&self) {
        *self.cache.lock().await = None;
    }
}
