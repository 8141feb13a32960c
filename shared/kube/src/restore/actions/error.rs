//! What can go wrong preparing an object for restore.

/// Why an object could not be prepared for restore.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FixupError {
    /// A field that a fix-up reads or changes does not have the shape the
    /// Kubernetes API defines (e.g. `metadata.ownerReferences` is not a
    /// list): the backed-up object is not one the API server would accept.
    #[error("{object}: {field} should be {expected}, found {found}")]
    Malformed {
        /// The object as `Kind.group namespace/name`, before namespace mapping.
        object: String,
        /// Dotted path, e.g. `metadata.ownerReferences[0].kind`.
        field: String,
        expected: &'static str,
        found: &'static str,
    },
    /// A resource modifier rule selected the object but could not be
    /// applied to it (see [`crate::restore::modifiers`]).
    #[error("{object}: modifier rule {rule:?} could not be applied: {reason}")]
    Modifier {
        object: String,
        rule: String,
        reason: String,
    },
}

impl FixupError {
    /// Whether trying again may succeed: never, the backed-up object itself
    /// is at fault and does not change.
    pub fn is_retryable(&self) -> bool {
        match self {
            FixupError::Malformed { .. } | FixupError::Modifier { .. } => false,
        }
    }
}
