use lifeboat_repo::RepoError;
use std::io;
use std::path::PathBuf;

/// Errors of Lifeboat's operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpsError {
    /// The repository layer failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// Reading or writing a local path failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A chunk of a file being restored could not be read or decoded
    /// (the source names the blob).
    #[error("{}: the chunk at offset {offset}{}: {source}", .path.display(), in_pack(.pack))]
    RestoreChunk {
        path: PathBuf,
        offset: u64,
        /// The pack the index places the chunk in, if it knows the chunk.
        pack: Option<lifeboat_repo::Id>,
        #[source]
        source: Box<OpsError>,
    },
    /// The caller asked for something that cannot be done.
    #[error("{0}")]
    InvalidInput(String),
    /// Talking to a cluster failed.
    #[error(transparent)]
    Kube(#[from] lifeboat_kube::KubeError),
    /// Snapshotting a volume or moving its data failed.
    #[error(transparent)]
    Volume(#[from] lifeboat_volume::VolumeError),
    /// A stage of the backup pipeline stopped unexpectedly.
    #[error("backup pipeline failed: {0}")]
    Pipeline(String),
    /// Data a snapshot about to be written references is in no index any
    /// more (a prune removed what the backup deduplicated against).
    #[error("{what}: {count} blob(s) it references are in no index (first: {first}); a prune removed data this backup deduplicated against, so the snapshot is not written: run the backup again")]
    DataMissing {
        what: String,
        count: usize,
        first: lifeboat_repo::Id,
    },
}

impl OpsError {
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        OpsError::Io {
            path: path.into(),
            source,
        }
    }

    /// Whether retrying the operation may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            OpsError::Repo(e) => e.is_retryable(),
            OpsError::Kube(e) => e.is_retryable(),
            OpsError::Volume(e) => e.is_retryable(),
            OpsError::RestoreChunk { source, .. } => source.is_retryable(),
            _ => false,
        }
    }
}

fn in_pack(pack: &Option<lifeboat_repo::Id>) -> String {
    pack.map(|p| format!(" (pack {p})")).unwrap_or_default()
}

impl From<lifeboat_store::StoreError> for OpsError {
    fn from(e: lifeboat_store::StoreError) -> Self {
        OpsError::Repo(RepoError::Store(e))
    }
}
