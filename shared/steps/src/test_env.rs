//! A step environment for unit tests: a repository in a [`MemoryStore`]
//! (with Object Lock), a pinned lock policy, and recorded alerts.
//!
//! [`MemoryStore`]: lifeboat_store::MemoryStore
#![allow(clippy::unwrap_used)]

use crate::env::StepEnv;
use crate::StepError;
use lifeboat_repo::{LockPolicy, Repository};

/// A repository in memory and a pinned lock policy; alerts are recorded;
/// everything else fails.
pub struct MemoryEnv {
    pub store: lifeboat_store::MemoryStore,
    pub repo: Repository,
    pub expected: Option<LockPolicy>,
    pub alerts: std::sync::Mutex<Vec<String>>,
}

fn none<T>() -> Result<T, StepError> {
    Err(StepError::invalid("not in this test"))
}

#[async_trait::async_trait]
impl StepEnv for MemoryEnv {
    async fn repository(&self) -> Result<Repository, StepError> {
        Ok(self.repo.clone())
    }
    async fn replica_store(
        &self,
    ) -> Result<std::sync::Arc<dyn lifeboat_store::ObjectStore>, StepError> {
        none()
    }
    async fn credential(&self) -> Result<lifeboat_repo::Credential, StepError> {
        none()
    }
    async fn fleet(&self) -> Result<crate::Fleet, StepError> {
        none()
    }
    async fn expected_lock(&self) -> Result<Option<LockPolicy>, StepError> {
        Ok(self.expected)
    }
    async fn cluster(
        &self,
        _: &str,
        _: &crate::ClusterAccess,
    ) -> Result<lifeboat_kube::Cluster, StepError> {
        none()
    }
    async fn send(&self, _: &str, _: &str) -> Result<(), StepError> {
        none()
    }
    async fn alert(&self, subject: &str, message: &str) -> Result<Option<String>, StepError> {
        self.alerts
            .lock()
            .unwrap()
            .push(format!("{subject}: {message}"));
        Ok(None)
    }
    async fn ebs(&self, _: Option<&str>) -> Result<aws_sdk_ebs::Client, StepError> {
        none()
    }
    async fn mover(&self) -> Result<crate::env::MoverAccess, StepError> {
        none()
    }
}

pub async fn env_with(config_lock: Option<LockPolicy>, expected: Option<LockPolicy>) -> MemoryEnv {
    let store = lifeboat_store::MemoryStore::with_object_lock();
    let cred = lifeboat_repo::Credential::Passphrase("pinned-test".into());
    let opts = lifeboat_repo::InitOptions {
        object_lock: config_lock,
        kdf: Some(lifeboat_repo::KdfParams::weak_for_tests(&cred).unwrap()),
        ..Default::default()
    };
    MemoryEnv {
        repo: Repository::init(std::sync::Arc::new(store.clone()), &cred, opts)
            .await
            .unwrap(),
        store,
        expected,
        alerts: Default::default(),
    }
}
