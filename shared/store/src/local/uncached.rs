//! Large objects stay out of the page cache.
//!
//! A repository is a backup target, not a working set: a pack is written
//! once, and read once per restore or check, much later and usually by
//! another process. Caching its pages only pushes the protected applications'
//! own data out of memory, and filling the cache costs more than the data's
//! own copy: every page of it is fresh memory for the kernel to fault in,
//! which on a virtual machine is most of the cost of the write or the read.
//!
//! So, for objects and ranges of at least [`UNCACHE_FROM`] bytes:
//! - written ones are dropped from the cache after their fsync, when they are
//!   clean ([`uncache`]), which also hands the same pages to the next pack;
//! - read ones are read with `O_DIRECT` straight into the caller's buffer,
//!   where the filesystem allows it, and otherwise read through the cache
//!   and dropped from it afterwards.
//!
//! Smaller reads (trees, indexes, the chunks of a disk image) go through the
//! cache and stay there: they are the ones read more than once.

use bytes::Bytes;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// Objects and ranges at least this large bypass (or leave) the page cache.
pub(super) const UNCACHE_FROM: usize = 256 * 1024;

/// Alignment that direct I/O needs of the buffer, the offset and the length:
/// the page size, which every block device's logical block size divides.
#[cfg(target_os = "linux")]
const DIRECT_ALIGN: u64 = 4096;

/// Drop a file's pages from the page cache (advice only: when the kernel
/// ignores it, nothing but memory use changes).
pub(super) fn uncache(f: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        let _ = rustix::fs::fadvise(
            f,
            offset,
            std::num::NonZeroU64::new(len),
            rustix::fs::Advice::DontNeed,
        );
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (f, offset, len);
}

/// A whole object.
pub(super) fn read_object(path: &Path) -> io::Result<Bytes> {
    let f = File::open(path)?;
    let size = f.metadata()?.len();
    read_up_to(&f, 0, size)
}

/// `len` bytes from `offset`; an object shorter than that is an error.
pub(super) fn read_range(path: &Path, offset: u64, len: u64) -> io::Result<Bytes> {
    let bytes = read_up_to(&File::open(path)?, offset, len)?;
    if (bytes.len() as u64) < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("object is shorter than {offset}+{len} bytes"),
        ));
    }
    Ok(bytes)
}

/// Up to `len` bytes from `offset` (fewer at the end of the file): a large
/// range directly where the filesystem allows it, else through the cache,
/// from which a large one is dropped afterwards.
fn read_up_to(f: &File, offset: u64, len: u64) -> io::Result<Bytes> {
    let large = len >= UNCACHE_FROM as u64;
    if large {
        if let Some(bytes) = read_direct(f, offset, len)? {
            return Ok(bytes);
        }
    }
    let mut reader = f;
    reader.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    reader.take(len).read_to_end(&mut buf)?;
    if large {
        uncache(f, offset, len);
    }
    Ok(Bytes::from(buf))
}

/// Up to `len` bytes from `offset` with `O_DIRECT`, turned on for this read
/// on the open file and off again after it, or `None` where the filesystem
/// does not do direct I/O.
///
/// The read covers the aligned blocks around the range, into a buffer with
/// room to align its start; the result is a slice of it, not a copy.
#[cfg(target_os = "linux")]
fn read_direct(f: &File, offset: u64, len: u64) -> io::Result<Option<Bytes>> {
    use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};
    use rustix::io::Errno;
    let cached = fcntl_getfl(f)?;
    match fcntl_setfl(f, cached | OFlags::DIRECT) {
        Ok(()) => {}
        Err(Errno::INVAL) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let read = read_aligned(f, offset, len);
    fcntl_setfl(f, cached)?;
    read
}

/// The aligned read of [`read_direct`], on a file already in direct mode.
#[cfg(target_os = "linux")]
fn read_aligned(f: &File, offset: u64, len: u64) -> io::Result<Option<Bytes>> {
    use std::os::unix::fs::FileExt;
    let start = offset / DIRECT_ALIGN * DIRECT_ALIGN;
    let end = offset
        .checked_add(len)
        .and_then(|e| e.checked_next_multiple_of(DIRECT_ALIGN))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "range past 2^64"))?;
    let span = usize::try_from(end - start)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "range too large"))?;
    let align = DIRECT_ALIGN as usize;
    let mut buf = vec![0u8; span + align];
    let lead = buf.as_ptr().align_offset(align).min(align);
    let mut filled = 0;
    while filled < span {
        let window = &mut buf[lead + filled..lead + span];
        match f.read_at(window, start + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // Some filesystems accept the flag and refuse the read.
            Err(e)
                if filled == 0
                    && e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e),
        }
        // Only the end of the file gives a short read; what follows it is not
        // aligned any more, and there is nothing more to read anyway.
        if filled % align != 0 {
            break;
        }
    }
    let from = lead + (offset - start) as usize;
    let to = (lead + filled).min(from + len as usize).max(from);
    Ok(Some(Bytes::from(buf).slice(from..to)))
}

#[cfg(not(target_os = "linux"))]
fn read_direct(_f: &File, _offset: u64, _len: u64) -> io::Result<Option<Bytes>> {
    Ok(None)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::fs;

    fn sample(dir: &Path, len: usize) -> (std::path::PathBuf, Vec<u8>) {
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 253) as u8).collect();
        let path = dir.join("object");
        fs::write(&path, &data).unwrap();
        (path, data)
    }

    #[test]
    fn ranges_read_the_same_directly_and_through_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let len = 3 * UNCACHE_FROM + 1234;
        let (path, data) = sample(dir.path(), len);
        let cases = [
            (0, len),
            (1, UNCACHE_FROM),
            (4095, UNCACHE_FROM + 2),
            (4096, UNCACHE_FROM),
            (len - UNCACHE_FROM, UNCACHE_FROM),
        ];
        for (off, n) in cases {
            let want = &data[off..off + n];
            assert_eq!(read_range(&path, off as u64, n as u64).unwrap(), want);
            // Where the filesystem does direct I/O, the direct read itself.
            let f = File::open(&path).unwrap();
            if let Some(got) = read_direct(&f, off as u64, n as u64).unwrap() {
                assert_eq!(got, want, "direct read of {n} bytes at {off}");
            }
            // The file is back in cached mode afterwards.
            #[cfg(target_os = "linux")]
            assert!(!rustix::fs::fcntl_getfl(&f)
                .unwrap()
                .contains(rustix::fs::OFlags::DIRECT));
        }
        assert_eq!(read_object(&path).unwrap(), data);
    }

    #[test]
    fn ranges_past_the_end_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let len = UNCACHE_FROM + 10;
        let (path, _) = sample(dir.path(), len);
        for (off, n) in [(11, len), (len + 4096, UNCACHE_FROM), (0, 2 * len)] {
            let e = read_range(&path, off as u64, n as u64).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{n} bytes at {off}");
        }
    }

    #[test]
    fn tmpfs_reads_whole_objects_and_ranges() {
        // /dev/shm is tmpfs on Linux, which refuses O_DIRECT before Linux 6.6
        // and accepts it since: either way the reads must work.
        let Ok(dir) = tempfile::tempdir_in("/dev/shm") else {
            return;
        };
        let (path, data) = sample(dir.path(), 2 * UNCACHE_FROM + 5);
        assert_eq!(read_object(&path).unwrap(), data);
        assert_eq!(
            read_range(&path, 3, UNCACHE_FROM as u64).unwrap(),
            data[3..3 + UNCACHE_FROM]
        );
    }
}
