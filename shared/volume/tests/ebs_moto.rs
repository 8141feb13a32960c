//! EBS snapshots through the EBS direct APIs, against moto in server mode on
//! 127.0.0.1: written with `EbsWriter`, read back with `EbsSnapshot`.
//!
//! Start moto first: `tests/substrate/aws up && cargo test -p lifeboat-volume`.
//! Like every test that needs moto, these fail (with how to start it) when it
//! is not running. Every test starts its own snapshots, so reruns against the
//! same server do not collide.
//!
//! What moto 5.2.5 does differently from AWS, and how these tests live with it:
//! - blocks are 512 bytes (512 KiB on AWS): the tests take the block size from
//!   the service, as the product code does;
//! - ListSnapshotBlocks and ListChangedBlocks ignore StartingBlockIndex,
//!   MaxResults and NextToken and list in insertion order: the product code
//!   sorts and cuts listings itself, which these tests check;
//! - ListChangedBlocks misses blocks that exist only in the second snapshot:
//!   the tests accept their absence (and check them when present);
//! - a missing snapshot or block is an HTTP 500 with no error code (AWS says
//!   ResourceNotFoundException, which is not retryable): the tests check that
//!   the error names the call and the snapshot, not whether it is retryable;
//! - checksums and DataLength are stored as sent, unchecked: the tests use
//!   that to plant a corrupt block.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_config::BehaviorVersion;
use aws_sdk_ebs::config::{Credentials, Region};
use aws_sdk_ebs::primitives::ByteStream;
use aws_sdk_ebs::types::ChecksumAlgorithm;
use base64::Engine;
use bytes::Bytes;
use lifeboat_volume::ebs::{Client, EbsSnapshot, EbsWriter};
use lifeboat_volume::{Block, BlockSink, BlockSource, Geometry, VolumeError};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

const GIB: u64 = 1 << 30;

/// An EBS client pointed at moto the ordinary way: region, endpoint URL and
/// credentials from `target/substrate/aws.env`.
async fn client() -> Client {
    let env = lifeboat_tests::aws_env();
    let get = |key: &str| {
        env.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{key} is not in target/substrate/aws.env"))
    };
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(get("AWS_REGION")))
        .endpoint_url(get("AWS_ENDPOINT_URL"))
        .credentials_provider(Credentials::new(
            get("AWS_ACCESS_KEY_ID"),
            get("AWS_SECRET_ACCESS_KEY"),
            None,
            None,
            "lifeboat-volume-tests",
        ))
        .load()
        .await;
    Client::new(&sdk)
}

/// A token no earlier run has used.
fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("lb-{tag}-{}-{nanos}", std::process::id())
}

/// `len` pseudo-random bytes, the same for the same seed (xorshift64*).
fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn sha256_base64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(data))
}

/// Write `blocks` as a caller does: zero blocks skipped, the others written
/// concurrently; then finish. Returns the snapshot id and the blocks written.
async fn write_snapshot(
    writer: EbsWriter,
    blocks: &BTreeMap<u64, Bytes>,
) -> (String, BTreeSet<u64>) {
    let writer = Arc::new(writer);
    let limit = Arc::new(Semaphore::new(16));
    let mut tasks = JoinSet::new();
    let mut written = BTreeSet::new();
    for (&index, data) in blocks {
        if data.iter().all(|b| *b == 0) {
            continue;
        }
        written.insert(index);
        let (writer, data) = (writer.clone(), data.clone());
        let permit = limit.clone().acquire_owned().await.unwrap();
        tasks.spawn(async move {
            let _permit = permit;
            writer.write(index, data).await
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap().unwrap();
    }
    let id = writer.finish(written.len() as u64).await.unwrap();
    assert_eq!(id, writer.snapshot_id());
    (id, written)
}

/// Read `blocks` concurrently, as the copy does.
async fn read_all(source: &EbsSnapshot, blocks: Vec<Block>) -> BTreeMap<u64, Bytes> {
    let limit = Arc::new(Semaphore::new(16));
    let mut tasks = JoinSet::new();
    for block in blocks {
        let source = source.clone();
        let permit = limit.clone().acquire_owned().await.unwrap();
        tasks.spawn(async move {
            let _permit = permit;
            let data = source.read(&block).await.unwrap();
            (block.index, data)
        });
    }
    let mut out = BTreeMap::new();
    while let Some(r) = tasks.join_next().await {
        let (index, data) = r.unwrap();
        out.insert(index, data);
    }
    out
}

fn indexes(blocks: &[Block]) -> Vec<u64> {
    blocks.iter().map(|b| b.index).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_written_snapshot_reads_back_block_for_block() {
    let client = client().await;
    // Not a whole number of GiB: the snapshot is rounded up.
    let writer = EbsWriter::start(
        client.clone(),
        GIB - 12_345,
        "lifeboat-volume test",
        &[("lifeboat.io/test".to_string(), "round-trip".to_string())],
        &unique("round-trip"),
    )
    .await
    .unwrap();
    let g = writer.geometry();
    assert_eq!(g.volume_size, GIB);
    let bs = g.block_size as usize;
    let n = g.blocks();

    // A few hundred blocks spread over the volume, the first and the last
    // among them; every tenth holds only zeros and is not written.
    let mut blocks = BTreeMap::new();
    for i in 0..300u64 {
        let index = match i {
            0 => 0,
            1 => n - 1,
            _ => (i * 6_983) % n,
        };
        let data = if i % 10 == 5 {
            vec![0u8; bs]
        } else {
            pseudo_random(index + 1, bs)
        };
        blocks.insert(index, Bytes::from(data));
    }

    // A block of the wrong size, or outside the volume, is refused.
    let err = writer
        .write(3, Bytes::from(vec![1u8; bs - 1]))
        .await
        .unwrap_err();
    assert!(matches!(err, VolumeError::Invalid(_)), "{err}");
    let err = writer
        .write(n, Bytes::from(vec![1u8; bs]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("outside the snapshot"), "{err}");

    let (id, written) = write_snapshot(writer, &blocks).await;
    assert!(written.len() >= 250, "{}", written.len());
    assert!(written.contains(&0) && written.contains(&(n - 1)));

    let source = EbsSnapshot::new(client.clone(), &id);
    assert_eq!(source.name(), id);
    assert_eq!(source.geometry().await.unwrap(), g);

    let listed = source.allocated(0, n).await.unwrap();
    assert_eq!(
        indexes(&listed),
        written.iter().copied().collect::<Vec<_>>()
    );
    // A sub-range lists only its own blocks, in order, although moto lists
    // the whole snapshot in insertion order.
    let (lo, hi) = (n / 4, n / 2);
    let some = source.allocated(lo, hi).await.unwrap();
    let want: Vec<u64> = written.range(lo..hi).copied().collect();
    assert!(!want.is_empty());
    assert_eq!(indexes(&some), want);
    assert!(source.allocated(hi, lo).await.unwrap().is_empty());

    let read = read_all(&source, listed).await;
    assert_eq!(read.len(), written.len());
    for (index, data) in &read {
        assert_eq!(data, &blocks[index], "block {index} differs");
    }

    // A fresh source that is told the geometry reads the same without asking.
    let told = EbsSnapshot::new(client.clone(), &id).with_geometry(Geometry {
        volume_size: g.volume_size,
        block_size: g.block_size,
    });
    let last = some.last().unwrap().clone();
    assert_eq!(told.read(&last).await.unwrap(), blocks[&last.index]);
    let err = told
        .read(&Block {
            index: n,
            token: last.token.clone(),
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("outside the volume"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn changed_blocks_name_what_changed_and_what_went() {
    let client = client().await;
    let first = EbsWriter::start(client.clone(), GIB, "", &[], &unique("base"))
        .await
        .unwrap();
    let bs = first.geometry().block_size as usize;
    let n = first.geometry().blocks();

    // Spread over the volume whatever its block size.
    let step = n / 128;
    let old: BTreeMap<u64, Bytes> = (0..120u64)
        .map(|i| {
            let index = 10 + i * step;
            (index, Bytes::from(pseudo_random(index, bs)))
        })
        .collect();
    let (base_id, _) = write_snapshot(first, &old).await;

    // The second snapshot keeps a third as it was, rewrites a third and
    // drops a third; and it has blocks the first lacked.
    let (mut unchanged, mut changed, mut removed) =
        (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    let mut new = BTreeMap::new();
    for (i, (&index, data)) in old.iter().enumerate() {
        match i % 3 {
            0 => {
                unchanged.insert(index);
                new.insert(index, data.clone());
            }
            1 => {
                changed.insert(index);
                new.insert(index, Bytes::from(pseudo_random(index + 7_777, bs)));
            }
            _ => {
                removed.insert(index);
            }
        }
    }
    let added: BTreeSet<u64> = (0..20u64).map(|i| 5 + i * (n / 21)).collect();
    assert!(added.is_disjoint(&old.keys().copied().collect()));
    for &index in &added {
        new.insert(index, Bytes::from(pseudo_random(index + 99, bs)));
    }
    let second = EbsWriter::start(client.clone(), GIB, "", &[], &unique("next"))
        .await
        .unwrap();
    let (id, _) = write_snapshot(second, &new).await;

    let source = EbsSnapshot::new(client.clone(), &id);
    let diff = source
        .changed_since(&base_id, 0, n)
        .await
        .unwrap()
        .expect("EBS tells changed blocks");
    let listed: Vec<u64> = diff.iter().map(|c| c.index).collect();
    assert!(
        listed.windows(2).all(|w| w[0] < w[1]),
        "not ascending: {listed:?}"
    );
    for c in &diff {
        assert!(
            !unchanged.contains(&c.index),
            "unchanged block {} listed",
            c.index
        );
        if removed.contains(&c.index) {
            assert_eq!(c.now, None, "removed block {}", c.index);
        } else {
            // Changed, or (on AWS, not moto) only in the second snapshot.
            assert!(changed.contains(&c.index) || added.contains(&c.index));
            let now = c.now.as_ref().expect("a block with data has a token");
            assert_eq!(now.index, c.index);
        }
    }
    let listed: BTreeSet<u64> = listed.into_iter().collect();
    assert!(changed.is_subset(&listed), "changed blocks missing");
    assert!(removed.is_subset(&listed), "removed blocks missing");
    // moto's known gap: blocks only in the second snapshot are not listed
    // (AWS lists them); whichever it does, listed ones were checked above.

    // The tokens read the second snapshot's data.
    let now: Vec<Block> = diff.iter().filter_map(|c| c.now.clone()).collect();
    for (index, data) in read_all(&source, now).await {
        assert_eq!(data, new[&index], "block {index} differs");
    }

    // A sub-range gets the same answer, cut to the range.
    let (lo, hi) = (n / 4, n / 2);
    let some = source
        .changed_since(&base_id, lo, hi)
        .await
        .unwrap()
        .unwrap();
    let want: Vec<_> = diff
        .iter()
        .filter(|c| (lo..hi).contains(&c.index))
        .cloned()
        .collect();
    assert!(!want.is_empty());
    assert_eq!(some, want);
}

#[tokio::test]
async fn a_missing_snapshot_is_named_in_the_error() {
    let client = client().await;
    let missing = "snap-0123456789abcdef0";
    let source = EbsSnapshot::new(client.clone(), missing);
    let err = source
        .read(&Block {
            index: 0,
            token: "no-token".to_string(),
        })
        .await
        .unwrap_err();
    match &err {
        VolumeError::Ebs {
            operation, target, ..
        } => {
            assert_eq!(*operation, "ListSnapshotBlocks");
            assert_eq!(target, missing);
        }
        other => panic!("expected an EBS error, got {other:?}"),
    }
    assert!(err.to_string().contains(missing), "{err}");

    let err = source.allocated(0, 100).await.unwrap_err();
    assert!(err.to_string().contains(missing), "{err}");

    // Writing to a snapshot that is not there names the block.
    let g = Geometry {
        volume_size: GIB,
        block_size: 512,
    };
    let writer = EbsWriter::resume(client, missing, g);
    let err = writer
        .write(7, Bytes::from(vec![1u8; 512]))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("PutSnapshotBlock on {missing} block 7")),
        "{err}"
    );
}

#[tokio::test]
async fn a_block_that_does_not_match_its_checksum_is_refused() {
    let client = client().await;
    let writer = EbsWriter::start(client.clone(), GIB, "", &[], &unique("corrupt"))
        .await
        .unwrap();
    let bs = writer.geometry().block_size as usize;
    let id = writer.snapshot_id().to_string();
    let good = pseudo_random(1, bs);
    writer.write(1, Bytes::from(good.clone())).await.unwrap();

    // Through the raw API: block 2 with the checksum of other data, block 3
    // with a DataLength that does not match its body. moto keeps both as sent.
    let data = pseudo_random(2, bs);
    client
        .put_snapshot_block()
        .snapshot_id(&id)
        .block_index(2)
        .data_length(bs as i32)
        .checksum(sha256_base64(&pseudo_random(3, bs)))
        .checksum_algorithm(ChecksumAlgorithm::ChecksumAlgorithmSha256)
        .block_data(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    client
        .put_snapshot_block()
        .snapshot_id(&id)
        .block_index(3)
        .data_length(bs as i32 / 2)
        .checksum(sha256_base64(&data))
        .checksum_algorithm(ChecksumAlgorithm::ChecksumAlgorithmSha256)
        .block_data(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(writer.finish(3).await.unwrap(), id);

    let source = EbsSnapshot::new(client, &id);
    let blocks = source.allocated(0, 10).await.unwrap();
    assert_eq!(indexes(&blocks), vec![1, 2, 3]);
    assert_eq!(source.read(&blocks[0]).await.unwrap(), good);

    match source.read(&blocks[1]).await {
        Err(VolumeError::Checksum {
            target,
            expected,
            actual,
        }) => {
            assert_eq!(target, format!("{id} block 2"));
            assert_eq!(expected, sha256_base64(&pseudo_random(3, bs)));
            assert_eq!(actual, sha256_base64(&data));
        }
        other => panic!("expected a checksum error, got {other:?}"),
    }
    let err = source.read(&blocks[2]).await.unwrap_err();
    assert!(
        err.to_string().contains(&format!("{id} block 3"))
            && err.to_string().contains("DataLength"),
        "{err}"
    );
}
