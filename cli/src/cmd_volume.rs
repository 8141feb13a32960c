//! `lifeboat volume backup|restore`

use crate::context::GlobalArgs;
use crate::output::{bytes, print_json, print_store_line, print_warnings, with_store};
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
        #[arg(long, conflicts_with = "parent")]
        no_parent: bool,
        /// The snapshot whose unchanged files need not be read again
        /// (default: the newest of the same paths from the same host). With
        /// one path and a parent of one path, they are matched whatever
        /// their names.
        #[arg(long)]
        parent: Option<String>,
        /// The host name to record (default: this machine's). The parent is
        /// the newest snapshot of the same paths from the same host, so a
        /// mover names the volume here (`cluster/namespace/claim`).
        #[arg(long)]
        host: Option<String>,
        /// Judge files unchanged since the parent by size and mtime only,
        /// not inode and ctime: for a source that is a fresh copy each
        /// time (a volume restored from a snapshot).
        #[arg(long)]
        ignore_inode: bool,
        /// Also write the `--json` result to this file (a mover Job's
        /// termination message: /dev/termination-log).
        #[arg(long)]
        result_file: Option<PathBuf>,
    },
    /// Restore a snapshot (id, unique id prefix, or `latest`) under TARGET.
    Restore {
        snapshot: String,
        target: PathBuf,
        /// Restore only this path of the snapshot (e.g. `data/db`), under TARGET.
        #[arg(long, conflicts_with = "path")]
        include: Option<PathBuf>,
        /// Restore the contents of this path into TARGET itself: a
        /// directory's entries into the directory TARGET, a file's data onto
        /// TARGET (a block device or file). Works on a cluster snapshot's
        /// volumes too: `--path volumes/<namespace>/<claim>`.
        #[arg(long)]
        path: Option<PathBuf>,
        /// Read everything restored back and compare it with the snapshot;
        /// a difference fails the command.
        #[arg(long)]
        verify: bool,
        /// Create the snapshot's character and block device nodes (as root
        /// only). Without it each is skipped with a warning.
        #[arg(long)]
        restore_devices: bool,
        /// Keep set-user-id and set-group-id bits on files. Without it they
        /// are cleared, with a warning per file.
        #[arg(long)]
        restore_setuid: bool,
        /// Also write the `--json` result to this file (a mover Job's
        /// termination message: /dev/termination-log).
        #[arg(long)]
        result_file: Option<PathBuf>,
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
            parent,
            host,
            ignore_inode,
            result_file,
        } => {
            let (repo, meter) = g.open_metered().await?;
            let progress = Arc::new(Progress::default());
            let reporter = Reporter::start(progress.clone(), g.json);
            let opts = BackupOptions {
                paths,
                tags: tags.into_iter().collect::<BTreeMap<_, _>>(),
                parent: match (no_parent, parent) {
                    (true, _) => ParentChoice::None,
                    (false, Some(p)) => ParentChoice::Snapshot(repo.resolve_snapshot(&p).await?.0),
                    (false, None) => ParentChoice::Auto,
                },
                hostname: host,
                ignore_inode,
            };
            let out = backup(&repo, opts, progress).await?;
            drop(reporter);
            print_warnings(&out.warnings, out.warning_count);
            let s = &out.snapshot.summary;
            let result = serde_json::json!({
                "snapshot": out.snapshot_id.to_hex(),
                "summary": s,
                "warnings": out.warnings,
                "warning_count": out.warning_count,
            });
            write_result(result_file.as_deref(), &result)?;
            if g.json {
                print_json(&with_store(result, &meter))?;
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
                print_store_line(&meter);
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
            path,
            verify,
            restore_devices,
            restore_setuid,
            result_file,
        } => {
            let (repo, meter) = g.open_metered().await?;
            let (id, snap) = repo.resolve_snapshot(&snapshot).await?;
            let volume_of_cluster = snap.kind == "cluster"
                && path
                    .as_ref()
                    .is_some_and(|p| p.starts_with(lifeboat_ops::cluster::VOLUMES_DIR));
            if snap.kind != "volume" && !volume_of_cluster {
                bail!(
                    "snapshot {} is a {} snapshot, not a volume snapshot (a cluster snapshot's volume is restored with --path {}/<namespace>/<claim>)",
                    id.short(),
                    snap.kind,
                    lifeboat_ops::cluster::VOLUMES_DIR
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
                    subtree: path,
                    verify,
                    restore_devices,
                    restore_setuid,
                },
                progress,
            )
            .await?;
            drop(reporter);
            for w in &s.warnings {
                eprintln!("warning: {w}");
            }
            let result =
                serde_json::json!({ "snapshot": id.to_hex(), "target": target, "summary": s });
            write_result(result_file.as_deref(), &result)?;
            if let Some(v) = s.verification.as_ref().filter(|v| !v.matched()) {
                for m in &v.mismatches {
                    eprintln!("differs: {m}");
                }
                bail!(
                    "the restore differs from snapshot {} in {} place(s), first: {}",
                    id.short(),
                    v.mismatch_count,
                    v.mismatches.first().map(String::as_str).unwrap_or("?")
                );
            }
            if g.json {
                print_json(&with_store(result, &meter))?;
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
                if let Some(v) = &s.verification {
                    println!(
                        "verified: {} files, {} read back, all matched",
                        v.files,
                        bytes(v.bytes)
                    );
                }
                print_store_line(&meter);
            }
            Ok(0)
        }
    }
}

/// Write a command's JSON result to `path` too, when asked (a Job's
/// termination message, which Kubernetes caps at 4096 bytes: the warnings
/// are cut to fit).
fn write_result(path: Option<&std::path::Path>, result: &serde_json::Value) -> Result<()> {
    let Some(path) = path else { return Ok(()) };
    let mut result = result.clone();
    let mut text = result.to_string();
    while text.len() > 4096 {
        let cut = ["warnings", "summary"].iter().any(|k| {
            let list = result
                .get_mut(*k)
                .and_then(|v| {
                    if *k == "summary" {
                        v.get_mut("warnings")
                    } else {
                        Some(v)
                    }
                })
                .and_then(serde_json::Value::as_array_mut);
            match list {
                Some(l) if !l.is_empty() => {
                    l.pop();
                    true
                }
                _ => false,
            }
        });
        if !cut {
            break;
        }
        text = result.to_string();
    }
    std::fs::write(path, text)
        .map_err(|e| anyhow::anyhow!("cannot write the result to {}: {e}", path.display()))
}
