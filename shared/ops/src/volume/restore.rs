//! Join copied ranges into a volume node; write a volume node into a sink;
//! compare a copy with the repository.

use super::copy::RangeCopy;
use super::plan::{bytes_of, chunks_in, segment_size};
use crate::backup::all_zero;
use crate::{OpsError, Progress};
use futures::{StreamExt, TryStreamExt};
use lifeboat_repo::{ChunkRef, Index, Node, NodeType, Repository};
use lifeboat_volume::{Block, BlockSink, BlockSource, Geometry};
use serde::{Deserialize, Serialize};
use std::ffi::OsStr;
use std::sync::Arc;

/// Segments written or compared at once.
const SEGMENTS_IN_FLIGHT: usize = 8;

/// Join the ranges of one volume, which must cover `[0, volume_size)`
/// without gaps or overlaps (in any order), into the volume's file node,
/// named `name`.
pub async fn assemble(
    repo: &Repository,
    index: &Index,
    name: &str,
    volume_size: u64,
    ranges: &[RangeCopy],
) -> Result<Node, OpsError> {
    let mut sorted: Vec<&RangeCopy> = ranges.iter().collect();
    sorted.sort_by_key(|r| r.range.start);
    let mut at = 0;
    for r in &sorted {
        if r.range.start != at {
            return Err(OpsError::InvalidInput(format!(
                "volume {name}: the copied ranges leave a gap or overlap at byte {at} (next range starts at {})",
                r.range.start
            )));
        }
        at = r.range.end;
    }
    if at != volume_size {
        return Err(OpsError::InvalidInput(format!(
            "volume {name}: the copied ranges end at byte {at}, the volume has {volume_size}"
        )));
    }
    let mut node = Node::new(OsStr::new(name), NodeType::File);
    node.mode = 0o600;
    node.size = volume_size;
    for r in sorted {
        let tree = repo.load_tree(index, &r.tree).await?;
        let part = tree.nodes.into_iter().next().ok_or_else(|| {
            OpsError::InvalidInput(format!(
                "volume {name}: range tree {} is empty",
                r.tree.short()
            ))
        })?;
        if let Some(c) = part
            .content
            .iter()
            .find(|c| c.offset < r.range.start || c.offset >= r.range.end)
        {
            return Err(OpsError::InvalidInput(format!(
                "volume {name}: range tree {} has a chunk at {} outside {}..{}",
                r.tree.short(),
                c.offset,
                r.range.start,
                r.range.end
            )));
        }
        node.content.extend(part.content);
    }
    Ok(node)
}

/// What a restore wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreVolumeOutcome {
    /// The sink's handle: a snapshot id or a path.
    pub handle: String,
    pub blocks_written: u64,
    pub bytes_written: u64,
}

/// Write the volume `node` (a file node of chunks) into `sink`: every block
/// that holds data; a new copy starts as zeros.
pub async fn restore_volume(
    repo: &Repository,
    index: &Index,
    node: &Node,
    sink: &dyn BlockSink,
    progress: Arc<Progress>,
) -> Result<RestoreVolumeOutcome, OpsError> {
    let g = sink.geometry();
    if g.volume_size < node.size {
        return Err(OpsError::InvalidInput(format!(
            "volume {}: the target holds {} bytes, the backup has {}",
            node.name, g.volume_size, node.size
        )));
    }
    let seg = segment_size(g.block_size, repo.config().chunking.fixed_size);
    let bs = u64::from(g.block_size);
    let starts = segment_starts(&node.content, seg);
    let progress = &progress;
    // Futures collected first: a lazy stream of closures trips the
    // compiler's Send check in callers' futures.
    let segments: Vec<_> = starts
        .into_iter()
        .map(|start| async move {
            let end = (start + seg).min(node.size);
            let buf = bytes_of(repo, index, &node.content, start, end).await?;
            let (mut n, mut bytes) = (0u64, 0u64);
            let mut at = start;
            while at < end {
                let (s, e) = g.byte_range(at / bs);
                let mut block = vec![0u8; usize::try_from(e - s).unwrap_or(0)];
                let from = usize::try_from(s - start).unwrap_or(0);
                let upto = usize::try_from(e.min(end) - start).unwrap_or(0);
                block[..upto - from].copy_from_slice(&buf[from..upto]);
                if block.iter().any(|b| *b != 0) {
                    sink.write(at / bs, block.into()).await?;
                    n += 1;
                    bytes += e - s;
                    Progress::add(&progress.bytes_written, e - s);
                }
                at = e;
            }
            Ok::<_, OpsError>((n, bytes))
        })
        .collect();
    let written: Vec<(u64, u64)> = futures::stream::iter(segments)
        .buffered(SEGMENTS_IN_FLIGHT)
        .try_collect()
        .await?;
    let blocks_written = written.iter().map(|w| w.0).sum();
    let handle = sink.finish(blocks_written).await?;
    Ok(RestoreVolumeOutcome {
        handle,
        blocks_written,
        bytes_written: written.iter().map(|w| w.1).sum(),
    })
}

/// How a copy compares with the repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub bytes_compared: u64,
    /// Chunk-sized windows whose data differs (their offsets, the first 20).
    pub mismatches: Vec<u64>,
    pub mismatch_count: u64,
}

impl Comparison {
    pub fn matched(&self) -> bool {
        self.mismatch_count == 0
    }
}

/// Read `copy` back and compare every chunk-sized window of `node` by its
/// keyed hash (holes must read as zeros): the proof that a restored volume
/// holds what was backed up.
pub async fn compare_volume(
    repo: &Repository,
    node: &Node,
    copy: &dyn BlockSource,
) -> Result<Comparison, OpsError> {
    let g: Geometry = copy.geometry().await?;
    if g.volume_size < node.size {
        return Err(OpsError::InvalidInput(format!(
            "volume {}: the copy {} holds {} bytes, the backup has {}",
            node.name,
            copy.name(),
            g.volume_size,
            node.size
        )));
    }
    let chunk = u64::from(repo.config().chunking.fixed_size);
    let seg = segment_size(g.block_size, repo.config().chunking.fixed_size);
    let bs = u64::from(g.block_size);
    // Blocks keep their tokens: EBS reads a block by the token it listed.
    let allocated: std::collections::HashMap<u64, Block> = copy
        .allocated(0, node.size.div_ceil(bs))
        .await?
        .into_iter()
        .map(|b| (b.index, b))
        .collect();
    let key = repo.key().clone();
    let allocated = &allocated;
    let key = &key;
    // Only segments with data on either side need a look: the rest are
    // zeros in both.
    let mut segs: Vec<u64> = allocated
        .keys()
        .map(|b| b * bs / seg * seg)
        .chain(node.content.iter().map(|c| c.offset / seg * seg))
        .filter(|s| *s < node.size)
        .collect();
    segs.sort_unstable();
    segs.dedup();
    let compares: Vec<_> = segs
        .into_iter()
        .map(|start| async move {
            let end = (start + seg).min(node.size);
            let mut buf = vec![0u8; usize::try_from(end - start).unwrap_or(0)];
            let mut at = start;
            while at < end {
                let index = at / bs;
                let (s, e) = g.byte_range(index);
                if let Some(block) = allocated.get(&index) {
                    let data = copy.read(block).await?;
                    let from = usize::try_from(s - start).unwrap_or(0);
                    let upto = usize::try_from(e.min(end) - start).unwrap_or(0);
                    let n = (upto - from).min(data.len());
                    buf[from..from + n].copy_from_slice(&data[..n]);
                }
                at = e;
            }
            let expected = chunks_in(&node.content, start, end);
            let mut bad = Vec::new();
            for (i, piece) in buf.chunks(usize::try_from(chunk).unwrap_or(1)).enumerate() {
                let offset = start + i as u64 * chunk;
                let want = expected.iter().find(|c| c.offset == offset);
                let ok = match want {
                    Some(c) => key.blob_id(piece) == c.id,
                    None => all_zero(piece),
                };
                if !ok {
                    bad.push(offset);
                }
            }
            Ok::<_, OpsError>(bad)
        })
        .collect();
    let results: Vec<Vec<u64>> = futures::stream::iter(compares)
        .buffered(SEGMENTS_IN_FLIGHT)
        .try_collect()
        .await?;
    let all: Vec<u64> = results.into_iter().flatten().collect();
    Ok(Comparison {
        bytes_compared: node.size,
        mismatch_count: all.len() as u64,
        mismatches: all.into_iter().take(20).collect(),
    })
}

/// The starts of the segments that hold at least one chunk.
fn segment_starts(content: &[ChunkRef], seg: u64) -> Vec<u64> {
    let mut out: Vec<u64> = content.iter().map(|c| c.offset / seg * seg).collect();
    out.dedup();
    out
}
