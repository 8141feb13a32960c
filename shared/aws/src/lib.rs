//! Lifeboat's AWS edges (placeholder while it is written).
