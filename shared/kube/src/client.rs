//! Connecting to a cluster from a kubeconfig.

use crate::KubeError;
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::path::{Path, PathBuf};

/// A client for one cluster, with the names needed in messages and manifests.
#[derive(Clone)]
pub struct Cluster {
    pub client: kube::Client,
    /// The API server URL.
    pub server: String,
    /// The kubeconfig context used (or the current one).
    pub context: String,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("server", &self.server)
            .field("context", &self.context)
            .finish()
    }
}

impl Cluster {
    /// Load `path` (or `$KUBECONFIG`, then `~/.kube/config`) and connect with `context`.
    pub async fn connect(path: Option<&Path>, context: Option<&str>) -> Result<Self, KubeError> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None => default_kubeconfig()?,
        };
        let bad = |message: String| KubeError::Kubeconfig {
            path: path.clone(),
            message,
        };
        let kubeconfig =
            Kubeconfig::read_from(&path).map_err(|e| bad(crate::error::error_chain(&e)))?;
        let context = match context {
            Some(c) => {
                if !kubeconfig.contexts.iter().any(|n| n.name == c) {
                    let known: Vec<&str> = kubeconfig
                        .contexts
                        .iter()
                        .map(|n| n.name.as_str())
                        .collect();
                    return Err(bad(format!(
                        "no context named {c:?} (it has: {})",
                        known.join(", ")
                    )));
                }
                c.to_string()
            }
            None => kubeconfig
                .current_context
                .clone()
                .ok_or_else(|| bad("no current-context; pass --context".into()))?,
        };
        let options = KubeConfigOptions {
            context: Some(context.clone()),
            ..Default::default()
        };
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| bad(crate::error::error_chain(&e)))?;
        let server = config.cluster_url.to_string();
        let client = kube::Client::try_from(config).map_err(|e| KubeError::Unreachable {
            server: server.clone(),
            message: crate::error::error_chain(&e),
        })?;
        Ok(Cluster {
            client,
            server,
            context,
        })
    }

    /// Map a client error for a request about `what` on this cluster.
    pub fn err(&self, what: impl Into<String>, e: kube::Error) -> KubeError {
        KubeError::from_client(what, &self.server, e)
    }
}

fn default_kubeconfig() -> Result<PathBuf, KubeError> {
    if let Some(p) = std::env::var_os("KUBECONFIG").filter(|p| !p.is_empty()) {
        // Like kubectl, the first file of a list.
        if let Some(first) = std::env::split_paths(&p).next() {
            return Ok(first);
        }
    }
    match std::env::var_os("HOME") {
        Some(home) => Ok(PathBuf::from(home).join(".kube").join("config")),
        None => Err(KubeError::InvalidInput(
            "no kubeconfig: pass --kubeconfig or set KUBECONFIG".into(),
        )),
    }
}
