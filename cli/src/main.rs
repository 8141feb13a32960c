//! `lifeboat`: the command-line front end. Argument parsing, credentials and
//! output formatting live here; every operation is a call into `lifeboat-ops`.

mod cmd_cluster;
mod cmd_demo;
mod cmd_dev;
mod cmd_repo;
mod cmd_restore;
mod cmd_snapshots;
mod cmd_volume;
mod cmd_workflow;
mod context;
mod output;
mod progress;

use clap::{Parser, Subcommand};
use context::GlobalArgs;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "lifeboat",
    version,
    about = "Backup and restore for Kubernetes applications and their volumes"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Back up the API objects of a cluster (CRDs and custom resources included).
    Backup(cmd_cluster::BackupArgs),
    /// Restore the API objects of a cluster snapshot into a cluster.
    Restore(cmd_restore::RestoreArgs),
    /// Create, verify, inspect and maintain a repository.
    #[command(subcommand)]
    Repo(cmd_repo::RepoCommand),
    /// Back up and restore files, directories, block devices and disk images.
    #[command(subcommand)]
    Volume(cmd_volume::VolumeCommand),
    /// List snapshots.
    Snapshots(cmd_snapshots::ListArgs),
    /// Show one snapshot or compare two.
    #[command(subcommand)]
    Snapshot(cmd_snapshots::SnapshotCommand),
    /// Run a workflow definition locally, its steps in-process.
    #[command(subcommand)]
    Workflow(WorkflowCommand),
    /// Restore a cluster in the DR region from that region's repository
    /// (the restore workflow, run locally), and print RPO and RTO.
    Failover(cmd_workflow::FailoverArgs),
    /// Run the main job end to end on generated data: back up, change, back up
    /// again, restore, verify, and print a report.
    Demo(cmd_demo::DemoArgs),
    /// Benchmark and test helpers.
    #[command(subcommand, hide = true)]
    Dev(cmd_dev::DevCommand),
}

#[derive(Debug, Subcommand)]
enum WorkflowCommand {
    /// Execute infra/statemachine/*.asl.json with each Task run in-process.
    Run(cmd_workflow::RunArgs),
}

/// Exit codes: 0 success, 1 failure, 3 finished but some input could not be read.
pub const EXIT_INCOMPLETE: u8 = 3;

fn main() -> ExitCode {
    lifeboat_ops::memory::tune_malloc();
    let cli = Cli::parse();
    output::init_tracing(cli.global.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lifeboat: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Backup(a) => cmd_cluster::backup(&cli.global, a).await,
            Command::Restore(a) => cmd_restore::restore(&cli.global, a).await,
            Command::Repo(c) => cmd_repo::run(&cli.global, c).await,
            Command::Volume(c) => cmd_volume::run(&cli.global, c).await,
            Command::Snapshots(a) => cmd_snapshots::list(&cli.global, a).await,
            Command::Snapshot(c) => cmd_snapshots::run(&cli.global, c).await,
            Command::Workflow(WorkflowCommand::Run(a)) => {
                cmd_workflow::workflow_run(&cli.global, a).await
            }
            Command::Failover(a) => cmd_workflow::failover(&cli.global, a).await,
            Command::Demo(a) => cmd_demo::run(&cli.global, a).await,
            Command::Dev(c) => cmd_dev::run(&cli.global, c).await,
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("lifeboat: error: {}", output::error_chain(&e));
            ExitCode::FAILURE
        }
    }
}
