//! The Google Cloud Storage store of a Lifeboat repository: `gs://bucket/prefix`.
//!
//! [`GcsStore`] implements [`lifeboat_store::ObjectStore`] on the Cloud
//! Storage JSON API, written by hand on hyper: no Google SDK crate offers
//! Object Retention Lock, and the calls are few. What each module does:
//!
//! - `transport`: requests sent on the client of `lifeboat-store-http`
//!   (rustls, the system's CA roots) with its bounded retries: jittered
//!   exponential backoff on 408, 429, 5xx and connection failures,
//!   honouring `Retry-After`.
//! - `auth`: Application Default Credentials (service-account key with an
//!   RS256 JWT signed by aws-lc-rs, `authorized_user`, `external_account`
//!   workload identity federation, the metadata server), tokens cached until
//!   shortly before they expire.
//! - `api`: the URLs; `upload`: multipart and resumable uploads with CRC32C;
//!   `read`, `write`: the operations; `retention`: Object Retention Lock
//!   (governance is `Unlocked`, compliance is `Locked`); `failure`: HTTP
//!   answers to [`lifeboat_store::StoreError`].
//!
//! Configuration is read at the edge: [`GcsStore::connect`] calls
//! [`GcsOptions::from_env`] (`STORAGE_EMULATOR_HOST` for an emulator, else
//! `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's file or the metadata server).
//! docs/stores.md says what is tested against fake-gcs-server and what is not.

mod api;
mod auth;
mod client;
mod failure;
mod options;
mod read;
mod retention;
mod store;
#[cfg(test)]
mod store_tests;
#[cfg(test)]
mod testing;
mod transport;
mod upload;
mod write;

pub use api::GOOGLE_ENDPOINT;
pub use auth::{
    AuthorizedUser, ExternalAccount, GcsCredentials, ServiceAccountKey, SubjectTokenSource,
    METADATA_HOST, STORAGE_SCOPE,
};
pub use lifeboat_store_http::RetryPolicy;
pub use options::{GcsOptions, EMULATOR_ENV};
pub use store::GcsStore;
