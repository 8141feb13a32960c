//! Reading what a backup stores: node metadata, data regions of sparse files,
//! and which files are cut into fixed chunks.

use lifeboat_repo::{Node, NodeType};
use rustix::fs::{statx, AtFlags, FileType, StatxFlags};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::os::fd::AsFd;
use std::path::Path;

/// File name extensions of disk images: cut into fixed chunks like block devices.
const IMAGE_EXTENSIONS: &[&str] = &["img", "raw", "qcow2", "vmdk", "vhd", "vhdx", "vdi"];
/// Sparse files at least this large are treated as disk images.
const SPARSE_IMAGE_MIN: u64 = 1 << 20;

/// What a backup records of an entry, from `statx`: of the name in its
/// directory (not following a symlink), or of an open descriptor.
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    pub file_type: FileType,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub dev: (u32, u32),
    pub ino: u64,
    pub rdev: u64,
    pub len: u64,
    pub blocks: u64,
}

impl Meta {
    /// The entry `name` of directory `dir` itself, a symlink not followed
    /// (`CWD` and an absolute path for a source path).
    pub fn lstat_at(dir: impl AsFd, name: &Path) -> io::Result<Meta> {
        Ok(Meta::from(statx(
            dir,
            name,
            AtFlags::SYMLINK_NOFOLLOW,
            StatxFlags::BASIC_STATS,
        )?))
    }

    /// The file or directory open as `fd`.
    pub fn of(fd: impl AsFd) -> io::Result<Meta> {
        Ok(Meta::from(statx(
            fd,
            "",
            AtFlags::EMPTY_PATH,
            StatxFlags::BASIC_STATS,
        )?))
    }

    /// Whether `other` is the same inode, of the same type.
    pub fn same_entry(&self, other: &Meta) -> bool {
        self.file_type == other.file_type && self.dev == other.dev && self.ino == other.ino
    }
}

impl From<rustix::fs::Statx> for Meta {
    fn from(s: rustix::fs::Statx) -> Self {
        let ns = |t: rustix::fs::StatxTimestamp| t.tv_sec * 1_000_000_000 + i64::from(t.tv_nsec);
        Meta {
            file_type: FileType::from_raw_mode(u32::from(s.stx_mode)),
            mode: u32::from(s.stx_mode) & 0o7777,
            uid: s.stx_uid,
            gid: s.stx_gid,
            mtime_ns: ns(s.stx_mtime),
            ctime_ns: ns(s.stx_ctime),
            dev: (s.stx_dev_major, s.stx_dev_minor),
            ino: s.stx_ino,
            rdev: rustix::fs::makedev(s.stx_rdev_major, s.stx_rdev_minor),
            len: s.stx_size,
            blocks: s.stx_blocks,
        }
    }
}

/// The node type of a file type.
pub fn node_type(ft: FileType) -> NodeType {
    match ft {
        FileType::Directory => NodeType::Dir,
        FileType::Symlink => NodeType::Symlink,
        FileType::BlockDevice => NodeType::Blockdev,
        FileType::CharacterDevice => NodeType::Chardev,
        FileType::Fifo => NodeType::Fifo,
        FileType::Socket => NodeType::Socket,
        _ => NodeType::File,
    }
}

/// A node with the metadata of `meta` (no content yet).
pub fn node_from_meta(name: &OsStr, meta: &Meta) -> Node {
    let node_type = node_type(meta.file_type);
    let mut n = Node::new(name, node_type);
    n.mode = meta.mode;
    n.uid = meta.uid;
    n.gid = meta.gid;
    n.mtime_ns = meta.mtime_ns;
    n.ctime_ns = meta.ctime_ns;
    n.inode = meta.ino;
    if node_type == NodeType::File {
        n.size = meta.len;
    }
    if matches!(node_type, NodeType::Blockdev | NodeType::Chardev) {
        n.rdev = meta.rdev;
    }
    n
}

/// Whether a file's content is cut into fixed, aligned chunks.
pub fn wants_fixed_chunks(path: &Path, meta: &Meta) -> bool {
    if meta.file_type == FileType::BlockDevice {
        return true;
    }
    let by_extension = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
    let sparse = meta.len >= SPARSE_IMAGE_MIN && meta.blocks * 512 < meta.len / 2;
    by_extension || sparse
}

/// The size of a block device or file, by seeking to its end.
pub fn content_len(file: &mut File, meta: &Meta) -> io::Result<u64> {
    if meta.file_type == FileType::BlockDevice {
        let len = file.seek(SeekFrom::End(0))?;
        file.seek(SeekFrom::Start(0))?;
        Ok(len)
    } else {
        Ok(meta.len)
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
        let meta = Meta::of(File::open(&p).unwrap()).unwrap();
        assert!(wants_fixed_chunks(&p, &meta));
    }

    #[test]
    fn plain_files_use_content_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log.txt");
        let mut f = File::create(&p).unwrap();
        f.write_all(&vec![b'a'; 2 << 20]).unwrap();
        let meta = Meta::of(File::open(&p).unwrap()).unwrap();
        assert!(!wants_fixed_chunks(&p, &meta));
        let f = File::open(&p).unwrap();
        assert_eq!(data_regions(&f, 2 << 20), vec![(0, 2 << 20)]);
    }
}
