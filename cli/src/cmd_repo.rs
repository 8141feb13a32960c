//! `lifeboat repo ...`

use crate::context::GlobalArgs;
use crate::output::{bytes, print_json, print_store_line, with_store};
use crate::progress::Reporter;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use lifeboat_ops::check::{check, CheckOptions, Severity};
use lifeboat_ops::forget::RetentionPolicy;
use lifeboat_ops::prune::{prune, PruneOptions};
use lifeboat_ops::repair::{repair, RepairOptions};
use lifeboat_ops::{extend_locks, replicate, stats, Progress};
use lifeboat_repo::{
    ChunkingParams, Credential, Format, InitOptions, KdfParams, LockPolicy, Repository,
};
use lifeboat_store::LockMode;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    /// Create a new repository.
    Init(InitArgs),
    /// Verify the repository: snapshots, indexes, packs and locks.
    Check {
        /// Also download every pack and verify every blob.
        #[arg(long)]
        read_data: bool,
    },
    /// Show what the repository holds.
    Stats,
    /// Forget snapshots by a GFS policy and delete unreferenced, unlocked data.
    Prune(PruneArgs),
    /// Extend the Object Lock of every object a snapshot needs (never shortens).
    ExtendLocks,
    /// Make a damaged repository usable again without deleting anything:
    /// re-index packs that no readable index file lists (superseding index
    /// files that cannot be read) and mark snapshots whose data is missing.
    Repair {
        /// Show what would be done without writing anything.
        #[arg(long)]
        dry_run: bool,
        /// Also read every pack when deciding which snapshots are damaged.
        #[arg(long)]
        read_data: bool,
    },
    /// Remove stale repository locks left by killed processes (stale by the
    /// store's clock), and lock objects that do not parse or are dated in the
    /// future.
    Unlock {
        /// Remove every lock, also those of running operations.
        #[arg(long)]
        all: bool,
    },
    /// List the key objects (one per passphrase or key file).
    Keys,
    /// Remove a key object by id (not the one in use, not the last one).
    RemoveKey { id: String },
    /// Add a passphrase or key file that opens the repository (change the
    /// passphrase by adding the new one, then removing the old key object).
    AddKey {
        /// File holding the new passphrase (first line).
        #[arg(long, conflicts_with = "new_key_file")]
        new_password_file: Option<PathBuf>,
        /// New key file (at least 32 random bytes).
        #[arg(long)]
        new_key_file: Option<PathBuf>,
    },
    /// Copy what this repository holds and the replica lacks into a second
    /// repository (another region, cloud or disk), creating it if empty.
    Replicate {
        /// The replica, on any store: a path, file:///path, s3://bucket/prefix,
        /// azure://account/container/prefix or gs://bucket/prefix.
        #[arg(long)]
        to: String,
    },
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Retention mode for every object written (needs --lock-days): S3 Object
    /// Lock, Azure version-level immutability or GCS object retention, which
    /// the bucket or container must have enabled.
    #[arg(long, requires = "lock_days")]
    lock_mode: Option<LockMode>,
    /// Days each object stays locked after it is written or extended.
    #[arg(long, requires = "lock_mode")]
    lock_days: Option<u32>,
    /// zstd level, 1 (fastest) to 19 (smallest).
    #[arg(long, default_value_t = 3)]
    compression_level: i32,
    /// Target pack size in MiB.
    #[arg(long, default_value_t = 16)]
    pack_size_mib: u32,
    /// Fixed chunk size for block devices and images, in KiB.
    #[arg(long, default_value_t = 64)]
    fixed_chunk_kib: u32,
    /// Also write a recovery key file here (created 0600, never overwritten):
    /// a second, random credential that opens the repository for a
    /// break-glass restore when the passphrase store is gone. Keep it offline.
    #[arg(long)]
    recovery_key_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    #[arg(long, default_value_t = 0)]
    keep_last: u32,
    #[arg(long, default_value_t = 0)]
    keep_hourly: u32,
    #[arg(long, default_value_t = 0)]
    keep_daily: u32,
    #[arg(long, default_value_t = 0)]
    keep_weekly: u32,
    #[arg(long, default_value_t = 0)]
    keep_monthly: u32,
    #[arg(long, default_value_t = 0)]
    keep_yearly: u32,
    /// Show what would be removed without removing anything (takes no lock).
    #[arg(long)]
    dry_run: bool,
    /// Keep unreferenced packs younger than this (e.g. 6h, 30m, 2d, 0):
    /// a backup under way may not have written its snapshot yet.
    #[arg(long, default_value = "6h", value_parser = parse_grace)]
    grace: chrono::Duration,
    /// Delete reports (workflow, restore and verification records) older
    /// than this many days, once unlocked; verification records of
    /// snapshots still in the repository are always kept. 0 keeps every
    /// report.
    #[arg(long, default_value_t = 400, value_parser = clap::value_parser!(u32).range(0..=36500))]
    keep_reports_days: u32,
}

fn parse_grace(s: &str) -> Result<chrono::Duration, String> {
    if s == "0" {
        return Ok(chrono::Duration::zero());
    }
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num
        .parse()
        .map_err(|_| format!("grace {s:?} is not a number with a unit (30m, 6h, 2d)"))?;
    let grace = match unit {
        "s" => chrono::Duration::try_seconds(n),
        "m" => chrono::Duration::try_minutes(n),
        "h" => chrono::Duration::try_hours(n),
        "d" => chrono::Duration::try_days(n),
        _ => return Err(format!("grace {s:?}: the unit is s, m, h or d")),
    };
    match grace {
        Some(g) if g <= lifeboat_ops::prune::MAX_GRACE => Ok(g),
        _ => Err(format!(
            "grace {s:?} is longer than the longest allowed, {} days",
            lifeboat_ops::prune::MAX_GRACE.num_days()
        )),
    }
}

pub async fn run(g: &GlobalArgs, cmd: RepoCommand) -> Result<u8> {
    match cmd {
        RepoCommand::Init(a) => init(g, a).await,
        RepoCommand::Check { read_data } => run_check(g, read_data).await,
        RepoCommand::Stats => {
            let repo = g.open().await?;
            let s = stats::stats(&repo).await?;
            if g.json {
                print_json(&s)?;
            } else {
                println!(
                    "repository      {} (format v{})",
                    s.location, s.format_version
                );
                println!("snapshots       {}", s.snapshots);
                println!(
                    "objects         {} ({} packs, {} index files)",
                    s.objects, s.packs, s.index_files
                );
                println!("stored          {}", bytes(s.stored_bytes));
                println!(
                    "unique data     {} in {} data and {} tree blobs",
                    bytes(s.unique_bytes),
                    s.data_blobs,
                    s.tree_blobs
                );
                println!(
                    "logical data    {} over all snapshots",
                    bytes(s.logical_bytes)
                );
                println!("deduplication   {:.2}x", s.dedup_ratio);
                println!("compression     {:.2}x", s.compression_ratio);
                println!(
                    "object lock     {}",
                    s.object_lock.as_deref().unwrap_or("none")
                );
            }
            Ok(0)
        }
        RepoCommand::Prune(a) => run_prune(g, a).await,
        RepoCommand::Replicate { to } => run_replicate(g, &to).await,
        RepoCommand::ExtendLocks => {
            let repo = g.open().await?;
            let progress = Arc::new(Progress::default());
            let reporter = Reporter::start(progress.clone(), g.json);
            let r = extend_locks::extend_locks(&repo, &Default::default(), progress).await?;
            drop(reporter);
            if g.json {
                print_json(&r)?;
            } else {
                println!(
                    "{} objects: {} extended to {}, {} already locked long enough",
                    r.objects, r.extended, r.until, r.already_sufficient
                );
            }
            Ok(0)
        }
        RepoCommand::Repair { dry_run, read_data } => run_repair(g, dry_run, read_data).await,
        RepoCommand::Unlock { all } => {
            let repo = g.open().await?;
            let n = repo.unlock(all).await?;
            if g.json {
                print_json(&serde_json::json!({ "removed": n }))?;
            } else {
                println!("removed {n} lock(s)");
            }
            Ok(0)
        }
        RepoCommand::Keys => {
            let repo = g.open().await?;
            let keys = repo.keys().await?;
            if g.json {
                let v: Vec<_> = keys
                    .iter()
                    .map(|(id, k)| serde_json::json!({ "id": id.to_hex(), "created": k.created, "hostname": k.hostname, "kdf": k.kdf, "in_use": Some(*id) == repo.key_id() }))
                    .collect();
                print_json(&v)?;
            } else {
                for (id, k) in &keys {
                    let kind = match k.kdf {
                        lifeboat_repo::KdfParams::Argon2id { .. } => "passphrase",
                        lifeboat_repo::KdfParams::Keyfile { .. } => "key file",
                    };
                    let used = if Some(*id) == repo.key_id() {
                        "  (in use)"
                    } else {
                        ""
                    };
                    println!(
                        "{}  {:<10}  {}  {}{used}",
                        id.short(),
                        kind,
                        k.created.format("%Y-%m-%d %H:%M:%S"),
                        k.hostname
                    );
                }
            }
            Ok(0)
        }
        RepoCommand::RemoveKey { id } => {
            let repo = g.open().await?;
            // Every key object, usable or not: a junk one can be removed too.
            let keys = repo.list_ids(lifeboat_repo::FileKind::Key).await?;
            let matches: Vec<_> = keys
                .iter()
                .filter(|k| k.to_hex().starts_with(&id.to_ascii_lowercase()))
                .collect();
            let [key_id] = matches.as_slice() else {
                bail!("{id:?} matches {} keys; give a unique prefix of an id from `lifeboat repo keys`", matches.len());
            };
            let outcome = repo.remove_key(key_id).await?;
            if g.json {
                let mut v = serde_json::json!({ "removed": key_id.to_hex() });
                if let lifeboat_repo::KeyRemoval::Revoked { until } = &outcome {
                    v = serde_json::json!({ "revoked": key_id.to_hex(), "locked_until": until });
                }
                print_json(&v)?;
            } else {
                match outcome {
                    lifeboat_repo::KeyRemoval::Removed => {
                        println!("removed key {}", key_id.short())
                    }
                    lifeboat_repo::KeyRemoval::Revoked { until } => println!(
                        "key {} is locked until {until}: marked revoked; its lock is no longer extended, and `repo prune` deletes it once the lock has expired (until then it still opens the repository)",
                        key_id.short()
                    ),
                }
            }
            Ok(0)
        }
        RepoCommand::AddKey {
            new_password_file,
            new_key_file,
        } => {
            let repo = g.open().await?;
            let cred = match (new_password_file, new_key_file) {
                (Some(p), None) => {
                    let text = std::fs::read_to_string(&p)
                        .with_context(|| format!("cannot read {}", p.display()))?;
                    let line = text.lines().next().unwrap_or("").to_string();
                    if line.is_empty() {
                        bail!("{} is empty", p.display());
                    }
                    Credential::Passphrase(line)
                }
                (None, Some(k)) => Credential::KeyFile(
                    std::fs::read(&k).with_context(|| format!("cannot read {}", k.display()))?,
                ),
                _ => bail!("give --new-password-file or --new-key-file"),
            };
            let id = repo
                .add_key(&cred, KdfParams::for_credential(&cred)?)
                .await?;
            if g.json {
                print_json(&serde_json::json!({ "key": id.to_hex() }))?;
            } else {
                println!("added key {id}");
            }
            Ok(0)
        }
    }
}

async fn init(g: &GlobalArgs, a: InitArgs) -> Result<u8> {
    let cred = g.credential()?;
    let store = g.store().await?;
    let opts = InitOptions {
        chunking: ChunkingParams {
            fixed_size: a.fixed_chunk_kib.saturating_mul(1024),
            ..ChunkingParams::default()
        },
        compression_level: a.compression_level,
        pack_size: a.pack_size_mib.saturating_mul(1024 * 1024),
        object_lock: match (a.lock_mode, a.lock_days) {
            (Some(mode), Some(days)) => Some(LockPolicy { mode, days }),
            _ => None,
        },
        kdf: None,
        format: Format::LATEST,
    };
    let location = store.location();
    // The recovery key is on disk before the repository exists, so a
    // repository never holds a key object whose secret was lost.
    let recovery = match &a.recovery_key_file {
        Some(path) => Some((path, write_recovery_key(path)?)),
        None => None,
    };
    let created = Repository::init(store, &cred, opts).await;
    let repo = match created {
        Ok(repo) => repo,
        Err(e) => {
            if let Some((path, _)) = &recovery {
                let _ = std::fs::remove_file(path);
            }
            return Err(e).with_context(|| format!("cannot create a repository at {location}"));
        }
    };
    let recovery_key = match recovery {
        Some((path, key)) => {
            let id = repo
                .add_key(&key, KdfParams::for_credential(&key)?)
                .await
                .with_context(|| {
                    format!(
                        "the repository was created but its recovery key was not added ({} is not usable; add one with `lifeboat repo add-key --new-key-file`)",
                        path.display()
                    )
                })?;
            Some((path, id))
        }
        None => None,
    };
    if g.json {
        print_json(repo.config())?;
    } else {
        println!(
            "created repository {} (format v{}) at {location}",
            repo.config().id.short(),
            repo.config().version
        );
        if let Some((path, id)) = &recovery_key {
            println!(
                "recovery key {} written to {}: keep it offline, apart from the passphrase",
                id.short(),
                path.display()
            );
        }
        if let Some(p) = repo.config().object_lock {
            println!(
                "every object is written with {} Object Lock for {} days",
                p.mode, p.days
            );
        }
    }
    Ok(0)
}

async fn run_check(g: &GlobalArgs, read_data: bool) -> Result<u8> {
    // Check judges the store's copy: never the cache's.
    let (repo, meter) = g.open_metered().await?;
    let repo = repo.without_cache();
    let progress = Arc::new(Progress::default());
    let reporter = Reporter::start(progress.clone(), g.json);
    let report = check(
        &repo,
        CheckOptions {
            read_data,
            snapshots: None,
        },
        progress,
    )
    .await?;
    drop(reporter);
    if g.json {
        print_json(&with_store(serde_json::to_value(&report)?, &meter))?;
    } else {
        for p in &report.problems {
            let tag = match p.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            let affects = if p.snapshots.is_empty() {
                String::new()
            } else {
                format!(" (affects snapshots {})", p.snapshots.join(", "))
            };
            println!("{tag}: {}: {}{affects}", p.object, p.message);
        }
        println!(
            "checked {} snapshots, {} trees, {} blobs, {} packs{}{}",
            report.snapshots,
            report.trees,
            report.blobs_referenced,
            report.packs,
            if read_data {
                format!(
                    ", read {} in {} packs",
                    bytes(report.bytes_read),
                    report.packs_read
                )
            } else {
                String::new()
            },
            if report.objects_lock_checked > 0 {
                format!(", {} object locks", report.objects_lock_checked)
            } else {
                String::new()
            },
        );
        let errors = report.errors();
        if errors == 0 {
            println!("no errors found");
        } else {
            println!("{errors} error(s) found");
        }
        print_store_line(&meter);
    }
    Ok(if report.errors() == 0 { 0 } else { 1 })
}

async fn run_repair(g: &GlobalArgs, dry_run: bool, read_data: bool) -> Result<u8> {
    let repo = g.open_uncached().await?;
    let progress = Arc::new(Progress::default());
    let reporter = Reporter::start(progress.clone(), g.json);
    let r = repair(&repo, &RepairOptions { dry_run, read_data }, progress).await?;
    drop(reporter);
    if g.json {
        print_json(&r)?;
        return Ok(0);
    }
    let (will, would) = if r.dry_run {
        ("would ", "would be ")
    } else {
        ("", "")
    };
    for u in &r.index_files_superseded {
        println!("{}: {would}superseded ({})", u.object, u.reason);
    }
    for u in &r.packs_unreadable {
        println!("{}: cannot be indexed ({})", u.object, u.reason);
    }
    match r.index_written {
        Some(id) => println!(
            "wrote index {} covering {} pack(s) ({} blobs)",
            id.short(),
            r.packs_indexed,
            r.blobs_indexed
        ),
        None if r.packs_indexed > 0 || !r.index_files_superseded.is_empty() => println!(
            "{will}write an index covering {} pack(s) ({} blobs)",
            r.packs_indexed, r.blobs_indexed
        ),
        None => println!("the index is whole"),
    }
    for id in &r.snapshots_marked {
        println!(
            "snapshot {}: {would}marked damaged (data missing or refused)",
            id.short()
        );
    }
    for id in &r.snapshots_still_damaged {
        println!("snapshot {}: still damaged (marked before)", id.short());
    }
    for id in &r.markers_removed {
        println!(
            "snapshot {}: damage mark {would}removed (whole again, or gone)",
            id.short()
        );
    }
    for u in &r.skipped_objects {
        println!(
            "{}: cannot be read ({}); commands skip it",
            u.object, u.reason
        );
    }
    Ok(0)
}

async fn run_prune(g: &GlobalArgs, a: PruneArgs) -> Result<u8> {
    let policy = RetentionPolicy {
        last: a.keep_last,
        hourly: a.keep_hourly,
        daily: a.keep_daily,
        weekly: a.keep_weekly,
        monthly: a.keep_monthly,
        yearly: a.keep_yearly,
    };
    if policy.is_empty() {
        bail!("no retention given: pass at least one --keep-* option (an empty policy would keep everything)");
    }
    let repo = g.open().await?;
    let progress = Arc::new(Progress::default());
    let reporter = Reporter::start(progress.clone(), g.json);
    let r = prune(
        &repo,
        &PruneOptions {
            policy,
            dry_run: a.dry_run,
            grace: a.grace,
            keep_reports: (a.keep_reports_days > 0)
                .then(|| chrono::Duration::days(i64::from(a.keep_reports_days))),
        },
        progress,
    )
    .await?;
    drop(reporter);
    if g.json {
        print_json(&r)?;
        return Ok(0);
    }
    for d in &r.decisions {
        let verdict = if d.keep {
            format!("keep ({})", d.reasons.join(", "))
        } else if r.snapshots_locked.contains(&d.id) {
            "keep (locked)".into()
        } else {
            "remove".into()
        };
        println!(
            "{}  {}  {verdict}",
            d.id.short(),
            d.time.format("%Y-%m-%d %H:%M:%S")
        );
    }
    if r.packs_pending > 0 {
        println!(
            "{} unreferenced pack(s) kept for backups under way ({})",
            r.packs_pending,
            r.pending_runs.join(", ")
        );
    }
    let verb = if r.dry_run { "would remove" } else { "removed" };
    println!(
        "{verb} {} snapshot(s) and {} pack(s), freeing {}; {} pack(s) kept, {} unreferenced pack(s) still locked, {} younger than the grace period",
        r.snapshots_removed.len(),
        r.packs_deleted,
        bytes(r.bytes_freed),
        r.packs_kept,
        r.packs_locked,
        r.packs_recent
    );
    if let Some(reports) = &r.reports {
        println!(
            "reports: {verb} {} older than the retention; kept {} verification record(s) of snapshots still here, {} still locked, {} unreadable",
            reports.removed, reports.kept_for_snapshots, reports.locked, reports.unreadable
        );
    }
    Ok(0)
}

async fn run_replicate(g: &GlobalArgs, to: &str) -> Result<u8> {
    let repo = g.open().await?;
    let dst = lifeboat_stores::open(to, &Default::default())
        .await
        .with_context(|| format!("cannot open the replica {to}"))?;
    let (replica, initialized) = replicate::open_replica(&repo, dst, &g.credential()?).await?;
    let progress = Arc::new(Progress::default());
    let reporter = Reporter::start(progress.clone(), g.json);
    let r = replicate::replicate(&repo, &replica, progress).await?;
    drop(reporter);
    if g.json {
        print_json(&serde_json::json!({ "initialized": initialized, "report": r }))?;
    } else {
        println!(
            "{}{} pack(s), {} index file(s), {} snapshot(s) copied ({}), {} already present",
            if initialized { "replica created; " } else { "" },
            r.packs_copied,
            r.indexes_copied,
            r.snapshots_copied,
            bytes(r.bytes_copied),
            r.already_present
        );
    }
    Ok(0)
}

/// Write a fresh recovery key (32 random bytes, as 64 hex digits and a
/// newline: printable, and the file's bytes are the key) to a new file that
/// only its owner can read.
fn write_recovery_key(path: &std::path::Path) -> Result<Credential> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut raw = [0u8; 32];
    getrandom::getrandom(&mut raw)
        .map_err(|e| anyhow::anyhow!("no randomness for the recovery key: {e}"))?;
    let mut text: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    text.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| {
            format!(
                "cannot create the recovery key file {} (it must not exist yet)",
                path.display()
            )
        })?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write the recovery key file {}", path.display()))?;
    Ok(Credential::KeyFile(text.into_bytes()))
}
