//! A new EBS snapshot as a [`BlockSink`]: StartSnapshot, PutSnapshotBlock and
//! CompleteSnapshot.

use super::error::sdk_error;
use super::{api_index, bad_response, block_target, gib_rounded_up, sha256_base64, Client, GIB};
use crate::{BlockSink, Geometry, VolumeError};
use async_trait::async_trait;
use aws_sdk_ebs::primitives::ByteStream;
use aws_sdk_ebs::types::{ChecksumAlgorithm, Status, Tag};
use bytes::Bytes;
use tracing::instrument;

/// Minutes after which EBS cancels a started snapshot to which no block is
/// written, or which is not completed after its last block. A day leaves room
/// for a copy spread over many invocations, with their retries and backoff.
pub const SNAPSHOT_TIMEOUT_MINUTES: i32 = 24 * 60;

/// A snapshot being written through the EBS direct APIs.
///
/// Its geometry is the snapshot's: the volume size rounded up to whole GiB,
/// and the block size EBS chose; every block written is a whole block.
/// [`finish`](BlockSink::finish) sends `blocks_written` as EBS's
/// ChangedBlocksCount: the number of distinct blocks written to the snapshot,
/// over all the writers that worked on it (a block rewritten after a retry
/// counts once).
#[derive(Debug, Clone)]
pub struct EbsWriter {
    client: Client,
    snapshot_id: String,
    geometry: Geometry,
}

impl EbsWriter {
    /// Start a snapshot of a volume of `volume_size` bytes (rounded up to
    /// whole GiB) in the client's region, with `description` and `tags`
    /// (none if empty).
    ///
    /// `client_token` makes the call idempotent on AWS: a retry with the same
    /// token returns the snapshot the first call started. Use one token per
    /// snapshot to write, e.g. derived from the restore and the volume; an
    /// empty token lets the SDK pick a fresh one.
    #[instrument(skip_all, fields(volume_size = volume_size, client_token = %client_token))]
    pub async fn start(
        client: Client,
        volume_size: u64,
        description: &str,
        tags: &[(String, String)],
        client_token: &str,
    ) -> Result<Self, VolumeError> {
        const OP: &str = "StartSnapshot";
        let gib = gib_rounded_up(volume_size);
        let target = format!("a new snapshot of {gib} GiB");
        let gib_param = i64::try_from(gib).map_err(|_| {
            VolumeError::Invalid(format!("a volume of {volume_size} bytes is too large"))
        })?;
        let tags = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect::<Vec<_>>();
        let out = client
            .start_snapshot()
            .volume_size(gib_param)
            .timeout(SNAPSHOT_TIMEOUT_MINUTES)
            .set_tags((!tags.is_empty()).then_some(tags))
            .set_description((!description.is_empty()).then(|| description.to_string()))
            .set_client_token((!client_token.is_empty()).then(|| client_token.to_string()))
            .send()
            .await
            .map_err(|e| sdk_error(OP, &target, e))?;
        let snapshot_id = out
            .snapshot_id()
            .filter(|id| !id.is_empty())
            .ok_or_else(|| bad_response(OP, &target, "the response names no snapshot".into()))?
            .to_string();
        if out.status() == Some(&Status::Error) {
            return Err(VolumeError::Failed {
                what: format!("EBS snapshot {snapshot_id}"),
                message: "StartSnapshot reported status error".to_string(),
            });
        }
        let block_size = out
            .block_size()
            .and_then(|b| u32::try_from(b).ok())
            .filter(|b| b.is_power_of_two())
            .ok_or_else(|| {
                bad_response(
                    OP,
                    &snapshot_id,
                    format!("the response gives a BlockSize of {:?}", out.block_size()),
                )
            })?;
        // The service's size wins, should it ever differ from what was asked.
        let gib = out
            .volume_size()
            .and_then(|g| u64::try_from(g).ok())
            .unwrap_or(gib);
        tracing::info!(snapshot = %snapshot_id, gib, block_size, "EBS snapshot started");
        Ok(EbsWriter {
            client,
            snapshot_id,
            geometry: Geometry {
                volume_size: gib.saturating_mul(GIB),
                block_size,
            },
        })
    }

    /// Go on writing a snapshot that [`start`](Self::start) began (in an
    /// earlier invocation, say), given the id and geometry it had.
    pub fn resume(client: Client, snapshot_id: impl Into<String>, geometry: Geometry) -> Self {
        EbsWriter {
            client,
            snapshot_id: snapshot_id.into(),
            geometry,
        }
    }

    /// The id of the snapshot being written (`snap-...`).
    pub fn snapshot_id(&self) -> &str {
        &self.snapshot_id
    }
}

/// The block index to send, if `index` is a block of `g` and `len` is a whole
/// block.
fn check_block(target: &str, g: Geometry, index: u64, len: usize) -> Result<i32, VolumeError> {
    let api = api_index(index)
        .filter(|_| index < g.blocks())
        .ok_or_else(|| {
            VolumeError::Invalid(format!(
                "{target} is outside the snapshot ({} blocks)",
                g.blocks()
            ))
        })?;
    if len as u64 != u64::from(g.block_size) {
        return Err(VolumeError::Invalid(format!(
            "{target} must be {} bytes (one whole block), got {len}",
            g.block_size
        )));
    }
    Ok(api)
}

#[async_trait]
impl BlockSink for EbsWriter {
    fn geometry(&self) -> Geometry {
        self.geometry
    }

    async fn write(&self, index: u64, data: Bytes) -> Result<(), VolumeError> {
        const OP: &str = "PutSnapshotBlock";
        let target = block_target(&self.snapshot_id, index);
        let api = check_block(&target, self.geometry, index, data.len())?;
        // A block is at most a few MiB.
        let length = i32::try_from(data.len()).unwrap_or(i32::MAX);
        let checksum = sha256_base64(&data);
        let out = self
            .client
            .put_snapshot_block()
            .snapshot_id(&self.snapshot_id)
            .block_index(api)
            .data_length(length)
            .checksum(&checksum)
            .checksum_algorithm(ChecksumAlgorithm::ChecksumAlgorithmSha256)
            .block_data(ByteStream::from(data))
            .send()
            .await
            .map_err(|e| sdk_error(OP, &target, e))?;
        // EBS answers with the checksum it computed over what it received.
        match out.checksum() {
            Some(got) if got != checksum => Err(VolumeError::Checksum {
                target,
                expected: checksum,
                actual: got.to_string(),
            }),
            _ => Ok(()),
        }
    }

    #[instrument(skip_all, fields(snapshot = %self.snapshot_id, blocks_written = blocks_written))]
    async fn finish(&self, blocks_written: u64) -> Result<String, VolumeError> {
        const OP: &str = "CompleteSnapshot";
        let count = i32::try_from(blocks_written).map_err(|_| {
            VolumeError::Invalid(format!(
                "{}: {blocks_written} blocks written is more than EBS counts",
                self.snapshot_id
            ))
        })?;
        let out = self
            .client
            .complete_snapshot()
            .snapshot_id(&self.snapshot_id)
            .changed_blocks_count(count)
            .send()
            .await
            .map_err(|e| sdk_error(OP, &self.snapshot_id, e))?;
        match out.status() {
            Some(Status::Error) => Err(VolumeError::Failed {
                what: format!("EBS snapshot {}", self.snapshot_id),
                message: format!(
                    "CompleteSnapshot reported status error ({blocks_written} blocks written)"
                ),
            }),
            status => {
                // `pending`: EBS goes on completing it on its own.
                tracing::info!(snapshot = %self.snapshot_id, ?status, "EBS snapshot completed");
                Ok(self.snapshot_id.clone())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_written_must_be_whole_and_inside() {
        let g = Geometry {
            volume_size: 2 * GIB,
            block_size: 512 * 1024,
        };
        assert_eq!(check_block("s block 0", g, 0, 512 * 1024).unwrap(), 0);
        assert_eq!(
            check_block("s block 4095", g, 4095, 512 * 1024).unwrap(),
            4095
        );
        let err = check_block("s block 4096", g, 4096, 512 * 1024).unwrap_err();
        assert!(
            err.to_string()
                .contains("outside the snapshot (4096 blocks)"),
            "{err}"
        );
        let err = check_block("s block 3", g, 3, 1000).unwrap_err();
        assert!(err.to_string().contains("must be 524288 bytes"), "{err}");
        assert!(check_block("s block huge", g, u64::MAX, 512 * 1024).is_err());
    }
}
