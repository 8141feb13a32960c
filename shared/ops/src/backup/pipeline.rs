//! The blob pipeline: dedup decision, then compression and encryption on
//! worker threads, then packing and upload, then index files.
//!
//! ```text
//! BlobSaver (caller's thread) --raw--> workers (N threads) --sealed--> packer task --> store
//! ```
//! Channels are bounded, so memory stays flat however much data flows: at most
//! a few chunks wait at each stage, one pack fills while two upload.

use crate::{OpsError, Progress};
use bytes::Bytes;
use lifeboat_repo::{
    BlobEncoder, BlobType, EncodedBlob, FileKind, Id, Index, IndexFile, IndexPack, IndexedBlob,
    MasterKey, PackBuilder, Repository,
};
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

/// While a backup runs, the packs written so far are listed in an index file
/// once this many wait and a minute has passed since the last index (or once
/// this many times four wait), so an interrupted long backup leaves reusable
/// data behind without short backups paying for extra index objects.
const PACKS_PER_INDEX: usize = 32;
const INDEX_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);
/// Uploads in flight at once.
const UPLOADS_IN_FLIGHT: usize = 3;

struct RawBlob {
    blob_type: BlobType,
    id: Id,
    data: Vec<u8>,
}

/// What the pipeline wrote.
#[derive(Debug, Clone, Default)]
pub struct PipelineResult {
    pub packs: u64,
    pub blobs: u64,
    /// Plaintext bytes of new blobs.
    pub bytes_new: u64,
    /// Bytes of new blobs as stored.
    pub bytes_stored: u64,
    pub index_files: Vec<Id>,
}

/// Decides which blobs are new and hands those to the pipeline. Used from one
/// blocking thread at a time.
#[derive(Debug)]
pub struct BlobSaver {
    key: Arc<MasterKey>,
    index: Arc<Index>,
    seen: HashSet<Id>,
    tx: Option<crossbeam_channel::Sender<RawBlob>>,
}

impl std::fmt::Debug for RawBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RawBlob({:?}, {} bytes)", self.id, self.data.len())
    }
}

impl BlobSaver {
    /// Store `data` unless the repository (or this run) already has it; returns its id.
    pub fn save(&mut self, blob_type: BlobType, data: Vec<u8>) -> Result<Id, OpsError> {
        let id = self.key.blob_id(&data);
        self.save_with_id(blob_type, id, data)?;
        Ok(id)
    }

    /// Like [`BlobSaver::save`] for data the caller keeps: copied only when new.
    pub fn save_slice(&mut self, blob_type: BlobType, data: &[u8]) -> Result<Id, OpsError> {
        let id = self.key.blob_id(data);
        if !self.has(&id) {
            self.save_with_id(blob_type, id, data.to_vec())?;
        }
        Ok(id)
    }

    /// Store several blobs (see [`BlobSaver::save`]); returns their ids in
    /// order. Two threads hash a large batch, so the thread that reads the
    /// data is not held up by hashing it (an incremental backup rereads whole
    /// changed files and keeps only the few new chunks).
    pub fn save_all(
        &mut self,
        blob_type: BlobType,
        blobs: Vec<Vec<u8>>,
    ) -> Result<Vec<Id>, OpsError> {
        let ids = blob_ids(&self.key, &blobs);
        for (id, data) in ids.iter().zip(blobs) {
            self.save_with_id(blob_type, *id, data)?;
        }
        Ok(ids)
    }

    /// Like [`BlobSaver::save`] for a caller that already hashed the data.
    pub fn save_with_id(
        &mut self,
        blob_type: BlobType,
        id: Id,
        data: Vec<u8>,
    ) -> Result<bool, OpsError> {
        if self.index.contains(&id) || !self.seen.insert(id) {
            return Ok(false);
        }
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| OpsError::Pipeline("blob saver already closed".into()))?;
        tx.send(RawBlob {
            blob_type,
            id,
            data,
        })
        .map_err(|_| OpsError::Pipeline("the compression workers stopped".into()))?;
        Ok(true)
    }

    /// Whether the repository already holds `id` (or this run stored it).
    pub fn has(&self, id: &Id) -> bool {
        self.index.contains(id) || self.seen.contains(id)
    }

    pub fn key(&self) -> &Arc<MasterKey> {
        &self.key
    }

    pub fn index(&self) -> &Arc<Index> {
        &self.index
    }
}

/// Batches smaller than this are hashed on the calling thread alone.
const PARALLEL_HASH_MIN: usize = 512 * 1024;

/// The ids of `blobs`, in order: the second half (by bytes) on a helper thread.
fn blob_ids(key: &MasterKey, blobs: &[Vec<u8>]) -> Vec<Id> {
    let total: usize = blobs.iter().map(Vec::len).sum();
    let hash = |part: &[Vec<u8>]| part.iter().map(|b| key.blob_id(b)).collect::<Vec<_>>();
    if blobs.len() < 2 || total < PARALLEL_HASH_MIN {
        return hash(blobs);
    }
    let mut split = 0;
    let mut first = 0;
    while split < blobs.len() - 1 && first < total / 2 {
        first += blobs[split].len();
        split += 1;
    }
    let (a, b) = blobs.split_at(split);
    std::thread::scope(|s| {
        let other = s.spawn(|| hash(b));
        let mut ids = hash(a);
        match other.join() {
            Ok(rest) => ids.extend(rest),
            // Hashing does not panic; if the helper did, hash here instead.
            Err(_) => ids.extend(hash(b)),
        }
        ids
    })
}

/// A running pipeline.
#[derive(Debug)]
pub struct BlobPipeline {
    workers: Vec<JoinHandle<Result<(), OpsError>>>,
    packer: JoinHandle<Result<PipelineResult, OpsError>>,
}

impl BlobPipeline {
    /// Start workers and the packer; returns the pipeline and the saver that feeds it.
    pub fn start(
        repo: &Repository,
        index: Arc<Index>,
        progress: Arc<Progress>,
    ) -> (BlobPipeline, BlobSaver) {
        let n = std::thread::available_parallelism().map_or(2, |n| n.get());
        let (raw_tx, raw_rx) = crossbeam_channel::bounded::<RawBlob>(n * 2);
        let (sealed_tx, sealed_rx) = mpsc::channel::<EncodedBlob>(n * 2);
        let level = repo.config().compression_level;
        let workers = (0..n)
            .map(|_| {
                let rx = raw_rx.clone();
                let tx = sealed_tx.clone();
                let key = repo.key().clone();
                tokio::task::spawn_blocking(move || {
                    let mut encoder = BlobEncoder::new(level)?;
                    for raw in rx.iter() {
                        let b = encoder.encode(&key, raw.blob_type, raw.id, &raw.data)?;
                        tx.blocking_send(b)
                            .map_err(|_| OpsError::Pipeline("the packer stopped".into()))?;
                    }
                    Ok(())
                })
            })
            .collect();
        drop(sealed_tx);
        let packer = tokio::spawn(run_packer(repo.clone(), sealed_rx, progress));
        let saver = BlobSaver {
            key: repo.key().clone(),
            index,
            seen: HashSet::new(),
            tx: Some(raw_tx),
        };
        (BlobPipeline { workers, packer }, saver)
    }

    /// Wait until everything sent through `saver` is packed, uploaded and indexed.
    /// The packer's error, the root cause of any other, wins.
    pub async fn finish(self, mut saver: BlobSaver) -> Result<PipelineResult, OpsError> {
        saver.tx = None;
        let mut worker_err = None;
        for w in self.workers {
            match w.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => worker_err = worker_err.or(Some(e)),
                Err(e) => worker_err = worker_err.or(Some(OpsError::Pipeline(e.to_string()))),
            }
        }
        let packed = self
            .packer
            .await
            .map_err(|e| OpsError::Pipeline(e.to_string()))?;
        let result = packed?;
        match worker_err {
            Some(e) => Err(e),
            None => Ok(result),
        }
    }
}

async fn run_packer(
    repo: Repository,
    mut rx: mpsc::Receiver<EncodedBlob>,
    progress: Arc<Progress>,
) -> Result<PipelineResult, OpsError> {
    let pack_size = repo.config().pack_size as usize;
    let mut result = PipelineResult::default();
    let mut builder = PackBuilder::new(pack_size + pack_size / 8);
    let mut uploads: JoinSet<Result<IndexPack, OpsError>> = JoinSet::new();
    let mut pending: Vec<IndexPack> = Vec::new();
    let mut last_index = std::time::Instant::now();
    while let Some(blob) = rx.recv().await {
        result.blobs += 1;
        result.bytes_new += u64::from(blob.raw_length);
        result.bytes_stored += blob.sealed.len() as u64;
        Progress::add(&progress.bytes_new, u64::from(blob.raw_length));
        Progress::add(&progress.bytes_stored, blob.sealed.len() as u64);
        builder.add(&blob)?;
        if builder.len() >= pack_size {
            let full = std::mem::replace(&mut builder, PackBuilder::new(pack_size + pack_size / 8));
            while uploads.len() >= UPLOADS_IN_FLIGHT {
                pending.push(join_one(&mut uploads).await?);
            }
            uploads.spawn(upload_pack(repo.clone(), full));
            result.packs += 1;
            let due = last_index.elapsed() >= INDEX_INTERVAL;
            if (due && pending.len() >= PACKS_PER_INDEX) || pending.len() >= 4 * PACKS_PER_INDEX {
                let packs = std::mem::take(&mut pending);
                result.index_files.push(write_index(&repo, packs).await?);
                last_index = std::time::Instant::now();
            }
        }
    }
    if !builder.is_empty() {
        uploads.spawn(upload_pack(repo.clone(), builder));
        result.packs += 1;
    }
    while !uploads.is_empty() {
        pending.push(join_one(&mut uploads).await?);
    }
    if !pending.is_empty() {
        result.index_files.push(write_index(&repo, pending).await?);
    }
    progress.items_done.store(result.packs, Ordering::Relaxed);
    Ok(result)
}

async fn join_one(
    uploads: &mut JoinSet<Result<IndexPack, OpsError>>,
) -> Result<IndexPack, OpsError> {
    match uploads.join_next().await {
        Some(r) => r.map_err(|e| OpsError::Pipeline(e.to_string()))?,
        None => Err(OpsError::Pipeline("no upload in flight".into())),
    }
}

async fn upload_pack(repo: Repository, builder: PackBuilder) -> Result<IndexPack, OpsError> {
    let key = repo.key().clone();
    let (id, bytes, blobs) = tokio::task::spawn_blocking(move || builder.finish(&key))
        .await
        .map_err(|e| OpsError::Pipeline(e.to_string()))??;
    let size = bytes.len() as u64;
    repo.store()
        .put(
            &FileKind::Pack.key(&id),
            Bytes::from(bytes),
            &repo.put_options(),
        )
        .await?;
    tracing::debug!(pack = %id.short(), size, blobs = blobs.len(), "pack uploaded");
    Ok(IndexPack {
        id,
        size,
        blobs: blobs.iter().map(IndexedBlob::from).collect(),
    })
}

async fn write_index(repo: &Repository, packs: Vec<IndexPack>) -> Result<Id, OpsError> {
    let file = IndexFile {
        version: 1,
        supersedes: Vec::new(),
        packs,
    };
    Ok(repo.save_file(FileKind::Index, &file).await?)
}
