//! The blob pipeline: dedup decision, then compression and encryption on
//! worker threads, then packing and upload, then index files.
//!
//! ```text
//! BlobSaver (caller's thread) --raw--> workers (N threads) --sealed--> packer task --> store
//! ```
//! Fixed chunks (disk images, block devices) go to the workers a whole read
//! at a time ([`BlobSaver::save_span`]): the workers hash them, decide which
//! are new and compress those, so the reading thread only reads.
//! Blobs travel in batches of about [`BATCH_BYTES`], so 64 KiB image chunks
//! do not cost a thread wake-up each. Channels are bounded, so memory stays
//! flat however much data flows: at most a few batches wait at each stage,
//! one pack fills while two upload.

use crate::{OpsError, Progress};
use bytes::Bytes;
use lifeboat_repo::{
    BlobEncoder, BlobType, EncodedBlob, FileKind, Format, Id, Index, IndexFile, IndexPack,
    IndexedBlob, MasterKey, PackBuilder, Repository,
};
use std::collections::HashSet;
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
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
/// A remainder of at most this fraction of the pack size joins the last full
/// pack at the end of a backup (which may so exceed the pack size by a quarter).
const TAIL_FRACTION: usize = 4;
/// New blobs are handed to the workers once this many bytes (or
/// [`BATCH_BLOBS`] blobs) wait.
const BATCH_BYTES: usize = 1 << 20;
const BATCH_BLOBS: usize = 64;

struct RawBlob {
    blob_type: BlobType,
    id: Id,
    data: Vec<u8>,
}

/// Work for the workers.
enum Job {
    /// Blobs the saver found new.
    Blobs(Vec<RawBlob>),
    /// Fixed chunks of one read, hashed and checked by the worker.
    Span(Span),
}

struct Span {
    blob_type: BlobType,
    data: Vec<u8>,
    chunks: Vec<Range<usize>>,
    reply: crossbeam_channel::Sender<SpanDone>,
}

/// A span a worker has hashed and stored.
#[derive(Debug)]
pub struct SpanDone {
    /// The ids of its chunks, in order (`None` for an all-zero chunk: a hole).
    pub ids: Vec<Option<Id>>,
    /// The span's buffer, free for the next read.
    pub buffer: Vec<u8>,
}

/// A span handed to the workers.
#[derive(Debug)]
pub struct SpanIds(crossbeam_channel::Receiver<SpanDone>);

impl SpanIds {
    /// Wait for the worker.
    pub fn wait(self) -> Result<SpanDone, OpsError> {
        self.0
            .recv()
            .map_err(|_| OpsError::Pipeline("the compression workers stopped".into()))
    }
}

/// Which blobs the repository has or this run stores: shared by the saver
/// and the workers, so each new blob is stored once.
#[derive(Debug)]
struct Known {
    index: Arc<Index>,
    seen: Mutex<HashSet<Id>>,
}

impl Known {
    fn has(&self, id: &Id) -> bool {
        self.index.contains(id) || self.seen().contains(id)
    }

    /// Whether `id` is new; if so it is from now on known.
    fn claim(&self, id: Id) -> bool {
        !self.index.contains(&id) && self.seen().insert(id)
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, HashSet<Id>> {
        // The set stays consistent whatever a panicking holder did.
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether `data` is all zeros (compared a page at a time: a memcmp, far
/// faster than a byte loop).
pub(crate) fn all_zero(data: &[u8]) -> bool {
    const ZEROS: [u8; 4096] = [0; 4096];
    data.chunks(ZEROS.len()).all(|c| c == &ZEROS[..c.len()])
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
    known: Arc<Known>,
    /// New blobs not yet handed to the workers, and their bytes.
    batch: Vec<RawBlob>,
    batch_bytes: usize,
    tx: Option<crossbeam_channel::Sender<Job>>,
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
        if !self.known.claim(id) {
            return Ok(false);
        }
        self.batch_bytes += data.len();
        self.batch.push(RawBlob {
            blob_type,
            id,
            data,
        });
        if self.batch_bytes >= BATCH_BYTES || self.batch.len() >= BATCH_BLOBS {
            self.send_batch()?;
        }
        Ok(true)
    }

    /// Hand the waiting blobs to the workers.
    fn send_batch(&mut self) -> Result<(), OpsError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.batch_bytes = 0;
        let batch = std::mem::take(&mut self.batch);
        self.send(Job::Blobs(batch))
    }

    fn send(&self, job: Job) -> Result<(), OpsError> {
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| OpsError::Pipeline("blob saver already closed".into()))?;
        tx.send(job)
            .map_err(|_| OpsError::Pipeline("the compression workers stopped".into()))
    }

    /// Hand one read of fixed chunks (`chunks` are ranges of `data`) to a
    /// worker, which hashes them and stores the new ones; the returned
    /// handle gives their ids and the buffer back. Spans are handled in
    /// parallel: a caller that keeps a few in flight before waiting for the
    /// oldest keeps every core busy.
    pub fn save_span(
        &mut self,
        blob_type: BlobType,
        data: Vec<u8>,
        chunks: Vec<Range<usize>>,
    ) -> Result<SpanIds, OpsError> {
        if let Some(bad) = chunks
            .iter()
            .find(|r| r.start > r.end || r.end > data.len())
        {
            return Err(OpsError::Pipeline(format!(
                "chunk {bad:?} is outside the {}-byte span",
                data.len()
            )));
        }
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.send(Job::Span(Span {
            blob_type,
            data,
            chunks,
            reply,
        }))?;
        Ok(SpanIds(rx))
    }

    /// Whether the repository already holds `id` (or this run stored it).
    pub fn has(&self, id: &Id) -> bool {
        self.known.has(id)
    }

    pub fn key(&self) -> &Arc<MasterKey> {
        &self.key
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
        let (raw_tx, raw_rx) = crossbeam_channel::bounded::<Job>(n * 2);
        let (sealed_tx, sealed_rx) = mpsc::channel::<Vec<EncodedBlob>>(n * 2);
        let level = repo.config().compression_level;
        let format = repo.format();
        let known = Arc::new(Known {
            index,
            seen: Mutex::new(HashSet::new()),
        });
        let workers = (0..n)
            .map(|_| {
                let rx = raw_rx.clone();
                let tx = sealed_tx.clone();
                let key = repo.key().clone();
                let known = known.clone();
                tokio::task::spawn_blocking(move || {
                    let mut encoder = BlobEncoder::new(level)?;
                    for job in rx.iter() {
                        let sealed = match job {
                            Job::Blobs(batch) => batch
                                .iter()
                                .map(|raw| {
                                    encoder.encode(&key, format, raw.blob_type, raw.id, &raw.data)
                                })
                                .collect::<Result<Vec<_>, _>>()?,
                            Job::Span(span) => {
                                store_span(&mut encoder, &key, format, &known, span)?
                            }
                        };
                        if !sealed.is_empty() {
                            tx.blocking_send(sealed)
                                .map_err(|_| OpsError::Pipeline("the packer stopped".into()))?;
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        drop(sealed_tx);
        let packer = tokio::spawn(run_packer(repo.clone(), sealed_rx, progress));
        let saver = BlobSaver {
            key: repo.key().clone(),
            known,
            batch: Vec::new(),
            batch_bytes: 0,
            tx: Some(raw_tx),
        };
        (BlobPipeline { workers, packer }, saver)
    }

    /// Wait until everything sent through `saver` is packed, uploaded and indexed.
    /// The packer's error, the root cause of any other, wins.
    pub async fn finish(self, mut saver: BlobSaver) -> Result<PipelineResult, OpsError> {
        let sent = saver.send_batch();
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
        match worker_err.map_or(sent, Err) {
            Err(e) => Err(e),
            Ok(()) => Ok(result),
        }
    }
}

/// Hash a span's chunks, answer their ids, and encode the new ones.
fn store_span(
    encoder: &mut BlobEncoder,
    key: &MasterKey,
    format: Format,
    known: &Known,
    span: Span,
) -> Result<Vec<EncodedBlob>, OpsError> {
    let mut ids = Vec::with_capacity(span.chunks.len());
    let mut sealed = Vec::new();
    for range in &span.chunks {
        let piece = &span.data[range.clone()];
        if all_zero(piece) {
            ids.push(None);
            continue;
        }
        let id = key.blob_id(piece);
        if known.claim(id) {
            sealed.push(encoder.encode(key, format, span.blob_type, id, piece)?);
        }
        ids.push(Some(id));
    }
    // A caller that stopped waiting has failed already; its error is the one to report.
    let _ = span.reply.send(SpanDone {
        ids,
        buffer: span.data,
    });
    Ok(sealed)
}

async fn run_packer(
    repo: Repository,
    mut rx: mpsc::Receiver<Vec<EncodedBlob>>,
    progress: Arc<Progress>,
) -> Result<PipelineResult, OpsError> {
    let pack_size = repo.config().pack_size as usize;
    let capacity = pack_size + pack_size / 8;
    let mut result = PipelineResult::default();
    let mut builder = PackBuilder::new(capacity);
    // The last full pack waits until the next one fills (or the input ends),
    // so that a small remainder can join it.
    let mut held: Option<PackBuilder> = None;
    let mut uploads: JoinSet<Result<Uploaded, OpsError>> = JoinSet::new();
    let mut pending: Vec<IndexPack> = Vec::new();
    // Buffers of packs already stored, to assemble the next ones in.
    let mut spare: Vec<Vec<u8>> = Vec::new();
    let mut last_index = std::time::Instant::now();
    while let Some(batch) = rx.recv().await {
        for blob in batch {
            result.blobs += 1;
            result.bytes_new += u64::from(blob.raw_length);
            result.bytes_stored += blob.sealed.len() as u64;
            Progress::add(&progress.bytes_new, u64::from(blob.raw_length));
            Progress::add(&progress.bytes_stored, blob.sealed.len() as u64);
            builder.add(&blob)?;
            if builder.len() >= pack_size {
                while let Some(done) = uploads.try_join_next() {
                    joined(done)?.collect(&mut pending, &mut spare);
                }
                while uploads.len() >= UPLOADS_IN_FLIGHT {
                    join_one(&mut uploads)
                        .await?
                        .collect(&mut pending, &mut spare);
                }
                let next = PackBuilder::with_buffer(spare.pop().unwrap_or_default(), capacity);
                let full = std::mem::replace(&mut builder, next);
                let Some(ready) = held.replace(full) else {
                    continue;
                };
                uploads.spawn(upload_pack(repo.clone(), ready));
                result.packs += 1;
                let due = last_index.elapsed() >= INDEX_INTERVAL;
                if (due && pending.len() >= PACKS_PER_INDEX) || pending.len() >= 4 * PACKS_PER_INDEX
                {
                    let packs = std::mem::take(&mut pending);
                    result.index_files.push(write_index(&repo, packs).await?);
                    last_index = std::time::Instant::now();
                }
            }
        }
    }
    let last = match held {
        // A small remainder joins the last full pack instead of becoming an
        // object of its own (one fewer object to store, list and lock).
        Some(mut full) if !builder.is_empty() && builder.len() <= pack_size / TAIL_FRACTION => {
            full.absorb(builder)?;
            vec![full]
        }
        Some(full) => vec![full, builder],
        None => vec![builder],
    };
    for pack in last.into_iter().filter(|p| !p.is_empty()) {
        uploads.spawn(upload_pack(repo.clone(), pack));
        result.packs += 1;
    }
    while !uploads.is_empty() {
        pending.push(join_one(&mut uploads).await?.pack);
    }
    if !pending.is_empty() {
        result.index_files.push(write_index(&repo, pending).await?);
    }
    progress.items_done.store(result.packs, Ordering::Relaxed);
    Ok(result)
}

/// A stored pack, and its buffer when nothing else holds it any more.
struct Uploaded {
    pack: IndexPack,
    buffer: Option<Vec<u8>>,
}

async fn join_one(uploads: &mut JoinSet<Result<Uploaded, OpsError>>) -> Result<Uploaded, OpsError> {
    match uploads.join_next().await {
        Some(r) => joined(r),
        None => Err(OpsError::Pipeline("no upload in flight".into())),
    }
}

/// The outcome of a finished upload task.
fn joined(
    r: Result<Result<Uploaded, OpsError>, tokio::task::JoinError>,
) -> Result<Uploaded, OpsError> {
    r.map_err(|e| OpsError::Pipeline(e.to_string()))?
}

impl Uploaded {
    /// The pack waits for the next index file, the buffer (at most two are
    /// kept) for the next pack.
    fn collect(self, pending: &mut Vec<IndexPack>, spare: &mut Vec<Vec<u8>>) {
        pending.push(self.pack);
        if spare.len() < 2 {
            spare.extend(self.buffer);
        }
    }
}

async fn upload_pack(repo: Repository, builder: PackBuilder) -> Result<Uploaded, OpsError> {
    let (key, format) = (repo.key().clone(), repo.format());
    let (id, bytes, blobs) = tokio::task::spawn_blocking(move || builder.finish(&key, format))
        .await
        .map_err(|e| OpsError::Pipeline(e.to_string()))??;
    let size = bytes.len() as u64;
    let bytes = Bytes::from(bytes);
    lifeboat_store::put_content_addressed(
        repo.store().as_ref(),
        &FileKind::Pack.key(&id),
        bytes.clone(),
        &repo.put_options(),
    )
    .await?;
    tracing::debug!(pack = %id.short(), size, blobs = blobs.len(), "pack uploaded");
    // A store that keeps no reference once the object is stored (the local
    // directory; not the in-memory one) gives the memory back, emptied
    // without copying.
    let buffer = bytes.try_into_mut().ok().map(|mut b| {
        b.clear();
        Vec::from(b)
    });
    Ok(Uploaded {
        pack: IndexPack {
            id,
            size,
            blobs: blobs.iter().map(IndexedBlob::from).collect(),
        },
        buffer,
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use lifeboat_repo::InitOptions;

    fn chunk(byte: u8) -> Vec<u8> {
        (0..4096u32).map(|i| byte ^ (i % 251) as u8).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spans_store_each_new_chunk_once_and_answer_ids_in_order() {
        let repo = crate::testing::memory_repo(InitOptions::default()).await;
        let (pipeline, mut saver) =
            BlobPipeline::start(&repo, Arc::new(Index::default()), Arc::default());
        let (a, b, zero) = (chunk(1), chunk(2), vec![0u8; 4096]);
        // Already stored through the ordinary path before the spans arrive.
        let b_id = saver.save(BlobType::Data, b.clone()).unwrap();
        let spans: Vec<Vec<u8>> = vec![
            [a.clone(), zero.clone(), b.clone()].concat(),
            [b.clone(), a.clone()].concat(),
            // A short last chunk, then a chunk that is only zeros.
            [a[..100].to_vec(), zero[..700].to_vec()].concat(),
        ];
        let handles: Vec<SpanIds> = tokio::task::block_in_place(|| {
            spans
                .iter()
                .map(|s| {
                    let cuts: Vec<Range<usize>> = if s.len() == 800 {
                        vec![0..100, 100..800]
                    } else {
                        (0..s.len() / 4096)
                            .map(|i| i * 4096..(i + 1) * 4096)
                            .collect()
                    };
                    saver.save_span(BlobType::Data, s.clone(), cuts)
                })
                .collect::<Result<_, _>>()
                .unwrap()
        });
        let key = repo.key().clone();
        let a_id = key.blob_id(&a);
        let short_id = key.blob_id(&a[..100]);
        let got: Vec<Vec<Option<Id>>> = tokio::task::block_in_place(|| {
            handles.into_iter().map(|h| h.wait().unwrap().ids).collect()
        });
        assert_eq!(
            got,
            vec![
                vec![Some(a_id), None, Some(b_id)],
                vec![Some(b_id), Some(a_id)],
                vec![Some(short_id), None],
            ]
        );
        assert!(saver.has(&a_id) && saver.has(&short_id));
        let bad = tokio::task::block_in_place(|| {
            saver.save_span(
                BlobType::Data,
                b"abc".to_vec(),
                vec![Range { start: 0, end: 4 }],
            )
        });
        assert!(bad
            .unwrap_err()
            .to_string()
            .contains("outside the 3-byte span"));
        let written = pipeline.finish(saver).await.unwrap();
        // b, a and the short chunk: each once, however often it appeared.
        assert_eq!(written.blobs, 3);
        let index = repo.load_index().await.unwrap();
        assert_eq!(index.blob_count(), 3);
        assert_eq!(repo.read_blob(&index, &a_id).await.unwrap(), a);
        assert_eq!(repo.read_blob(&index, &short_id).await.unwrap(), &a[..100]);
    }

    /// 64 KiB that zstd cannot shrink.
    fn noise(seed: u64) -> Vec<u8> {
        let mut rng = crate::sample_data::Rng::new(seed);
        (0..64 * 1024).map(|_| rng.below(256) as u8).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_remainder_joins_the_last_full_pack() {
        let mib = 1024 * 1024;
        // Sixteen 64 KiB blobs fill a 1 MiB pack; then a remainder of two
        // blobs (an eighth of a pack) or of eight (a half).
        for (blobs, packs) in [(34, 2), (40, 3), (8, 1)] {
            let repo = crate::testing::memory_repo(InitOptions {
                pack_size: mib,
                ..InitOptions::default()
            })
            .await;
            let (pipeline, mut saver) =
                BlobPipeline::start(&repo, Arc::new(Index::default()), Arc::default());
            let ids: Vec<Id> = tokio::task::block_in_place(|| {
                (0..blobs)
                    .map(|i| saver.save(BlobType::Data, noise(i)).unwrap())
                    .collect()
            });
            let written = pipeline.finish(saver).await.unwrap();
            assert_eq!(written.packs, packs, "{blobs} blobs");
            let index = repo.load_index().await.unwrap();
            assert_eq!(index.blob_count(), blobs as usize);
            for (i, id) in ids.iter().enumerate() {
                assert_eq!(repo.read_blob(&index, id).await.unwrap(), noise(i as u64));
            }
        }
    }
}
