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

/// The gear hash's progress through one chunk, so a cut point is found
/// incrementally as data arrives. Only bytes from `cdc_min` on are hashed:
/// before the average size a cut needs `bits + 2` zero bits (harder), after
/// it `bits - 2` (easier): normalized chunking.
#[derive(Debug, Clone, Copy)]
struct CutScan {
    /// Next position in the chunk to hash.
    pos: usize,
    hash: u64,
}

impl CutScan {
    fn new(p: &ChunkingParams) -> Self {
        CutScan {
            pos: p.cdc_min as usize,
            hash: 0,
        }
    }

    /// Hash `data[pos..]` (the chunk so far, at most `cdc_max` bytes) and
    /// return the chunk's length if a cut point is among those bytes.
    fn scan(&mut self, gear: &GearTable, p: &ChunkingParams, data: &[u8]) -> Option<usize> {
        let bits = p.cdc_avg.trailing_zeros();
        let (mask_s, mask_l) = (top_mask(bits + 2), top_mask(bits.saturating_sub(2)));
        let end = data.len().min(p.cdc_max as usize);
        let normal = (p.cdc_avg as usize).min(end);
        let start = self.pos.min(end);
        let mut h = self.hash;
        if start < normal {
            match roll(gear, h, &data[start..normal], mask_s) {
                Ok(next) => h = next,
                Err(n) => return Some(start + n),
            }
        }
        let from = start.max(normal);
        if from < end {
            match roll(gear, h, &data[from..end], mask_l) {
                Ok(next) => h = next,
                Err(n) => return Some(from + n),
            }
        }
        self.hash = h;
        self.pos = end.max(self.pos);
        None
    }
}

/// Roll the gear hash `h` over `data`: `Err(n)` when the hash after byte
/// `n - 1` has no bit of `mask` set (a cut after `n` bytes), else the hash at
/// the end.
///
/// Four bytes a step, with the same result as one: the hash four bytes on is
/// `16h + (8g0 + 4g1 + 2g2 + g3)`, and the bracket does not depend on `h`, so
/// the loop-carried work is one shift and one add per four bytes instead of
/// per byte. The hashes between are computed alongside, for the cut test.
#[inline]
fn roll(gear: &GearTable, mut h: u64, data: &[u8], mask: u64) -> Result<u64, usize> {
    let g = |b: u8| gear.0[usize::from(b)];
    let mut quads = data.chunks_exact(4);
    let mut done = 0;
    for q in &mut quads {
        let g0 = g(q[0]);
        let t1 = (g0 << 1).wrapping_add(g(q[1]));
        let t2 = (t1 << 1).wrapping_add(g(q[2]));
        let t3 = (t2 << 1).wrapping_add(g(q[3]));
        let hs = [
            (h << 1).wrapping_add(g0),
            (h << 2).wrapping_add(t1),
            (h << 3).wrapping_add(t2),
            (h << 4).wrapping_add(t3),
        ];
        if let Some(k) = hs.iter().position(|x| x & mask == 0) {
            return Err(done + k + 1);
        }
        h = hs[3];
        done += 4;
    }
    for (k, &b) in quads.remainder().iter().enumerate() {
        h = (h << 1).wrapping_add(g(b));
        if h & mask == 0 {
            return Err(done + k + 1);
        }
    }
    Ok(h)
}

/// Data is read this much at a time; bytes read past a cut start the next
/// chunk, so at most this much is copied per chunk.
const READ_BLOCK: usize = 128 * 1024;

/// Content-defined chunking over a stream. Each chunk is read straight into
/// its own buffer, which the caller then owns.
#[derive(Debug)]
pub struct ContentChunker<R> {
    reader: R,
    gear: GearTable,
    params: ChunkingParams,
    /// Bytes read past the last cut: the start of the next chunk.
    carry: Vec<u8>,
    eof: bool,
}

impl<R: Read> ContentChunker<R> {
    pub fn new(reader: R, gear: GearTable, params: ChunkingParams) -> Self {
        ContentChunker {
            reader,
            gear,
            params,
            carry: Vec::new(),
            eof: false,
        }
    }

    /// Append up to `want` bytes to `chunk`; returns how many were read.
    /// (`read_to_end` reads into the spare capacity without zeroing it first.)
    fn read_more(&mut self, chunk: &mut Vec<u8>, want: usize) -> io::Result<usize> {
        let old = chunk.len();
        let limit = u64::try_from(want).unwrap_or(u64::MAX);
        match (&mut self.reader).take(limit).read_to_end(chunk) {
            Ok(n) => {
                if n < want {
                    self.eof = true;
                }
                Ok(n)
            }
            Err(e) => {
                chunk.truncate(old);
                Err(e)
            }
        }
    }

    /// The next chunk, or `None` at the end of the stream.
    pub fn next_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        let max = self.params.cdc_max as usize;
        let mut chunk = Vec::with_capacity(max.max(self.carry.len()));
        chunk.extend_from_slice(&self.carry);
        self.carry.clear();
        let mut scan = CutScan::new(&self.params);
        loop {
            let cut = scan
                .scan(&self.gear, &self.params, &chunk)
                .or_else(|| (chunk.len() >= max).then_some(max));
            if let Some(n) = cut {
                self.carry.extend_from_slice(&chunk[n..]);
                chunk.truncate(n);
                return Ok(Some(chunk));
            }
            if self.eof {
                return Ok((!chunk.is_empty()).then_some(chunk));
            }
            let want = READ_BLOCK.min(max - chunk.len());
            self.read_more(&mut chunk, want)?;
        }
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

    /// The cut rule applied to a whole buffer at once: what the incremental
    /// chunker must reproduce whatever sizes its reads return.
    fn reference_chunks(data: &[u8], seed: u64) -> Vec<Vec<u8>> {
        let (gear, p) = (GearTable::from_seed(seed), params());
        let bits = p.cdc_avg.trailing_zeros();
        let (mask_s, mask_l) = (top_mask(bits + 2), top_mask(bits - 2));
        let mut out = vec![];
        let mut rest = data;
        while !rest.is_empty() {
            let end = rest.len().min(p.cdc_max as usize);
            let mut n = end;
            if rest.len() > p.cdc_min as usize {
                let mut h = 0u64;
                for (i, &byte) in rest.iter().enumerate().take(end).skip(p.cdc_min as usize) {
                    h = (h << 1).wrapping_add(gear.0[byte as usize]);
                    let mask = if i < p.cdc_avg as usize {
                        mask_s
                    } else {
                        mask_l
                    };
                    if h & mask == 0 {
                        n = i + 1;
                        break;
                    }
                }
            } else {
                n = rest.len();
            }
            out.push(rest[..n].to_vec());
            rest = &rest[n..];
        }
        out
    }

    /// A reader that returns at most `step` bytes per call.
    struct Dribble<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Dribble<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.step).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn cuts_match_the_rule_whatever_the_reads() {
        // Low-entropy stretches (runs of one byte) force cuts at the maximum.
        let mut data = pseudo_random(3 << 20, 4);
        data[1_000_000..1_200_000].fill(7);
        for len in [0, 1, 2048, 2049, 40_000, data.len()] {
            let data = &data[..len];
            let expected = reference_chunks(data, 9);
            for step in [1 << 30, 1000, 4095] {
                let reader = Dribble { data, step };
                let mut c = ContentChunker::new(reader, GearTable::from_seed(9), params());
                let mut got = vec![];
                while let Some(ch) = c.next_chunk().unwrap() {
                    got.push(ch);
                }
                assert_eq!(got, expected, "length {len}, reads of {step}");
            }
        }
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
