//! An existing EBS snapshot as a [`BlockSource`]: ListSnapshotBlocks,
//! ListChangedBlocks and GetSnapshotBlock.

use super::error::sdk_error;
use super::{api_index, bad_response, block_target, geometry_from, sha256_base64, Client};
use crate::{Block, BlockSource, ChangedBlock, Geometry, VolumeError};
use async_trait::async_trait;
use aws_sdk_ebs::types::ChecksumAlgorithm;
use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::OnceCell;

/// The page sizes the listing calls accept.
const PAGE_MIN: u64 = 100;
const PAGE_MAX: u64 = 10_000;

/// A completed EBS snapshot, read through the EBS direct APIs.
///
/// Its geometry is asked for once (ListSnapshotBlocks) and kept, also by
/// clones; [`with_geometry`](Self::with_geometry) skips that call when the
/// caller already knows it.
#[derive(Debug, Clone)]
pub struct EbsSnapshot {
    client: Client,
    snapshot_id: String,
    geometry: Arc<OnceCell<Geometry>>,
}

impl EbsSnapshot {
    /// The snapshot `snapshot_id` (`snap-...`) in the client's region.
    pub fn new(client: Client, snapshot_id: impl Into<String>) -> Self {
        EbsSnapshot {
            client,
            snapshot_id: snapshot_id.into(),
            geometry: Arc::new(OnceCell::new()),
        }
    }

    /// The same snapshot with its geometry known (from an earlier
    /// [`geometry`](BlockSource::geometry) call, e.g. in another invocation).
    pub fn with_geometry(self, geometry: Geometry) -> Self {
        EbsSnapshot {
            geometry: Arc::new(OnceCell::new_with(Some(geometry))),
            ..self
        }
    }

    pub fn snapshot_id(&self) -> &str {
        &self.snapshot_id
    }

    /// Keep the geometry a listing gave, if none is known yet and it is sound.
    fn remember_geometry(&self, volume_gib: Option<i64>, block_size: Option<i32>) {
        if self.geometry.get().is_none() {
            if let Ok(g) = geometry_from(volume_gib, block_size) {
                // Another task may have set it meanwhile: the same value.
                let _ = self.geometry.set(g);
            }
        }
    }

    async fn fetch_geometry(&self) -> Result<Geometry, VolumeError> {
        let page = self
            .client
            .list_snapshot_blocks()
            .snapshot_id(&self.snapshot_id)
            .max_results(PAGE_MIN as i32)
            .send()
            .await
            .map_err(|e| sdk_error("ListSnapshotBlocks", &self.snapshot_id, e))?;
        geometry_from(page.volume_size(), page.block_size())
            .map_err(|m| bad_response("ListSnapshotBlocks", &self.snapshot_id, m))
    }
}

/// A page size for listing `[first, end)`: no more than the range needs.
fn page_size(first: u64, end: u64) -> i32 {
    // Both bounds fit an i32.
    end.saturating_sub(first).clamp(PAGE_MIN, PAGE_MAX) as i32
}

/// The index of a listed block, checked.
fn listed_index(
    index: Option<i32>,
    operation: &'static str,
    snapshot: &str,
) -> Result<u64, VolumeError> {
    index.and_then(|i| u64::try_from(i).ok()).ok_or_else(|| {
        bad_response(
            operation,
            snapshot,
            format!("the listing has a block with index {index:?}"),
        )
    })
}

/// The items in `[first, end)`, ascending by index, each index once. AWS
/// lists in ascending order from the starting index, but pages may reach past
/// `end`; and this does not rely on the order (moto lists in any order and
/// from block 0).
fn in_range_sorted<T>(
    mut items: Vec<T>,
    first: u64,
    end: u64,
    index: impl Fn(&T) -> u64,
) -> Vec<T> {
    items.retain(|t| (first..end).contains(&index(t)));
    items.sort_by_key(|t| index(t));
    items.dedup_by(|a, b| index(a) == index(b));
    items
}

/// Where a listing stands after a page.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    Page(String),
    Done,
}

/// Whether to ask for another page: there is one and this page did not get
/// past `end` (pages come in ascending order of index).
fn next_page(token: Option<&str>, max_index: Option<u64>, end: u64) -> Next {
    match token {
        Some(t) if !t.is_empty() && max_index.is_none_or(|m| m < end) => Next::Page(t.to_string()),
        _ => Next::Done,
    }
}

/// Check a block read back: its length against `DataLength` and its bytes
/// against the SHA-256 the service gave.
fn verify(
    target: &str,
    data: &[u8],
    data_length: Option<i32>,
    checksum: Option<&str>,
    algorithm: Option<&ChecksumAlgorithm>,
) -> Result<(), VolumeError> {
    if let Some(n) = data_length {
        if u64::try_from(n).ok() != Some(data.len() as u64) {
            // A body cut short on the way: another read may get it whole.
            return Err(VolumeError::Ebs {
                operation: "GetSnapshotBlock",
                target: target.to_string(),
                message: format!("DataLength is {n} bytes but {} arrived", data.len()),
                retryable: true,
                denied: false,
            });
        }
    }
    match algorithm {
        Some(ChecksumAlgorithm::ChecksumAlgorithmSha256) => {}
        other => {
            return Err(bad_response(
                "GetSnapshotBlock",
                target,
                format!("unsupported checksum algorithm {other:?} (SHA256 expected)"),
            ))
        }
    }
    let expected = checksum.ok_or_else(|| {
        bad_response(
            "GetSnapshotBlock",
            target,
            "the response carries no checksum".to_string(),
        )
    })?;
    let actual = sha256_base64(data);
    if actual != expected {
        return Err(VolumeError::Checksum {
            target: target.to_string(),
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(())
}

/// A block's data cut to its byte range's length `want` (EBS returns whole
/// blocks; a volume of whole GiB never needs a cut).
fn clip(target: &str, data: Bytes, want: u64) -> Result<Bytes, VolumeError> {
    let len = data.len() as u64;
    if len < want {
        return Err(bad_response(
            "GetSnapshotBlock",
            target,
            format!("the block holds {len} bytes, {want} expected"),
        ));
    }
    // `want` is at most `len`, which is a usize.
    Ok(data.slice(..want as usize))
}

#[async_trait]
impl BlockSource for EbsSnapshot {
    fn name(&self) -> String {
        self.snapshot_id.clone()
    }

    async fn geometry(&self) -> Result<Geometry, VolumeError> {
        self.geometry
            .get_or_try_init(|| self.fetch_geometry())
            .await
            .copied()
    }

    async fn allocated(&self, first: u64, end: u64) -> Result<Vec<Block>, VolumeError> {
        const OP: &str = "ListSnapshotBlocks";
        let Some(start) = api_index(first).filter(|_| first < end) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_snapshot_blocks()
                .snapshot_id(&self.snapshot_id)
                .starting_block_index(start)
                .max_results(page_size(first, end))
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| sdk_error(OP, &self.snapshot_id, e))?;
            self.remember_geometry(page.volume_size(), page.block_size());
            let mut max_index = None;
            for b in page.blocks() {
                let index = listed_index(b.block_index(), OP, &self.snapshot_id)?;
                max_index = max_index.max(Some(index));
                let token = b.block_token().ok_or_else(|| {
                    bad_response(OP, &self.snapshot_id, format!("block {index} has no token"))
                })?;
                out.push(Block {
                    index,
                    token: token.to_string(),
                });
            }
            match next_page(page.next_token(), max_index, end) {
                Next::Page(t) => token = Some(t),
                Next::Done => break,
            }
        }
        Ok(in_range_sorted(out, first, end, |b| b.index))
    }

    async fn changed_since(
        &self,
        base: &str,
        first: u64,
        end: u64,
    ) -> Result<Option<Vec<ChangedBlock>>, VolumeError> {
        const OP: &str = "ListChangedBlocks";
        if base.is_empty() {
            return Err(VolumeError::Invalid(format!(
                "{}: the base snapshot to compare with is empty",
                self.snapshot_id
            )));
        }
        let Some(start) = api_index(first).filter(|_| first < end) else {
            return Ok(Some(Vec::new()));
        };
        let target = format!("{} since {base}", self.snapshot_id);
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_changed_blocks()
                .first_snapshot_id(base)
                .second_snapshot_id(&self.snapshot_id)
                .starting_block_index(start)
                .max_results(page_size(first, end))
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| sdk_error(OP, &target, e))?;
            let mut max_index = None;
            for b in page.changed_blocks() {
                let index = listed_index(b.block_index(), OP, &target)?;
                max_index = max_index.max(Some(index));
                out.push(ChangedBlock {
                    index,
                    now: b.second_block_token().map(|t| Block {
                        index,
                        token: t.to_string(),
                    }),
                });
            }
            match next_page(page.next_token(), max_index, end) {
                Next::Page(t) => token = Some(t),
                Next::Done => break,
            }
        }
        Ok(Some(in_range_sorted(out, first, end, |b| b.index)))
    }

    async fn read(&self, block: &Block) -> Result<Bytes, VolumeError> {
        let g = self.geometry().await?;
        let target = block_target(&self.snapshot_id, block.index);
        let index = api_index(block.index)
            .filter(|_| block.index < g.blocks())
            .ok_or_else(|| {
                VolumeError::Invalid(format!(
                    "{target} is outside the volume ({} blocks)",
                    g.blocks()
                ))
            })?;
        let out = self
            .client
            .get_snapshot_block()
            .snapshot_id(&self.snapshot_id)
            .block_index(index)
            .block_token(&block.token)
            .send()
            .await
            .map_err(|e| sdk_error("GetSnapshotBlock", &target, e))?;
        let data = out
            .block_data
            .collect()
            .await
            .map_err(|e| VolumeError::Ebs {
                operation: "GetSnapshotBlock",
                target: target.clone(),
                message: format!(
                    "reading the block data: {}",
                    aws_sdk_ebs::error::DisplayErrorContext(&e)
                ),
                retryable: true,
                denied: false,
            })?
            .into_bytes();
        verify(
            &target,
            &data,
            out.data_length,
            out.checksum.as_deref(),
            out.checksum_algorithm.as_ref(),
        )?;
        let (start, stop) = g.byte_range(block.index);
        clip(&target, data, stop - start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA256: Option<&ChecksumAlgorithm> = Some(&ChecksumAlgorithm::ChecksumAlgorithmSha256);

    #[test]
    fn a_block_must_match_its_checksum_and_length() {
        let data = vec![7u8; 4096];
        let sum = sha256_base64(&data);
        verify("snap-1 block 3", &data, Some(4096), Some(&sum), SHA256).unwrap();
        // No DataLength is no objection; the checksum still counts.
        verify("snap-1 block 3", &data, None, Some(&sum), SHA256).unwrap();

        let mut bad = data.clone();
        bad[100] ^= 1;
        match verify("snap-1 block 3", &bad, Some(4096), Some(&sum), SHA256) {
            Err(VolumeError::Checksum {
                target,
                expected,
                actual,
            }) => {
                assert_eq!(target, "snap-1 block 3");
                assert_eq!(expected, sum);
                assert_eq!(actual, sha256_base64(&bad));
            }
            other => panic!("expected a checksum error, got {other:?}"),
        }

        let err = verify(
            "snap-1 block 3",
            &data[..100],
            Some(4096),
            Some(&sum),
            SHA256,
        )
        .unwrap_err();
        assert!(err.is_retryable());
        assert!(err.to_string().contains("DataLength is 4096"), "{err}");

        let err = verify("snap-1 block 3", &data, Some(4096), None, SHA256).unwrap_err();
        assert!(err.to_string().contains("no checksum"), "{err}");
        let err = verify("snap-1 block 3", &data, Some(4096), Some(&sum), None).unwrap_err();
        assert!(err.to_string().contains("checksum algorithm"), "{err}");
    }

    #[test]
    fn the_last_block_is_clipped_to_the_volume() {
        let g = Geometry {
            volume_size: 10_000,
            block_size: 4096,
        };
        let (start, stop) = g.byte_range(2);
        let data = Bytes::from(vec![1u8; 4096]);
        assert_eq!(clip("t", data.clone(), stop - start).unwrap().len(), 1808);
        assert_eq!(clip("t", data.clone(), 4096).unwrap().len(), 4096);
        assert!(clip("t", data.slice(..100), 4096).is_err());
    }

    #[test]
    fn listings_are_cut_to_the_range_sorted_and_deduplicated() {
        let listed = vec![9u64, 2, 5, 2, 7, 0, 12, 3];
        assert_eq!(
            in_range_sorted(listed.clone(), 0, u64::MAX, |i| *i),
            vec![0, 2, 3, 5, 7, 9, 12]
        );
        assert_eq!(in_range_sorted(listed.clone(), 3, 9, |i| *i), vec![3, 5, 7]);
        assert!(in_range_sorted(listed, 13, 20, |i| *i).is_empty());
        let blocks = vec![
            Block {
                index: 4,
                token: "b".into(),
            },
            Block {
                index: 1,
                token: "a".into(),
            },
        ];
        let sorted = in_range_sorted(blocks, 1, 5, |b| b.index);
        assert_eq!(sorted[0].token, "a");
        assert_eq!(sorted[1].token, "b");
    }

    #[test]
    fn listing_stops_at_the_end_of_the_range_or_of_the_pages() {
        assert_eq!(
            next_page(Some("t"), Some(99), 100),
            Next::Page("t".to_string())
        );
        assert_eq!(next_page(Some("t"), None, 100), Next::Page("t".to_string()));
        assert_eq!(next_page(Some("t"), Some(100), 100), Next::Done);
        assert_eq!(next_page(None, Some(5), 100), Next::Done);
        assert_eq!(next_page(Some(""), Some(5), 100), Next::Done);
    }

    #[test]
    fn pages_are_no_larger_than_the_range_needs() {
        assert_eq!(page_size(0, 10), 100);
        assert_eq!(page_size(1000, 1500), 500);
        assert_eq!(page_size(0, u64::MAX), 10_000);
        assert_eq!(page_size(5, 0), 100);
    }

    #[test]
    fn listed_indexes_must_be_present_and_not_negative() {
        assert_eq!(listed_index(Some(3), "Op", "snap-1").unwrap(), 3);
        assert!(listed_index(None, "Op", "snap-1").is_err());
        assert!(listed_index(Some(-1), "Op", "snap-1").is_err());
    }
}
