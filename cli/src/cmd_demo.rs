//! `lifeboat demo`: the main job on the embedded default (a local repository):
//! generate data, back it up, change it, back it up again, restore, verify.

use crate::context::GlobalArgs;
use crate::output::{bytes, print_json};
use crate::progress::Reporter;
use anyhow::{Context, Result};
use clap::Args;
use lifeboat_ops::backup::{backup, BackupOptions};
use lifeboat_ops::check::{check, CheckOptions};
use lifeboat_ops::compare::compare_trees;
use lifeboat_ops::restore::{restore, RestoreOptions};
use lifeboat_ops::{sample_data, stats, Progress};
use lifeboat_repo::{Credential, InitOptions, Repository};
use lifeboat_store::{LocalStore, ObjectStore};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Working directory (emptied first): data, repository and restore go here.
    #[arg(long, default_value = "target/demo")]
    dir: PathBuf,
    /// Size of the generated data set in MiB.
    #[arg(long, default_value_t = 256)]
    size_mib: u64,
}

#[derive(Debug, Serialize)]
struct Step {
    name: &'static str,
    seconds: f64,
    bytes_read: u64,
    bytes_new: u64,
    bytes_stored: u64,
    throughput_mib_s: f64,
}

#[derive(Debug, Serialize)]
struct DemoReport {
    data_bytes: u64,
    files: u64,
    changed_bytes: u64,
    steps: Vec<Step>,
    restore_identical: bool,
    differences: Vec<String>,
    check_errors: usize,
    check_warnings: usize,
    repository_bytes: u64,
    repository_objects: u64,
    dedup_ratio: f64,
    compression_ratio: f64,
}

fn step(
    name: &'static str,
    started: Instant,
    logical: u64,
    s: Option<&lifeboat_repo::SnapshotSummary>,
) -> Step {
    let secs = started.elapsed().as_secs_f64();
    Step {
        name,
        seconds: secs,
        bytes_read: s.map_or(0, |s| s.bytes_read),
        bytes_new: s.map_or(0, |s| s.bytes_new),
        bytes_stored: s.map_or(0, |s| s.bytes_stored),
        throughput_mib_s: logical as f64 / secs.max(1e-6) / (1 << 20) as f64,
    }
}

pub async fn run(g: &GlobalArgs, a: DemoArgs) -> Result<u8> {
    let dir = std::path::absolute(&a.dir)?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot empty {}", dir.display()))?;
    }
    let data = dir.join("data");
    let restored = dir.join("restored");
    let say = |s: &str| {
        if !g.json {
            eprintln!("==> {s}");
        }
    };
    say(&format!(
        "generating {} MiB of sample data in {}",
        a.size_mib,
        data.display()
    ));
    let sample = sample_data::generate(&data, a.size_mib << 20, 42)?;

    say("creating an encrypted repository (local directory)");
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.join("repo")));
    let cred = match g.credential() {
        Ok(c) => c,
        // A throwaway passphrase that is never shown or stored.
        Err(_) => Credential::Passphrase(format!(
            "demo-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
        )),
    };
    let repo = Repository::init(store, &cred, InitOptions::default()).await?;
    let backup_step = |name: &'static str| {
        let (repo, data) = (&repo, &data);
        async move {
            say(name);
            let progress = Arc::new(Progress::default());
            let t = Instant::now();
            let reporter = Reporter::start(progress.clone(), g.json);
            let opts = BackupOptions {
                paths: vec![data.clone()],
                ..Default::default()
            };
            let out = backup(repo, opts, progress).await?;
            drop(reporter);
            let st = step(
                name,
                t,
                out.snapshot.summary.bytes,
                Some(&out.snapshot.summary),
            );
            Ok::<_, anyhow::Error>((out, st))
        }
    };
    let (_, full) = backup_step("full backup").await?;
    say("changing about 5% of the data");
    let changed = sample_data::mutate(&data, 0.05, 43)?;
    let (second, incremental) = backup_step("incremental backup").await?;
    let mut steps = vec![full, incremental];

    say("restoring the latest snapshot");
    let progress = Arc::new(Progress::default());
    let t = Instant::now();
    let reporter = Reporter::start(progress.clone(), g.json);
    let opts = RestoreOptions {
        target: restored.clone(),
        ..Default::default()
    };
    let r = restore(&repo, &second.snapshot_id, &opts, progress).await?;
    drop(reporter);
    steps.push(step("restore", t, r.bytes, None));
    let differences = compare_trees(&data, &restored.join("data"))?;

    say("checking the repository, reading all data");
    let progress = Arc::new(Progress::default());
    let t = Instant::now();
    let reporter = Reporter::start(progress.clone(), g.json);
    let c = check(
        &repo,
        CheckOptions {
            read_data: true,
            snapshots: None,
        },
        progress,
    )
    .await?;
    drop(reporter);
    steps.push(step("check --read-data", t, c.bytes_read, None));
    let s = stats::stats(&repo).await?;

    let report = DemoReport {
        data_bytes: sample.logical_bytes,
        files: second.snapshot.summary.files,
        changed_bytes: changed,
        steps,
        restore_identical: differences.is_empty(),
        differences: differences.iter().take(20).cloned().collect(),
        check_errors: c.errors(),
        check_warnings: c.problems.len() - c.errors(),
        repository_bytes: s.stored_bytes,
        repository_objects: s.objects,
        dedup_ratio: s.dedup_ratio,
        compression_ratio: s.compression_ratio,
    };
    if g.json {
        print_json(&report)?;
    } else {
        println!();
        println!(
            "Lifeboat demo: {} in {} files, {} changed between the two backups",
            bytes(report.data_bytes),
            report.files,
            bytes(report.changed_bytes)
        );
        println!(
            "{:<20} {:>9} {:>12} {:>12} {:>12} {:>10}",
            "step", "seconds", "read", "new", "stored", "MiB/s"
        );
        for st in &report.steps {
            println!(
                "{:<20} {:>9.2} {:>12} {:>12} {:>12} {:>10.1}",
                st.name,
                st.seconds,
                bytes(st.bytes_read),
                bytes(st.bytes_new),
                bytes(st.bytes_stored),
                st.throughput_mib_s
            );
        }
        println!(
            "restore identical:   {}",
            if report.restore_identical {
                "yes (content, modes, times, links)"
            } else {
                "NO"
            }
        );
        for d in &report.differences {
            println!("  differs: {d}");
        }
        println!(
            "check --read-data:   {} error(s), {} warning(s)",
            report.check_errors, report.check_warnings
        );
        println!(
            "repository:          {} in {} objects; dedup {:.2}x, compression {:.2}x",
            bytes(report.repository_bytes),
            report.repository_objects,
            report.dedup_ratio,
            report.compression_ratio
        );
    }
    Ok(if report.restore_identical && report.check_errors == 0 {
        0
    } else {
        1
    })
}
