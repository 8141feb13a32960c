//! The Azure Blob Storage implementation of [`lifeboat_store::ObjectStore`]:
//! a repository in a container of a storage account, under a name prefix,
//! with version-level immutability policies as its retention.
//!
//! Written by hand on hyper against the documented Blob service REST API:
//! the Azure SDK crates take only Entra ID tokens and `object_store` has no
//! retention calls (docs/stores.md). The parts:
//!
//! - `credentials`: the standard Azure environment (connection string,
//!   account key, SAS, Entra ID service principal and workload identity);
//! - `signing`: Shared Key authorization; `entra`: OAuth2 tokens, cached;
//! - `transport`: one request with its authorization, sent with the client
//!   and the retries of `lifeboat-store-http` (exponential backoff with
//!   jitter on 408/429/5xx and connection failures, `Retry-After` honoured);
//! - `failure`: Azure's error codes into [`lifeboat_store::StoreError`]
//!   naming account, container and key (the statuses mapped as
//!   `lifeboat-store-http` maps them); `xml`: List Blobs pages and error bodies;
//! - `ops`, `upload`, `lock`: the operations; `retention`: Governance ->
//!   `Unlocked`, Compliance -> `Locked`.
//!
//! `lifeboat-stores` opens it for `azure://account/container/prefix` URLs.

mod credentials;
mod entra;
mod failure;
mod lock;
mod ops;
mod redact;
mod retention;
mod signing;
mod store;
mod transport;
mod upload;
mod xml;

pub use credentials::{
    AzureCredentials, ClientProof, EntraCredentials, EnvConfig, CREDENTIAL_VARS,
    DEFAULT_AUTHORITY_HOST, DEV_ACCOUNT, DEV_ACCOUNT_KEY,
};
pub use entra::STORAGE_SCOPE;
pub use lifeboat_store_http::RetryPolicy;
pub use redact::Secret;
pub use store::{AzureOptions, AzureStore, DEFAULT_BLOCK_SIZE, DEFAULT_SINGLE_PUT_LIMIT};
pub use transport::API_VERSION;
