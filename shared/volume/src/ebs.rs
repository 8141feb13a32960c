//! EBS snapshots through the EBS direct APIs: an existing snapshot read block
//! by block ([`EbsSnapshot`], a [`BlockSource`](crate::BlockSource)) and a new
//! snapshot written block by block ([`EbsWriter`], a
//! [`BlockSink`](crate::BlockSink)).
//!
//! Both take an EBS [`Client`] (re-exported from `aws-sdk-ebs`), built the
//! usual way from an SDK configuration: `Client::new(&sdk_config)`. The
//! client's region is the snapshot's region; an endpoint override in that
//! configuration (`endpoint_url`, `AWS_ENDPOINT_URL`) applies as to any SDK
//! client. The client is cheap to clone and safe to use from many tasks, so
//! blocks can be read and written concurrently.
//!
//! The block size is whatever the service says (512 KiB on AWS) and never
//! assumed. Every block read is checked against the SHA-256 the service gives
//! for it; every block written carries its SHA-256. Calls are retried only by
//! the SDK's own retry policy; errors say whether a further retry can help.

mod error;
mod requests;
mod snapshot;
mod writer;

pub use aws_sdk_ebs::Client;
pub use requests::RequestCounter;
pub use snapshot::EbsSnapshot;
pub use writer::EbsWriter;

use crate::{Geometry, VolumeError};
use base64::Engine;
use sha2::{Digest, Sha256};

/// A client configured from the environment, as the AWS SDKs do (region,
/// credentials, `AWS_ENDPOINT_URL`).
pub async fn client_from_env() -> Client {
    Client::new(&aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await)
}

/// EBS sizes volumes and snapshots in whole GiB.
const GIB: u64 = 1 << 30;

/// The smallest number of whole GiB that holds `bytes` (at least one: EBS
/// has no empty volumes).
fn gib_rounded_up(bytes: u64) -> u64 {
    bytes.div_ceil(GIB).max(1)
}

/// The base64 of the SHA-256 of `data`, as the EBS direct APIs exchange it.
fn sha256_base64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(data))
}

/// How messages name one block of a snapshot: `snap-0abc block 17`.
fn block_target(snapshot_id: &str, index: u64) -> String {
    format!("{snapshot_id} block {index}")
}

/// A block index as the API takes it (a 32-bit integer: 64 TiB in 512 KiB
/// blocks is far below its limit).
fn api_index(index: u64) -> Option<i32> {
    i32::try_from(index).ok()
}

/// The geometry from a response's `VolumeSize` (GiB) and `BlockSize` (bytes).
fn geometry_from(volume_gib: Option<i64>, block_size: Option<i32>) -> Result<Geometry, String> {
    let gib = volume_gib.ok_or("the response gives no VolumeSize")?;
    let block_size = block_size.ok_or("the response gives no BlockSize")?;
    let volume_size = u64::try_from(gib)
        .ok()
        .and_then(|g| g.checked_mul(GIB))
        .ok_or_else(|| format!("the response gives a VolumeSize of {gib} GiB"))?;
    let block_size = u32::try_from(block_size)
        .ok()
        .filter(|b| b.is_power_of_two())
        .ok_or_else(|| format!("the response gives a BlockSize of {block_size} bytes"))?;
    Ok(Geometry {
        volume_size,
        block_size,
    })
}

/// An error about a response that does not say what it must.
fn bad_response(
    operation: &'static str,
    target: impl Into<String>,
    message: String,
) -> VolumeError {
    VolumeError::Ebs {
        operation,
        target: target.into(),
        message,
        retryable: false,
        denied: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_sizes_round_up_to_whole_gib() {
        assert_eq!(gib_rounded_up(0), 1);
        assert_eq!(gib_rounded_up(1), 1);
        assert_eq!(gib_rounded_up(GIB), 1);
        assert_eq!(gib_rounded_up(GIB + 1), 2);
        assert_eq!(gib_rounded_up(100 * GIB - 4096), 100);
    }

    #[test]
    fn checksums_are_base64_sha256() {
        // The SHA-256 of the empty string, in base64.
        assert_eq!(
            sha256_base64(b""),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }

    #[test]
    fn geometry_comes_from_gib_and_block_size() {
        let g = geometry_from(Some(8), Some(512 * 1024)).unwrap();
        assert_eq!(g.volume_size, 8 * GIB);
        assert_eq!(g.blocks(), 8 * 2048);
        assert!(geometry_from(None, Some(512)).is_err());
        assert!(geometry_from(Some(1), None).is_err());
        assert!(geometry_from(Some(-1), Some(512)).is_err());
        let err = geometry_from(Some(1), Some(1000)).unwrap_err();
        assert!(err.contains("1000"), "{err}");
    }
}
