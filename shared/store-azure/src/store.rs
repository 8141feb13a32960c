//! [`AzureStore`]: where a repository lives in a storage account, how to
//! reach it, and the one helper every call goes through.

use crate::credentials::{AzureCredentials, EnvConfig};
use crate::entra::TokenSource;
use crate::failure::{Failure, Op, Place};
#[cfg(test)]
use crate::redact::Secret;
use crate::redact::SecretBytes;
use crate::transport::{encode_path, Auth, BlobRequest, Transport};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use http::Method;
use lifeboat_store::StoreError;
use lifeboat_store_http::{http_client, Reply, RetryPolicy};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

/// Objects above this size are uploaded in blocks by default.
pub const DEFAULT_SINGLE_PUT_LIMIT: usize = 64 << 20;
/// The block size of those uploads by default.
pub const DEFAULT_BLOCK_SIZE: usize = 16 << 20;

/// The key named in errors about the container as a whole.
pub(crate) const CONTAINER_KEY: &str = "(container)";

/// How to reach a storage account, beyond its name.
#[derive(Debug, Clone)]
pub struct AzureOptions {
    pub credentials: AzureCredentials,
    /// The Blob endpoint, e.g. `http://127.0.0.1:10000/devstoreaccount1` for
    /// Azurite; `None` for `https://<account>.blob.core.windows.net`.
    pub endpoint: Option<String>,
    pub retry: RetryPolicy,
    /// How long one attempt may take, the body included.
    pub request_timeout: Duration,
    /// Objects larger than this go up in blocks (Put Block + Put Block List).
    pub single_put_limit: usize,
    /// The size of those blocks.
    pub block_size: usize,
}

impl AzureOptions {
    /// Options with the default endpoint, retries and upload sizes.
    pub fn new(credentials: AzureCredentials) -> AzureOptions {
        AzureOptions {
            credentials,
            endpoint: None,
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(300),
            single_put_limit: DEFAULT_SINGLE_PUT_LIMIT,
            block_size: DEFAULT_BLOCK_SIZE,
        }
    }

    /// Credentials and endpoint for `account` from the environment (see
    /// [`AzureCredentials::from_env`]); the rest at its defaults.
    pub fn from_env(account: &str) -> Result<AzureOptions, String> {
        let EnvConfig {
            credentials,
            endpoint,
        } = AzureCredentials::from_env(account)?;
        Ok(AzureOptions {
            endpoint,
            ..AzureOptions::new(credentials)
        })
    }
}

/// A repository in an Azure Blob Storage container, under a name prefix.
///
/// Every object is written once with `If-None-Match: *` (`locks/` excepted),
/// as one Put Blob or, when large, as blocks committed by one conditional Put
/// Block List, with a version-level immutability policy when asked. Deleting
/// removes the blob and, where the account keeps versions, every version.
#[derive(Debug, Clone)]
pub struct AzureStore {
    pub(crate) transport: Transport,
    pub(crate) place: Place,
    /// Without leading or trailing slashes; empty for the container root.
    pub(crate) prefix: String,
    pub(crate) single_put_limit: usize,
    pub(crate) block_size: usize,
    /// Set once the container was seen to support version-level immutability.
    pub(crate) lock_support: Arc<OnceCell<()>>,
}

impl AzureStore {
    /// Connect to `container` of storage `account` with the credentials and
    /// endpoint the environment gives (see [`AzureCredentials::from_env`]).
    pub async fn connect(
        account: &str,
        container: &str,
        prefix: &str,
    ) -> Result<AzureStore, StoreError> {
        let location = location_of(account, container, prefix);
        let opts = AzureOptions::from_env(account).map_err(|detail| StoreError::AccessDenied {
            location,
            key: "(credentials)".into(),
            detail,
        })?;
        AzureStore::with_options(account, container, prefix, opts)
    }

    /// Connect with explicit options (tests, emulators, callers with their own settings).
    pub fn with_options(
        account: &str,
        container: &str,
        prefix: &str,
        opts: AzureOptions,
    ) -> Result<AzureStore, StoreError> {
        let location = location_of(account, container, prefix);
        let invalid = |reason: String| StoreError::InvalidUrl {
            url: location.clone(),
            reason,
        };
        if account.is_empty() || !account.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(invalid(format!(
                "{account:?} is not a storage account name"
            )));
        }
        if container.is_empty() || container.contains('/') {
            return Err(invalid(format!("{container:?} is not a container name")));
        }
        let endpoint = opts
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://{account}.blob.core.windows.net"));
        let url = url::Url::parse(&endpoint)
            .map_err(|e| invalid(format!("bad Blob endpoint {endpoint:?}: {e}")))?;
        let origin = url.origin().ascii_serialization();
        if origin == "null" {
            return Err(invalid(format!("bad Blob endpoint {endpoint:?}: no host")));
        }
        let client = http_client().map_err(invalid)?;
        let auth = match opts.credentials {
            AzureCredentials::SharedKey { account_key } => {
                let key = BASE64.decode(account_key.expose().trim()).map_err(|_| {
                    StoreError::AccessDenied {
                        location: location.clone(),
                        key: "(credentials)".into(),
                        detail: format!("the account key of {account} is not base64"),
                    }
                })?;
                // Kept decoded: the signature needs the raw bytes.
                Auth::SharedKey {
                    key: Arc::new(SecretBytes::new(key)),
                }
            }
            AzureCredentials::Sas { token } => Auth::Sas { token },
            AzureCredentials::Entra(creds) => {
                Auth::Bearer(Arc::new(TokenSource::new(creds, client.clone())))
            }
        };
        Ok(AzureStore {
            transport: Transport {
                client,
                origin,
                base_path: url.path().trim_end_matches('/').to_string(),
                account: account.to_string(),
                auth,
                retry: opts.retry,
                timeout: opts.request_timeout,
            },
            place: Place {
                location,
                account: account.to_string(),
                container: container.to_string(),
            },
            prefix: prefix.trim_matches('/').to_string(),
            single_put_limit: opts.single_put_limit.max(1),
            block_size: opts.block_size.clamp(1, 4000 << 20),
            lock_support: Arc::new(OnceCell::new()),
        })
    }

    pub fn account(&self) -> &str {
        &self.place.account
    }

    pub fn container(&self) -> &str {
        &self.place.container
    }

    /// Create the container (for test harnesses and emulators: Lifeboat
    /// itself never creates containers, see [`lifeboat_store::ObjectStore::create`]).
    /// One that exists already is left as it is.
    pub async fn create_container(&self) -> Result<(), StoreError> {
        let req =
            BlobRequest::new(Method::PUT, self.container_path()).query("restype", "container");
        match self.call(CONTAINER_KEY, Op::Other, req).await {
            Ok(_) => Ok(()),
            Err(StoreError::Backend { detail, .. })
                if detail.starts_with("ContainerAlreadyExists") =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// `/container`, percent-encoded.
    pub(crate) fn container_path(&self) -> String {
        encode_path(&format!("/{}", self.place.container))
    }

    /// The full blob name of a repository key.
    pub(crate) fn blob_name(&self, key: &str) -> String {
        lifeboat_store::join_key(&self.prefix, key)
    }

    /// `/container/prefix/key`, percent-encoded.
    pub(crate) fn blob_path(&self, key: &str) -> String {
        encode_path(&format!(
            "/{}/{}",
            self.place.container,
            self.blob_name(key)
        ))
    }

    pub(crate) fn check_key(&self, key: &str) -> Result<(), StoreError> {
        lifeboat_store::check_key(&self.place.location, key)
    }

    /// Send `req`; a successful answer, or the error for `key`.
    pub(crate) async fn call(
        &self,
        key: &str,
        op: Op,
        req: BlobRequest,
    ) -> Result<Reply, StoreError> {
        let reply = self.answer(key, op, req).await?;
        if reply.status.is_success() {
            Ok(reply)
        } else {
            Err(self.refusal(key, op, &reply))
        }
    }

    /// Send `req`; any answer, or the error for `key` when none came.
    pub(crate) async fn answer(
        &self,
        key: &str,
        op: Op,
        req: BlobRequest,
    ) -> Result<Reply, StoreError> {
        self.transport
            .send(&req)
            .await
            .map_err(|e| Failure::from_no_reply(e).into_store_error(&self.place, key, op))
    }

    /// The error an answer that is not a success means for `key`.
    pub(crate) fn refusal(&self, key: &str, op: Op, reply: &Reply) -> StoreError {
        Failure::from_reply(reply).into_store_error(&self.place, key, op)
    }

    pub(crate) fn unsupported_lock(&self, why: &str) -> StoreError {
        StoreError::Unsupported {
            location: self.place.location.clone(),
            what: format!(
                "retention: container {} of storage account {} {why}; enable version-level \
                 immutability on it (a new container: az storage container-rm create \
                 --storage-account {} --name {} --enable-vlw; an existing one: az storage \
                 container-rm migrate-vlw, after enabling blob versioning on the account)",
                self.place.container, self.place.account, self.place.account, self.place.container
            ),
        }
    }
}

fn location_of(account: &str, container: &str, prefix: &str) -> String {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        format!("azure://{account}/{container}")
    } else {
        format!("azure://{account}/{container}/{prefix}")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::credentials::DEV_ACCOUNT_KEY;

    fn store(endpoint: Option<&str>, prefix: &str) -> AzureStore {
        let opts = AzureOptions {
            endpoint: endpoint.map(str::to_string),
            ..AzureOptions::new(AzureCredentials::SharedKey {
                account_key: Secret::new(DEV_ACCOUNT_KEY),
            })
        };
        AzureStore::with_options("acct", "cont", prefix, opts).unwrap()
    }

    #[test]
    fn names_paths_and_location() {
        let s = store(None, "/team/a b/");
        assert_eq!(s.transport.origin, "https://acct.blob.core.windows.net");
        assert_eq!(s.transport.base_path, "");
        assert_eq!(
            lifeboat_store::ObjectStore::location(&s),
            "azure://acct/cont/team/a b"
        );
        assert_eq!(s.blob_name("config"), "team/a b/config");
        assert_eq!(s.blob_path("data/ab"), "/cont/team/a%20b/data/ab");
        let s = store(Some("http://127.0.0.1:10000/devstoreaccount1/"), "");
        assert_eq!(s.transport.origin, "http://127.0.0.1:10000");
        assert_eq!(s.transport.base_path, "/devstoreaccount1");
        assert_eq!(
            lifeboat_store::ObjectStore::location(&s),
            "azure://acct/cont"
        );
        assert_eq!(s.blob_name("config"), "config");
        assert!(s.check_key("/x").is_err() && s.check_key("").is_err());
    }

    #[test]
    fn bad_names_endpoints_and_keys_are_refused_by_name() {
        let opts = || {
            AzureOptions::new(AzureCredentials::SharedKey {
                account_key: Secret::new(DEV_ACCOUNT_KEY),
            })
        };
        assert!(AzureStore::with_options("ac-ct", "c", "", opts()).is_err());
        assert!(AzureStore::with_options("acct", "", "", opts()).is_err());
        let bad_endpoint = AzureOptions {
            endpoint: Some("not a url".into()),
            ..opts()
        };
        let err = AzureStore::with_options("acct", "c", "", bad_endpoint).unwrap_err();
        assert!(err.to_string().contains("not a url"), "{err}");
        let bad_key = AzureOptions::new(AzureCredentials::SharedKey {
            account_key: Secret::new("not base64!"),
        });
        let err = AzureStore::with_options("acct", "c", "", bad_key).unwrap_err();
        assert!(
            err.to_string().contains("not base64") && !err.to_string().contains("base64!"),
            "{err}"
        );
    }
}
