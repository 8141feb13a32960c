//! Errors from snapshotting volumes and moving their data, each naming the
//! volume, snapshot or block concerned and saying whether a retry can help.

use lifeboat_kube::KubeError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VolumeError {
    /// A call to the Kubernetes API failed.
    #[error(transparent)]
    Kube(#[from] KubeError),
    /// A local image file or block device could not be read or written.
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A call to the EBS direct APIs or EC2 failed.
    #[error("EBS {operation} on {target}: {message}")]
    Ebs {
        operation: &'static str,
        /// The snapshot (and block) the call was about.
        target: String,
        message: String,
        /// Throttling, 5xx and connection failures.
        retryable: bool,
        /// The caller lacks the permission (AccessDenied, HTTP 403).
        denied: bool,
    },
    /// Data read back did not match the checksum its source gave.
    #[error("checksum mismatch in {target}: expected {expected}, got {actual}")]
    Checksum {
        target: String,
        expected: String,
        actual: String,
    },
    /// A request that cannot be satisfied as asked (a block outside the
    /// volume, a block of the wrong size, an unsupported geometry).
    #[error("{0}")]
    Invalid(String),
    /// The claim, volume or snapshot cannot be snapshotted or restored the
    /// way it is (not bound, not CSI, no snapshot class for its driver).
    #[error("{0}")]
    Unsupported(String),
    /// The claim has no data a backup copies, by design: it is not bound,
    /// or its volume is not a CSI volume. Left out by policy, not a failure.
    #[error("{0}")]
    NoData(String),
    /// A snapshot or volume reported an error of its own.
    #[error("{what} failed: {message}")]
    Failed { what: String, message: String },
    /// A wait ran out of time.
    #[error("timed out after {secs} s waiting for {what}")]
    Timeout { what: String, secs: u64 },
    /// An object exists under the name Lifeboat uses, but Lifeboat did not
    /// make it for this run (no matching nonce): it is neither used nor
    /// deleted.
    #[error("{what} exists but Lifeboat did not create it for this run ({reason}); refusing to use it: delete it if it is stale, or find out who made it")]
    NotOurs { what: String, reason: String },
}

impl VolumeError {
    /// Whether the same call may succeed if tried again.
    pub fn is_retryable(&self) -> bool {
        match self {
            VolumeError::Kube(e) => e.is_retryable(),
            VolumeError::Ebs { retryable, .. } => *retryable,
            VolumeError::Timeout { .. } => true,
            _ => false,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        VolumeError::Io {
            path: path.into(),
            source,
        }
    }
}
