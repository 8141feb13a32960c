use std::io;

/// What went wrong talking to an object store.
///
/// Every variant names the object (or location) concerned, so a message can be
/// shown to a person as is; [`StoreError::is_retryable`] tells whether trying
/// again can help.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The object does not exist.
    #[error("object {key} not found in {location}")]
    NotFound { location: String, key: String },
    /// The store refused the operation for lack of permission.
    #[error("access denied to {key} in {location}: {detail}")]
    AccessDenied {
        location: String,
        key: String,
        detail: String,
    },
    /// A write would replace an existing object. Objects are created once and
    /// never overwritten (only `locks/` may be; see [`crate::may_overwrite`]).
    #[error("object {key} already exists in {location}; objects are never overwritten")]
    AlreadyExists { location: String, key: String },
    /// The store itself (directory, bucket) does not exist.
    #[error("repository store {location} does not exist")]
    StoreMissing { location: String },
    /// Retention forbids the operation (deleting or shortening a locked object).
    #[error("object {key} in {location} is locked until {until}")]
    Locked {
        location: String,
        key: String,
        until: String,
    },
    /// The backend cannot do what was asked (for example Object Lock on a local disk).
    #[error("{location} does not support {what}")]
    Unsupported { location: String, what: String },
    /// A local I/O error.
    #[error("I/O error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    /// A transient failure (throttling, 5xx, timeouts) that persisted through the retries.
    #[error("transient error on {key} in {location} (after retries): {detail}")]
    Transient {
        location: String,
        key: String,
        detail: String,
    },
    /// Any other backend error.
    #[error("error on {key} in {location}: {detail}")]
    Backend {
        location: String,
        key: String,
        detail: String,
    },
    /// A repository URL that cannot be understood.
    #[error("invalid repository location {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
}

impl StoreError {
    /// Whether retrying the same operation later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Transient { .. })
    }

    /// Whether this is a "no such object" error.
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound { .. })
    }

    /// Whether a write was refused because the object already exists.
    pub fn is_already_exists(&self) -> bool {
        matches!(self, StoreError::AlreadyExists { .. })
    }

    pub(crate) fn io(path: impl Into<String>, source: io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }
}
