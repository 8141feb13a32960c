use crate::Id;
use lifeboat_store::StoreError;

/// Errors of the repository layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepoError {
    /// The underlying object store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// There is no repository at this location.
    #[error("no Lifeboat repository at {location} (create one with `lifeboat repo init`)")]
    NotARepository { location: String },
    /// `repo init` on a location that already holds a repository.
    #[error("a repository already exists at {location}")]
    AlreadyExists { location: String },
    /// The repository was written by a newer Lifeboat.
    #[error("repository format version {found} is newer than this Lifeboat supports (up to {supported}); upgrade Lifeboat")]
    UnsupportedVersion { found: u32, supported: u32 },
    /// No key in the repository opens with the given passphrase or key file.
    #[error("wrong passphrase or key file: none of the {keys} key(s) in {location} opens with it")]
    WrongCredential { location: String, keys: usize },
    /// Decryption failed: the object was altered or belongs to another repository.
    #[error("{what}: authentication failed (the data is corrupt, tampered with, or from another repository)")]
    Decrypt { what: String },
    /// An object that cannot be parsed.
    #[error("{what} is malformed: {reason}")]
    Malformed { what: String, reason: String },
    /// An object's content does not hash to its id.
    #[error("{what}: content hashes to {actual}, expected {expected}")]
    HashMismatch {
        what: String,
        expected: Id,
        actual: Id,
    },
    /// A blob that no index knows.
    #[error("blob {id} is not in any index")]
    BlobNotIndexed { id: Id },
    /// A snapshot reference that matches nothing, or more than one snapshot.
    #[error("{0}")]
    SnapshotRef(String),
    /// Another process holds a conflicting repository lock.
    #[error("repository is locked: {0}")]
    Locked(String),
    /// An operation's own lock can no longer be relied on, so it stopped
    /// before saving anything that a concurrent prune may have broken.
    #[error("{operation} stopped before saving: its repository lock can no longer be relied on: {reason}; nothing was saved, run it again")]
    LockLost { operation: String, reason: String },
    /// Invalid options given by the caller.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// Generating random bytes failed.
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
}

impl RepoError {
    /// Whether a retry can help.
    pub fn is_retryable(&self) -> bool {
        match self {
            RepoError::Store(e) => e.is_retryable(),
            RepoError::Locked(_) | RepoError::LockLost { .. } => true,
            _ => false,
        }
    }

    pub(crate) fn malformed(what: impl Into<String>, reason: impl ToString) -> Self {
        RepoError::Malformed {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}

pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], RepoError> {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).map_err(|e| RepoError::Random(e.to_string()))?;
    Ok(b)
}
