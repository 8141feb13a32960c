//! Volume copies through an in-memory twin of a snapshot store that knows
//! changed blocks (as EBS does), and through image files.

use super::*;
use crate::Progress;
use async_trait::async_trait;
use bytes::Bytes;
use lifeboat_repo::{ChunkingParams, InitOptions, Repository};
use lifeboat_volume::{Block, BlockSource, ChangedBlock, Geometry, ImageFile, VolumeError};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Snapshots of volumes, block by block, named `snap-<n>`: the twin of the
/// EBS direct APIs (a block absent from a snapshot reads as zeros).
type Blocks = BTreeMap<u64, Vec<u8>>;

#[derive(Debug, Default)]
struct Snapshots {
    all: Mutex<BTreeMap<String, (Geometry, Blocks)>>,
}

#[derive(Debug)]
struct Snap {
    store: Arc<Snapshots>,
    id: String,
    reads: Arc<AtomicU64>,
    /// Reads fail from the block with this index on (a copy cut short).
    fail_at: Option<u64>,
}

impl Snapshots {
    fn put(&self, id: &str, g: Geometry, blocks: BTreeMap<u64, Vec<u8>>) {
        self.all.lock().unwrap().insert(id.into(), (g, blocks));
    }
    fn get(&self, id: &str) -> (Geometry, BTreeMap<u64, Vec<u8>>) {
        self.all.lock().unwrap().get(id).cloned().unwrap()
    }
    fn image(&self, id: &str) -> Vec<u8> {
        let (g, blocks) = self.get(id);
        let mut out = vec![0u8; g.volume_size as usize];
        for (i, d) in blocks {
            let (s, _) = g.byte_range(i);
            out[s as usize..s as usize + d.len()].copy_from_slice(&d);
        }
        out
    }
}

impl Snap {
    fn new(store: &Arc<Snapshots>, id: &str) -> Self {
        Snap {
            store: store.clone(),
            id: id.into(),
            reads: Arc::new(AtomicU64::new(0)),
            fail_at: None,
        }
    }
}

fn block(index: u64) -> Block {
    Block {
        index,
        token: format!("t{index}"),
    }
}

#[async_trait]
impl BlockSource for Snap {
    fn name(&self) -> String {
        self.id.clone()
    }
    async fn geometry(&self) -> Result<Geometry, VolumeError> {
        Ok(self.store.get(&self.id).0)
    }
    async fn allocated(&self, first: u64, end: u64) -> Result<Vec<Block>, VolumeError> {
        Ok(self
            .store
            .get(&self.id)
            .1
            .range(first..end)
            .map(|(i, _)| block(*i))
            .collect())
    }
    async fn changed_since(
        &self,
        base: &str,
        first: u64,
        end: u64,
    ) -> Result<Option<Vec<ChangedBlock>>, VolumeError> {
        let (_, old) = self.store.get(base);
        let (_, new) = self.store.get(&self.id);
        let mut idx: Vec<u64> = old.keys().chain(new.keys()).copied().collect();
        idx.sort();
        idx.dedup();
        Ok(Some(
            idx.into_iter()
                .filter(|i| (first..end).contains(i) && old.get(i) != new.get(i))
                .map(|i| ChangedBlock {
                    index: i,
                    now: new.contains_key(&i).then(|| block(i)),
                })
                .collect(),
        ))
    }
    async fn read(&self, b: &Block) -> Result<Bytes, VolumeError> {
        if self.fail_at.is_some_and(|f| b.index >= f) {
            return Err(VolumeError::Ebs {
                operation: "GetSnapshotBlock",
                target: format!("{} block {}", self.id, b.index),
                message: "connection reset".into(),
                retryable: true,
                denied: false,
            });
        }
        self.reads.fetch_add(1, Ordering::Relaxed);
        let (g, blocks) = self.store.get(&self.id);
        let (s, e) = g.byte_range(b.index);
        Ok(Bytes::from(
            blocks
                .get(&b.index)
                .cloned()
                .unwrap_or_else(|| vec![0; (e - s) as usize]),
        ))
    }
}

async fn repo(chunk: u32) -> Repository {
    crate::testing::memory_repo(InitOptions {
        chunking: ChunkingParams {
            fixed_size: chunk,
            ..ChunkingParams::default()
        },
        ..InitOptions::default()
    })
    .await
}

fn pseudo(n: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; n];
    let mut h = blake3::Hasher::new();
    h.update(&seed.to_le_bytes());
    h.finalize_xof().fill(&mut out);
    out
}

/// Copy every range of `src`, then assemble.
async fn copy_all(
    repo: &Repository,
    src: &dyn BlockSource,
    base: Option<(String, Vec<lifeboat_repo::ChunkRef>)>,
    range_bytes: u64,
) -> (lifeboat_repo::Node, Vec<RangeCopy>) {
    let g = src.geometry().await.unwrap();
    let chunk = repo.config().chunking.fixed_size;
    let mut out = vec![];
    for range in plan_ranges(g, chunk, range_bytes).unwrap() {
        let opts = CopyOptions {
            range,
            base: base.clone(),
        };
        out.push(
            copy_range(repo, src, opts, Arc::new(Progress::default()))
                .await
                .unwrap(),
        );
    }
    let index = repo.load_index().await.unwrap();
    let node = assemble(repo, &index, "data", g.volume_size, &out)
        .await
        .unwrap();
    (node, out)
}

async fn restored_bytes(repo: &Repository, node: &lifeboat_repo::Node, block_size: u32) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("restored.img");
    let sink = ImageFile::create(
        &path,
        Geometry {
            volume_size: node.size,
            block_size,
        },
    )
    .unwrap();
    let index = repo.load_index().await.unwrap();
    restore_volume(repo, &index, node, &sink, Arc::new(Progress::default()))
        .await
        .unwrap();
    let img = ImageFile::open(&path, block_size).unwrap();
    let cmp = compare_volume(repo, node, &img).await.unwrap();
    assert!(cmp.matched(), "{cmp:?}");
    std::fs::read(&path).unwrap()
}

fn sparse_blocks(g: Geometry, every: u64, seed: u64) -> BTreeMap<u64, Vec<u8>> {
    (0..g.blocks())
        .filter(|i| i % every == 0)
        .map(|i| (i, pseudo(g.block_size as usize, seed + i)))
        .collect()
}

#[tokio::test]
async fn small_blocks_full_then_incremental_reads_only_changed_blocks() {
    // moto's 512-byte blocks under 4 KiB chunks: a chunk gathers 8 blocks,
    // and a partly changed chunk is completed from the base.
    let repo = repo(4096).await;
    let snaps = Arc::new(Snapshots::default());
    let g = Geometry {
        volume_size: 1 << 20,
        block_size: 512,
    };
    let v1 = sparse_blocks(g, 3, 1);
    snaps.put("snap-1", g, v1.clone());
    let s1 = Snap::new(&snaps, "snap-1");
    let (node1, ranges1) = copy_all(&repo, &s1, None, 256 * 1024).await;
    assert_eq!(ranges1.len(), 4);
    assert_eq!(s1.reads.load(Ordering::Relaxed), v1.len() as u64);
    assert!(ranges1.iter().all(|r| !r.incremental));
    assert_eq!(
        restored_bytes(&repo, &node1, 512).await,
        snaps.image("snap-1")
    );
    assert_eq!(
        restored_bytes(&repo, &node1, 4096).await,
        snaps.image("snap-1")
    );

    // Change 5 blocks, drop 2, add 1 where there was nothing.
    let mut v2 = v1.clone();
    for i in [0u64, 3, 300, 1500, 2046] {
        v2.insert(i, pseudo(512, 1000 + i));
    }
    v2.remove(&6);
    v2.remove(&9);
    v2.insert(7, pseudo(512, 77));
    snaps.put("snap-2", g, v2);
    let s2 = Snap::new(&snaps, "snap-2");
    let base = Some(("snap-1".to_string(), node1.content.clone()));
    let (node2, ranges2) = copy_all(&repo, &s2, base, 256 * 1024).await;
    assert!(ranges2.iter().all(|r| r.incremental));
    assert_eq!(
        s2.reads.load(Ordering::Relaxed),
        6,
        "only the changed blocks with data"
    );
    let read: u64 = ranges2.iter().map(|r| r.bytes_read).sum();
    assert_eq!(read, 6 * 512);
    assert!(ranges2.iter().map(|r| r.chunks_kept).sum::<u64>() > 200);
    assert_eq!(
        restored_bytes(&repo, &node2, 512).await,
        snaps.image("snap-2")
    );
}

#[tokio::test]
async fn big_blocks_are_cut_into_chunks_and_zero_chunks_are_holes() {
    // EBS's 512 KiB blocks under 64 KiB chunks.
    let repo = repo(65536).await;
    let snaps = Arc::new(Snapshots::default());
    let g = Geometry {
        volume_size: 8 << 20,
        block_size: 512 * 1024,
    };
    let mut blocks = BTreeMap::new();
    let mut b = pseudo(512 * 1024, 5);
    b[65536..131072].fill(0); // one chunk of zeros inside a block
    blocks.insert(2u64, b);
    blocks.insert(9, pseudo(512 * 1024, 9));
    snaps.put("snap-a", g, blocks);
    let s = Snap::new(&snaps, "snap-a");
    let (node, ranges) = copy_all(&repo, &s, None, 2 << 20).await;
    assert_eq!(ranges.len(), 4);
    assert_eq!(
        node.content.len(),
        15,
        "16 chunks of data, one of them zeros"
    );
    assert_eq!(ranges.iter().map(|r| r.blocks_read).sum::<u64>(), 2);
    assert_eq!(
        restored_bytes(&repo, &node, 512 * 1024).await,
        snaps.image("snap-a")
    );
    // Restoring into small blocks (moto) writes only blocks with data.
    assert_eq!(
        restored_bytes(&repo, &node, 512).await,
        snaps.image("snap-a")
    );
}

#[tokio::test]
async fn an_interrupted_copy_resumes_at_the_first_range_without_a_result() {
    let repo = repo(4096).await;
    let snaps = Arc::new(Snapshots::default());
    let g = Geometry {
        volume_size: 1 << 20,
        block_size: 4096,
    };
    let blocks = sparse_blocks(g, 1, 40);
    snaps.put("snap-r", g, blocks);
    let ranges = plan_ranges(g, 4096, 256 * 1024).unwrap();
    // The first attempt dies inside the third range.
    let mut broken = Snap::new(&snaps, "snap-r");
    broken.fail_at = Some(150);
    let mut done = vec![];
    let mut failed_at = None;
    for (i, range) in ranges.iter().enumerate() {
        let opts = CopyOptions {
            range: *range,
            base: None,
        };
        match copy_range(&repo, &broken, opts, Arc::new(Progress::default())).await {
            Ok(r) => done.push(r),
            Err(e) => {
                assert!(e.to_string().contains("snap-r block 150"), "{e}");
                assert!(e.is_retryable());
                failed_at = Some(i);
                break;
            }
        }
    }
    assert_eq!(failed_at, Some(2));
    // The retry copies only the ranges without a result.
    let good = Snap::new(&snaps, "snap-r");
    for range in &ranges[done.len()..] {
        let opts = CopyOptions {
            range: *range,
            base: None,
        };
        done.push(
            copy_range(&repo, &good, opts, Arc::new(Progress::default()))
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        good.reads.load(Ordering::Relaxed),
        128,
        "two of four ranges reread, not four"
    );
    let index = repo.load_index().await.unwrap();
    let node = assemble(&repo, &index, "data", g.volume_size, &done)
        .await
        .unwrap();
    assert_eq!(
        restored_bytes(&repo, &node, 4096).await,
        snaps.image("snap-r")
    );
    // Ranges that do not cover the volume are refused.
    let err = assemble(&repo, &index, "data", g.volume_size, &done[1..])
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("gap or overlap at byte 0"),
        "{err}"
    );
}

#[tokio::test]
async fn image_files_round_trip_and_a_changed_copy_is_caught() {
    let repo = repo(65536).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.img");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(32 << 20).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(&pseudo(300_000, 3), 1 << 20).unwrap();
    f.write_all_at(b"page", 20 << 20).unwrap();
    drop(f);
    let img = ImageFile::open(&path, 4096).unwrap();
    let (node, ranges) = copy_all(&repo, &img, None, 8 << 20).await;
    assert_eq!(ranges.len(), 4);
    let bytes_read: u64 = ranges.iter().map(|r| r.bytes_read).sum();
    assert!(bytes_read < 1 << 20, "holes are not read: {bytes_read}");
    let restored = restored_bytes(&repo, &node, 4096).await;
    assert_eq!(restored, std::fs::read(&path).unwrap());

    // A copy with one byte changed is named by its chunk.
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(b"X", (20 << 20) + 1).unwrap();
    drop(f);
    let img = ImageFile::open(&path, 4096).unwrap();
    let cmp = compare_volume(&repo, &node, &img).await.unwrap();
    assert!(!cmp.matched());
    assert_eq!(cmp.mismatches, vec![20 << 20]);
    // A sink too small is refused with both sizes.
    let small = ImageFile::create(
        &dir.path().join("small"),
        Geometry {
            volume_size: 1 << 20,
            block_size: 4096,
        },
    )
    .unwrap();
    let index = repo.load_index().await.unwrap();
    let err = restore_volume(&repo, &index, &node, &small, Arc::new(Progress::default()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("holds 1048576 bytes"), "{err}");
}

#[tokio::test]
async fn an_incremental_copy_reads_afresh_what_a_base_references_but_no_index_lists() {
    // The base's chunks are in another repository's index, not this one's:
    // the state a prune leaves when it removed the data of a broken base.
    let g = Geometry {
        volume_size: 1 << 20,
        block_size: 512,
    };
    let snaps = Arc::new(Snapshots::default());
    let v1 = sparse_blocks(g, 2, 11);
    snaps.put("snap-1", g, v1.clone());
    let elsewhere = repo(4096).await;
    let (node1, _) = copy_all(&elsewhere, &Snap::new(&snaps, "snap-1"), None, 256 * 1024).await;

    let mut v2 = v1;
    v2.insert(4, pseudo(512, 4444));
    snaps.put("snap-2", g, v2);
    let repo = repo(4096).await;
    let s2 = Snap::new(&snaps, "snap-2");
    let base = Some(("snap-1".to_string(), node1.content.clone()));
    let (node2, ranges) = copy_all(&repo, &s2, base, 256 * 1024).await;
    assert!(ranges.iter().all(|r| r.incremental));
    assert_eq!(ranges.iter().map(|r| r.chunks_kept).sum::<u64>(), 0);
    assert!(ranges.iter().map(|r| r.segments_reread).sum::<u64>() > 0);
    let index = repo.load_index().await.unwrap();
    assert!(node2.content.iter().all(|c| index.contains(&c.id)));
    assert_eq!(
        restored_bytes(&repo, &node2, 512).await,
        snaps.image("snap-2")
    );
}
