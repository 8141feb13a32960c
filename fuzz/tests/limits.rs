//! Resource limits on untrusted input that fuzzing cannot check well: how
//! much a tiny object can make the parsers allocate, and how long a tampered
//! key object can make `unwrap_key` run. Each test asserts the behaviour we
//! want and is ignored while the shared code does not have it yet (see
//! README.md); run them with `cargo test --manifest-path fuzz/Cargo.toml --
//! --ignored --nocapture`.

use bytes::Bytes;
use lifeboat_repo::{
    decode_blob, encode_blob, BlobType, Compression, Credential, FileKind, Format, IndexFile,
    InitOptions, KdfParams, KeyFile, MasterKey, Repository,
};
use lifeboat_store::{MemoryStore, ObjectStore};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Records the largest single allocation request.
struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);
/// Tests measure one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Largest = Largest;

/// The largest single allocation `f` makes.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (usize, T) {
    LARGEST.store(0, Ordering::Relaxed);
    let out = f();
    (LARGEST.load(Ordering::Relaxed), out)
}

const LIMIT: usize = 64 << 20;

#[test]
#[ignore = "known issue: decode_blob allocates raw_length bytes (up to 512 MiB) up front"]
fn decode_blob_does_not_trust_raw_length_for_allocation() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let key = MasterKey::from_parts([1; 32], [2; 32], 3);
    let text = b"tiny ".repeat(20);
    let id = key.blob_id(&text);
    let b = encode_blob(&key, Format::V2, BlobType::Data, id, &text, 3).unwrap();
    assert_eq!(b.compression, Compression::Zstd);
    // Over the blob size limit: refused before allocating.
    let (largest, r) = largest_allocation(|| {
        decode_blob(
            &key,
            Format::V2,
            BlobType::Data,
            &id,
            b.compression,
            u32::MAX,
            &b.sealed,
        )
    });
    assert!(r.is_err());
    assert!(
        largest < LIMIT,
        "allocated {largest} bytes for a {}-byte blob",
        b.sealed.len()
    );
    // At the limit (512 MiB, `MAX_BLOB_LEN`): allocated up front.
    let claim = 512 * 1024 * 1024;
    let (largest, r) = largest_allocation(|| {
        decode_blob(
            &key,
            Format::V2,
            BlobType::Data,
            &id,
            b.compression,
            claim,
            &b.sealed,
        )
    });
    println!(
        "decode_blob of a {}-byte sealed blob with raw_length {claim}: largest allocation {largest} bytes, result {r:?}",
        b.sealed.len(),
    );
    assert!(r.is_err());
    assert!(
        largest < LIMIT,
        "allocated {largest} bytes for a {}-byte blob",
        b.sealed.len()
    );
}

#[test]
#[ignore = "known issue: Repository::decode_file allocates 1 GiB for every file"]
fn decode_file_allocates_in_proportion_to_the_file() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let cred = Credential::Passphrase("pw".into());
    let mem = MemoryStore::new();
    let store: Arc<dyn ObjectStore> = Arc::new(mem.clone());
    let opts = InitOptions {
        kdf: Some(KdfParams::weak_for_tests(&cred).unwrap()),
        ..InitOptions::default()
    };
    let (repo, id, bytes) = rt.block_on(async {
        let repo = Repository::init(store.clone(), &cred, opts).await.unwrap();
        let id = repo
            .save_file(FileKind::Index, &IndexFile::default())
            .await
            .unwrap();
        let bytes = store.get(&FileKind::Index.key(&id)).await.unwrap();
        (repo, id, bytes)
    });
    let (largest, r) =
        largest_allocation(|| repo.decode_file::<IndexFile>(FileKind::Index, &id, &bytes));
    println!(
        "decode_file of a {}-byte index file: largest allocation {largest} bytes, result {r:?}",
        bytes.len()
    );
    assert_eq!(r.unwrap(), IndexFile::default());
    assert!(
        largest < LIMIT,
        "allocated {largest} bytes for a {}-byte file",
        bytes.len()
    );
}

#[test]
fn unwrap_key_refuses_absurd_kdf_parameters() {
    // Anyone who can write to the store can plant such a key object, and
    // `Repository::open` tries every key object in turn.
    let key = MasterKey::from_parts([1; 32], [2; 32], 3);
    let cred = Credential::Passphrase("x".into());
    let cheap = KdfParams::Argon2id {
        memory_kib: 8,
        iterations: 1,
        parallelism: 1,
        salt: vec![1; 16],
    };
    let wrapped = KeyFile::wrap(&key, &cred, cheap, "h".into(), Format::V2).unwrap();
    for (memory_kib, iterations, parallelism) in [
        // 2^32-1 passes: hours of CPU.
        (8, u32::MAX, 1),
        // 4 TiB: Argon2 asks for it at once and the process aborts.
        (u32::MAX, 1, 1),
        (u32::MAX, u32::MAX, 0xFF_FFFF),
    ] {
        let mut kf = wrapped.clone();
        kf.kdf = KdfParams::Argon2id {
            memory_kib,
            iterations,
            parallelism,
            salt: vec![1; 16],
        };
        let cred = cred.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let start = Instant::now();
        std::thread::spawn(move || {
            let _ = tx.send(kf.unwrap_key(&cred).is_err());
        });
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(refused) => assert!(refused, "{memory_kib} KiB / {iterations} passes accepted"),
            Err(_) => panic!(
                "unwrap_key with {memory_kib} KiB / {iterations} passes still running after {:?}",
                start.elapsed()
            ),
        }
    }
}

#[test]
#[ignore = "known issue: RepoConfig::parse accepts any lock days, and new_retention panics past year 262143"]
fn tampered_lock_days_do_not_panic() {
    // The config is plaintext and unauthenticated. `RepoConfig::new` refuses
    // more than 36500 days; `RepoConfig::parse` does not check them, and
    // `Repository::new_retention` (behind every write) adds them to now.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let cred = Credential::Passphrase("pw".into());
    let mem = MemoryStore::with_object_lock();
    let store: Arc<dyn ObjectStore> = Arc::new(mem.clone());
    let opts = InitOptions {
        kdf: Some(KdfParams::weak_for_tests(&cred).unwrap()),
        object_lock: Some(lifeboat_repo::LockPolicy {
            mode: lifeboat_store::LockMode::Governance,
            days: 30,
        }),
        ..InitOptions::default()
    };
    let repo = rt
        .block_on(Repository::init(store.clone(), &cred, opts))
        .unwrap();
    let mut config = repo.config().clone();
    config.object_lock = Some(lifeboat_repo::LockPolicy {
        mode: lifeboat_store::LockMode::Governance,
        days: u32::MAX,
    });
    let tampered = Bytes::from(config.to_json().unwrap());
    mem.tamper("config", tampered);
    let opened = rt.block_on(Repository::open(store, &cred));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        opened.map(|repo| repo.new_retention())
    }));
    assert!(
        outcome.is_ok(),
        "a tampered config made new_retention panic"
    );
}

#[test]
fn open_skips_a_kdf_bomb_key_quickly() {
    // A key object planted ahead of the real one (keys are listed by name),
    // with parameters far over the limits, or just over them: open must not
    // run Argon2 with them, and must still open with the real key.
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let cred = Credential::Passphrase("pw".into());
    for (memory_kib, iterations, parallelism) in [
        (1024 * 1024, 64, 16),
        (lifeboat_repo::MAX_KDF_MEMORY_KIB + 1, 1, 1),
        (64, lifeboat_repo::MAX_KDF_ITERATIONS + 1, 1),
        (1024, 1, lifeboat_repo::MAX_KDF_PARALLELISM + 1),
        (u32::MAX, u32::MAX, u32::MAX),
    ] {
        let mem = MemoryStore::new();
        let store: Arc<dyn ObjectStore> = Arc::new(mem.clone());
        let opts = InitOptions {
            kdf: Some(KdfParams::weak_for_tests(&cred).unwrap()),
            ..InitOptions::default()
        };
        let repo = rt
            .block_on(Repository::init(store.clone(), &cred, opts))
            .unwrap();
        let bomb = KeyFile {
            version: 1,
            created: chrono::Utc::now(),
            hostname: "planted".into(),
            kdf: KdfParams::Argon2id {
                memory_kib,
                iterations,
                parallelism,
                salt: vec![1; 16],
            },
            wrapped: vec![0; 80],
        };
        let name = format!("keys/{}", "0".repeat(64));
        rt.block_on(store.put(
            &name,
            Bytes::from(serde_json::to_vec(&bomb).unwrap()),
            &lifeboat_store::PutOptions::default(),
        ))
        .unwrap();
        let start = Instant::now();
        let (largest, opened) =
            largest_allocation(|| rt.block_on(Repository::open(store.clone(), &cred)));
        let opened = opened.unwrap();
        assert_eq!(opened.key_id(), repo.key_id());
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{memory_kib} KiB / {iterations} passes: open took {:?}",
            start.elapsed()
        );
        assert!(largest < LIMIT, "open allocated {largest} bytes");
        // Alone, the planted key is refused and named, just as fast.
        mem.force_remove(&format!("keys/{}", repo.key_id().unwrap()));
        let start = Instant::now();
        let err = rt
            .block_on(Repository::open(store.clone(), &cred))
            .unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(err.to_string().contains(&name), "{err}");
    }
}
