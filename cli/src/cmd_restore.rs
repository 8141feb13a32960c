//! `lifeboat restore`: a cluster snapshot's objects into a cluster, with
//! namespace and storage class maps and resource modifiers on the way.

use crate::cmd_cluster::ClusterArgs;
use crate::context::GlobalArgs;
use crate::output::{print_json, print_store_line, with_store};
use crate::progress::Reporter;
use anyhow::{bail, Context, Result};
use clap::Args;
use lifeboat_kube::restore::actions::Transform;
use lifeboat_kube::restore::modifiers::{ModifierDocument, Modifiers};
use lifeboat_kube::restore::order::Stage;
use lifeboat_kube::restore::{ApplyOptions, Existing, Outcome};
use lifeboat_ops::cluster::{restore_cluster, RestoreReport};
use lifeboat_ops::series::Series;
use lifeboat_ops::Progress;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

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
    /// Resource modifiers: a YAML or JSON file of rules that change selected
    /// objects on the way in (image registry, JSON Patch, merge patch); see
    /// docs/cluster-state.md. Checked whole before anything is restored.
    #[arg(long, value_name = "FILE")]
    pub modifiers: Option<PathBuf>,
}

/// Read a resource modifiers file (YAML, or JSON, which is YAML too).
pub fn read_modifiers(path: &Path) -> Result<ModifierDocument> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--modifiers {}: cannot read it", path.display()))?;
    serde_yaml::from_str(&text).with_context(|| {
        format!(
            "--modifiers {}: not a resource modifiers document",
            path.display()
        )
    })
}

/// Read and check a resource modifiers file.
pub fn load_modifiers(path: &Path) -> Result<Modifiers> {
    Modifiers::new(&read_modifiers(path)?)
        .with_context(|| format!("--modifiers {}", path.display()))
}

/// Exit code of a restore that ran but could not restore every object.
pub const EXIT_OBJECTS_FAILED: u8 = 4;

pub async fn restore(g: &GlobalArgs, a: RestoreArgs) -> Result<u8> {
    // Bad rules are refused before the repository or the cluster is touched.
    let modifiers = match &a.modifiers {
        Some(path) => load_modifiers(path)?,
        None => Modifiers::default(),
    };
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
            modifiers,
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
    // On stderr in both modes: usually a misspelt kind or namespace.
    for rule in r.unused_rules() {
        eprintln!("warning: modifier rule {rule:?} selected no object");
    }
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
/// note (a claim provisioned anew, a volume re-attached) or changed on the
/// way in (storage class map, modifiers; each change on a line below it);
/// all of them with -v or in a dry run; then the counts.
fn print_report(r: &RestoreReport, all: bool) {
    for i in &r.items {
        let plain = i.outcome == Outcome::Created && i.reason.is_empty() && i.changes.is_empty();
        if !(all || r.dry_run || !plain) {
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
        for c in &i.changes {
            println!("{:<13}   changed: {c}", "");
        }
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
