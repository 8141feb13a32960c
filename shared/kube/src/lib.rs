//! Lifeboat's Kubernetes side: discovery of what a cluster serves, the scope
//! of a backup, cleaning objects of what the server owns, and the restore
//! plan (order, per-kind fix-ups, transformations) and its application.
//!
//! Objects are handled as JSON values ([`serde_json::Value`]) so that every
//! kind, custom resources included, goes through the same code.

mod resource;
pub mod restore;

pub use resource::{ObjectRef, ResourceType};
