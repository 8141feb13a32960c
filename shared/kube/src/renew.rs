//! Bearer tokens renewed before they expire, for clients that Lifeboat
//! authenticates itself (an EKS token lasts 15 minutes; a local workflow
//! run, a CLI run or an in-cluster run may take longer).
//!
//! A background task fetches a new token from a [`TokenSource`] some time
//! before the current one expires (a fifth of its life, at least 30 s) and
//! swaps it in; every request takes the current token as it is sent. A
//! failed renewal is retried every few seconds and logged; requests keep
//! the old token until it is replaced, so a source that fails for good
//! shows as the API server's 401 naming the cluster. The task stops when
//! the last clone of the [`Cluster`](crate::Cluster) is dropped.

use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use http::header::AUTHORIZATION;
use http::{HeaderValue, Request};

use crate::KubeError;

/// Renewals are retried this often after a failure.
const RETRY_EVERY: Duration = Duration::from_secs(5);
/// Renew no later than this before expiry.
const MIN_AHEAD: Duration = Duration::from_secs(30);

/// A bearer token and the time it stops working.
pub struct ExpiringToken {
    pub token: String,
    pub expires_at: SystemTime,
}

impl std::fmt::Debug for ExpiringToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExpiringToken")
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Where new tokens come from.
#[async_trait::async_trait]
pub trait TokenSource: Send + Sync + 'static {
    async fn fetch(&self) -> Result<ExpiringToken, KubeError>;
}

/// The current `Authorization` header, shared by the client's requests and
/// the renewal task.
pub(crate) type SharedHeader = Arc<RwLock<HeaderValue>>;

pub(crate) fn bearer(token: &str) -> Result<HeaderValue, KubeError> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
        KubeError::InvalidInput("a token source gave a token that is not a header value".into())
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// When to renew a token that expires at `expires_at`, seen at `now`.
fn renew_in(now: SystemTime, expires_at: SystemTime) -> Duration {
    let left = expires_at.duration_since(now).unwrap_or_default();
    let ahead = (left / 5).max(MIN_AHEAD);
    left.saturating_sub(ahead)
}

/// Stops the renewal task when the last handle goes.
#[derive(Debug)]
pub(crate) struct Renewal(tokio::task::JoinHandle<()>);

impl Drop for Renewal {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Start renewing `header` (holding a token that expires at `expires_at`)
/// from `source`; `name` names the cluster in logs.
pub(crate) fn start(
    header: SharedHeader,
    mut expires_at: SystemTime,
    source: Arc<dyn TokenSource>,
    name: String,
) -> Renewal {
    Renewal(tokio::spawn(async move {
        loop {
            tokio::time::sleep(renew_in(SystemTime::now(), expires_at)).await;
            match source
                .fetch()
                .await
                .and_then(|t| Ok((bearer(&t.token)?, t.expires_at)))
            {
                Ok((value, until)) => {
                    if let Ok(mut h) = header.write() {
                        *h = value;
                    }
                    expires_at = until;
                    tracing::debug!(cluster = %name, "renewed the cluster's token");
                }
                Err(e) => {
                    tracing::warn!(cluster = %name, error = %e, "could not renew the cluster's token; retrying");
                    tokio::time::sleep(RETRY_EVERY).await;
                }
            }
        }
    }))
}

/// Puts the current token on every request.
#[derive(Clone)]
pub(crate) struct BearerLayer(pub(crate) SharedHeader);

impl<S> tower_layer::Layer<S> for BearerLayer {
    type Service = Bearer<S>;
    fn layer(&self, inner: S) -> Bearer<S> {
        Bearer {
            inner,
            header: self.0.clone(),
        }
    }
}

pub(crate) struct Bearer<S> {
    inner: S,
    header: SharedHeader,
}

impl<S, B> tower_service::Service<Request<B>> for Bearer<S>
where
    S: tower_service::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if let Ok(h) = self.header.read() {
            req.headers_mut().insert(AUTHORIZATION, h.clone());
        }
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_renewed_a_fifth_of_its_life_before_it_expires_and_never_late() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        // An EKS token: 14 minutes left -> renewed after about 11.
        assert_eq!(
            renew_in(now, now + Duration::from_secs(840)),
            Duration::from_secs(672)
        );
        // A short one: at least 30 s ahead.
        assert_eq!(
            renew_in(now, now + Duration::from_secs(40)),
            Duration::from_secs(10)
        );
        // Already (nearly) expired: at once.
        assert_eq!(renew_in(now, now + Duration::from_secs(20)), Duration::ZERO);
        assert_eq!(renew_in(now, now - Duration::from_secs(5)), Duration::ZERO);
    }

    #[test]
    fn the_token_is_never_shown() {
        let t = ExpiringToken {
            token: "k8s-aws-v1.secret".into(),
            expires_at: SystemTime::UNIX_EPOCH,
        };
        assert!(!format!("{t:?}").contains("secret"));
        assert!(bearer("x y\n").is_err());
        assert!(bearer("abc").unwrap().is_sensitive());
    }
}
