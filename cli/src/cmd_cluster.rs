//! `lifeboat backup`: cluster state (restore is in cmd_restore).

use crate::context::GlobalArgs;
use crate::output::{bytes, print_json, print_store_line, print_warnings, with_store};
use crate::progress::Reporter;
use crate::EXIT_INCOMPLETE;
use anyhow::Result;
use clap::Args;
use lifeboat_kube::{Cluster, ClusterResources, Scope, SERVICE_ACCOUNT_DIR};
use lifeboat_ops::cluster::{backup_cluster, ClusterBackupOptions};
use lifeboat_ops::Progress;
use std::path::PathBuf;
use std::sync::Arc;

/// Which cluster to talk to.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, env = "KUBECONFIG", hide_env_values = true)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: its current context).
    #[arg(long)]
    pub context: Option<String>,
    /// Run inside a pod, as its ServiceAccount (the in-cluster CronJobs of
    /// infra/kubernetes); the kubeconfig is not read.
    #[arg(long, conflicts_with_all = ["kubeconfig", "context"])]
    pub in_cluster: bool,
    /// With --in-cluster: where the ServiceAccount token and CA are mounted.
    #[arg(long, default_value = SERVICE_ACCOUNT_DIR, requires = "in_cluster")]
    pub service_account_dir: PathBuf,
}

impl ClusterArgs {
    pub async fn connect(&self) -> Result<Cluster> {
        if self.in_cluster {
            return Ok(Cluster::in_cluster(&self.service_account_dir).await?);
        }
        Ok(Cluster::connect(self.kubeconfig.as_deref(), self.context.as_deref()).await?)
    }
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Namespaces to back up (globs, comma-separated or repeated; default all).
    #[arg(long, value_delimiter = ',')]
    pub include_namespaces: Vec<String>,
    /// Namespaces to leave out (globs).
    #[arg(long, value_delimiter = ',')]
    pub exclude_namespaces: Vec<String>,
    /// Resources to back up: `deployments`, `deployments.apps`, `Deployment`, globs.
    #[arg(long, value_delimiter = ',')]
    pub include_resources: Vec<String>,
    /// Resources to leave out.
    #[arg(long, value_delimiter = ',')]
    pub exclude_resources: Vec<String>,
    /// Only objects with these labels (a Kubernetes label selector).
    #[arg(long, short = 'l')]
    pub selector: Option<String>,
    /// Cluster-scoped objects: auto (all when the whole cluster is in scope,
    /// otherwise what the selected objects need), true, or false.
    #[arg(long, default_value = "auto")]
    pub include_cluster_resources: ClusterResources,
    /// A tag to record, as key=value (repeatable).
    #[arg(long = "tag", value_parser = crate::cmd_volume::parse_tag)]
    pub tags: Vec<(String, String)>,
    /// The cluster's name in the snapshot (default: the kubeconfig context).
    #[arg(long)]
    pub cluster_name: Option<String>,
}

pub async fn backup(g: &GlobalArgs, a: BackupArgs) -> Result<u8> {
    let cluster = a.cluster.connect().await?;
    let (repo, meter) = g.open_metered().await?;
    let progress = Arc::new(Progress::default());
    let reporter = Reporter::start(progress.clone(), g.json);
    let opts = ClusterBackupOptions {
        scope: Scope {
            include_namespaces: a.include_namespaces,
            exclude_namespaces: a.exclude_namespaces,
            include_resources: a.include_resources,
            exclude_resources: a.exclude_resources,
            selector: a.selector,
            cluster_resources: a.include_cluster_resources,
        },
        tags: a.tags.into_iter().collect(),
        cluster_name: a.cluster_name,
        full: None,
    };
    let out = backup_cluster(&repo, &cluster, opts, progress).await?;
    drop(reporter);
    print_warnings(&out.warnings, out.warning_count);
    let s = &out.snapshot.summary;
    if g.json {
        print_json(&with_store(
            serde_json::json!({
                "snapshot": out.snapshot_id.to_hex(),
                "summary": s,
                "resources": out.snapshot.cluster.as_ref().map(|c| &c.resources),
                "excluded": out.excluded,
                "warnings": out.warnings,
                "warning_count": out.warning_count,
            }),
            &meter,
        ))?;
    } else {
        eprintln!(
            "{} objects of {} resources, {}; new {} stored as {}; {} left out by default; {:.1}s",
            s.files,
            s.dirs,
            bytes(s.bytes),
            bytes(s.bytes_new),
            bytes(s.bytes_stored),
            out.excluded,
            s.duration_secs
        );
        println!("{}", out.snapshot_id);
        print_store_line(&meter);
    }
    Ok(if out.warning_count > 0 {
        EXIT_INCOMPLETE
    } else {
        0
    })
}
