//! What a step needs from the world: this region's repository, the replica's
//! store, the fleet file, clusters and a way to send replies. [`Environment`]
//! reads it from the process environment, the same in a Lambda function and
//! in `lifeboat workflow run`; tests use their own [`StepEnv`].

use crate::fleet::{ClusterAccess, Fleet};
use crate::StepError;
use async_trait::async_trait;
use aws_config::SdkConfig;
use lifeboat_kube::Cluster;
use lifeboat_repo::{Credential, FileCache, Repository};
use lifeboat_store::ObjectStore;
use lifeboat_stores::StoreOptions;
use lifeboat_volume::mover::MoverSettings;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::OnceCell;

/// The edges a step talks to.
#[async_trait]
pub trait StepEnv: Send + Sync {
    /// This region's repository, opened.
    async fn repository(&self) -> Result<Repository, StepError>;
    /// The DR region's store (which may not hold a repository yet).
    async fn replica_store(&self) -> Result<Arc<dyn ObjectStore>, StepError>;
    /// The repository's credential (the replica shares it).
    async fn credential(&self) -> Result<Credential, StepError>;
    async fn fleet(&self) -> Result<Fleet, StepError>;
    /// The Object Lock policy the repository must have at least, pinned
    /// outside the bucket (`LIFEBOAT_EXPECTED_LOCK`, else the fleet file's
    /// `object_lock`); `None` when neither pins one.
    async fn expected_lock(&self) -> Result<Option<lifeboat_repo::LockPolicy>, StepError>;
    async fn cluster(&self, name: &str, access: &ClusterAccess) -> Result<Cluster, StepError>;
    /// Send `body` to the SQS queue `queue_url`.
    async fn send(&self, queue_url: &str, body: &str) -> Result<(), StepError>;
    /// Publish an alert to the alert topic (`LIFEBOAT_ALERT_TOPIC`) and
    /// return SNS's message id; `None` when no topic is configured (local
    /// runs), where the alert is only logged.
    async fn alert(&self, subject: &str, message: &str) -> Result<Option<String>, StepError>;
    /// The EBS direct APIs in `region` (this process's region if `None`).
    async fn ebs(&self, region: Option<&str>) -> Result<aws_sdk_ebs::Client, StepError>;
    /// How mover Jobs run, and the environment their container gets: this
    /// region's repository and its passphrase (a Secret in Lifeboat's own
    /// namespace, never in an application's).
    async fn mover(&self) -> Result<MoverAccess, StepError>;
}

/// What a mover Job needs to reach the repository.
#[derive(Clone)]
pub struct MoverAccess {
    pub settings: MoverSettings,
    /// `LIFEBOAT_REPO`, `LIFEBOAT_PASSWORD`, the AWS region and what
    /// [`lifeboat_stores::forwarded_env`] hands over: the container's
    /// environment, through a Secret in `settings.namespace`.
    pub env: BTreeMap<String, String>,
}

impl std::fmt::Debug for MoverAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The passphrase stays out of logs.
        f.debug_struct("MoverAccess")
            .field("settings", &self.settings)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Where the environment's settings come from.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `LIFEBOAT_REPO`.
    pub repository: Option<String>,
    /// `LIFEBOAT_REPLICA_REPO`.
    pub replica: Option<String>,
    /// `LIFEBOAT_REPLICA_REGION`: the replica bucket's region.
    pub replica_region: Option<String>,
    /// `LIFEBOAT_FLEET`: a path or `s3://bucket/key`.
    pub fleet: Option<String>,
    /// `LIFEBOAT_PASSWORD_SECRET`: a Secrets Manager id holding the passphrase.
    pub password_secret: Option<String>,
    /// `LIFEBOAT_ALERT_TOPIC`: the SNS topic ARN that receives alerts.
    pub alert_topic: Option<String>,
    /// `LIFEBOAT_EXPECTED_LOCK`: the pinned lock policy, `mode:days`.
    pub expected_lock: Option<String>,
    /// `LIFEBOAT_CACHE_DIR`: where snapshot and index files are kept
    /// between invocations of a warm function (`/tmp/lifeboat-cache` in the
    /// template); none when unset.
    pub cache_dir: Option<String>,
}

impl Settings {
    /// Read the `LIFEBOAT_*` variables.
    pub fn from_env() -> Settings {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Settings {
            repository: var("LIFEBOAT_REPO"),
            replica: var("LIFEBOAT_REPLICA_REPO"),
            replica_region: var("LIFEBOAT_REPLICA_REGION"),
            fleet: var("LIFEBOAT_FLEET"),
            password_secret: var("LIFEBOAT_PASSWORD_SECRET"),
            alert_topic: var("LIFEBOAT_ALERT_TOPIC"),
            expected_lock: var("LIFEBOAT_EXPECTED_LOCK"),
            cache_dir: var("LIFEBOAT_CACHE_DIR"),
        }
    }
}

/// The real environment: stores by URL, AWS through the standard
/// configuration chain, clusters by kubeconfig, secret or EKS.
#[derive(Debug)]
pub struct Environment {
    settings: Settings,
    sdk: OnceCell<SdkConfig>,
}

impl Environment {
    pub fn new(settings: Settings) -> Self {
        Environment {
            settings,
            sdk: OnceCell::new(),
        }
    }

    pub fn from_env() -> Self {
        Environment::new(Settings::from_env())
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    async fn sdk(&self) -> &SdkConfig {
        self.sdk
            .get_or_init(|| aws_config::load_defaults(aws_config::BehaviorVersion::latest()))
            .await
    }

    fn required<'a>(
        value: &'a Option<String>,
        var: &str,
        what: &str,
    ) -> Result<&'a str, StepError> {
        value
            .as_deref()
            .ok_or_else(|| StepError::invalid(format!("{var} is not set: {what}")))
    }
}

#[async_trait]
impl StepEnv for Environment {
    async fn repository(&self) -> Result<Repository, StepError> {
        let url = Self::required(
            &self.settings.repository,
            "LIFEBOAT_REPO",
            "this region's repository",
        )?;
        let store = lifeboat_stores::open(url, &StoreOptions::default()).await?;
        let cred = self.credential().await?;
        let repo = Repository::open(store, &cred).await?;
        Ok(match &self.settings.cache_dir {
            Some(dir) => repo.with_cache(FileCache::new(dir)),
            None => repo,
        })
    }

    async fn replica_store(&self) -> Result<Arc<dyn ObjectStore>, StepError> {
        let url = Self::required(
            &self.settings.replica,
            "LIFEBOAT_REPLICA_REPO",
            "the DR region's repository",
        )?;
        let opts = StoreOptions {
            region: self.settings.replica_region.clone(),
        };
        Ok(lifeboat_stores::open(url, &opts).await?)
    }

    async fn credential(&self) -> Result<Credential, StepError> {
        if let Ok(p) = std::env::var("LIFEBOAT_PASSWORD") {
            if !p.is_empty() {
                return Ok(Credential::Passphrase(p));
            }
        }
        let id = Self::required(
            &self.settings.password_secret,
            "LIFEBOAT_PASSWORD_SECRET",
            "no passphrase (set it, or LIFEBOAT_PASSWORD for local runs)",
        )?;
        let secret = lifeboat_aws::get_secret_string(self.sdk().await, id).await?;
        Ok(Credential::Passphrase(secret.trim_end().to_string()))
    }

    async fn fleet(&self) -> Result<Fleet, StepError> {
        let loc = Self::required(&self.settings.fleet, "LIFEBOAT_FLEET", "the fleet file")?;
        let text = if loc.contains("://") {
            // An object in a bucket: s3://, gs:// or azure://.../key.
            let (dir, name) = loc
                .rsplit_once('/')
                .filter(|(dir, name)| !name.is_empty() && !dir.ends_with('/'))
                .ok_or_else(|| {
                    StepError::invalid(format!(
                        "LIFEBOAT_FLEET {loc:?} names no object (s3://bucket/key, gs://bucket/key or azure://account/container/key)"
                    ))
                })?;
            let store = lifeboat_stores::open(dir, &StoreOptions::default()).await?;
            let bytes = store.get(name).await?;
            String::from_utf8(bytes.to_vec())
                .map_err(|_| StepError::invalid(format!("fleet file {loc} is not UTF-8")))?
        } else {
            std::fs::read_to_string(loc).map_err(|e| {
                StepError::new(
                    if e.kind() == std::io::ErrorKind::NotFound {
                        crate::ErrorKind::NotFound
                    } else {
                        crate::ErrorKind::Failed
                    },
                    format!("fleet file {loc}: {e}"),
                )
            })?
        };
        Fleet::parse(&text, loc)
    }

    async fn expected_lock(&self) -> Result<Option<lifeboat_repo::LockPolicy>, StepError> {
        if let Some(text) = &self.settings.expected_lock {
            return crate::pinned::parse_expected(text).map(Some);
        }
        if self.settings.fleet.is_none() {
            return Ok(None);
        }
        Ok(self.fleet().await?.object_lock)
    }

    async fn cluster(&self, name: &str, access: &ClusterAccess) -> Result<Cluster, StepError> {
        let what = format!("cluster {name:?}");
        let cluster = match access {
            ClusterAccess::Kubeconfig { path, context } => {
                Cluster::connect(Some(path), context.as_deref()).await?
            }
            ClusterAccess::KubeconfigSecret { secret, context } => {
                let yaml = lifeboat_aws::get_secret_string(self.sdk().await, secret).await?;
                Cluster::from_kubeconfig_yaml(
                    &yaml,
                    context.as_deref(),
                    &format!("secret {secret}"),
                )
                .await?
            }
            ClusterAccess::Eks { name: eks, region } => {
                let sdk = match region {
                    Some(r) => {
                        aws_config::defaults(aws_config::BehaviorVersion::latest())
                            .region(aws_config::Region::new(r.clone()))
                            .load()
                            .await
                    }
                    None => self.sdk().await.clone(),
                };
                lifeboat_aws::connect_eks(&sdk, eks).await?
            }
        };
        tracing::debug!(%what, server = %cluster.server, "cluster connected");
        Ok(cluster)
    }

    async fn send(&self, queue_url: &str, body: &str) -> Result<(), StepError> {
        lifeboat_aws::send_message(self.sdk().await, queue_url, body).await?;
        Ok(())
    }

    async fn alert(&self, subject: &str, message: &str) -> Result<Option<String>, StepError> {
        let Some(topic) = &self.settings.alert_topic else {
            return Ok(None);
        };
        let id = lifeboat_aws::publish(self.sdk().await, topic, subject, message).await?;
        Ok(Some(id))
    }

    async fn ebs(&self, region: Option<&str>) -> Result<aws_sdk_ebs::Client, StepError> {
        let sdk = self.sdk().await;
        let conf = match region {
            Some(r) => aws_sdk_ebs::config::Builder::from(sdk)
                .region(aws_config::Region::new(r.to_string()))
                .build(),
            None => aws_sdk_ebs::config::Builder::from(sdk).build(),
        };
        Ok(aws_sdk_ebs::Client::from_conf(conf))
    }

    async fn mover(&self) -> Result<MoverAccess, StepError> {
        let url = Self::required(
            &self.settings.repository,
            "LIFEBOAT_REPO",
            "the repository a mover Job writes to",
        )?;
        let mut env = BTreeMap::from([("LIFEBOAT_REPO".to_string(), url.to_string())]);
        match &self.credential().await? {
            Credential::Passphrase(p) => env.insert("LIFEBOAT_PASSWORD".into(), p.clone()),
            Credential::KeyFile(_) => {
                return Err(StepError::invalid(
                    "the repository is opened with a key file, which a mover Job cannot be given; use a passphrase",
                ))
            }
        };
        if let Some(region) = self.sdk().await.region() {
            env.insert("AWS_REGION".into(), region.to_string());
        }
        // Where the store is (an S3-compatible endpoint, an Azure or GCS
        // emulator) and shared-key credentials; workload identities come
        // from the Job's service account instead (docs/volumes.md).
        env.extend(lifeboat_stores::forwarded_env(url, |k| {
            std::env::var(k).ok()
        })?);
        let settings = MoverSettings::from_env();
        if let Some(problem) = settings.namespace_problem() {
            return Err(StepError::invalid(problem));
        }
        Ok(MoverAccess { settings, env })
    }
}
