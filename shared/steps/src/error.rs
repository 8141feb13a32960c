//! The fixed set of error names a step fails with. Step Functions' Retry and
//! Catch match on them (see docs/workflows.md), so they are a contract: a
//! test checks that the definitions match exactly these names.

use lifeboat_ops::OpsError;
use lifeboat_repo::RepoError;
use lifeboat_store::StoreError;
use std::fmt;

/// What kind of failure a step had, which decides whether it is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Throttling, 5xx, a cluster or store that did not answer.
    Retryable,
    /// The repository is exclusively locked (a prune is running).
    RepositoryLocked,
    /// A malformed message or state.
    InvalidInput,
    /// No such cluster, snapshot or repository.
    NotFound,
    /// Credentials refused by AWS or the cluster.
    PermissionDenied,
    /// The operation ran and failed.
    Failed,
    /// The work goes on elsewhere (a mover Job in the cluster): call again
    /// later; nothing is lost in between.
    InProgress,
}

impl ErrorKind {
    /// Every kind, for the test that compares them with the definitions.
    pub const ALL: [ErrorKind; 7] = [
        ErrorKind::Retryable,
        ErrorKind::RepositoryLocked,
        ErrorKind::InvalidInput,
        ErrorKind::NotFound,
        ErrorKind::PermissionDenied,
        ErrorKind::Failed,
        ErrorKind::InProgress,
    ];

    /// The error name (Lambda's `errorType`).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Retryable => "Lifeboat.Retryable",
            ErrorKind::RepositoryLocked => "Lifeboat.RepositoryLocked",
            ErrorKind::InvalidInput => "Lifeboat.InvalidInput",
            ErrorKind::NotFound => "Lifeboat.NotFound",
            ErrorKind::PermissionDenied => "Lifeboat.PermissionDenied",
            ErrorKind::Failed => "Lifeboat.Failed",
            ErrorKind::InProgress => "Lifeboat.InProgress",
        }
    }

    /// Whether the definitions retry it.
    pub fn is_retried(self) -> bool {
        matches!(
            self,
            ErrorKind::Retryable | ErrorKind::RepositoryLocked | ErrorKind::InProgress
        )
    }
}

/// A step's failure: its kind and a message that names what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepError {
    pub kind: ErrorKind,
    pub message: String,
}

impl StepError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        StepError {
            kind,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        StepError::new(ErrorKind::InvalidInput, message)
    }

    pub fn failed(message: impl Into<String>) -> Self {
        StepError::new(ErrorKind::Failed, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        StepError::new(ErrorKind::NotFound, message)
    }

    /// The same error with `context` in front of its message.
    pub fn context(self, context: &str) -> Self {
        StepError {
            kind: self.kind,
            message: format!("{context}: {}", self.message),
        }
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.message)
    }
}

impl std::error::Error for StepError {}

fn store_kind(e: &StoreError) -> ErrorKind {
    match e {
        StoreError::NotFound { .. } | StoreError::StoreMissing { .. } => ErrorKind::NotFound,
        StoreError::AccessDenied { .. } => ErrorKind::PermissionDenied,
        StoreError::Transient { .. } => ErrorKind::Retryable,
        StoreError::InvalidUrl { .. } => ErrorKind::InvalidInput,
        _ => ErrorKind::Failed,
    }
}

fn repo_kind(e: &RepoError) -> ErrorKind {
    match e {
        RepoError::Store(s) => store_kind(s),
        RepoError::Locked(_) => ErrorKind::RepositoryLocked,
        RepoError::NotARepository { .. } | RepoError::SnapshotRef(_) => ErrorKind::NotFound,
        RepoError::WrongCredential { .. } => ErrorKind::PermissionDenied,
        RepoError::InvalidOption(_) => ErrorKind::InvalidInput,
        e if e.is_retryable() => ErrorKind::Retryable,
        _ => ErrorKind::Failed,
    }
}

fn kube_kind(e: &lifeboat_kube::KubeError) -> ErrorKind {
    if e.is_retryable() {
        return ErrorKind::Retryable;
    }
    match e.status() {
        Some(401 | 403) => ErrorKind::PermissionDenied,
        Some(404) => ErrorKind::NotFound,
        _ => match e {
            lifeboat_kube::KubeError::InvalidInput(_)
            | lifeboat_kube::KubeError::Kubeconfig { .. } => ErrorKind::InvalidInput,
            _ => ErrorKind::Failed,
        },
    }
}

impl From<OpsError> for StepError {
    fn from(e: OpsError) -> Self {
        let kind = match &e {
            OpsError::Repo(r) => repo_kind(r),
            OpsError::Kube(k) => kube_kind(k),
            OpsError::Volume(v) => volume_kind(v),
            OpsError::InvalidInput(_) => ErrorKind::InvalidInput,
            _ if e.is_retryable() => ErrorKind::Retryable,
            _ => ErrorKind::Failed,
        };
        StepError::new(kind, e.to_string())
    }
}

fn volume_kind(e: &lifeboat_volume::VolumeError) -> ErrorKind {
    use lifeboat_volume::VolumeError as V;
    match e {
        V::Kube(k) => kube_kind(k),
        V::Ebs { denied: true, .. } => ErrorKind::PermissionDenied,
        V::Invalid(_) | V::Unsupported(_) | V::NoData(_) => ErrorKind::InvalidInput,
        _ if e.is_retryable() => ErrorKind::Retryable,
        _ => ErrorKind::Failed,
    }
}

impl From<lifeboat_volume::VolumeError> for StepError {
    fn from(e: lifeboat_volume::VolumeError) -> Self {
        StepError::new(volume_kind(&e), e.to_string())
    }
}

impl From<RepoError> for StepError {
    fn from(e: RepoError) -> Self {
        StepError::new(repo_kind(&e), e.to_string())
    }
}

impl From<StoreError> for StepError {
    fn from(e: StoreError) -> Self {
        StepError::new(store_kind(&e), e.to_string())
    }
}

impl From<lifeboat_kube::KubeError> for StepError {
    fn from(e: lifeboat_kube::KubeError) -> Self {
        StepError::new(kube_kind(&e), e.to_string())
    }
}

impl From<lifeboat_aws::AwsError> for StepError {
    fn from(e: lifeboat_aws::AwsError) -> Self {
        use lifeboat_aws::AwsError as A;
        let kind = match &e {
            A::NotFound { .. } => ErrorKind::NotFound,
            A::PermissionDenied { .. } => ErrorKind::PermissionDenied,
            A::InvalidInput(_) => ErrorKind::InvalidInput,
            A::Cluster { source, .. } => kube_kind(source),
            _ if e.is_retryable() => ErrorKind::Retryable,
            _ => ErrorKind::Failed,
        };
        StepError::new(kind, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_namespaced() {
        let names: std::collections::BTreeSet<&str> =
            ErrorKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names.len(), ErrorKind::ALL.len());
        assert!(names.iter().all(|n| n.starts_with("Lifeboat.")));
    }

    #[test]
    fn a_held_lock_is_its_own_kind_and_a_wrong_passphrase_is_refused() {
        let locked: StepError = OpsError::Repo(RepoError::Locked("prune on host".into())).into();
        assert_eq!(locked.kind, ErrorKind::RepositoryLocked);
        assert!(locked.kind.is_retried());
        let wrong: StepError = RepoError::WrongCredential {
            location: "s3://b/p".into(),
            keys: 1,
        }
        .into();
        assert_eq!(wrong.kind, ErrorKind::PermissionDenied);
        assert!(!wrong.kind.is_retried());
        assert!(wrong
            .to_string()
            .starts_with("Lifeboat.PermissionDenied: wrong passphrase"));
    }
}
