//! `lifeboat snapshots` and `lifeboat snapshot show|diff`

use crate::context::GlobalArgs;
use crate::output::{bytes, print_json};
use anyhow::Result;
use clap::{Args, Subcommand};
use lifeboat_ops::diff::{diff, Change};

#[derive(Debug, Args)]
pub struct ListArgs {}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Show one snapshot's manifest.
    Show { snapshot: String },
    /// List the paths that differ between two snapshots.
    Diff { from: String, to: String },
}

pub async fn list(g: &GlobalArgs, _a: ListArgs) -> Result<u8> {
    let repo = g.open().await?;
    let listing = repo.snapshot_listing().await?;
    // Usable and damaged snapshots together, oldest first; damaged ones carry their marker.
    let mut snaps: Vec<_> = listing
        .usable
        .iter()
        .map(|(id, s)| (id, s, None))
        .chain(listing.damaged.iter().map(|(id, s, m)| (id, s, Some(m))))
        .collect();
    snaps.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(b.0)));
    if g.json {
        let v: Vec<_> = snaps
            .iter()
            .map(|(id, s, m)| match m {
                None => serde_json::json!({ "id": id.to_hex(), "snapshot": s }),
                Some(m) => serde_json::json!({ "id": id.to_hex(), "snapshot": s, "damaged": m }),
            })
            .collect();
        print_json(&v)?;
        return Ok(0);
    }
    println!(
        "{:<10} {:<20} {:<7} {:<16} {:>11}  paths",
        "id", "time (UTC)", "kind", "host", "size"
    );
    for (id, s, m) in &snaps {
        println!(
            "{:<10} {:<20} {:<7} {:<16} {:>11}  {}{}",
            id.short(),
            s.time.format("%Y-%m-%d %H:%M:%S"),
            s.kind,
            s.hostname,
            bytes(s.summary.bytes),
            s.paths.join(" "),
            if m.is_some() { "  (damaged)" } else { "" }
        );
    }
    for (id, why) in &listing.unreadable {
        eprintln!("skipped snapshot {}: {why}", id.short());
    }
    println!(
        "{} snapshot(s){}",
        snaps.len(),
        match listing.damaged.len() {
            0 => String::new(),
            n => format!(", {n} marked damaged (left out of latest; see `lifeboat repo check`)"),
        }
    );
    Ok(0)
}

pub async fn run(g: &GlobalArgs, cmd: SnapshotCommand) -> Result<u8> {
    let repo = g.open().await?;
    match cmd {
        SnapshotCommand::Show { snapshot } => {
            let (id, s) = repo.resolve_snapshot(&snapshot).await?;
            if g.json {
                print_json(&serde_json::json!({ "id": id.to_hex(), "snapshot": s }))?;
            } else {
                println!("snapshot   {id}");
                println!("time       {}", s.time.to_rfc3339());
                println!("kind       {}", s.kind);
                println!("host       {}", s.hostname);
                println!("paths      {}", s.paths.join(" "));
                for (k, v) in &s.tags {
                    println!("tag        {k}={v}");
                }
                if let Some(p) = s.parent {
                    println!("parent     {}", p.short());
                }
                let m = &s.summary;
                println!(
                    "files      {} in {} dirs, {}",
                    m.files,
                    m.dirs,
                    bytes(m.bytes)
                );
                println!("read       {}", bytes(m.bytes_read));
                println!(
                    "new        {} stored as {} ({} blobs, {} packs)",
                    bytes(m.bytes_new),
                    bytes(m.bytes_stored),
                    m.blobs_new,
                    m.packs_written
                );
                println!("duration   {:.1}s", m.duration_secs);
                if let Some(c) = &s.cluster {
                    println!("cluster    {} ({})", c.name, c.server);
                    println!("scope      {}", c.scope);
                    for r in &c.resources {
                        println!("  {:>6}  {}", r.objects, r.key());
                    }
                    for w in &c.warnings {
                        println!("warning    {w}");
                    }
                }
            }
        }
        SnapshotCommand::Diff { from, to } => {
            let (ia, a) = repo.resolve_snapshot(&from).await?;
            let (ib, b) = repo.resolve_snapshot(&to).await?;
            let entries = diff(&repo, &a, &b).await?;
            if g.json {
                print_json(
                    &serde_json::json!({ "from": ia.to_hex(), "to": ib.to_hex(), "changes": entries }),
                )?;
            } else {
                for e in &entries {
                    let c = match e.change {
                        Change::Added => "+",
                        Change::Removed => "-",
                        Change::Modified => "M",
                        Change::Metadata => "U",
                    };
                    println!("{c}  {}", e.path);
                }
                println!(
                    "{} change(s) from {} to {}",
                    entries.len(),
                    ia.short(),
                    ib.short()
                );
            }
        }
    }
    Ok(0)
}
