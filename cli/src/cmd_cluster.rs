//! `lifeboat backup` and `lifeboat restore`: cluster state.

use crate::context::GlobalArgs;
use crate::output::{bytes, print_json, print_store_line, print_warnings, with_store};
use crate::progress::Reporter;
use crate::EXIT_INCOMPLETE;
use anyhow::{bail, Result};
use clap::Args;
use lifeboat_kube::restore::actions::Transform;
use lifeboat_kube::restore::order::Stage;
use lifeboat_kube::restore::{ApplyOptions, Existing, Outcome};
use lifeboat_kube::{Cluster, ClusterResources, Scope};
use lifeboat_ops::cluster::{backup_cluster, restore_cluster, ClusterBackupOptions, RestoreReport};
use lifeboat_ops::series::Series;
use lifeboat_ops::Progress;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Which cluster to talk to.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, env = "KUBECONFIG", hide_env_values = true)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: its current context).
    #[arg(long)]
    pub context: Option<String>,
}

impl ClusterArgs {
    pub async fn connect(&self) -> Result<Cluster> {
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

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The snapshot: id, unique id prefix, or `latest` (the newest full-scope
    /// cluster snapshot: one taken without namespace, resource or label filters).
    pub snapshot: String,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Restore namespace A's objects into B, as A=B (repeatable).
    #[arg(long = "namespace-map", value_parser = crate::cmd_volume::parse_tag)]
    pub namespace_map: Vec<(String, String)>,
    /// Use storage class Y where the backup has X, as X=Y (repeatable).
    #[arg(long = "storage-class-map", value_parser = crate::cmd_volume::parse_tag)]
    pub storage_class_map: Vec<(String, String)>,
    /// Add this label to every restored object, as key=value (repeatable).
    #[arg(long = "label", value_parser = crate::cmd_volume::parse_tag)]
    pub labels: Vec<(String, String)>,
    /// Add this annotation to every restored object, as key=value (repeatable).
    #[arg(long = "annotation", value_parser = crate::cmd_volume::parse_tag)]
    pub annotations: Vec<(String, String)>,
    /// What to do with objects that already exist: skip, update or fail.
    #[arg(long, default_value = "skip")]
    pub existing: Existing,
    /// Also restore the status of custom resources that have a status subresource.
    #[arg(long)]
    pub restore_status: bool,
    /// Keep Services' node ports (by default the target cluster assigns new ones).
    #[arg(long)]
    pub keep_node_ports: bool,
    /// Keep Services' cluster IPs (by default the target cluster assigns new ones).
    #[arg(long)]
    pub keep_cluster_ips: bool,
    /// Print what would be created, updated or skipped, and why; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Objects created at once.
    #[arg(long, default_value_t = 16)]
    pub parallelism: usize,
    /// Re-create PersistentVolumes whose data is not restored as they were,
    /// pointing at the source's storage (its disk, NFS export, ...), with
    /// reclaim policy Retain. Without it they are left out and their claims
    /// provisioned anew, empty: the target never writes or deletes the
    /// source's disks.
    #[arg(long)]
    pub reattach_volumes: bool,
}

/// Exit code of a restore that ran but could not restore every object.
pub const EXIT_OBJECTS_FAILED: u8 = 4;

pub async fn restore(g: &GlobalArgs, a: RestoreArgs) -> Result<u8> {
    let (repo, meter) = g.open_metered().await?;
    let (id, snap) = if a.snapshot == "latest" {
        // Full-scope only: a backup of a few namespaces is not "the cluster".
        repo.snapshots()
            .await?
            .into_iter()
            .filter(|(_, s)| s.kind == "cluster" && Series::Full.contains(s))
            .max_by_key(|(_, s)| s.time)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "the repository has no full-scope cluster snapshot (one taken without \
                     namespace, resource or label filters); name the snapshot by its id"
                )
            })?
    } else {
        repo.resolve_snapshot(&a.snapshot).await?
    };
    if snap.kind != "cluster" {
        bail!(
            "snapshot {} is a {} snapshot; restore it with `lifeboat {} restore`",
            id.short(),
            snap.kind,
            snap.kind
        );
    }
    let cluster = a.cluster.connect().await?;
    let opts = ApplyOptions {
        existing: a.existing,
        restore_status: a.restore_status,
        dry_run: a.dry_run,
        transform: Transform {
            namespace_map: a.namespace_map.into_iter().collect(),
            storage_class_map: a.storage_class_map.into_iter().collect(),
            add_labels: a.labels.into_iter().collect(),
            add_annotations: a.annotations.into_iter().collect(),
            keep_node_ports: a.keep_node_ports,
            keep_cluster_ips: a.keep_cluster_ips,
            volume_sources: Default::default(),
            reattach_volumes: a.reattach_volumes,
            never_reattach: Default::default(),
        },
        parallelism: a.parallelism,
        crd_timeout: Duration::from_secs(60),
        stage: Stage::All,
    };
    let progress = Arc::new(Progress::default());
    let reporter = Reporter::start(progress.clone(), g.json);
    let out = restore_cluster(&repo, id, &snap, &cluster, opts, progress).await?;
    drop(reporter);
    let r = &out.report;
    if g.json {
        print_json(&with_store(
            serde_json::json!({
                "report": r,
                "report_id": out.report_id.map(|i| i.to_hex()),
            }),
            &meter,
        ))?;
    } else {
        print_report(r, g.verbose > 0);
        if let Some(rid) = &out.report_id {
            eprintln!("report stored as reports/{rid}");
        }
        print_store_line(&meter);
    }
    Ok(if r.failed() { EXIT_OBJECTS_FAILED } else { 0 })
}

/// One line per object that was not simply created, or was created with a
/// note (a claim provisioned anew, a volume re-attached); all of them with
/// -v or in a dry run; then the counts.
fn print_report(r: &RestoreReport, all: bool) {
    for i in &r.items {
        if !(all || r.dry_run || i.outcome != Outcome::Created || !i.reason.is_empty()) {
            continue;
        }
        let target = i
            .target_namespace
            .as_ref()
            .map(|t| format!(" -> namespace {t}"))
            .unwrap_or_default();
        let reason = if i.reason.is_empty() {
            String::new()
        } else {
            format!(": {}", i.reason)
        };
        let status = if i.status_restored {
            " (with status)"
        } else {
            ""
        };
        println!(
            "{:<13} {}{target}{status}{reason}",
            i.outcome.name(),
            i.object
        );
    }
    let counts: Vec<String> = r
        .counts
        .iter()
        .map(|(o, n)| format!("{n} {}", o.name()))
        .collect();
    eprintln!(
        "{}{} in {:.1}s",
        if r.dry_run { "dry run: " } else { "" },
        counts.join(", "),
        r.duration_secs
    );
}
