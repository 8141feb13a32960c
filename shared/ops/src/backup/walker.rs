//! Walks the source paths on a blocking thread, cuts file content into chunks,
//! hashes them, and builds one tree blob per directory (bottom up).

use super::open::{is_changed, open_dir, open_file};
use super::pipeline::{BlobSaver, SpanIds};
use super::source::{content_len, data_regions, node_from_meta, wants_fixed_chunks, Meta};
use super::span_reader::SpanReader;
use crate::{OpsError, Progress};
use lifeboat_repo::{
    BlobType, ChunkRef, ChunkingParams, ContentChunker, FixedChunker, GearTable, Id, Index, Node,
    NodeType, Repository, Tree,
};
use rustix::fs::{FileType, CWD};
use std::collections::{HashMap, VecDeque};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::runtime::Handle;

/// At most this many warnings are kept in a snapshot summary.
const MAX_WARNINGS: usize = 100;

/// Content-defined chunks (about 1 MiB each) are hashed and saved this many
/// bytes at a time, two threads hashing: with incompressible data the
/// walking thread, not compression, limits a full backup.
const BATCH_BYTES: usize = 4 * 1024 * 1024;

/// Chunks of one file waiting to be hashed and saved together.
#[derive(Default)]
struct Batch {
    offsets: Vec<u64>,
    data: Vec<Vec<u8>>,
    bytes: usize,
}

impl Batch {
    /// Add a chunk; true once the batch is due.
    fn push(&mut self, offset: u64, data: Vec<u8>) -> bool {
        self.bytes += data.len();
        self.offsets.push(offset);
        self.data.push(data);
        self.bytes >= BATCH_BYTES
    }

    /// Save the chunks and append their references to `out`.
    fn flush(&mut self, saver: &mut BlobSaver, out: &mut Vec<ChunkRef>) -> Result<(), OpsError> {
        let ids = saver.save_all(BlobType::Data, std::mem::take(&mut self.data))?;
        let offsets = std::mem::take(&mut self.offsets);
        out.extend(
            ids.into_iter()
                .zip(offsets)
                .map(|(id, offset)| ChunkRef { id, offset }),
        );
        self.bytes = 0;
        Ok(())
    }
}

/// Fixed-size chunks are read this many bytes at a time.
const READ_SPAN: usize = 1024 * 1024;
/// Reads of fixed chunks handed to the workers before waiting for the oldest.
const SPANS_IN_FLIGHT: usize = 8;

/// What the walk found.
#[derive(Debug, Default, Clone)]
pub struct WalkStats {
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    pub bytes_read: u64,
    pub warnings: Vec<String>,
    pub warning_count: u64,
}

/// Access to the parent snapshot's trees, to skip files that did not change.
pub struct ParentTrees {
    pub repo: Repository,
    pub index: Arc<Index>,
    pub rt: Handle,
    /// Judge a file unchanged by type, size and mtime alone: for a source
    /// whose inodes and ctimes change with every copy (a volume restored
    /// from a snapshot for each backup).
    pub ignore_inode: bool,
}

impl ParentTrees {
    fn load(&self, id: &Id) -> Option<Tree> {
        match self.rt.block_on(self.repo.load_tree(&self.index, id)) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(tree = %id, error = %e, "cannot read parent tree; reading files again");
                None
            }
        }
    }
}

/// An entry to back up: its name in the directory open as `dir` (`CWD`
/// and the whole path for a source path), and its path for messages.
struct At<'a> {
    dir: BorrowedFd<'a>,
    name: &'a Path,
    path: &'a Path,
}

pub struct Walker {
    pub saver: BlobSaver,
    gear: GearTable,
    chunking: ChunkingParams,
    progress: Arc<Progress>,
    parent: Option<ParentTrees>,
    pub stats: WalkStats,
}

/// The nodes of a parent tree by name (a directory may hold thousands, and
/// each is looked up once).
fn by_name(tree: &Option<Tree>) -> HashMap<OsString, &Node> {
    tree.iter()
        .flat_map(|t| &t.nodes)
        .map(|n| (n.os_name(), n))
        .collect()
}

/// The chunks of a span the workers hashed (at `offsets`), in order; holes
/// are left out. The span's buffer goes back to `reader`.
fn collect_span(
    offsets: Vec<u64>,
    ids: SpanIds,
    out: &mut Vec<ChunkRef>,
    reader: &mut SpanReader,
) -> Result<(), OpsError> {
    let done = ids.wait()?;
    for (offset, id) in offsets.into_iter().zip(done.ids) {
        if let Some(id) = id {
            out.push(ChunkRef { id, offset });
        }
    }
    reader.recycle(done.buffer);
    Ok(())
}

fn unchanged(prev: &Node, now: &Node, ignore_inode: bool) -> bool {
    prev.node_type == now.node_type
        && prev.size == now.size
        && prev.mtime_ns == now.mtime_ns
        && (ignore_inode || (prev.ctime_ns == now.ctime_ns && prev.inode == now.inode))
}

impl Walker {
    pub fn new(
        saver: BlobSaver,
        chunking: ChunkingParams,
        progress: Arc<Progress>,
        parent: Option<ParentTrees>,
    ) -> Self {
        let gear = GearTable::from_seed(saver.key().chunker_seed());
        Walker {
            saver,
            gear,
            chunking,
            progress,
            parent,
            stats: WalkStats::default(),
        }
    }

    fn warn(&mut self, path: &Path, e: &dyn std::fmt::Display) {
        tracing::warn!(path = %path.display(), error = %e, "skipped");
        self.stats.warning_count += 1;
        if self.stats.warnings.len() < MAX_WARNINGS {
            self.stats.warnings.push(format!("{}: {e}", path.display()));
        }
    }

    fn load_parent(&self, id: Option<Id>) -> Option<Tree> {
        self.parent.as_ref()?.load(&id?)
    }

    fn save_tree(&mut self, mut tree: Tree) -> Result<Id, OpsError> {
        let json = tree.to_json()?;
        self.saver.save(BlobType::Tree, json)
    }

    /// Back up the source paths; returns the root tree's id.
    pub fn backup_sources(
        &mut self,
        paths: &[PathBuf],
        parent_root: Option<Id>,
    ) -> Result<Id, OpsError> {
        let parent = self.load_parent(parent_root);
        let parent_nodes = by_name(&parent);
        let mut root = Tree::default();
        for path in paths {
            let name: OsString = path
                .file_name()
                .map(|n| n.to_os_string())
                .unwrap_or_else(|| OsString::from("root"));
            // A source path is the operator's: resolved as given, except
            // its last component (a symlink is stored as one).
            let meta = Meta::lstat_at(CWD, path).map_err(|e| OpsError::io(path, e))?;
            // One path after a parent of one path: its successor, whatever
            // either is called (a volume mounted at a new place each time).
            let only = match (paths.len(), parent.as_ref()) {
                (1, Some(t)) if t.nodes.len() == 1 => t.nodes.first().cloned(),
                _ => None,
            };
            let prev = only.or_else(|| parent_nodes.get(&name).map(|n| (*n).clone()));
            let at = At {
                dir: CWD,
                name: path,
                path,
            };
            let node = self.entry(&at, &name, &meta, prev.as_ref(), true)?;
            root.nodes.push(node);
        }
        self.save_tree(root)
    }

    fn entry(
        &mut self,
        at: &At<'_>,
        name: &OsStr,
        meta: &Meta,
        prev: Option<&Node>,
        top_level: bool,
    ) -> Result<Node, OpsError> {
        let mut node = node_from_meta(name, meta);
        match node.node_type {
            NodeType::Dir => {
                let prev_subtree = prev
                    .filter(|p| p.node_type == NodeType::Dir)
                    .and_then(|p| p.subtree);
                let listed = match open_dir(at.dir, at.name, meta) {
                    Ok((fd, now)) => {
                        node = node_from_meta(name, &now);
                        Some(fd)
                    }
                    // Swapped for something else: skipped by the caller.
                    Err(e) if is_changed(&e) => return Err(OpsError::io(at.path, e)),
                    // Unreadable: kept, empty, with a warning.
                    Err(e) => {
                        self.warn(at.path, &e);
                        None
                    }
                };
                node.subtree = Some(self.dir(listed, at.path, prev_subtree)?);
                self.stats.dirs += 1;
            }
            NodeType::File => self.file(at, meta, &mut node, prev)?,
            NodeType::Blockdev if top_level => self.file(at, meta, &mut node, None)?,
            NodeType::Symlink => {
                let target = rustix::fs::readlinkat(at.dir, at.name, Vec::new())
                    .map_err(|e| OpsError::io(at.path, e.into()))?;
                node.set_target(OsStr::from_bytes(target.as_bytes()));
            }
            _ => {}
        }
        Ok(node)
    }

    /// The tree of the directory open as `fd` (none: unreadable, so empty).
    fn dir(
        &mut self,
        fd: Option<OwnedFd>,
        path: &Path,
        prev_subtree: Option<Id>,
    ) -> Result<Id, OpsError> {
        let Some(fd) = fd else {
            return self.save_tree(Tree::default());
        };
        let prev = self.load_parent(prev_subtree);
        let prev_nodes = by_name(&prev);
        let mut listing = rustix::fs::Dir::new(fd).map_err(|e| OpsError::io(path, e.into()))?;
        let mut names: Vec<OsString> = Vec::new();
        while let Some(entry) = listing.read() {
            match entry {
                Ok(e) => {
                    let n = e.file_name().to_bytes();
                    if n != b"." && n != b".." {
                        names.push(OsStr::from_bytes(n).to_os_string());
                    }
                }
                Err(e) => {
                    self.warn(path, &std::io::Error::from(e));
                    break;
                }
            }
        }
        names.sort();
        let dir = listing.fd().map_err(|e| OpsError::io(path, e.into()))?;
        let mut tree = Tree::default();
        for name in names {
            let child = path.join(&name);
            let at = At {
                dir,
                name: Path::new(&name),
                path: &child,
            };
            let meta = match Meta::lstat_at(dir, at.name) {
                Ok(m) => m,
                Err(e) => {
                    self.warn(&child, &e);
                    continue;
                }
            };
            match self.entry(&at, &name, &meta, prev_nodes.get(&name).copied(), false) {
                Ok(node) => tree.nodes.push(node),
                // A file that vanished, changed or cannot be read is skipped and
                // reported; anything else (the repository, the pipeline) stops the backup.
                Err(OpsError::Io { path, source }) => self.warn(&path, &source),
                Err(e) => return Err(e),
            }
        }
        self.save_tree(tree)
    }

    fn file(
        &mut self,
        at: &At<'_>,
        meta: &Meta,
        node: &mut Node,
        prev: Option<&Node>,
    ) -> Result<(), OpsError> {
        let path = at.path;
        if let Some(p) = prev {
            let ignore_inode = self.parent.as_ref().is_some_and(|t| t.ignore_inode);
            if unchanged(p, node, ignore_inode) && p.content.iter().all(|c| self.saver.has(&c.id)) {
                node.content = p.content.clone();
                self.stats.files += 1;
                self.stats.bytes += node.size;
                Progress::add(&self.progress.files, 1);
                return Ok(());
            }
        }
        // What is stored is what this descriptor reads, with its fstat.
        let (mut file, meta) =
            open_file(at.dir, at.name, meta).map_err(|e| OpsError::io(path, e))?;
        *node = node_from_meta(&node.os_name(), &meta);
        let len = content_len(&mut file, &meta).map_err(|e| OpsError::io(path, e))?;
        node.size = len;
        let regions = if meta.file_type == FileType::RegularFile {
            data_regions(&file, len)
        } else {
            vec![(0, len)]
        };
        node.content = if wants_fixed_chunks(path, &meta) {
            self.fixed_chunks(path, &file, len, &regions)?
        } else {
            self.content_chunks(path, &mut file, &regions)?
        };
        self.stats.files += 1;
        self.stats.bytes += len;
        Progress::add(&self.progress.files, 1);
        Ok(())
    }

    /// Fixed-size chunks of the data regions. Runs of adjacent chunks are
    /// read together (up to [`READ_SPAN`], holes zero-filled rather than
    /// read: [`SpanReader`]) and handed to the workers, which
    /// hash them, skip all-zero chunks (holes) and those the repository
    /// has, and store the rest straight from the read buffer; a few reads
    /// stay in flight, so all cores hash while this thread reads.
    fn fixed_chunks(
        &mut self,
        path: &Path,
        file: &File,
        len: u64,
        regions: &[(u64, u64)],
    ) -> Result<Vec<ChunkRef>, OpsError> {
        let chunker = FixedChunker {
            size: u64::from(self.chunking.fixed_size),
        };
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for &(start, end) in regions {
            for (s, e) in chunker.ranges(start, end, len) {
                // Regions that share a chunk must not read it twice.
                if ranges.last().is_none_or(|&(_, last_end)| s >= last_end) {
                    ranges.push((s, e));
                }
            }
        }
        let span_max = READ_SPAN.max(self.chunking.fixed_size as usize);
        let mut out = Vec::new();
        let mut reader = SpanReader::new(file, regions);
        let mut in_flight: VecDeque<(Vec<u64>, SpanIds)> = VecDeque::new();
        let mut i = 0;
        while i < ranges.len() {
            // The longest run of adjacent chunks from `i` that fits the buffer.
            let (span_start, mut span_end) = ranges[i];
            let mut j = i + 1;
            while j < ranges.len()
                && ranges[j].0 == span_end
                && ranges[j].1 - span_start <= span_max as u64
            {
                span_end = ranges[j].1;
                j += 1;
            }
            let (span, read) = reader
                .read(span_start, span_end)
                .map_err(|err| OpsError::io(path, err))?;
            self.stats.bytes_read += read;
            Progress::add(&self.progress.bytes_read, read);
            let offsets = ranges[i..j].iter().map(|&(s, _)| s).collect();
            let chunks = ranges[i..j]
                .iter()
                .map(|&(s, e)| (s - span_start) as usize..(e - span_start) as usize)
                .collect();
            let ids = self.saver.save_span(BlobType::Data, span, chunks)?;
            in_flight.push_back((offsets, ids));
            if in_flight.len() >= SPANS_IN_FLIGHT {
                if let Some((offsets, ids)) = in_flight.pop_front() {
                    collect_span(offsets, ids, &mut out, &mut reader)?;
                }
            }
            i = j;
        }
        while let Some((offsets, ids)) = in_flight.pop_front() {
            collect_span(offsets, ids, &mut out, &mut reader)?;
        }
        Ok(out)
    }

    fn content_chunks(
        &mut self,
        path: &Path,
        file: &mut File,
        regions: &[(u64, u64)],
    ) -> Result<Vec<ChunkRef>, OpsError> {
        let mut out = Vec::new();
        let mut batch = Batch::default();
        for &(start, end) in regions {
            file.seek(SeekFrom::Start(start))
                .map_err(|e| OpsError::io(path, e))?;
            let mut chunker =
                ContentChunker::new((&*file).take(end - start), self.gear.clone(), self.chunking);
            let mut offset = start;
            while let Some(chunk) = chunker.next_chunk().map_err(|e| OpsError::io(path, e))? {
                let n = chunk.len() as u64;
                self.stats.bytes_read += n;
                Progress::add(&self.progress.bytes_read, n);
                if batch.push(offset, chunk) {
                    batch.flush(&mut self.saver, &mut out)?;
                }
                offset += n;
            }
            if offset < end {
                return Err(OpsError::io(
                    path,
                    std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("file shrank while it was read ({offset} of {end} bytes)"),
                    ),
                ));
            }
        }
        batch.flush(&mut self.saver, &mut out)?;
        Ok(out)
    }
}
