//! `lifeboat dev ...`: tools for benchmarks and tests (hidden from help).

use crate::context::GlobalArgs;
use crate::output::print_json;
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use lifeboat_ops::volume::{copy_range, ByteRange, CopyOptions};
use lifeboat_ops::{sample_data, sample_volume, Progress};
use lifeboat_volume::ebs::{self, EbsSnapshot, EbsWriter, RequestCounter};
use lifeboat_volume::{BlockSink, BlockSource, ImageFile};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// Generate the sample data set (logs, JSON, random files, a sparse disk image).
    GenData {
        dir: PathBuf,
        #[arg(long, default_value_t = 256)]
        size_mib: u64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Change about FRACTION of the data set's bytes.
    Mutate {
        dir: PathBuf,
        #[arg(long, default_value_t = 0.05)]
        fraction: f64,
        #[arg(long, default_value_t = 43)]
        seed: u64,
    },
    /// Write a sparse volume image: holes, text, random data, scattered pages.
    GenImage {
        path: PathBuf,
        #[arg(long, default_value_t = 2048)]
        size_mib: u64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Rewrite about FRACTION of an image's 4 KiB pages; the pages go to --changes.
    MutateImage {
        path: PathBuf,
        #[arg(long, default_value_t = 0.015)]
        fraction: f64,
        #[arg(long, default_value_t = 43)]
        seed: u64,
        #[arg(long)]
        changes: PathBuf,
    },
    /// Write an image into a new EBS snapshot (EBS direct APIs; AWS settings
    /// from the environment); prints its id and the requests made.
    PutEbs { image: PathBuf },
    /// Copy a whole volume into the repository as copy-volume does (one
    /// range), from an image read in blocks of --block-size or from an EBS
    /// snapshot; prints the copy's figures, the requests made and the time.
    CopyVolume {
        #[arg(long, required_unless_present = "ebs_snapshot")]
        image: Option<PathBuf>,
        #[arg(long, default_value_t = 512 * 1024)]
        block_size: u32,
        #[arg(long, conflicts_with = "image")]
        ebs_snapshot: Option<String>,
        /// Incremental: the earlier copy's tree (`copy.tree` of its result).
        #[arg(long, requires = "base")]
        base_tree: Option<String>,
        /// Incremental: the earlier snapshot (EBS), or any name (an image
        /// with --changes).
        #[arg(long, requires = "base_tree")]
        base: Option<String>,
        /// For an image: the pages changed since the base (from mutate-image).
        #[arg(long, requires = "image")]
        changes: Option<PathBuf>,
    },
}

pub async fn run(g: &GlobalArgs, cmd: DevCommand) -> Result<u8> {
    match cmd {
        DevCommand::GenData {
            dir,
            size_mib,
            seed,
        } => {
            let s = sample_data::generate(&dir, size_mib << 20, seed)?;
            print_json(&s)?;
        }
        DevCommand::Mutate {
            dir,
            fraction,
            seed,
        } => {
            let changed = sample_data::mutate(&dir, fraction, seed)?;
            print_json(&serde_json::json!({ "changed_bytes": changed }))?;
        }
        DevCommand::GenImage {
            path,
            size_mib,
            seed,
        } => print_json(&sample_volume::generate_image(&path, size_mib << 20, seed)?)?,
        DevCommand::MutateImage {
            path,
            fraction,
            seed,
            changes,
        } => {
            let c = sample_volume::mutate_image(&path, fraction, seed)?;
            std::fs::write(&changes, serde_json::to_vec(&c)?)
                .with_context(|| format!("writing {}", changes.display()))?;
            print_json(&serde_json::json!({
                "changed_pages": c.pages.len(),
                "changed_bytes": c.changed_bytes(),
            }))?;
        }
        DevCommand::PutEbs { image } => {
            let counter = RequestCounter::default();
            let client = counter.count(&ebs::client_from_env().await);
            let len = std::fs::metadata(&image)
                .with_context(|| format!("reading {}", image.display()))?
                .len();
            let writer = EbsWriter::start(client, len, "lifeboat dev put-ebs", &[], "").await?;
            let source = ImageFile::open(&image, writer.geometry().block_size)?;
            let (snapshot, written) = sample_volume::put_blocks(&source, &writer, 16).await?;
            print_json(&serde_json::json!({
                "snapshot": snapshot,
                "blocks_written": written,
                "block_size": writer.geometry().block_size,
                "requests": counter.counts(),
            }))?;
        }
        DevCommand::CopyVolume {
            image,
            block_size,
            ebs_snapshot,
            base_tree,
            base,
            changes,
        } => {
            let counter = RequestCounter::default();
            let source: Box<dyn BlockSource> = match (image, ebs_snapshot) {
                (Some(path), _) => {
                    let img = ImageFile::open(&path, block_size)?;
                    match &changes {
                        Some(c) => {
                            let text = std::fs::read(c)
                                .with_context(|| format!("reading {}", c.display()))?;
                            Box::new(sample_volume::KnownChanges::new(
                                img,
                                serde_json::from_slice(&text)?,
                            ))
                        }
                        None => Box::new(img),
                    }
                }
                (None, Some(id)) => Box::new(EbsSnapshot::new(
                    counter.count(&ebs::client_from_env().await),
                    id,
                )),
                (None, None) => bail!("--image or --ebs-snapshot is required"),
            };
            let repo = g.open().await?;
            let started = std::time::Instant::now();
            let geometry = source.geometry().await?;
            let base = match (base_tree, base) {
                (Some(tree), Some(name)) => {
                    let id = tree
                        .parse()
                        .map_err(|e| anyhow::anyhow!("--base-tree {tree}: {e}"))?;
                    let index = repo.load_index().await?;
                    let t = repo.load_tree(&index, &id).await?;
                    let node = t
                        .nodes
                        .into_iter()
                        .next()
                        .context("the base tree is empty")?;
                    Some((name, node.content))
                }
                _ => None,
            };
            let copy = copy_range(
                &repo,
                source.as_ref(),
                CopyOptions {
                    range: ByteRange {
                        start: 0,
                        end: geometry.volume_size,
                    },
                    base,
                },
                Arc::new(Progress::default()),
            )
            .await?;
            print_json(&serde_json::json!({
                "source": source.name(),
                "volume_size": geometry.volume_size,
                "block_size": geometry.block_size,
                "copy": copy,
                "requests": counter.counts(),
                "seconds": started.elapsed().as_secs_f64(),
            }))?;
        }
    }
    Ok(0)
}
