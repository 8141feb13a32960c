//! Signs of attack, read from two consecutive snapshots of one source: data
//! that suddenly stops compressing (encrypted by ransomware) and mass deletions.

use crate::series::series_key;
use lifeboat_repo::{Id, Snapshot};
use serde::{Deserialize, Serialize};

/// New data below this size is too little to judge compression by.
const MIN_NEW_BYTES: u64 = 1 << 20;
/// Sources with fewer objects than this are too small to judge deletions by.
const MIN_OBJECTS: u64 = 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    /// `mass-deletion` or `incompressible-data`.
    pub kind: String,
    pub message: String,
}

fn stored_ratio(s: &Snapshot) -> Option<f64> {
    (s.summary.bytes_new >= MIN_NEW_BYTES)
        .then(|| s.summary.bytes_stored as f64 / s.summary.bytes_new as f64)
}

/// The snapshot `current` is judged against: the newest earlier snapshot
/// of its series ([`series_key`]: same kind and source and, for a cluster,
/// same scope). A CI backup of one namespace is never compared with the
/// cluster's full backup, nor the other way round.
pub fn previous_in_series(snapshots: &[(Id, Snapshot)], current: Id) -> Option<&Snapshot> {
    let (_, cur) = snapshots.iter().find(|(i, _)| *i == current)?;
    let key = series_key(cur);
    snapshots
        .iter()
        .filter(|(i, s)| *i != current && s.time < cur.time && series_key(s) == key)
        .max_by_key(|(_, s)| s.time)
        .map(|(_, s)| s)
}

/// What looks wrong in `current` compared with `previous`. Snapshots of
/// different series are not comparable: nothing is reported for them.
pub fn anomalies(previous: Option<&Snapshot>, current: &Snapshot) -> Vec<Anomaly> {
    let mut out = Vec::new();
    let Some(prev) = previous else {
        return out;
    };
    if series_key(prev) != series_key(current) {
        tracing::warn!(
            previous = %series_key(prev),
            current = %series_key(current),
            "anomaly detection skipped: the snapshots are of different series"
        );
        return out;
    }
    let (before, now) = (prev.summary.files, current.summary.files);
    if before >= MIN_OBJECTS && (now as f64) < before as f64 * 0.7 {
        out.push(Anomaly {
            kind: "mass-deletion".into(),
            message: format!(
                "{} fell from {before} to {now} objects ({:.0}% gone) since the snapshot of {}",
                current.hostname,
                100.0 * (before - now) as f64 / before as f64,
                prev.time.to_rfc3339()
            ),
        });
    }
    if let (Some(was), Some(is)) = (stored_ratio(prev), stored_ratio(current)) {
        if is > 0.9 && was < 0.6 {
            out.push(Anomaly {
                kind: "incompressible-data".into(),
                message: format!(
                    "new data of {} no longer compresses (stored {:.0}% of new bytes, was {:.0}%): \
                     a sign of data encrypted by ransomware",
                    current.hostname,
                    is * 100.0,
                    was * 100.0
                ),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat_repo::SnapshotSummary;

    fn snap(files: u64, new: u64, stored: u64) -> Snapshot {
        Snapshot {
            version: 1,
            kind: "cluster".into(),
            time: chrono::Utc::now(),
            hostname: "prod".into(),
            paths: vec![],
            tags: Default::default(),
            tree: Id([0; 32]),
            parent: None,
            summary: SnapshotSummary {
                files,
                bytes_new: new,
                bytes_stored: stored,
                ..Default::default()
            },
            cluster: None,
            repository: None,
        }
    }

    #[test]
    fn deletions_and_incompressible_data_are_named() {
        let mib = 1 << 20;
        assert!(anomalies(None, &snap(10, 0, 0)).is_empty());
        assert!(anomalies(
            Some(&snap(100, 10 * mib, 3 * mib)),
            &snap(90, 10 * mib, 3 * mib)
        )
        .is_empty());
        let a = anomalies(
            Some(&snap(100, 10 * mib, 3 * mib)),
            &snap(20, 10 * mib, 10 * mib),
        );
        let kinds: Vec<&str> = a.iter().map(|a| a.kind.as_str()).collect();
        assert_eq!(kinds, ["mass-deletion", "incompressible-data"]);
        assert!(
            a[0].message.contains("from 100 to 20 objects (80% gone)"),
            "{}",
            a[0].message
        );
        // Too little new data to judge.
        assert!(anomalies(Some(&snap(100, mib, mib / 4)), &snap(100, 1000, 1000)).is_empty());
        // Too small a source to judge.
        assert!(anomalies(Some(&snap(10, 0, 0)), &snap(1, 0, 0)).is_empty());
    }
}
