//! Reading a disk image or block device a span of fixed chunks at a time.
//!
//! Only the file's data regions are read. The holes between them (what
//! `SEEK_HOLE` reports) are zeros by definition, so they are zero-filled in
//! the buffer instead of copied out of the kernel: a sparse image with
//! scattered 4 KiB pages, as databases leave them, is mostly holes even
//! inside the 64 KiB chunks that hold data. A block device has one region,
//! its whole length, and is read as before.
//!
//! Buffers come back from the workers once they have hashed and stored a
//! span ([`SpanReader::recycle`]), so a long image is read through the same
//! few buffers instead of a fresh, page-faulted allocation per span.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

pub(super) struct SpanReader<'a> {
    file: &'a File,
    /// Byte ranges of the file that hold data: sorted and disjoint.
    regions: &'a [(u64, u64)],
    /// The first region that may still reach into a later span.
    next: usize,
    free: Vec<Vec<u8>>,
}

impl<'a> SpanReader<'a> {
    pub(super) fn new(file: &'a File, regions: &'a [(u64, u64)]) -> Self {
        SpanReader {
            file,
            regions,
            next: 0,
            free: Vec::new(),
        }
    }

    /// Bytes `start..end` of the file, and how many of them were read from
    /// it (the rest lie in holes). Spans must come in increasing order.
    pub(super) fn read(&mut self, start: u64, end: u64) -> io::Result<(Vec<u8>, u64)> {
        let len = usize::try_from(end - start)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "span too long"))?;
        let mut buf = self.free.pop().unwrap_or_default();
        buf.clear();
        buf.resize(len, 0);
        while self.regions.get(self.next).is_some_and(|r| r.1 <= start) {
            self.next += 1;
        }
        let mut read = 0;
        for &(region_start, region_end) in &self.regions[self.next..] {
            if region_start >= end {
                break;
            }
            let (lo, hi) = (region_start.max(start), region_end.min(end));
            let part = &mut buf[(lo - start) as usize..(hi - start) as usize];
            self.file
                .read_exact_at(part, lo)
                .map_err(|e| match e.kind() {
                    io::ErrorKind::UnexpectedEof => io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("file shrank while it was read (bytes {lo}..{hi} are gone)"),
                    ),
                    _ => e,
                })?;
            read += hi - lo;
        }
        Ok((buf, read))
    }

    /// Take back a buffer [`SpanReader::read`] gave out.
    pub(super) fn recycle(&mut self, buf: Vec<u8>) {
        self.free.push(buf);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn image(dir: &std::path::Path, pages: &[(u64, u8)], len: u64) -> File {
        let p = dir.join("disk.img");
        let f = File::create(&p).unwrap();
        f.set_len(len).unwrap();
        for &(at, byte) in pages {
            f.write_all_at(&[byte; 4096], at).unwrap();
        }
        File::open(&p).unwrap()
    }

    #[test]
    fn holes_read_as_zeros_and_only_regions_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let f = image(dir.path(), &[(4096, 1), (20480, 2), (65536, 3)], 131072);
        // As data_regions would report them (the file system may not).
        let regions = [(4096, 8192), (20480, 24576), (65536, 69632)];
        let mut r = SpanReader::new(&f, &regions);
        let (a, n) = r.read(0, 32768).unwrap();
        assert_eq!(n, 8192);
        let mut want = vec![0u8; 32768];
        want[4096..8192].fill(1);
        want[20480..24576].fill(2);
        assert_eq!(a, want);
        // A recycled buffer holding old bytes is zeroed where the next span has holes.
        r.recycle(a);
        let (b, n) = r.read(32768, 98304).unwrap();
        assert_eq!(n, 4096);
        let mut want = vec![0u8; 65536];
        want[32768..36864].fill(3);
        assert_eq!(b, want);
    }

    #[test]
    fn a_region_spanning_two_spans_is_read_in_both() {
        let dir = tempfile::tempdir().unwrap();
        let f = image(dir.path(), &[(61440, 5), (65536, 6)], 131072);
        let regions = [(61440, 69632)];
        let mut r = SpanReader::new(&f, &regions);
        let (a, _) = r.read(0, 65536).unwrap();
        assert!(a[61440..].iter().all(|b| *b == 5));
        let (b, n) = r.read(65536, 131072).unwrap();
        assert_eq!(n, 4096);
        assert!(b[..4096].iter().all(|x| *x == 6) && b[4096..].iter().all(|x| *x == 0));
    }

    #[test]
    fn a_file_that_shrank_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let f = image(dir.path(), &[(0, 1)], 8192);
        let regions = [(0, 16384)];
        let err = SpanReader::new(&f, &regions).read(0, 16384).unwrap_err();
        assert!(err.to_string().contains("file shrank"), "{err}");
    }
}
