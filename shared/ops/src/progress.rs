use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Counters that an operation updates and a front end displays.
#[derive(Debug, Default)]
pub struct Progress {
    phase: Mutex<String>,
    pub files: AtomicU64,
    pub bytes_read: AtomicU64,
    pub bytes_new: AtomicU64,
    pub bytes_stored: AtomicU64,
    pub bytes_written: AtomicU64,
    pub items_done: AtomicU64,
    pub items_total: AtomicU64,
}

/// A copy of the counters at one instant.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProgressSnapshot {
    pub phase: String,
    pub files: u64,
    pub bytes_read: u64,
    pub bytes_new: u64,
    pub bytes_stored: u64,
    pub bytes_written: u64,
    pub items_done: u64,
    pub items_total: u64,
}

impl Progress {
    pub fn set_phase(&self, phase: &str) {
        if let Ok(mut p) = self.phase.lock() {
            *p = phase.to_string();
        }
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> ProgressSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ProgressSnapshot {
            phase: self.phase.lock().map(|p| p.clone()).unwrap_or_default(),
            files: get(&self.files),
            bytes_read: get(&self.bytes_read),
            bytes_new: get(&self.bytes_new),
            bytes_stored: get(&self.bytes_stored),
            bytes_written: get(&self.bytes_written),
            items_done: get(&self.items_done),
            items_total: get(&self.items_total),
        }
    }
}
