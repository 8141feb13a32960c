//! Segments, ranges, and finding a base's chunks by offset.

use crate::OpsError;
use lifeboat_repo::{ChunkRef, Index, Repository};
use lifeboat_volume::Geometry;
use serde::{Deserialize, Serialize};

/// A byte range of a volume, `[start, end)`, aligned to segments (the end
/// may be the volume's size).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// The unit that is read whole and cut into whole chunks: the larger of the
/// source's block and the repository's chunk (both powers of two).
pub fn segment_size(block_size: u32, chunk_size: u32) -> u64 {
    u64::from(block_size.max(chunk_size))
}

/// Split a volume into ranges of about `range_bytes` (rounded to whole
/// segments, at least one), covering `[0, volume_size)`.
pub fn plan_ranges(
    geometry: Geometry,
    chunk_size: u32,
    range_bytes: u64,
) -> Result<Vec<ByteRange>, OpsError> {
    if !geometry.block_size.is_power_of_two() || !chunk_size.is_power_of_two() {
        return Err(OpsError::InvalidInput(format!(
            "block size {} and chunk size {chunk_size} must be powers of two",
            geometry.block_size
        )));
    }
    let seg = segment_size(geometry.block_size, chunk_size);
    let per_range = (range_bytes / seg).max(1) * seg;
    let mut out = Vec::new();
    let mut start = 0;
    while start < geometry.volume_size {
        let end = (start + per_range).min(geometry.volume_size);
        out.push(ByteRange { start, end });
        start = end;
    }
    Ok(out)
}

/// Check that `range` is one [`plan_ranges`] could have produced.
pub(crate) fn check_range(range: ByteRange, geometry: Geometry, seg: u64) -> Result<(), OpsError> {
    let aligned_end = range.end.is_multiple_of(seg) || range.end == geometry.volume_size;
    if range.is_empty()
        || !range.start.is_multiple_of(seg)
        || !aligned_end
        || range.end > geometry.volume_size
    {
        return Err(OpsError::InvalidInput(format!(
            "range {}..{} is not a range of whole {seg}-byte segments of a {}-byte volume",
            range.start, range.end, geometry.volume_size
        )));
    }
    Ok(())
}

/// The chunks of `content` (sorted by offset) that start in `[start, end)`.
pub(crate) fn chunks_in(content: &[ChunkRef], start: u64, end: u64) -> &[ChunkRef] {
    let lo = content.partition_point(|c| c.offset < start);
    let hi = content.partition_point(|c| c.offset < end);
    &content[lo..hi]
}

/// The bytes of `[start, end)` of a node: its chunks, zeros elsewhere.
pub(crate) async fn bytes_of(
    repo: &Repository,
    index: &Index,
    content: &[ChunkRef],
    start: u64,
    end: u64,
) -> Result<Vec<u8>, OpsError> {
    let mut buf = vec![0u8; usize::try_from(end - start).unwrap_or(0)];
    for c in chunks_in(content, start, end) {
        let data = repo.read_blob(index, &c.id).await?;
        let at = usize::try_from(c.offset - start).unwrap_or(0);
        let n = data.len().min(buf.len().saturating_sub(at));
        buf[at..at + n].copy_from_slice(&data[..n]);
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat_repo::Id;

    #[test]
    fn ranges_cover_the_volume_in_whole_segments() {
        let g = Geometry {
            volume_size: 10 * 65536 + 512,
            block_size: 512,
        };
        let r = plan_ranges(g, 65536, 3 * 65536 + 100).unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!(
            r[0],
            ByteRange {
                start: 0,
                end: 3 * 65536
            }
        );
        assert_eq!(r[3].end, g.volume_size);
        for w in r.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
        for x in &r {
            check_range(*x, g, 65536).unwrap();
        }
        // Big blocks: the segment is the block.
        let g = Geometry {
            volume_size: 1 << 30,
            block_size: 512 * 1024,
        };
        assert_eq!(segment_size(g.block_size, 65536), 512 * 1024);
        let r = plan_ranges(g, 65536, 1).unwrap();
        assert_eq!(r.len(), 2048);
        assert!(check_range(
            ByteRange {
                start: 65536,
                end: 1 << 20
            },
            g,
            512 * 1024
        )
        .is_err());
    }

    #[test]
    fn chunks_are_found_by_offset() {
        let c: Vec<ChunkRef> = [0u64, 65536, 196608]
            .iter()
            .map(|o| ChunkRef {
                id: Id([0; 32]),
                offset: *o,
            })
            .collect();
        assert_eq!(chunks_in(&c, 0, 65536).len(), 1);
        assert_eq!(chunks_in(&c, 65536, 262144).len(), 2);
        assert!(chunks_in(&c, 131072, 196608).is_empty());
    }
}
