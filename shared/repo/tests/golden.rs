//! Golden repository: objects written by format version 1, committed under
//! tests/golden/. Every future reader must open them and read back exactly
//! this content. Regenerate only for a deliberate format change:
//! `LIFEBOAT_BLESS=1 cargo test -p lifeboat-repo --test golden`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use lifeboat_repo::{
    encode_blob, BlobType, ChunkRef, Credential, FileKind, Id, IndexFile, IndexPack, IndexedBlob,
    InitOptions, KdfParams, Node, NodeType, PackBuilder, Repository, Snapshot, SnapshotSummary,
    Tree,
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

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

async fn bless() {
    let mem = MemoryStore::new();
    let store: Arc<dyn ObjectStore> = Arc::new(mem.clone());
    let cred = Credential::Passphrase(PASSPHRASE.into());
    let opts = InitOptions {
        kdf: Some(KdfParams::weak_for_tests(&cred).unwrap()),
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
    let mut tree = Tree {
        nodes: vec![file, link],
    };
    let tree_json = tree.to_json().unwrap();
    let tree_id = key.blob_id(&tree_json);
    let mut pack = PackBuilder::new(0);
    pack.add(&encode_blob(key, BlobType::Data, data_id, CONTENT, 3).unwrap())
        .unwrap();
    pack.add(&encode_blob(key, BlobType::Tree, tree_id, &tree_json, 3).unwrap())
        .unwrap();
    let (pack_id, bytes, blobs) = pack.finish(key).unwrap();
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
    let dir = golden_dir();
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

#[test]
fn version_1_repository_reads_back_exactly() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    if std::env::var("LIFEBOAT_BLESS").is_ok() {
        rt.block_on(bless());
    }
    let mem = MemoryStore::new();
    load(&golden_dir(), Path::new(""), &mem, rt.handle());
    rt.block_on(async {
        let store: Arc<dyn ObjectStore> = Arc::new(mem);
        let repo = Repository::open(store.clone(), &Credential::Passphrase(PASSPHRASE.into()))
            .await
            .unwrap();
        assert_eq!(repo.config().version, 1);
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
        assert_eq!(index.blob_count(), 2);
        let tree = repo.load_tree(&index, &snap.tree).await.unwrap();
        let names: Vec<_> = tree.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["hello.txt", "link"]);
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
    });
}
