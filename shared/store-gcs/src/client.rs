//! Authenticated, retried requests to one bucket.

use crate::api::Api;
use crate::auth::{Auth, AuthError, GcsCredentials};
use crate::failure::Failure;
use crate::transport::{Http, Request};
use http::header::AUTHORIZATION;
use lifeboat_store_http::{retryable_status, Reply};
use tracing::debug;

/// The HTTP client, the credentials and the bucket's URLs.
#[derive(Debug)]
pub(crate) struct Client {
    pub(crate) http: Http,
    pub(crate) auth: Auth,
    pub(crate) api: Api,
}

impl Client {
    /// Send `req` with a token and retries. Any answer that is not a retryable
    /// failure comes back as `Ok`, whatever its status; `Err` means no answer
    /// (after the retries), a retryable status that persisted, or no token.
    pub(crate) async fn call(&self, req: Request) -> Result<Reply, Failure> {
        let resp = self.call_once_authorized(&req).await?;
        let anonymous = matches!(self.auth.credentials(), GcsCredentials::Anonymous);
        if resp.status != 401 || anonymous {
            return Self::settle(resp);
        }
        // A token can be revoked or expire early: one new token, one more try.
        debug!("401 from the service; fetching a new token and trying once more");
        self.auth.invalidate().await;
        let resp = self.call_once_authorized(&req).await?;
        Self::settle(resp)
    }

    async fn call_once_authorized(&self, req: &Request) -> Result<Reply, Failure> {
        let mut req = req.clone();
        if let Some(value) = self.auth.header().await.map_err(auth_failure)? {
            req = req.header(AUTHORIZATION, value);
        }
        self.http.send(&req).await.map_err(Failure::from_transport)
    }

    /// A retryable status that survived the retries becomes an error here.
    fn settle(resp: Reply) -> Result<Reply, Failure> {
        if retryable_status(resp.status) {
            Err(Failure::from_response(&resp))
        } else {
            Ok(resp)
        }
    }

    /// [`Client::call`], and anything but a 2xx answer is an error.
    pub(crate) async fn call_ok(&self, req: Request) -> Result<Reply, Failure> {
        let resp = self.call(req).await?;
        if resp.status.is_success() {
            Ok(resp)
        } else {
            Err(Failure::from_response(&resp))
        }
    }
}

fn auth_failure(e: AuthError) -> Failure {
    Failure {
        auth: Some(e),
        ..Failure::default()
    }
}
