//! Restore: the order of phases, per-kind fix-ups and transformations, and
//! applying the objects to the target cluster with a per-object report.

pub mod actions;
mod apply;
mod classes;
mod drift;
pub mod modifiers;
pub mod order;
mod report;

pub use apply::{restore_objects, ApplyOptions, Existing, RestoreItem};
pub use classes::check_storage_class_map;
pub use report::{counts, rule_counts, ItemReport, Outcome, RuleCount};
