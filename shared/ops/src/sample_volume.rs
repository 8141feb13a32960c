//! A reproducible volume image for the volume benchmark
//! (`tests/bench/volumes`) and tests, and the tools around it:
//!
//! - [`generate_image`]: a sparse image of 1 MiB extents, each a hole,
//!   compressible text, random data, or scattered 4 KiB pages;
//! - [`mutate_image`]: rewrite scattered 4 KiB pages in place (as a database
//!   does), recording which ([`ImageChanges`]);
//! - [`KnownChanges`]: an image as a [`BlockSource`] that lists those changes
//!   the way EBS's ListChangedBlocks lists the blocks that differ between two
//!   snapshots;
//! - [`put_blocks`]: copy a source block for block into a sink (an image into
//!   a new EBS snapshot).

use crate::sample_data::{json_doc, log_line, Rng};
use crate::OpsError;
use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use lifeboat_volume::{Block, BlockSink, BlockSource, ChangedBlock, Geometry, VolumeError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

const EXTENT: u64 = 1 << 20;
const PAGE: u64 = 4096;
const SECTOR: usize = 512;

/// What an image holds, in bytes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImageStats {
    pub size: u64,
    /// Never written (holes of the sparse file).
    pub holes: u64,
    /// Log lines and JSON documents (compress about 4-8 times).
    pub text: u64,
    /// Random bytes (incompressible: media, encrypted or compressed data).
    pub random: u64,
    /// Extents with one 4 KiB page in eight written with random bytes, the
    /// rest holes (a database's scattered pages); the bytes written.
    pub pages: u64,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> OpsError + '_ {
    move |e| OpsError::io(path, e)
}

/// Write a sparse image of `size` bytes (rounded down to whole 4 KiB pages)
/// at `path`, the same for the same seed: each 1 MiB extent is a hole (30%),
/// text (35%), random (25%) or scattered pages (10%).
pub fn generate_image(path: &Path, size: u64, seed: u64) -> Result<ImageStats, OpsError> {
    let size = size / PAGE * PAGE;
    let mut rng = Rng::new(seed);
    let f = File::create(path).map_err(io(path))?;
    f.set_len(size).map_err(io(path))?;
    let mut st = ImageStats {
        size,
        ..ImageStats::default()
    };
    let mut buf: Vec<u8> = Vec::with_capacity(EXTENT as usize + 4096);
    let mut at = 0u64;
    let mut t = 0u64;
    while at < size {
        let len = EXTENT.min(size - at);
        let n = len as usize;
        match rng.below(100) {
            0..=29 => st.holes += len,
            30..=64 => {
                buf.clear();
                let json = rng.below(3) == 0;
                while buf.len() < n {
                    t += 1;
                    if json {
                        json_doc(&mut rng, &mut buf, t);
                    } else {
                        log_line(&mut rng, &mut buf, t);
                    }
                }
                f.write_all_at(&buf[..n], at).map_err(io(path))?;
                st.text += len;
            }
            65..=89 => {
                buf.resize(n, 0);
                rng.fill(&mut buf[..n]);
                f.write_all_at(&buf[..n], at).map_err(io(path))?;
                st.random += len;
            }
            _ => {
                let mut page = vec![0u8; PAGE as usize];
                let mut written = 0;
                for p in 0..len / PAGE {
                    if rng.below(8) == 0 {
                        rng.fill(&mut page);
                        f.write_all_at(&page, at + p * PAGE).map_err(io(path))?;
                        written += PAGE;
                    }
                }
                st.pages += written;
                st.holes += len - written;
            }
        }
        at += len;
    }
    f.sync_all().map_err(io(path))?;
    Ok(st)
}

/// The pages [`mutate_image`] rewrote.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImageChanges {
    pub page_size: u64,
    /// Byte offsets of the pages, ascending.
    pub pages: Vec<u64>,
}

impl ImageChanges {
    pub fn changed_bytes(&self) -> u64 {
        self.pages.len() as u64 * self.page_size
    }
}

/// Rewrite about `fraction` of the image's pages with random bytes, at
/// scattered places, the same for the same seed. Only pages that hold data
/// in every 512-byte sector are chosen (pages a database rewrites in place;
/// and blocks that moto's ListChangedBlocks, which misses blocks new in the
/// second snapshot, lists).
pub fn mutate_image(path: &Path, fraction: f64, seed: u64) -> Result<ImageChanges, OpsError> {
    let mut rng = Rng::new(seed ^ 0x5EED_F1A6);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io(path))?;
    let len = f.metadata().map_err(io(path))?.len();
    let total_pages = len / PAGE;
    let want = ((total_pages as f64) * fraction.clamp(0.0, 1.0)) as u64;
    let mut chosen = BTreeSet::new();
    let mut page = vec![0u8; PAGE as usize];
    // Bounded: an image with few pages of data gets fewer changes.
    let mut tries = 0u64;
    while (chosen.len() as u64) < want && tries < want.saturating_mul(50) + 1000 {
        tries += 1;
        let p = rng.below(total_pages.max(1));
        if chosen.contains(&p) {
            continue;
        }
        f.read_exact_at(&mut page, p * PAGE).map_err(io(path))?;
        if page.chunks(SECTOR).any(|s| s.iter().all(|b| *b == 0)) {
            continue;
        }
        rng.fill(&mut page);
        f.write_all_at(&page, p * PAGE).map_err(io(path))?;
        chosen.insert(p);
    }
    f.sync_all().map_err(io(path))?;
    Ok(ImageChanges {
        page_size: PAGE,
        pages: chosen.into_iter().map(|p| p * PAGE).collect(),
    })
}

/// A source whose changes since one earlier copy are known: `changed_since`
/// lists the blocks that `changes` touch (each with its current data), as
/// ListChangedBlocks does for two EBS snapshots; everything else is the
/// inner source's.
#[derive(Debug)]
pub struct KnownChanges<S> {
    inner: S,
    changes: ImageChanges,
}

impl<S: BlockSource> KnownChanges<S> {
    pub fn new(inner: S, changes: ImageChanges) -> Self {
        KnownChanges { inner, changes }
    }
}

#[async_trait]
impl<S: BlockSource> BlockSource for KnownChanges<S> {
    fn name(&self) -> String {
        self.inner.name()
    }

    async fn geometry(&self) -> Result<Geometry, VolumeError> {
        self.inner.geometry().await
    }

    async fn allocated(&self, first: u64, end: u64) -> Result<Vec<Block>, VolumeError> {
        self.inner.allocated(first, end).await
    }

    async fn changed_since(
        &self,
        _base: &str,
        first: u64,
        end: u64,
    ) -> Result<Option<Vec<ChangedBlock>>, VolumeError> {
        let bs = u64::from(self.inner.geometry().await?.block_size);
        let mut blocks = BTreeSet::new();
        for &at in &self.changes.pages {
            let last = (at + self.changes.page_size).div_ceil(bs);
            blocks.extend((at / bs..last).filter(|i| (first..end).contains(i)));
        }
        Ok(Some(
            blocks
                .into_iter()
                .map(|index| ChangedBlock {
                    index,
                    now: Some(Block {
                        index,
                        token: String::new(),
                    }),
                })
                .collect(),
        ))
    }

    async fn read(&self, block: &Block) -> Result<Bytes, VolumeError> {
        self.inner.read(block).await
    }
}

/// Copy every block `source` lists into `sink` (same block size), blocks of
/// zeros left out, `concurrency` at a time; then finish the sink. Returns
/// what `finish` returns and the blocks written.
pub async fn put_blocks(
    source: &dyn BlockSource,
    sink: &dyn BlockSink,
    concurrency: usize,
) -> Result<(String, u64), OpsError> {
    let g = source.geometry().await?;
    if g.block_size != sink.geometry().block_size || g.volume_size > sink.geometry().volume_size {
        return Err(OpsError::InvalidInput(format!(
            "{}: {} bytes in {}-byte blocks do not fit a sink of {} bytes in {}-byte blocks",
            source.name(),
            g.volume_size,
            g.block_size,
            sink.geometry().volume_size,
            sink.geometry().block_size
        )));
    }
    let blocks = source.allocated(0, g.blocks()).await?;
    let writes: Vec<_> = blocks
        .iter()
        .map(|b| async move {
            let data = source.read(b).await?;
            if data.iter().all(|x| *x == 0) {
                return Ok::<u64, OpsError>(0);
            }
            sink.write(b.index, data).await?;
            Ok(1)
        })
        .collect();
    let written: u64 = futures::stream::iter(writes)
        .buffer_unordered(concurrency.max(1))
        .try_fold(0u64, |a, n| async move { Ok(a + n) })
        .await?;
    let handle = sink.finish(written).await?;
    Ok((handle, written))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat_volume::ImageFile;

    #[tokio::test]
    async fn an_image_mutates_and_lists_its_changes_as_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.img");
        let st = generate_image(&p, 16 << 20, 7).unwrap();
        assert_eq!(st.size, 16 << 20);
        assert_eq!(st.holes + st.text + st.random + st.pages, st.size);
        assert_eq!(std::fs::read(&p).unwrap().len() as u64, st.size);
        let before = std::fs::read(&p).unwrap();
        let ch = mutate_image(&p, 0.01, 8).unwrap();
        assert!(!ch.pages.is_empty());
        let after = std::fs::read(&p).unwrap();
        for (i, (a, b)) in before
            .chunks(PAGE as usize)
            .zip(after.chunks(PAGE as usize))
            .enumerate()
        {
            assert_eq!(a != b, ch.pages.contains(&(i as u64 * PAGE)), "page {i}");
        }
        let src = KnownChanges::new(ImageFile::open(&p, 1 << 19).unwrap(), ch.clone());
        let listed = src.changed_since("v1", 0, 32).await.unwrap().unwrap();
        let want: BTreeSet<u64> = ch.pages.iter().map(|o| o / (1 << 19)).collect();
        let got: BTreeSet<u64> = listed.iter().map(|b| b.index).collect();
        assert_eq!(got, want);
        let some = src.changed_since("v1", 3, 5).await.unwrap().unwrap();
        assert!(some.iter().all(|b| (3..5).contains(&b.index)));
    }

    #[tokio::test]
    async fn put_blocks_copies_an_image_without_its_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.img");
        let f = File::create(&p).unwrap();
        f.set_len(64 * 1024).unwrap();
        f.write_all_at(&[5u8; 100], 4096 * 3 + 10).unwrap();
        drop(f);
        let src = ImageFile::open(&p, 4096).unwrap();
        let q = dir.path().join("b.img");
        let sink = ImageFile::create(
            &q,
            Geometry {
                volume_size: 128 * 1024,
                block_size: 4096,
            },
        )
        .unwrap();
        let (_, n) = put_blocks(&src, &sink, 4).await.unwrap();
        assert_eq!(n, 1);
        let out = std::fs::read(&q).unwrap();
        assert_eq!(&out[..64 * 1024], &std::fs::read(&p).unwrap()[..]);
    }
}
