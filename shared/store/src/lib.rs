//! Object stores under a Lifeboat repository.
//!
//! A repository is a set of immutable objects addressed by slash-separated keys
//! (`config`, `data/ab/ab12…`, `snapshots/…`). [`ObjectStore`] is the one
//! interface the repository layer uses; [`LocalStore`] (a directory, the
//! embedded default), [`S3Store`] (an S3 bucket, with Object Lock) and
//! [`MemoryStore`] (unit tests) implement it.
//!
//! [`MeteredStore`] wraps any of them and counts its calls and bytes (what
//! a command cost on a store that bills per request).
//!
//! Stores know nothing of encryption or the repository format: they move bytes
//! and, where the backend supports it, enforce retention ([`Retention`]).

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod error;
mod keys;
mod local;
mod memory;
mod metered;
mod retention;
mod traits;
mod url;

pub use error::StoreError;
pub use keys::{check_key, join_key};
pub use local::LocalStore;
pub use memory::MemoryStore;
pub use metered::{binary_size, MeteredStore, StoreMeter, StoreRequests, StoreUsage};
pub use retention::{LockMode, Retention};
pub use traits::{
    may_overwrite, put_content_addressed, ObjectInfo, ObjectStore, PutOptions, MUTABLE_PREFIX,
};
pub use url::StoreUrl;
