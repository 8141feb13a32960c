//! Restore planning: order, per-kind fix-ups and transformations.

pub mod actions;
