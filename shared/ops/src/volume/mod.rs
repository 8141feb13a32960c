//! Volume data between a block source or sink and the repository.
//!
//! A volume is stored as one file node of fixed-size, aligned chunks (the
//! repository's `fixed_size`); bytes that no chunk covers are zeros. Blocks
//! of the source (an EBS snapshot's 512 KiB, an image's 4 KiB) and chunks of
//! the repository are matched through *segments* of `max(block, chunk)`
//! bytes, aligned: a segment is read whole (every block of it the source
//! lists) and cut into whole chunks.
//!
//! - [`plan_ranges`] splits a volume into ranges of whole segments, one per
//!   workflow Map item (each well under the Lambda time limit).
//! - [`copy_range`] copies one range into the repository: every allocated
//!   block for a full copy, only the changed blocks (and the base's chunks
//!   for the rest) for an incremental one. Its result is durable (packs and
//!   index written) and names a tree blob, so a copy that stops half way
//!   resumes at the first range without a result and rereads nothing else.
//! - [`assemble`] joins the ranges into the volume's node.
//! - [`restore_volume`] writes a node into a sink; [`compare_volume`] reads a
//!   copy back and compares it, chunk by chunk, with the repository.

mod copy;
mod plan;
mod restore;
#[cfg(test)]
mod tests;

pub use copy::{copy_range, CopyOptions, RangeCopy};
pub use plan::{plan_ranges, segment_size, ByteRange};
pub use restore::{assemble, compare_volume, restore_volume, Comparison, RestoreVolumeOutcome};
