//! A volume snapshot's data, block by block.
//!
//! A [`BlockSource`] is one point-in-time copy of a volume (an EBS snapshot,
//! an image file, a block device): it knows the volume's size and block size,
//! which blocks hold data, which blocks changed since an earlier snapshot of
//! the same volume, and reads one block at a time with its integrity checked.
//! A [`BlockSink`] builds a new copy the same way. Blocks are numbered from 0;
//! block `i` covers bytes `[i * block_size, (i + 1) * block_size)`, the last
//! one clipped to the volume size. A block that is not listed reads as zeros.

use crate::VolumeError;
use async_trait::async_trait;
use bytes::Bytes;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The shape of a volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Size of the volume in bytes.
    pub volume_size: u64,
    /// Size of one block in bytes (a power of two).
    pub block_size: u32,
}

impl Geometry {
    /// The number of blocks, the last one possibly partial.
    pub fn blocks(&self) -> u64 {
        self.volume_size.div_ceil(u64::from(self.block_size.max(1)))
    }

    /// The byte range of block `index`, clipped to the volume.
    pub fn byte_range(&self, index: u64) -> (u64, u64) {
        let bs = u64::from(self.block_size);
        let start = index.saturating_mul(bs);
        (
            start.min(self.volume_size),
            (start + bs).min(self.volume_size),
        )
    }
}

/// A block that holds data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub index: u64,
    /// What the source needs to read it (an EBS block token); empty if nothing.
    pub token: String,
}

/// A block that differs between an earlier snapshot and this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedBlock {
    pub index: u64,
    /// The block in this snapshot, or `None` if it holds no data here any
    /// more (it reads as zeros).
    pub now: Option<Block>,
}

#[async_trait]
pub trait BlockSource: Send + Sync + std::fmt::Debug {
    /// A name for messages: the snapshot id or the file path.
    fn name(&self) -> String;

    async fn geometry(&self) -> Result<Geometry, VolumeError>;

    /// The blocks in `[first, end)` that hold data, in ascending order.
    async fn allocated(&self, first: u64, end: u64) -> Result<Vec<Block>, VolumeError>;

    /// The blocks in `[first, end)` that differ from `base`, an earlier
    /// snapshot of the same volume named as this source names snapshots, in
    /// ascending order; `None` if this source cannot tell (the caller then
    /// reads every allocated block).
    async fn changed_since(
        &self,
        base: &str,
        first: u64,
        end: u64,
    ) -> Result<Option<Vec<ChangedBlock>>, VolumeError>;

    /// Read one block: exactly its byte range's length, integrity checked.
    async fn read(&self, block: &Block) -> Result<Bytes, VolumeError>;
}

#[async_trait]
pub trait BlockSink: Send + Sync + std::fmt::Debug {
    fn geometry(&self) -> Geometry;

    /// Write one whole block (its byte range's length). Blocks of zeros need
    /// not be written: a new copy starts as zeros.
    async fn write(&self, index: u64, data: Bytes) -> Result<(), VolumeError>;

    /// Make the copy durable and complete; returns its handle (a snapshot id
    /// or the file path). `blocks_written` is the number of `write` calls.
    async fn finish(&self, blocks_written: u64) -> Result<String, VolumeError>;
}

/// An image file or a block device, as a source or as a sink.
///
/// As a source it lists the blocks that overlap data regions (holes of a
/// sparse file are skipped; a device is all data); it cannot tell changed
/// blocks. As a sink it writes in place (the file is created at the
/// volume's size if absent) and syncs on `finish`.
#[derive(Debug, Clone)]
pub struct ImageFile {
    path: PathBuf,
    file: Arc<File>,
    geometry: Geometry,
}

impl ImageFile {
    /// Open an existing image or device for reading, read in blocks of
    /// `block_size` bytes.
    pub fn open(path: &Path, block_size: u32) -> Result<Self, VolumeError> {
        check_block_size(block_size)?;
        let mut file = File::open(path).map_err(|e| VolumeError::io(path, e))?;
        let volume_size = file_len(&mut file).map_err(|e| VolumeError::io(path, e))?;
        Ok(ImageFile {
            path: path.to_path_buf(),
            file: Arc::new(file),
            geometry: Geometry {
                volume_size,
                block_size,
            },
        })
    }

    /// Open (creating if absent) an image or device to be written. A regular
    /// file is sized to `geometry.volume_size`; a device must be at least
    /// that large.
    pub fn create(path: &Path, geometry: Geometry) -> Result<Self, VolumeError> {
        check_block_size(geometry.block_size)?;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| VolumeError::io(path, e))?;
        let meta = file.metadata().map_err(|e| VolumeError::io(path, e))?;
        if meta.is_file() {
            file.set_len(geometry.volume_size)
                .map_err(|e| VolumeError::io(path, e))?;
        } else {
            let len = file_len(&mut file).map_err(|e| VolumeError::io(path, e))?;
            if len < geometry.volume_size {
                return Err(VolumeError::Invalid(format!(
                    "{}: device holds {len} bytes, the volume needs {}",
                    path.display(),
                    geometry.volume_size
                )));
            }
        }
        Ok(ImageFile {
            path: path.to_path_buf(),
            file: Arc::new(file),
            geometry,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check_index(&self, index: u64) -> Result<(u64, u64), VolumeError> {
        if index >= self.geometry.blocks() {
            return Err(VolumeError::Invalid(format!(
                "{}: block {index} is outside the volume ({} blocks)",
                self.path.display(),
                self.geometry.blocks()
            )));
        }
        Ok(self.geometry.byte_range(index))
    }

    /// Run blocking file I/O off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&File) -> std::io::Result<T> + Send + 'static,
    ) -> Result<T, VolumeError> {
        let file = self.file.clone();
        let path = self.path.clone();
        match tokio::task::spawn_blocking(move || f(&file)).await {
            Ok(r) => r.map_err(|e| VolumeError::io(path, e)),
            Err(e) => Err(VolumeError::io(path, std::io::Error::other(e))),
        }
    }
}

fn check_block_size(block_size: u32) -> Result<(), VolumeError> {
    if block_size < 512 || !block_size.is_power_of_two() {
        return Err(VolumeError::Invalid(format!(
            "block size must be a power of two of at least 512 bytes (got {block_size})"
        )));
    }
    Ok(())
}

fn file_len(file: &mut File) -> std::io::Result<u64> {
    use std::io::{Seek, SeekFrom};
    let len = file.seek(SeekFrom::End(0))?;
    file.seek(SeekFrom::Start(0))?;
    Ok(len)
}

/// The byte ranges of `file` below `len` that hold data; the whole range if
/// the file system cannot tell (or for a device).
pub fn data_regions(file: &File, len: u64) -> Vec<(u64, u64)> {
    use rustix::fs::{seek, SeekFrom};
    let mut out = Vec::new();
    let mut pos = 0u64;
    while pos < len {
        let start = match seek(file, SeekFrom::Data(pos)) {
            Ok(s) => s,
            Err(rustix::io::Errno::NXIO) => break,
            Err(_) => return vec![(0, len)],
        };
        if start >= len {
            break;
        }
        let end = seek(file, SeekFrom::Hole(start)).map_or(len, |e| e.min(len));
        out.push((start, end));
        pos = end;
    }
    out
}

#[async_trait]
impl BlockSource for ImageFile {
    fn name(&self) -> String {
        self.path.display().to_string()
    }

    async fn geometry(&self) -> Result<Geometry, VolumeError> {
        Ok(self.geometry)
    }

    async fn allocated(&self, first: u64, end: u64) -> Result<Vec<Block>, VolumeError> {
        let g = self.geometry;
        let end = end.min(g.blocks());
        let regions = self
            .blocking(move |f| Ok(data_regions(f, g.volume_size)))
            .await?;
        let bs = u64::from(g.block_size);
        let mut out: Vec<Block> = Vec::new();
        for (start, stop) in regions {
            let lo = (start / bs).max(first);
            let hi = stop.div_ceil(bs).min(end);
            for index in lo..hi {
                if out.last().is_some_and(|b| b.index >= index) {
                    continue;
                }
                out.push(Block {
                    index,
                    token: String::new(),
                });
            }
        }
        Ok(out)
    }

    async fn changed_since(
        &self,
        _base: &str,
        _first: u64,
        _end: u64,
    ) -> Result<Option<Vec<ChangedBlock>>, VolumeError> {
        Ok(None)
    }

    async fn read(&self, block: &Block) -> Result<Bytes, VolumeError> {
        let (start, stop) = self.check_index(block.index)?;
        let buf = self
            .blocking(move |f| {
                let mut buf = vec![0u8; usize::try_from(stop - start).unwrap_or(0)];
                f.read_exact_at(&mut buf, start)?;
                Ok(buf)
            })
            .await?;
        Ok(Bytes::from(buf))
    }
}

#[async_trait]
impl BlockSink for ImageFile {
    fn geometry(&self) -> Geometry {
        self.geometry
    }

    async fn write(&self, index: u64, data: Bytes) -> Result<(), VolumeError> {
        let (start, stop) = self.check_index(index)?;
        if data.len() as u64 != stop - start {
            return Err(VolumeError::Invalid(format!(
                "{}: block {index} must be {} bytes, got {}",
                self.path.display(),
                stop - start,
                data.len()
            )));
        }
        self.blocking(move |f| f.write_all_at(&data, start)).await
    }

    async fn finish(&self, _blocks_written: u64) -> Result<String, VolumeError> {
        self.blocking(|f| f.sync_all()).await?;
        Ok(self.path.display().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sparse_image_lists_only_blocks_with_data() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("disk.img");
        let f = File::create(&p).unwrap();
        f.set_len(64 << 20).unwrap();
        f.write_all_at(b"hello", 5 << 20).unwrap();
        f.write_all_at(&[7u8; 8192], (40 << 20) - 4096).unwrap();
        f.sync_all().unwrap();
        drop(f);

        let img = ImageFile::open(&p, 1 << 20).unwrap();
        assert_eq!(img.geometry.blocks(), 64);
        let blocks = img.allocated(0, 64).await.unwrap();
        let idx: Vec<u64> = blocks.iter().map(|b| b.index).collect();
        // File systems allocate in pages or larger extents; the blocks that
        // hold the written bytes must be there, and far fewer than all.
        for want in [5, 39, 40] {
            assert!(idx.contains(&want), "{idx:?} lacks {want}");
        }
        assert!(idx.len() < 16, "{idx:?}");
        let data = img
            .read(&Block {
                index: 5,
                token: String::new(),
            })
            .await
            .unwrap();
        assert_eq!(&data[..5], b"hello");
        assert_eq!(data.len(), 1 << 20);
        // A sub-range only lists its own blocks.
        let some = img.allocated(39, 40).await.unwrap();
        assert_eq!(some.iter().map(|b| b.index).collect::<Vec<_>>(), vec![39]);
    }

    #[tokio::test]
    async fn image_sink_round_trips_and_checks_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.img");
        let g = Geometry {
            volume_size: 10_000,
            block_size: 4096,
        };
        let sink = ImageFile::create(&p, g).unwrap();
        assert_eq!(g.blocks(), 3);
        sink.write(2, Bytes::from(vec![9u8; 10_000 - 8192]))
            .await
            .unwrap();
        let err = sink.write(0, Bytes::from(vec![1u8; 10])).await.unwrap_err();
        assert!(err.to_string().contains("must be 4096 bytes"), "{err}");
        let err = sink.write(3, Bytes::from(vec![1u8; 10])).await.unwrap_err();
        assert!(err.to_string().contains("outside the volume"), "{err}");
        assert_eq!(sink.finish(1).await.unwrap(), p.display().to_string());
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(bytes.len(), 10_000);
        assert!(bytes[..8192].iter().all(|b| *b == 0));
        assert!(bytes[8192..].iter().all(|b| *b == 9));
        let src = ImageFile::open(&p, 4096).unwrap();
        assert!(src.changed_since("x", 0, 3).await.unwrap().is_none());
    }

    #[test]
    fn odd_block_sizes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, b"x").unwrap();
        let err = ImageFile::open(&p, 1000).unwrap_err();
        assert!(err.to_string().contains("power of two"), "{err}");
        let err = ImageFile::open(&dir.path().join("missing"), 4096).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
