//! Per-kind fix-ups and transformations applied to each object before it is
//! created in the target cluster. (Filled in by the fix-ups work.)
