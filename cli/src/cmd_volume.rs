//! `lifeboat volume backup|restore`

use crate::context::GlobalArgs;
use crate::output::{bytes, print_json, print_warnings};
use crate::progress::Reporter;
use crate::EXIT_INCOMPLETE;
use anyhow::{bail, Result};
use clap::Subcommand;
use lifeboat_ops::backup::{backup, BackupOptions, ParentChoice};
use lifeboat_ops::restore::{restore, RestoreOptions};
use lifeboat_ops::Progress;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Back up files, directories, block devices or disk images; prints the snapshot id.
    Backup {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// A tag to record, as key=value (repeatable).
        #[arg(long = "tag", value_parser = parse_tag)]
        tags: Vec<(String, String)>,
        /// Read every file, even those unchanged since the last snapshot.
        #[arg(long)]
        no_parent: bool,
    },
    /// Restore a snapshot (id, unique id prefix, or `latest`) under TARGET.
    Restore {
        snapshot: String,
        target: PathBuf,
        /// Restore only this path of the snapshot (e.g. `data/db`).
        #[arg(long)]
        include: Option<PathBuf>,
    },
}

pub fn parse_tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("tag {s:?} is not key=value")),
    }
}

pub async fn run(g: &GlobalArgs, cmd: VolumeCommand) -> Result<u8> {
    match cmd {
        VolumeCommand::Backup {
            paths,
            tags,
            no_parent,
        } => {
            let repo = g.open().await?;
            let progress = Arc::new(Progress::default());
            let reporter = Reporter::start(progress.clone(), g.json);
            let opts = BackupOptions {
                paths,
                tags: tags.into_iter().collect::<BTreeMap<_, _>>(),
                parent: if no_parent {
                    ParentChoice::None
                } else {
                    ParentChoice::Auto
                },
                hostname: None,
            };
            let out = backup(&repo, opts, progress).await?;
            drop(reporter);
            print_warnings(&out.warnings, out.warning_count);
            let s = &out.snapshot.summary;
            if g.json {
                print_json(&serde_json::json!({
                    "snapshot": out.snapshot_id.to_hex(),
                    "summary": s,
                    "warnings": out.warnings,
                    "warning_count": out.warning_count,
                }))?;
            } else {
                eprintln!(
                    "{} files, {} dirs, {} ({} read); new {} stored as {} in {} packs; {:.1}s",
                    s.files,
                    s.dirs,
                    bytes(s.bytes),
                    bytes(s.bytes_read),
                    bytes(s.bytes_new),
                    bytes(s.bytes_stored),
                    s.packs_written,
                    s.duration_secs
                );
                println!("{}", out.snapshot_id);
            }
            Ok(if out.warning_count > 0 {
                EXIT_INCOMPLETE
            } else {
                0
            })
        }
        VolumeCommand::Restore {
            snapshot,
            target,
            include,
        } => {
            let repo = g.open().await?;
            let (id, snap) = repo.resolve_snapshot(&snapshot).await?;
            if snap.kind != "volume" {
                bail!(
                    "snapshot {} is a {} snapshot, not a volume snapshot",
                    id.short(),
                    snap.kind
                );
            }
            let progress = Arc::new(Progress::default());
            let reporter = Reporter::start(progress.clone(), g.json);
            let started = std::time::Instant::now();
            let s = restore(
                &repo,
                &id,
                &RestoreOptions {
                    target: target.clone(),
                    include,
                },
                progress,
            )
            .await?;
            drop(reporter);
            for w in &s.warnings {
                eprintln!("warning: {w}");
            }
            if g.json {
                print_json(
                    &serde_json::json!({ "snapshot": id.to_hex(), "target": target, "summary": s }),
                )?;
            } else {
                println!(
                    "restored snapshot {} to {}: {} files, {} dirs, {} symlinks, {} in {:.1}s",
                    id.short(),
                    target.display(),
                    s.files,
                    s.dirs,
                    s.symlinks,
                    bytes(s.bytes),
                    started.elapsed().as_secs_f64()
                );
            }
            Ok(0)
        }
    }
}
