//! Golden repositories: objects written by format version 1, committed under
//! tests/golden/, and by format version 2, under tests/golden-v2/. Every
//! future reader must open them and read back exactly this content. Neither
//! is ever regenerated once committed (locked objects are never rewritten, so
//! readers keep reading both for good); a new format version gets a new
//! directory, written once with
//! `LIFEBOAT_BLESS=<version> cargo test -p lifeboat-repo --test golden`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use lifeboat_repo::{
    encode_blob, BlobType, ChunkRef, Credential, FileKind, Format, Id, IndexFile, IndexPack,
    IndexedBlob, InitOptions, KdfParams, Node, NodeType, PackBuilder, Repository, Snapshot,
    SnapshotSummary, Tree,
};
use lifeboat_store::{MemoryStore, ObjectStore, PutOptions};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const PASSPHRASE: &str = "golden repository passphrase";
/// A second key object, with four Argon2 lanes (the default for new keys).
const FOUR_LANES_PASSPHRASE: &str = "golden four-lane passphrase";
const CONTENT: &[u8] =
    b"Lifeboat golden file content, repeated. Lifeboat golden file content, repeated.\n";

fn golden_dir(format: Format) -> PathBuf {
    let dir = match format {
        Format::V1 => "tests/golden",
        Format::V2 => "tests/golden-v2",
    };
    Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)
}

/// A file in the version-2 golden repository whose content a tenant chose:
/// valid snapshot JSON (the attack of security review finding 25).
fn planted_json() -> Vec<u8> {
    let snap = Snapshot {
        version: 1,
        kind: "volume".into(),
        time: "2099-01-01T00:00:00Z".parse().unwrap(),
        hostname: "golden-host".into(),
        paths: vec!["/planted".into(); 16],
        tags: Default::default(),
        tree: Id([0; 32]),
        parent: None,
        summary: SnapshotSummary::default(),
        cluster: None,
        repository: None,
    };
    serde_json::to_vec(&snap).unwrap()
}

/// Write a golden repository of `format`: fixed content; keys and nonces
/// are random, so the bytes differ on every run (hence: written once).
async fn bless(format: Format) {
    let mem = MemoryStore::new();
    let store: Arc<dyn ObjectStore> = Arc::new(mem.clone());
    let cred = Credential::Passphrase(PASSPHRASE.into());
    let opts = InitOptions {
        kdf: Some(KdfParams::weak_for_tests(&cred).unwrap()),
        format,
        ..InitOptions::default()
    };
    let repo = Repository::init(store.clone(), &cred, opts).await.unwrap();
    let key = repo.key();
    let data_id = key.blob_id(CONTENT);
    let mut file = Node::new(OsStr::new("hello.txt"), NodeType::File);
    file.mode = 0o644;
    file.mtime_ns = 1_764_201_600_123_456_789;
    file.size = CONTENT.len() as u64;
    file.content = vec![ChunkRef {
        id: data_id,
        offset: 0,
    }];
    let mut link = Node::new(OsStr::new("link"), NodeType::Symlink);
    link.set_target(OsStr::new("hello.txt"));
    let mut nodes = vec![file, link];
    let mut pack = PackBuilder::new(0);
    let planted = planted_json();
    if format == Format::V2 {
        let planted_id = key.blob_id(&planted);
        let mut node = Node::new(OsStr::new("planted.json"), NodeType::File);
        node.mode = 0o644;
        node.size = planted.len() as u64;
        node.content = vec![ChunkRef {
            id: planted_id,
            offset: 0,
        }];
        nodes.push(node);
        let blob = encode_blob(key, format, BlobType::Data, planted_id, &planted, 3).unwrap();
        assert_eq!(blob.compression, lifeboat_repo::Compression::Zstd);
        pack.add(&blob).unwrap();
    }
    let mut tree = Tree { nodes };
    let tree_json = tree.to_json().unwrap();
    let tree_id = key.blob_id(&tree_json);
    pack.add(&encode_blob(key, format, BlobType::Data, data_id, CONTENT, 3).unwrap())
        .unwrap();
    pack.add(&encode_blob(key, format, BlobType::Tree, tree_id, &tree_json, 3).unwrap())
        .unwrap();
    let (pack_id, bytes, blobs) = pack.finish(key, format).unwrap();
    let size = bytes.len() as u64;
    store
        .put(
            &FileKind::Pack.key(&pack_id),
            Bytes::from(bytes),
            &PutOptions::default(),
        )
        .await
        .unwrap();
    let index = IndexFile {
        version: 1,
        supersedes: vec![],
        packs: vec![IndexPack {
            id: pack_id,
            size,
            blobs: blobs.iter().map(IndexedBlob::from).collect(),
        }],
    };
    repo.save_file(FileKind::Index, &index).await.unwrap();
    let snap = Snapshot {
        version: 1,
        kind: "volume".into(),
        time: "2026-11-27T00:00:00Z".parse().unwrap(),
        hostname: "golden-host".into(),
        paths: vec!["/golden".into()],
        tags: [("app".to_string(), "golden".to_string())].into(),
        tree: tree_id,
        parent: None,
        summary: SnapshotSummary {
            files: 1,
            bytes: CONTENT.len() as u64,
            ..Default::default()
        },
        cluster: None,
        repository: None,
    };
    repo.save_file(FileKind::Snapshot, &snap).await.unwrap();
    add_four_lane_key(&repo).await;
    let dir = golden_dir(format);
    let _ = std::fs::remove_dir_all(&dir);
    for o in store.list("").await.unwrap() {
        let p = dir.join(&o.key);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, store.get(&o.key).await.unwrap()).unwrap();
    }
}

async fn add_four_lane_key(repo: &Repository) {
    let cred = Credential::Passphrase(FOUR_LANES_PASSPHRASE.into());
    let KdfParams::Argon2id { salt, .. } = KdfParams::for_credential(&cred).unwrap() else {
        panic!("a passphrase gets Argon2id")
    };
    let kdf = KdfParams::Argon2id {
        memory_kib: 256,
        iterations: 1,
        parallelism: 4,
        salt,
    };
    repo.add_key(&cred, kdf).await.unwrap();
}

fn load(dir: &Path, rel: &Path, mem: &MemoryStore, rt: &tokio::runtime::Handle) {
    for e in std::fs::read_dir(dir.join(rel)).unwrap() {
        let e = e.unwrap();
        let r = rel.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            load(dir, &r, mem, rt);
        } else {
            let bytes = std::fs::read(e.path()).unwrap();
            let key = r.to_str().unwrap().to_string();
            let m = mem.clone();
            rt.block_on(async move {
                m.put(&key, Bytes::from(bytes), &PutOptions::default())
                    .await
                    .unwrap()
            });
        }
    }
}

/// The golden repository of `format` in a fresh in-memory store (written
/// first if `LIFEBOAT_BLESS` names this version).
fn golden_store(format: Format, rt: &tokio::runtime::Runtime) -> MemoryStore {
    if std::env::var("LIFEBOAT_BLESS").is_ok_and(|v| v == format.version().to_string()) {
        rt.block_on(bless(format));
    }
    let mem = MemoryStore::new();
    load(&golden_dir(format), Path::new(""), &mem, rt.handle());
    mem
}

/// Open a golden repository and check what both versions hold: its one
/// snapshot, its tree's first two nodes, the file content, and both keys.
/// Returns the repository, its snapshot and its tree.
async fn read_back(store: Arc<dyn ObjectStore>, format: Format) -> (Repository, Id, Tree) {
    let repo = Repository::open(store.clone(), &Credential::Passphrase(PASSPHRASE.into()))
        .await
        .unwrap();
    assert_eq!(repo.config().version, format.version());
    assert_eq!(repo.format(), format);
    assert_eq!(repo.config().chunking.fixed_size, 65536);
    let snaps = repo.snapshots().await.unwrap();
    assert_eq!(snaps.len(), 1);
    let (sid, snap) = &snaps[0];
    assert_eq!(snap.hostname, "golden-host");
    assert_eq!(snap.tags["app"], "golden");
    assert_eq!(snap.time.to_rfc3339(), "2026-11-27T00:00:00+00:00");
    // File ids are the plain BLAKE3 of the stored bytes.
    let raw = store.get(&FileKind::Snapshot.key(sid)).await.unwrap();
    assert_eq!(Id::of_file(&raw), *sid);
    let index = repo.load_index().await.unwrap();
    let tree = repo.load_tree(&index, &snap.tree).await.unwrap();
    assert_eq!(tree.nodes[0].name.as_str(), "hello.txt");
    assert_eq!(tree.nodes[1].name.as_str(), "link");
    assert_eq!(tree.nodes[0].mtime_ns, 1_764_201_600_123_456_789);
    assert_eq!(tree.nodes[1].target.as_deref(), Some("hello.txt"));
    let data = repo
        .read_blob(&index, &tree.nodes[0].content[0].id)
        .await
        .unwrap();
    assert_eq!(data, CONTENT);
    // The blob id is the keyed hash of the plaintext under the golden key.
    assert_eq!(repo.key().blob_id(&data), tree.nodes[0].content[0].id);
    // The four-lane key object opens the same master key.
    let four = Repository::open(
        store.clone(),
        &Credential::Passphrase(FOUR_LANES_PASSPHRASE.into()),
    )
    .await
    .unwrap();
    assert_eq!(four.key().blob_id(&data), tree.nodes[0].content[0].id);
    // A wrong passphrase is refused.
    assert!(
        Repository::open(store, &Credential::Passphrase("nope".into()))
            .await
            .is_err()
    );
    (repo, *sid, tree)
}

#[test]
fn version_1_repository_reads_back_exactly() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mem = golden_store(Format::V1, &rt);
    rt.block_on(async {
        let store: Arc<dyn ObjectStore> = Arc::new(mem);
        let (repo, _, tree) = read_back(store, Format::V1).await;
        assert_eq!(tree.nodes.len(), 2);
        assert_eq!(repo.load_index().await.unwrap().blob_count(), 2);
        // Every key object of a version-1 repository is version 1.
        assert!(repo
            .keys()
            .await
            .unwrap()
            .iter()
            .all(|(_, k)| k.version == 1));
    });
}

#[test]
fn version_2_repository_reads_back_exactly() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mem = golden_store(Format::V2, &rt);
    rt.block_on(async {
        let store: Arc<dyn ObjectStore> = Arc::new(mem);
        let (repo, _, tree) = read_back(store, Format::V2).await;
        let index = repo.load_index().await.unwrap();
        assert_eq!(index.blob_count(), 3);
        assert_eq!(tree.nodes[2].name.as_str(), "planted.json");
        let planted = repo
            .read_blob(&index, &tree.nodes[2].content[0].id)
            .await
            .unwrap();
        assert_eq!(planted, planted_json());
        assert!(repo
            .keys()
            .await
            .unwrap()
            .iter()
            .all(|(_, k)| k.version == 2));
    });
}

/// The review's attack on the golden version-2 repository: the sealed bytes
/// of a data blob whose plaintext is snapshot JSON (zstd-compressed, exactly
/// what a sealed snapshot holds), cut out of its pack at the offset the
/// index gives and stored as `snapshots/<BLAKE3 of them>`, do not open as a
/// snapshot, and `snapshots()` never yields it.
#[test]
fn version_2_data_blob_copied_to_snapshots_is_refused() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mem = golden_store(Format::V2, &rt);
    rt.block_on(async {
        let store: Arc<dyn ObjectStore> = Arc::new(mem);
        let (repo, real, tree) = read_back(store.clone(), Format::V2).await;
        let index = repo.load_index().await.unwrap();
        let blob = repo
            .read_sealed_blob(&index, &tree.nodes[2].content[0].id)
            .await
            .unwrap();
        assert_eq!(blob.location.compression, lifeboat_repo::Compression::Zstd);
        let planted = Id::of_file(&blob.sealed);
        store
            .put(
                &FileKind::Snapshot.key(&planted),
                blob.sealed.clone(),
                &PutOptions::default(),
            )
            .await
            .unwrap();
        let err = repo
            .load_file::<Snapshot>(FileKind::Snapshot, &planted)
            .await
            .unwrap_err();
        assert!(
            matches!(err, lifeboat_repo::RepoError::Decrypt { .. }),
            "{err}"
        );
        assert_only_real_snapshot(&repo, real).await;
    });
}

/// A version-1 style sealed snapshot (empty associated data, under the
/// repository's own key) planted in a version-2 repository is refused.
#[test]
fn version_1_sealed_object_planted_in_version_2_repository_is_refused() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mem = golden_store(Format::V2, &rt);
    rt.block_on(async {
        let store: Arc<dyn ObjectStore> = Arc::new(mem);
        let (repo, real, _) = read_back(store.clone(), Format::V2).await;
        let json = zstd::bulk::compress(&planted_json(), 3).unwrap();
        let v1 = lifeboat_repo::Aad::file(Format::V1, FileKind::Snapshot);
        let sealed = repo.key().seal(&json, &v1).unwrap();
        let planted = Id::of_file(&sealed);
        store
            .put(
                &FileKind::Snapshot.key(&planted),
                Bytes::from(sealed),
                &PutOptions::default(),
            )
            .await
            .unwrap();
        let err = repo
            .load_file::<Snapshot>(FileKind::Snapshot, &planted)
            .await
            .unwrap_err();
        assert!(
            matches!(err, lifeboat_repo::RepoError::Decrypt { .. }),
            "{err}"
        );
        assert_only_real_snapshot(&repo, real).await;
    });
}

/// Whatever `snapshots()` does with an object that fails to open (refuse
/// the listing, or skip the object), it never yields a planted snapshot:
/// `latest`, parent selection and prune see only the real one.
async fn assert_only_real_snapshot(repo: &Repository, real: Id) {
    match repo.snapshots().await {
        Ok(snaps) => {
            let ids: Vec<Id> = snaps.iter().map(|(id, _)| *id).collect();
            assert_eq!(ids, [real]);
        }
        Err(e) => assert!(matches!(e, lifeboat_repo::RepoError::Decrypt { .. }), "{e}"),
    }
}
