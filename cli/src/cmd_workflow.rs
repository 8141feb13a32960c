//! `lifeboat workflow run` and `lifeboat failover`: the Step Functions
//! definitions of infra/statemachine executed locally, each Task resolved to
//! its step's handler in-process (the embedded default of the serverless
//! deployment).

use crate::context::GlobalArgs;
use crate::output::print_json;
use anyhow::{bail, Context, Result};
use clap::Args;
use lifeboat_steps::{local_substitutions, Action, Environment, LocalInvoker, Request, Settings};
use lifeboat_workflow::{run, ExecutionStatus, HistoryEvent, RunOptions, StateMachine};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Exit code when the workflow ran and failed.
pub const EXIT_WORKFLOW_FAILED: u8 = 5;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The definition, e.g. infra/statemachine/backup.asl.json.
    pub definition: PathBuf,
    /// The execution input (a JSON file, e.g. from events/).
    #[arg(long)]
    pub input: PathBuf,
    /// The fleet file: protected clusters and regions (else LIFEBOAT_FLEET).
    #[arg(long, env = "LIFEBOAT_FLEET")]
    pub fleet: Option<String>,
    /// The DR region's repository (else LIFEBOAT_REPLICA_REPO).
    #[arg(long, env = "LIFEBOAT_REPLICA_REPO")]
    pub replica: Option<String>,
    /// The execution name (default: from the input's idempotency key).
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub timing: Timing,
}

/// How long the local runner waits.
#[derive(Debug, Clone, Copy, Args)]
pub struct Timing {
    /// Multiply every Wait and Retry interval by this (e.g. 0.01 in drills
    /// and tests: a 60 s retry waits 0.6 s). Task timeouts are not scaled.
    #[arg(long, default_value_t = 1.0, value_parser = parse_time_scale)]
    pub time_scale: f64,
}

fn parse_time_scale(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=1000.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a number from 0 to 1000")),
    }
}

#[derive(Debug, Args)]
pub struct FailoverArgs {
    /// The region that was lost.
    #[arg(long)]
    pub from_region: String,
    /// The DR region: its repository (from the fleet file) and cluster are used.
    #[arg(long)]
    pub to_region: String,
    /// The cluster to restore into (in the fleet file).
    #[arg(long)]
    pub cluster: String,
    /// The cluster whose snapshots to restore (default: --cluster).
    #[arg(long)]
    pub source_cluster: Option<String>,
    /// A snapshot id or prefix (default: the latest verified full-scope one).
    #[arg(long, default_value = "latest")]
    pub snapshot: String,
    /// Re-create the PersistentVolumes of claims the backup left out by
    /// policy (not CSI) as they were, pointing at the source's storage,
    /// with reclaim policy Retain (default: their claims are provisioned
    /// anew, empty). Claims whose copy failed are never re-attached.
    #[arg(long)]
    pub reattach_volumes: bool,
    /// Restore namespace A's objects and volume data into B, as A=B (repeatable).
    #[arg(long = "namespace-map", value_parser = crate::cmd_volume::parse_tag)]
    pub namespace_map: Vec<(String, String)>,
    /// Use storage class Y where the backup has X, as X=Y (repeatable).
    #[arg(long = "storage-class-map", value_parser = crate::cmd_volume::parse_tag)]
    pub storage_class_map: Vec<(String, String)>,
    /// Resource modifiers file (YAML or JSON; docs/cluster-state.md).
    #[arg(long, value_name = "FILE")]
    pub modifiers: Option<PathBuf>,
    /// The fleet file (else LIFEBOAT_FLEET).
    #[arg(long, env = "LIFEBOAT_FLEET")]
    pub fleet: Option<String>,
    /// The restore definition.
    #[arg(long, default_value = "infra/statemachine/restore.asl.json")]
    pub definition: PathBuf,
    #[command(flatten)]
    pub timing: Timing,
}

fn load_machine(path: &Path) -> Result<StateMachine> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read definition {}", path.display()))?;
    let text = lifeboat_workflow::substitute(&text, &local_substitutions())
        .with_context(|| format!("definition {}", path.display()))?;
    StateMachine::from_json(&text).with_context(|| format!("definition {}", path.display()))
}

/// Run `machine` on `input` with the steps in-process; print progress lines
/// on stderr and the outcome; returns the exit code.
async fn execute(
    g: &GlobalArgs,
    machine: &StateMachine,
    input: Value,
    settings: Settings,
    name: String,
    timing: Timing,
) -> Result<(u8, Value)> {
    let env = Arc::new(Environment::new(settings));
    let quiet = g.json;
    let observer: lifeboat_workflow::Observer = Arc::new(move |e: &HistoryEvent| {
        // States entered, failures, retries and the outcome; not every
        // scheduled, started and exited event.
        let kind = e.event_type.to_string();
        let routine = !kind.starts_with("Execution")
            && (kind.ends_with("Scheduled")
                || kind.ends_with("Started")
                || kind.ends_with("Succeeded")
                || kind.ends_with("Exited"));
        if !quiet && !routine {
            eprintln!("{e}");
        }
    });
    let opts = RunOptions {
        name: Some(name.clone()),
        state_machine_name: "local".into(),
        default_task_timeout: None,
        observer: Some(observer),
        time_scale: timing.time_scale,
        ..RunOptions::default()
    };
    let execution = run(machine, input, Arc::new(LocalInvoker::new(env)), opts).await;
    let output = execution
        .output
        .clone()
        .or_else(|| failure_report(&execution))
        .unwrap_or(Value::Null);
    let code = match &execution.status {
        ExecutionStatus::Succeeded => 0,
        ExecutionStatus::Failed { error, cause } => {
            if !g.json {
                eprintln!("lifeboat: workflow {name} failed: {error}: {cause}");
            }
            EXIT_WORKFLOW_FAILED
        }
        ExecutionStatus::TimedOut => {
            if !g.json {
                eprintln!("lifeboat: workflow {name} timed out");
            }
            EXIT_WORKFLOW_FAILED
        }
    };
    if g.json {
        print_json(&execution)?;
    }
    Ok((code, output))
}

/// A failed execution has no output; its report is the result of the
/// `ReportFailure` state, when that ran.
fn failure_report(execution: &lifeboat_workflow::Execution) -> Option<Value> {
    execution
        .history
        .iter()
        .rev()
        .find(|e| {
            e.event_type == lifeboat_workflow::HistoryEventType::TaskSucceeded
                && e.state.as_deref() == Some("ReportFailure")
        })
        .and_then(|e| e.data.clone())
        .map(|report| serde_json::json!({ "report": report }))
}

fn settings(g: &GlobalArgs, fleet: Option<String>, replica: Option<String>) -> Settings {
    let mut s = Settings::from_env();
    if g.repo.is_some() {
        s.repository = g.repo.clone();
    }
    if fleet.is_some() {
        s.fleet = fleet;
    }
    if replica.is_some() {
        s.replica = replica;
    }
    s
}

pub async fn workflow_run(g: &GlobalArgs, a: RunArgs) -> Result<u8> {
    let machine = load_machine(&a.definition)?;
    let text = std::fs::read_to_string(&a.input)
        .with_context(|| format!("cannot read input {}", a.input.display()))?;
    let input: Value = serde_json::from_str(&text)
        .with_context(|| format!("input {} is not JSON", a.input.display()))?;
    let request = Request::from_value(input.clone())
        .with_context(|| format!("input {}", a.input.display()))?;
    let name = a.name.unwrap_or_else(|| {
        lifeboat_steps::trigger::execution_name(&request, &chrono::Utc::now().to_rfc3339())
    });
    let (code, output) = execute(
        g,
        &machine,
        input,
        settings(g, a.fleet, a.replica),
        name,
        a.timing,
    )
    .await?;
    if !g.json {
        print_report(output.get("report"));
    }
    Ok(code)
}

pub async fn failover(g: &GlobalArgs, a: FailoverArgs) -> Result<u8> {
    let mut s = settings(g, a.fleet, None);
    let env = Environment::new(s.clone());
    let fleet = lifeboat_steps::StepEnv::fleet(&env).await?;
    let region = fleet.region(&a.to_region)?;
    fleet.cluster(&a.cluster)?;
    if a.from_region == a.to_region {
        bail!("--from-region and --to-region are both {}", a.to_region);
    }
    s.repository = Some(region.repository.clone());
    let request = Request {
        version: 1,
        action: Action::Restore,
        cluster: a.cluster.clone(),
        scope: None,
        tags: Default::default(),
        idempotency_key: None,
        reply_to: None,
        requested_by: lifeboat_steps::request::RequestedBy::Runbook,
        source_cluster: a.source_cluster.clone(),
        snapshot: Some(a.snapshot.clone()),
        // Run here with the operator's own credentials; no trigger in between.
        sender: None,
        reattach_volumes: a.reattach_volumes,
        namespace_map: a.namespace_map.into_iter().collect(),
        storage_class_map: a.storage_class_map.into_iter().collect(),
        modifiers: a
            .modifiers
            .as_deref()
            .map(crate::cmd_restore::read_modifiers)
            .transpose()?,
    };
    // Checked as the trigger checks a queued request, before anything runs.
    let request = Request::from_value(serde_json::to_value(&request)?)
        .map_err(|e| anyhow::anyhow!("failover request: {e}"))?;
    let machine = load_machine(&a.definition)?;
    if !g.json {
        eprintln!(
            "failover from {} to {}: restoring {} from {} into {}",
            a.from_region,
            a.to_region,
            request.source(),
            region.repository,
            a.cluster
        );
    }
    let name = format!(
        "failover-{}-{}",
        a.cluster,
        chrono::Utc::now().format("%Y%m%dT%H%M%S")
    );
    let (code, output) = execute(
        g,
        &machine,
        serde_json::to_value(&request)?,
        s,
        name,
        a.timing,
    )
    .await?;
    if !g.json {
        print_report(output.get("report"));
    }
    Ok(code)
}

fn secs(v: Option<&Value>) -> String {
    v.and_then(Value::as_f64)
        .map_or_else(|| "-".into(), |s| format!("{s:.1} s"))
}

/// The human summary of a workflow report.
fn print_report(report: Option<&Value>) {
    let Some(r) = report else { return };
    let get = |p: &str| r.pointer(p).cloned().unwrap_or(Value::Null);
    println!(
        "outcome:        {}",
        get("/outcome").as_str().unwrap_or("-")
    );
    println!(
        "cluster:        {}",
        get("/cluster").as_str().unwrap_or("-")
    );
    if let Some(s) = r.get("snapshot").and_then(Value::as_str) {
        println!("snapshot:       {}", &s[..s.len().min(16)]);
    }
    if r.get("stored").is_some() {
        println!(
            "objects:        {} ({} bytes, {} new, {} stored)",
            get("/stored/objects"),
            get("/stored/bytes"),
            get("/stored/bytes_new"),
            get("/stored/bytes_stored")
        );
        if let Some(d) = r.get("dedup_ratio").and_then(Value::as_f64) {
            println!("reduction:      {d:.1}x (deduplication and compression)");
        }
        println!(
            "verified:       {} (packs read {}, objects read back {}, locks checked {})",
            get("/verified/ok"),
            get("/verified/packs_read"),
            get("/verified/objects_decoded"),
            get("/verified/objects_lock_checked")
        );
        println!(
            "locks:          {} ({} objects, until {})",
            get("/locks/locked"),
            get("/locks/objects"),
            get("/locks/until").as_str().unwrap_or("-")
        );
        println!(
            "replica:        {} ({} packs, {} bytes copied; verified {})",
            get("/replica/repository").as_str().unwrap_or("-"),
            get("/replica/packs_copied"),
            get("/replica/bytes_copied"),
            get("/replica_verified/ok")
        );
    }
    let list = |p: &str| {
        r.pointer(p)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    for v in list("/stored/volumes") {
        let g = |k: &str| v.get(k).cloned().unwrap_or(Value::Null);
        println!(
            "volume:         {}/{} ({} mover, {} bytes read{}, {} stored)",
            g("namespace").as_str().unwrap_or("-"),
            g("claim").as_str().unwrap_or("-"),
            g("mover").as_str().unwrap_or("-"),
            g("bytes_read"),
            if v.get("base").is_some() {
                ", changed blocks only"
            } else {
                ""
            },
            g("bytes_stored")
        );
    }
    for v in list("/volume_groups") {
        println!("group:          {}", v.as_str().unwrap_or("-"));
    }
    for v in list("/stored/volumes_failed") {
        println!("copy FAILED:    {}", v.as_str().unwrap_or("-"));
    }
    for v in list("/volumes_not_copied") {
        println!("NOT copied:     {}", v.as_str().unwrap_or("-"));
    }
    for v in list("/volumes_left_out") {
        println!("left out:       {}", v.as_str().unwrap_or("-"));
    }
    for v in list("/volumes_restored") {
        let g = |k: &str| v.get(k).cloned().unwrap_or(Value::Null);
        println!(
            "volume:         {}/{} restored as {} ({} blocks, {} bytes; matches the backup: {})",
            g("namespace").as_str().unwrap_or("-"),
            g("claim").as_str().unwrap_or("-"),
            g("handle").as_str().unwrap_or("-"),
            g("blocks_written"),
            g("bytes_written"),
            g("matched")
        );
    }
    for v in list("/volumes_not_restored") {
        println!("not restored:   {}", v.as_str().unwrap_or("-"));
    }
    if r.get("rpo_secs").is_some() {
        println!("restored:       {}", get("/restored"));
        println!("ready:          {}", get("/ready"));
        println!("RPO:            {}", secs(r.get("rpo_secs")));
        println!("RTO:            {}", secs(r.get("rto_secs")));
    }
    if r.get("stored").is_none() {
        // A verify: each copy's verdict.
        for (label, key) in [("verified:", "verified"), ("DR copy:", "replica_verified")] {
            if let Some(v) = r.get(key) {
                let g = |k: &str| v.get(k).cloned().unwrap_or(Value::Null);
                println!(
                    "{label:<16}{} in {} (packs read {}, objects read back {}, locks checked {})",
                    g("ok"),
                    g("repository").as_str().unwrap_or("-"),
                    g("packs_read"),
                    g("objects_decoded"),
                    g("objects_lock_checked")
                );
            }
        }
    }
    for a in list("/alerts") {
        let g = |k: &str| a.get(k).and_then(Value::as_str).unwrap_or("-").to_string();
        let sent = a.get("published").and_then(Value::as_str).map_or_else(
            || " (logged only)".to_string(),
            |id| format!(" (published, {id})"),
        );
        println!("ALERT:          {}: {}{sent}", g("kind"), g("message"));
    }
    if let Some(f) = r.get("failure") {
        println!(
            "failure:        {}: {}",
            get("/failure/Error"),
            f.get("Cause").and_then(Value::as_str).unwrap_or("")
        );
    }
    if let Some(id) = r.get("report").and_then(Value::as_str) {
        println!("report:         reports/{id}");
    }
}
