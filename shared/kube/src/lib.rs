//! Lifeboat's Kubernetes side: connecting to a cluster, discovering what it
//! serves, the scope of a backup, cleaning objects of what the server owns,
//! the dependencies that come along, and the restore plan (order, per-kind
//! fix-ups, transformations).
//!
//! Objects are handled as JSON values ([`serde_json::Value`]) so that every
//! kind, custom resources included, goes through the same code. Nothing here
//! knows about the repository; `lifeboat-ops` joins the two.

pub mod api;
pub mod clean;
mod client;
pub mod deps;
mod discovery;
mod error;
pub mod readiness;
mod renew;
mod resource;
pub mod restore;
pub mod scope;

pub use client::{Cluster, SERVICE_ACCOUNT_DIR};
pub use discovery::{discover, unavailable_apis, ServedResource, UnavailableApi};
pub use error::KubeError;
pub use readiness::{check_readiness, Check, KindCount, ReadinessOptions, ReadinessReport};
pub use renew::{ExpiringToken, TokenSource};
pub use resource::{ObjectRef, ResourceType};
pub use scope::{ClusterResources, Scope, ScopeFilter};
