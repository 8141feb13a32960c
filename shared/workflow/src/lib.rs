//! An interpreter of the Amazon States Language (placeholder while it is written).
