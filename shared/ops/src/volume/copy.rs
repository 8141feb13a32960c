//! Copy one range of a volume snapshot into the repository.

use super::plan::{bytes_of, check_range, chunks_in, segment_size, ByteRange};
use crate::backup::{all_zero, lock_wait, BlobPipeline, BlobSaver};
use crate::{OpsError, Progress};
use futures::{StreamExt, TryStreamExt};
use lifeboat_repo::{
    BlobType, ChunkRef, Id, Index, LockHandle, LockKind, Node, NodeType, Repository, Tree,
};
use lifeboat_volume::{Block, BlockSource, ChangedBlock, Geometry};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Blocks read from the source at once.
const READS_IN_FLIGHT: usize = 16;

/// How to copy a range.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    pub range: ByteRange,
    /// For an incremental copy: the earlier snapshot of the same volume (as
    /// the source names it) and that snapshot's content in the repository.
    /// Blocks the source says are unchanged keep the base's chunks.
    pub base: Option<(String, Vec<ChunkRef>)>,
}

/// A range copied: durable in the repository once returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RangeCopy {
    pub range: ByteRange,
    /// A tree blob with one file node holding the range's chunks (offsets in
    /// the volume).
    pub tree: Id,
    /// Blocks read from the source, and their bytes.
    pub blocks_read: u64,
    pub bytes_read: u64,
    /// Chunks taken from the base without reading.
    pub chunks_kept: u64,
    /// New blobs, plaintext and as stored.
    pub bytes_new: u64,
    pub bytes_stored: u64,
    /// Whether only changed blocks were read.
    pub incremental: bool,
    /// Segments read whole although unchanged, because chunks of the base
    /// they would have kept are in no index any more (a prune removed them).
    #[serde(default)]
    pub segments_reread: u64,
}

/// One segment to build: which of its blocks to read, and whether the rest
/// comes from the base.
#[derive(Debug)]
struct Segment {
    start: u64,
    end: u64,
    reads: Vec<ChangedBlock>,
    /// Some blocks of the segment are unchanged but not all: start from the
    /// base's bytes.
    fill_from_base: bool,
}

/// Copy `opts.range` of `source` into `repo`.
#[tracing::instrument(skip_all, fields(source = %source.name(), start = opts.range.start, end = opts.range.end))]
pub async fn copy_range(
    repo: &Repository,
    source: &dyn BlockSource,
    opts: CopyOptions,
    progress: Arc<Progress>,
) -> Result<RangeCopy, OpsError> {
    repo.with_lock(LockKind::Shared, "volume copy", lock_wait(), |lock| {
        copy_range_locked(repo, source, opts, progress, lock)
    })
    .await
}

async fn copy_range_locked(
    repo: &Repository,
    source: &dyn BlockSource,
    opts: CopyOptions,
    progress: Arc<Progress>,
    lock: LockHandle,
) -> Result<RangeCopy, OpsError> {
    let geometry = source.geometry().await?;
    let chunk = repo.config().chunking.fixed_size;
    let seg = segment_size(geometry.block_size, chunk);
    check_range(opts.range, geometry, seg)?;
    let bs = u64::from(geometry.block_size);
    let (first, end) = (opts.range.start / bs, opts.range.end.div_ceil(bs));

    let changed = match &opts.base {
        Some((base, _)) => source.changed_since(base, first, end).await?,
        None => None,
    };
    let incremental = changed.is_some();
    let listed: Vec<ChangedBlock> = match changed {
        Some(c) => c,
        None => source
            .allocated(first, end)
            .await?
            .into_iter()
            .map(|b| ChangedBlock {
                index: b.index,
                now: Some(b),
            })
            .collect(),
    };
    let base_content: &[ChunkRef] = match (&opts.base, incremental) {
        (Some((_, content)), true) => content,
        _ => &[],
    };
    let segments = segments(geometry, seg, opts.range, listed, incremental);

    let index = Arc::new(repo.load_index().await?);
    let (segments, segments_reread) = if incremental {
        reread_unindexed(
            source,
            geometry,
            seg,
            opts.range,
            base_content,
            &index,
            segments,
        )
        .await?
    } else {
        (segments, 0)
    };
    let (pipeline, saver) = BlobPipeline::start(repo, index.clone(), progress.clone());
    let (tx, rx) = mpsc::channel::<(u64, Vec<u8>)>(4);
    let collector = tokio::task::spawn_blocking(move || collect(saver, rx, chunk));

    let reader = SegmentReader {
        repo,
        index: &index,
        source,
        base: base_content,
        progress: &progress,
        geometry,
    };
    let read = read_segments(&reader, &segments, &tx).await;
    drop(tx);
    let (saver, mut content) = collector
        .await
        .map_err(|e| OpsError::Pipeline(e.to_string()))??;
    let (blocks_read, bytes_read) = match read {
        Ok(r) => r,
        Err(e) => {
            // Whatever was packed stays (orphans until a later copy reuses
            // it); the error is the reason.
            let _ = pipeline.finish(saver).await;
            return Err(e);
        }
    };

    // Segments with nothing listed keep the base's chunks (incremental) or
    // are holes (full).
    let mut chunks_kept = 0u64;
    if incremental {
        let built: std::collections::HashSet<u64> = segments.iter().map(|s| s.start).collect();
        let mut s = opts.range.start;
        while s < opts.range.end {
            if !built.contains(&s) {
                let kept = chunks_in(base_content, s, s + seg);
                chunks_kept += kept.len() as u64;
                content.extend_from_slice(kept);
            }
            s += seg;
        }
    }
    content.sort_by_key(|c| c.offset);

    let mut node = Node::new(OsStr::new("range"), NodeType::File);
    node.mode = 0o600;
    node.size = opts.range.len();
    node.content = content;
    let mut tree = Tree { nodes: vec![node] };
    let tree_json = tree.to_json()?;
    let (tree_id, saver) = tokio::task::spawn_blocking(move || {
        let mut saver = saver;
        let id = saver.save(BlobType::Tree, tree_json);
        (id, saver)
    })
    .await
    .map_err(|e| OpsError::Pipeline(e.to_string()))?;
    let tree_id = tree_id?;
    let written = pipeline.finish(saver).await?;
    // The commit relies on the chunks this copy deduplicated against.
    lock.ensure_held().await?;
    Ok(RangeCopy {
        range: opts.range,
        tree: tree_id,
        blocks_read,
        bytes_read,
        chunks_kept,
        bytes_new: written.bytes_new,
        bytes_stored: written.bytes_stored,
        incremental,
        segments_reread,
    })
}

/// Replace the plan of every segment whose base chunks are not all indexed
/// with a read of all its allocated blocks: keeping (or filling from) chunks
/// that a prune removed would carry the loss into this copy and every later
/// one. Returns the segments and how many were replaced.
async fn reread_unindexed(
    source: &dyn BlockSource,
    g: Geometry,
    seg: u64,
    range: ByteRange,
    base: &[ChunkRef],
    index: &Index,
    segments: Vec<Segment>,
) -> Result<(Vec<Segment>, u64), OpsError> {
    let bs = u64::from(g.block_size);
    let mut by_start: BTreeMap<u64, Segment> = segments.into_iter().map(|s| (s.start, s)).collect();
    let mut reread = 0u64;
    let mut start = range.start;
    while start < range.end {
        let kept = chunks_in(base, start, start + seg);
        if let Some(gone) = kept.iter().find(|c| !index.contains(&c.id)) {
            tracing::warn!(
                source = %source.name(),
                segment = start,
                chunk = %gone.id.short(),
                "the base's chunks of this segment are in no index any more: reading it whole"
            );
            let end = (start + seg).min(g.volume_size);
            let reads = source
                .allocated(start / bs, end.div_ceil(bs))
                .await?
                .into_iter()
                .map(|b| ChangedBlock {
                    index: b.index,
                    now: Some(b),
                })
                .collect();
            by_start.insert(
                start,
                Segment {
                    start,
                    end,
                    reads,
                    fill_from_base: false,
                },
            );
            reread += 1;
        }
        start += seg;
    }
    Ok((by_start.into_values().collect(), reread))
}

/// Group the listed blocks by segment, in order.
fn segments(
    g: Geometry,
    seg: u64,
    range: ByteRange,
    listed: Vec<ChangedBlock>,
    incremental: bool,
) -> Vec<Segment> {
    let bs = u64::from(g.block_size);
    let blocks_per_seg = seg / bs;
    let mut by_seg: BTreeMap<u64, Vec<ChangedBlock>> = BTreeMap::new();
    for b in listed {
        let at = b.index * bs;
        if at < range.start || at >= range.end {
            continue;
        }
        by_seg.entry(at / seg * seg).or_default().push(b);
    }
    by_seg
        .into_iter()
        .map(|(start, mut reads)| {
            reads.sort_by_key(|b| b.index);
            reads.dedup_by_key(|b| b.index);
            let end = (start + seg).min(g.volume_size);
            let whole = (end - start).div_ceil(bs);
            Segment {
                start,
                end,
                fill_from_base: incremental && (reads.len() as u64) < whole.min(blocks_per_seg),
                reads,
            }
        })
        .collect()
}

/// What reading a segment needs.
struct SegmentReader<'a> {
    repo: &'a Repository,
    index: &'a Index,
    source: &'a dyn BlockSource,
    base: &'a [ChunkRef],
    progress: &'a Progress,
    geometry: Geometry,
}

impl SegmentReader<'_> {
    /// The segment's bytes (its listed blocks over zeros or the base), with
    /// the blocks and bytes read.
    async fn build(&self, s: &Segment) -> Result<(u64, Vec<u8>, u64, u64), OpsError> {
        let bs = u64::from(self.geometry.block_size);
        let mut buf = if s.fill_from_base {
            bytes_of(self.repo, self.index, self.base, s.start, s.end).await?
        } else {
            vec![0u8; usize::try_from(s.end - s.start).unwrap_or(0)]
        };
        // Futures collected first: a lazy iterator of borrowing closures
        // trips the compiler's Send check in callers' futures.
        let reads: Vec<_> = s.reads.iter().map(|b| self.read(b)).collect();
        let blocks: Vec<(u64, Option<bytes::Bytes>)> = futures::stream::iter(reads)
            .buffered(READS_IN_FLIGHT.min(s.reads.len().max(1)))
            .try_collect()
            .await?;
        let (mut n, mut bytes) = (0u64, 0u64);
        for (index, data) in blocks {
            let at = usize::try_from(index * bs - s.start).unwrap_or(0);
            match data {
                Some(d) => {
                    n += 1;
                    bytes += d.len() as u64;
                    Progress::add(&self.progress.bytes_read, d.len() as u64);
                    buf[at..at + d.len()].copy_from_slice(&d);
                }
                None => {
                    let stop = (at + usize::try_from(bs).unwrap_or(0)).min(buf.len());
                    buf[at..stop].fill(0);
                }
            }
        }
        Ok((s.start, buf, n, bytes))
    }

    async fn read(&self, b: &ChangedBlock) -> Result<(u64, Option<bytes::Bytes>), OpsError> {
        match &b.now {
            Some(block) => read_checked(self.source, block, self.geometry)
                .await
                .map(|d| (b.index, Some(d))),
            None => Ok((b.index, None)),
        }
    }
}

/// Read every segment (blocks concurrently, segments in order) and send its
/// bytes to the collector. Returns blocks and bytes read.
async fn read_segments(
    reader: &SegmentReader<'_>,
    segments: &[Segment],
    tx: &mpsc::Sender<(u64, Vec<u8>)>,
) -> Result<(u64, u64), OpsError> {
    let per_seg = segments
        .iter()
        .map(|s| s.reads.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let seg_in_flight = (READS_IN_FLIGHT / per_seg.min(READS_IN_FLIGHT)).max(1);
    let builds: Vec<_> = segments.iter().map(|s| reader.build(s)).collect();
    let mut stream = futures::stream::iter(builds).buffered(seg_in_flight);
    let (mut blocks, mut bytes) = (0u64, 0u64);
    while let Some(r) = stream.next().await {
        let (start, buf, n, b) = r?;
        blocks += n;
        bytes += b;
        tx.send((start, buf))
            .await
            .map_err(|_| OpsError::Pipeline("the chunk collector stopped".into()))?;
    }
    Ok((blocks, bytes))
}

/// Read a block and check it is exactly its byte range's length.
async fn read_checked(
    source: &dyn BlockSource,
    block: &Block,
    g: Geometry,
) -> Result<bytes::Bytes, OpsError> {
    let (s, e) = g.byte_range(block.index);
    let data = source.read(block).await?;
    if data.len() as u64 != e - s {
        return Err(OpsError::Volume(lifeboat_volume::VolumeError::Invalid(
            format!(
                "{}: block {} is {} bytes, expected {}",
                source.name(),
                block.index,
                data.len(),
                e - s
            ),
        )));
    }
    Ok(data)
}

/// Cut segments into chunks; all-zero chunks are holes.
fn collect(
    mut saver: BlobSaver,
    mut rx: mpsc::Receiver<(u64, Vec<u8>)>,
    chunk: u32,
) -> Result<(BlobSaver, Vec<ChunkRef>), OpsError> {
    let mut content = Vec::new();
    let size = chunk as usize;
    while let Some((start, buf)) = rx.blocking_recv() {
        for (i, piece) in buf.chunks(size).enumerate() {
            if all_zero(piece) {
                continue;
            }
            let id = saver.save(BlobType::Data, piece.to_vec())?;
            content.push(ChunkRef {
                id,
                offset: start + (i * size) as u64,
            });
        }
    }
    Ok((saver, content))
}
