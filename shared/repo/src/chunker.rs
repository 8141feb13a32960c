//! Cutting data into chunks.
//!
//! Files are cut by content (FastCDC-style normalized chunking over a gear
//! rolling hash), so an insertion shifts only the chunks around it. The gear
//! table is derived from the repository's secret chunker seed, so chunk
//! boundaries leak nothing about the content to someone without the key.
//! Block devices and disk images are cut into fixed, aligned chunks, so a
//! changed page costs one small chunk.

use crate::ChunkingParams;
use std::io::{self, Read};

/// The 256 random 64-bit values of the gear hash.
#[derive(Clone)]
pub struct GearTable([u64; 256]);

impl std::fmt::Debug for GearTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GearTable(<secret>)")
    }
}

impl GearTable {
    pub fn from_seed(seed: u64) -> Self {
        let mut hasher = blake3::Hasher::new_derive_key("lifeboat 2026-11 gear table v1");
        hasher.update(&seed.to_le_bytes());
        let mut reader = hasher.finalize_xof();
        let mut table = [0u64; 256];
        let mut buf = [0u8; 8];
        for v in table.iter_mut() {
            reader.fill(&mut buf);
            *v = u64::from_le_bytes(buf);
        }
        GearTable(table)
    }
}

/// A mask with `bits` one-bits at the top of a u64: the top bits of the gear
/// hash depend on the most recent 64 bytes.
fn top_mask(bits: u32) -> u64 {
    if bits == 0 {
        0
    } else {
        !0u64 << (64 - bits.min(64))
    }
}

/// Find the first cut point in `data` (a prefix of at most `max` bytes is examined).
fn cut_point(gear: &GearTable, p: &ChunkingParams, data: &[u8]) -> usize {
    let (min, avg, max) = (p.cdc_min as usize, p.cdc_avg as usize, p.cdc_max as usize);
    if data.len() <= min {
        return data.len();
    }
    let end = data.len().min(max);
    let normal = avg.min(end);
    let bits = p.cdc_avg.trailing_zeros();
    // Normalized chunking: harder to cut before the average size, easier after.
    let (mask_s, mask_l) = (top_mask(bits + 2), top_mask(bits.saturating_sub(2)));
    let mut h: u64 = 0;
    let mut i = min;
    while i < normal {
        h = (h << 1).wrapping_add(gear.0[data[i] as usize]);
        if h & mask_s == 0 {
            return i + 1;
        }
        i += 1;
    }
    while i < end {
        h = (h << 1).wrapping_add(gear.0[data[i] as usize]);
        if h & mask_l == 0 {
            return i + 1;
        }
        i += 1;
    }
    end
}

/// Content-defined chunking over a stream.
#[derive(Debug)]
pub struct ContentChunker<R> {
    reader: R,
    gear: GearTable,
    params: ChunkingParams,
    buf: Vec<u8>,
    start: usize,
    eof: bool,
}

impl<R: Read> ContentChunker<R> {
    pub fn new(reader: R, gear: GearTable, params: ChunkingParams) -> Self {
        ContentChunker {
            reader,
            gear,
            params,
            buf: Vec::new(),
            start: 0,
            eof: false,
        }
    }

    fn fill(&mut self) -> io::Result<()> {
        let want = self.params.cdc_max as usize;
        if self.start > 0 && self.buf.len() - self.start < want {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        while !self.eof && self.buf.len() - self.start < want {
            let old = self.buf.len();
            // Grow by at most 1 MiB per read, so small files stay cheap.
            let grow = (self.start + want * 2 - old).min(1 << 20);
            self.buf.resize(old + grow, 0);
            let n = loop {
                match self.reader.read(&mut self.buf[old..]) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    r => break r,
                }
            };
            match n {
                Ok(n) => {
                    self.buf.truncate(old + n);
                    if n == 0 {
                        self.eof = true;
                    }
                }
                Err(e) => {
                    self.buf.truncate(old);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// The next chunk, or `None` at the end of the stream.
    pub fn next_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        self.fill()?;
        let avail = &self.buf[self.start..];
        if avail.is_empty() {
            return Ok(None);
        }
        let n = cut_point(&self.gear, &self.params, avail);
        let chunk = avail[..n].to_vec();
        self.start += n;
        Ok(Some(chunk))
    }
}

/// Fixed-size chunking: chunk `k` covers bytes `[k*size, (k+1)*size)`.
#[derive(Debug, Clone, Copy)]
pub struct FixedChunker {
    pub size: u64,
}

impl FixedChunker {
    /// The aligned chunk ranges that cover `[start, end)`, clipped to `len`.
    pub fn ranges(&self, start: u64, end: u64, len: u64) -> impl Iterator<Item = (u64, u64)> {
        let size = self.size.max(1);
        let first = start / size * size;
        let end = end.min(len);
        let step = usize::try_from(size).unwrap_or(usize::MAX);
        (first..end)
            .step_by(step)
            .map(move |s| (s, (s + size).min(len)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> ChunkingParams {
        ChunkingParams {
            cdc_min: 2048,
            cdc_avg: 8192,
            cdc_max: 32768,
            fixed_size: 4096,
        }
    }

    fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
        let mut out = vec![0u8; n];
        let mut x = blake3::Hasher::new();
        x.update(&seed.to_le_bytes());
        x.finalize_xof().fill(&mut out);
        out
    }

    fn chunks(data: &[u8], seed: u64) -> Vec<Vec<u8>> {
        let mut c = ContentChunker::new(data, GearTable::from_seed(seed), params());
        let mut out = vec![];
        while let Some(ch) = c.next_chunk().unwrap() {
            out.push(ch);
        }
        out
    }

    #[test]
    fn chunks_cover_input_within_bounds() {
        let data = pseudo_random(1 << 20, 1);
        let cs = chunks(&data, 7);
        assert_eq!(cs.concat(), data);
        for c in &cs[..cs.len() - 1] {
            assert!(c.len() >= 2048 && c.len() <= 32768, "{}", c.len());
        }
        let avg = data.len() / cs.len();
        assert!((4096..=16384).contains(&avg), "average {avg}");
    }

    #[test]
    fn insertion_changes_only_nearby_chunks() {
        let data = pseudo_random(1 << 20, 2);
        let mut edited = data.clone();
        edited.splice(500_000..500_000, b"inserted bytes".iter().copied());
        let a = chunks(&data, 7);
        let b = chunks(&edited, 7);
        let same = b.iter().filter(|c| a.contains(c)).count();
        assert!(same + 3 >= b.len(), "{same} of {} chunks survive", b.len());
    }

    #[test]
    fn seed_changes_boundaries() {
        let data = pseudo_random(1 << 20, 3);
        assert_ne!(chunks(&data, 1), chunks(&data, 2));
    }

    #[test]
    fn empty_input_has_no_chunks() {
        assert!(chunks(&[], 1).is_empty());
    }

    #[test]
    fn fixed_ranges_are_aligned() {
        let f = FixedChunker { size: 4096 };
        let r: Vec<_> = f.ranges(5000, 9000, 10_000).collect();
        assert_eq!(r, vec![(4096, 8192), (8192, 10_000)]);
        assert_eq!(f.ranges(0, 0, 0).count(), 0);
    }
}
