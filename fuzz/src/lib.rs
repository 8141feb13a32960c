//! Helpers shared by the fuzz targets in `fuzz_targets/`: the fixed key, a
//! reader that turns fuzzer bytes into structured choices, byte-level
//! mutations, and the seed inputs each target writes into an empty corpus.

use lifeboat_repo::{
    encode_blob, BlobType, ChunkRef, ChunkingParams, Credential, Format, Id, IndexFile, IndexPack,
    IndexedBlob, KdfParams, KeyFile, LockKind, LockPolicy, LockRecord, MasterKey, Node, NodeType,
    PackBuilder, RepoConfig, Snapshot, SnapshotSummary, Tree,
};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// The format version every target seals and opens under (what new
/// repositories get; the parsers behind the AEAD are the same for both).
pub const FORMAT: Format = Format::V2;

/// The key every target encrypts and decrypts with.
pub fn key() -> MasterKey {
    MasterKey::from_parts([1; 32], [2; 32], 3)
}

/// The largest blob `decode_blob` accepts (`MAX_BLOB_LEN` in
/// `shared/repo/src/blob.rs`, not exported).
pub const BLOB_LEN_LIMIT: u32 = 512 * 1024 * 1024;

/// The largest `raw_length` below [`BLOB_LEN_LIMIT`] that the structured
/// variants hand to `decode_blob`.
///
/// `decode_blob` uses `raw_length` as the zstd output capacity and allocates
/// it up front, so a claim of up to 512 MiB costs that much (virtual) memory
/// however small the blob (see README.md and `tests/limits.rs`). Under ASan
/// that makes each such run slow, so claims between 4 MiB (the default
/// largest chunk) and the limit are folded below 4 MiB; claims above the limit
/// go through unchanged, since `decode_blob` must refuse them before
/// allocating.
pub const MAX_RAW_LENGTH: u32 = 4 << 20;

/// An input-chosen `raw_length` for a blob that may get past the AEAD.
pub fn raw_length(v: u32) -> u32 {
    if v > MAX_RAW_LENGTH && v <= BLOB_LEN_LIMIT {
        v % (MAX_RAW_LENGTH + 1)
    } else {
        v
    }
}

/// Reads fuzzer bytes as structured choices. Past the end it yields zeros and
/// empty slices, so every input is usable.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }

    pub fn id(&mut self) -> Id {
        let mut out = [0u8; 32];
        let b = self.bytes(32);
        out[..b.len()].copy_from_slice(b);
        Id(out)
    }
}

/// A plaintext of up to 4 KiB chosen by the input: bytes taken from it
/// (usually incompressible) or a repeated pattern (compressible, so it is
/// stored as zstd).
pub fn plaintext(input: &mut Input) -> Vec<u8> {
    let len = usize::from(input.u16() % 4096);
    match input.u8() % 3 {
        0 => input.bytes(len).to_vec(),
        1 => vec![input.u8(); len],
        _ => {
            let n = 1 + usize::from(input.u8() % 16);
            let pattern = input.bytes(n);
            pattern.iter().copied().cycle().take(len).collect()
        }
    }
}

/// Apply one to four input-chosen mutations to `buf`. Positions count from
/// the start or, at the input's choice, from the end (where a pack's trailer
/// and header live).
pub fn mutate(buf: &mut Vec<u8>, input: &mut Input) {
    let count = 1 + input.u8() % 4;
    for _ in 0..count {
        let op = input.u8();
        let raw = usize::from(input.u16());
        let len = buf.len();
        let pos = match len {
            0 => 0,
            _ if op & 0x80 != 0 => len - 1 - raw % len,
            _ => raw % len,
        };
        match op % 6 {
            // Flip bits of one byte.
            0 => {
                let x = input.u8().max(1);
                if let Some(b) = buf.get_mut(pos) {
                    *b ^= x;
                }
            }
            1 => buf.truncate(pos),
            2 => {
                let n = usize::from(input.u8());
                buf.extend_from_slice(input.bytes(n));
            }
            // Insert bytes.
            3 => {
                let n = 1 + usize::from(input.u8() % 64);
                let ins = input.bytes(n).to_vec();
                buf.splice(pos..pos, ins);
            }
            // Remove bytes.
            4 => {
                let n = 1 + usize::from(input.u8());
                let end = (pos + n).min(len);
                buf.drain(pos.min(end)..end);
            }
            // Overwrite a little-endian u32: lengths live in u32 fields.
            _ => {
                let v = input.u32().to_le_bytes();
                for (i, b) in v.iter().enumerate() {
                    if let Some(x) = buf.get_mut(pos + i) {
                        *x = *b;
                    }
                }
            }
        }
    }
}

/// The main corpus directory libFuzzer was given (its first positional
/// argument), if it is a directory.
fn corpus_dir() -> Option<PathBuf> {
    std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
}

/// Write `seeds()` into the corpus directory if it is empty, so a fresh
/// checkout starts from valid objects rather than from nothing. Called from
/// each target's `init`, which libFuzzer runs before it reads the corpus.
pub fn seed_corpus(seeds: fn() -> Vec<Vec<u8>>) {
    let Some(dir) = corpus_dir() else { return };
    let empty = std::fs::read_dir(&dir)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false);
    if !empty {
        return;
    }
    for (i, s) in seeds().iter().enumerate() {
        // Best effort: without seeds the fuzzer still runs, only slower to start.
        let _ = std::fs::write(dir.join(format!("seed-{i:02}")), s);
    }
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("seed serializes")
}

fn with_mode(mode: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![mode];
    v.extend_from_slice(body);
    v
}

/// Seed inputs, one function per target.
pub mod seeds {
    use super::*;

    fn real_pack() -> Vec<u8> {
        let key = key();
        let mut p = PackBuilder::new(0);
        let text = b"log line repeated ".repeat(20);
        for plain in [&b"one"[..], &text[..], &b""[..]] {
            let b = encode_blob(&key, FORMAT, BlobType::Data, key.blob_id(plain), plain, 3)
                .expect("seed blob encodes");
            p.add(&b).expect("seed blob fits");
        }
        p.finish(&key, FORMAT).expect("seed pack finishes").1
    }

    pub fn pack_header() -> Vec<Vec<u8>> {
        vec![
            with_mode(0, &real_pack()),
            with_mode(0, lifeboat_repo::PACK_MAGIC),
            // Built then mutated: mode, blob count, level, per blob (type, len, kind,
            // bytes), then one mutation that rewrites the header length.
            vec![
                1, 2, 1, 0, 5, 0, 0, b'h', b'e', b'l', b'l', b'o', 1, 0x00, 0x02, 1, b'z', 0, 0x83,
                3, 0, 0x10, 0, 0, 0,
            ],
            // Crafted header: mode, blob count, per blob (real?, plaintext), entry
            // count, per entry the override flags, junk?, trailer?.
            vec![
                2, 2, 1, 5, 0, 0, b'h', b'i', b'!', b'!', b'!', 1, 0, 1, 1, b'q', 2, 0, 0, 0, 0,
            ],
        ]
    }

    pub fn blob() -> Vec<Vec<u8>> {
        let key = key();
        let text = b"compressible ".repeat(50);
        let b = encode_blob(&key, FORMAT, BlobType::Data, key.blob_id(&text), &text, 3)
            .expect("seed blob encodes");
        // Raw: mode, compression, raw_length, id, sealed blob.
        let mut raw = vec![0, 1];
        raw.extend_from_slice(&b.raw_length.to_le_bytes());
        raw.extend_from_slice(&b.id.0);
        raw.extend_from_slice(&b.sealed);
        // Sealed body: mode, compression, raw_length, id flag, zstd frame.
        let plain = [b'a'; 64];
        let mut body = vec![2, 1];
        body.extend_from_slice(&64u32.to_le_bytes());
        body.push(0);
        body.extend_from_slice(&zstd::bulk::compress(&plain, 3).expect("seed compresses"));
        vec![
            raw,
            // Encode then corrupt: mode, type, level, plaintext (len, kind, bytes), choice.
            vec![1, 0, 0, 5, 0, 0, b'h', b'e', b'l', b'l', b'o', 0],
            vec![1, 1, 2, 0, 2, 1, b'a', 0x20, 0, 0x83, 7, 0, 0x01],
            body,
        ]
    }

    fn pack(n: u8, blobs: &[u8]) -> IndexPack {
        IndexPack {
            id: Id([n; 32]),
            size: 4096,
            blobs: blobs
                .iter()
                .enumerate()
                .map(|(i, b)| IndexedBlob {
                    id: Id([*b; 32]),
                    blob_type: if i % 2 == 0 {
                        BlobType::Data
                    } else {
                        BlobType::Tree
                    },
                    offset: 8 + 100 * i as u32,
                    length: 100,
                    raw_length: 300,
                    compression: if i % 2 == 0 {
                        lifeboat_repo::Compression::Zstd
                    } else {
                        lifeboat_repo::Compression::None
                    },
                })
                .collect(),
        }
    }

    pub fn index_file() -> Vec<Vec<u8>> {
        vec![
            json(&IndexFile::default()),
            json(&IndexFile {
                version: 1,
                supersedes: vec![],
                packs: vec![pack(1, &[10, 11]), pack(2, &[12])],
            }),
            json(&IndexFile {
                version: 1,
                supersedes: vec![Id([100; 32]), Id([101; 32])],
                packs: vec![pack(3, &[10, 10, 13]), pack(3, &[14])],
            }),
        ]
    }

    fn snapshot_value() -> Snapshot {
        Snapshot {
            version: 1,
            kind: "volume".into(),
            time: chrono::DateTime::from_timestamp(1_700_000_000, 123_456_789)
                .expect("seed time is in range"),
            hostname: "node-1".into(),
            paths: vec!["/data".into(), "/var/lib/db".into()],
            tags: [("app".to_string(), "db".to_string())]
                .into_iter()
                .collect(),
            tree: Id([7; 32]),
            parent: Some(Id([8; 32])),
            summary: SnapshotSummary {
                files: 10,
                dirs: 2,
                bytes: 12345,
                bytes_read: 100,
                bytes_new: 50,
                bytes_stored: 40,
                blobs_new: 3,
                packs_written: 1,
                duration_secs: 1.25,
            },
            cluster: None,
            repository: Some(lifeboat_repo::RepoFingerprint {
                config: Id([9; 32]),
                keys: Id([10; 32]),
            }),
        }
    }

    pub fn snapshot() -> Vec<Vec<u8>> {
        let mut minimal = snapshot_value();
        minimal.parent = None;
        minimal.tags.clear();
        minimal.repository = None;
        vec![json(&snapshot_value()), json(&minimal)]
    }

    pub fn tree() -> Vec<Vec<u8>> {
        let mut file = Node::new(OsStr::new("file.txt"), NodeType::File);
        file.size = 5000;
        file.content = vec![
            ChunkRef {
                id: Id([1; 32]),
                offset: 0,
            },
            ChunkRef {
                id: Id([2; 32]),
                offset: 4096,
            },
        ];
        let mut dir = Node::new(OsStr::new("dir"), NodeType::Dir);
        dir.subtree = Some(Id([3; 32]));
        let mut link = Node::new(OsStr::from_bytes(b"caf\xe9"), NodeType::Symlink);
        link.set_target(OsStr::from_bytes(b"../t\xff"));
        let mut dev = Node::new(OsStr::new("sda"), NodeType::Blockdev);
        dev.rdev = 0x801;
        let mut tree = Tree {
            nodes: vec![
                file,
                dir,
                link,
                dev,
                Node::new(OsStr::new("tty"), NodeType::Chardev),
                Node::new(OsStr::new("fifo"), NodeType::Fifo),
                Node::new(OsStr::new("sock"), NodeType::Socket),
            ],
        };
        vec![
            tree.to_json().expect("seed tree serializes"),
            Tree::default().to_json().expect("seed tree serializes"),
        ]
    }

    pub fn config() -> Vec<Vec<u8>> {
        let plain = RepoConfig::new(ChunkingParams::default(), 3, 16 << 20, None)
            .expect("seed config is valid");
        let locked = RepoConfig::new(
            ChunkingParams::default(),
            3,
            16 << 20,
            Some(LockPolicy {
                mode: lifeboat_store::LockMode::Compliance,
                days: 30,
            }),
        )
        .expect("seed config is valid");
        vec![
            plain.to_json().expect("seed config serializes"),
            locked.to_json().expect("seed config serializes"),
            // Edited (see the config target): keep every number.
            vec![0; 10],
        ]
    }

    pub fn key_file() -> Vec<Vec<u8>> {
        let master = key();
        let pass = Credential::Passphrase("x".into());
        let argon = KdfParams::Argon2id {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            salt: vec![9; 16],
        };
        let kf =
            KeyFile::wrap(&master, &pass, argon, "host".into(), FORMAT).expect("seed key wraps");
        let file = Credential::KeyFile(vec![7; 32]);
        let kf2 = KeyFile::wrap(
            &master,
            &file,
            KdfParams::Keyfile { salt: vec![9; 16] },
            "host".into(),
            FORMAT,
        )
        .expect("seed key wraps");
        vec![
            with_mode(0, &json(&kf)),
            with_mode(0, &json(&kf2)),
            // Wrap then mutate: mode, salt length, salt, passphrase?, memory,
            // iterations, then one flip.
            vec![
                1, 16, b's', b'a', b'l', b't', b's', b'a', b'l', b't', b's', b'a', b'l', b't',
                b's', b'a', b'l', b't', 1, 8, 0, 0, 0x80, 3, 0, 1,
            ],
            with_mode(2, &json(&master)),
        ]
    }

    pub fn lock() -> Vec<Vec<u8>> {
        let now =
            chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("seed time is in range");
        vec![json(&LockRecord {
            kind: LockKind::Shared,
            operation: "backup".into(),
            hostname: "node-1".into(),
            pid: 42,
            created: now,
            refreshed: now,
        })]
    }
}
