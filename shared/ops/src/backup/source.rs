//! Reading what a backup stores: node metadata, data regions of sparse files,
//! and which files are cut into fixed chunks.

use lifeboat_repo::{Node, NodeType};
use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// File name extensions of disk images: cut into fixed chunks like block devices.
const IMAGE_EXTENSIONS: &[&str] = &["img", "raw", "qcow2", "vmdk", "vhd", "vhdx", "vdi"];
/// Sparse files at least this large are treated as disk images.
const SPARSE_IMAGE_MIN: u64 = 1 << 20;

/// A node with the metadata of `meta` (no content yet).
pub fn node_from_meta(name: &OsStr, meta: &Metadata) -> Node {
    let ft = meta.file_type();
    let node_type = if ft.is_dir() {
        NodeType::Dir
    } else if ft.is_symlink() {
        NodeType::Symlink
    } else if ft.is_block_device() {
        NodeType::Blockdev
    } else if ft.is_char_device() {
        NodeType::Chardev
    } else if ft.is_fifo() {
        NodeType::Fifo
    } else if ft.is_socket() {
        NodeType::Socket
    } else {
        NodeType::File
    };
    let mut n = Node::new(name, node_type);
    n.mode = meta.mode() & 0o7777;
    n.uid = meta.uid();
    n.gid = meta.gid();
    n.mtime_ns = meta.mtime() * 1_000_000_000 + meta.mtime_nsec();
    n.ctime_ns = meta.ctime() * 1_000_000_000 + meta.ctime_nsec();
    n.inode = meta.ino();
    if node_type == NodeType::File {
        n.size = meta.len();
    }
    if matches!(node_type, NodeType::Blockdev | NodeType::Chardev) {
        n.rdev = meta.rdev();
    }
    n
}

/// Whether a file's content is cut into fixed, aligned chunks.
pub fn wants_fixed_chunks(path: &Path, meta: &Metadata) -> bool {
    if meta.file_type().is_block_device() {
        return true;
    }
    let by_extension = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
    let sparse = meta.len() >= SPARSE_IMAGE_MIN && meta.blocks() * 512 < meta.len() / 2;
    by_extension || sparse
}

/// The size of a block device or file, by seeking to its end.
pub fn content_len(file: &mut File, meta: &Metadata) -> io::Result<u64> {
    if meta.file_type().is_block_device() {
        let len = file.seek(SeekFrom::End(0))?;
        file.seek(SeekFrom::Start(0))?;
        Ok(len)
    } else {
        Ok(meta.len())
    }
}

/// The byte ranges of `file` below `len` that hold data, skipping holes
/// (one implementation, shared with the block sources).
pub use lifeboat_volume::block::data_regions;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::FileExt;

    #[test]
    fn sparse_regions_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("disk.img");
        let f = File::create(&p).unwrap();
        f.set_len(64 << 20).unwrap();
        f.write_at(&[1u8; 4096], 8 << 20).unwrap();
        f.write_at(&[2u8; 4096], 40 << 20).unwrap();
        f.sync_all().unwrap();
        let f = File::open(&p).unwrap();
        let regions = data_regions(&f, 64 << 20);
        let covered: u64 = regions.iter().map(|(s, e)| e - s).sum();
        // Either the file system reports holes (small coverage) or not (whole file).
        assert!(covered <= 64 << 20);
        assert!(regions
            .iter()
            .any(|(s, e)| *s <= 8 << 20 && *e >= (8 << 20) + 4096));
        assert!(regions
            .iter()
            .any(|(s, e)| *s <= 40 << 20 && *e >= (40 << 20) + 4096));
        let meta = std::fs::metadata(&p).unwrap();
        assert!(wants_fixed_chunks(&p, &meta));
    }

    #[test]
    fn plain_files_use_content_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log.txt");
        let mut f = File::create(&p).unwrap();
        f.write_all(&vec![b'a'; 2 << 20]).unwrap();
        let meta = std::fs::metadata(&p).unwrap();
        assert!(!wants_fixed_chunks(&p, &meta));
        let f = File::open(&p).unwrap();
        assert_eq!(data_regions(&f, 2 << 20), vec![(0, 2 << 20)]);
    }
}
