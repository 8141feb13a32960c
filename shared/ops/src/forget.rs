//! Which snapshots a GFS (grandfather-father-son) policy keeps.

use crate::series::series_key;
use chrono::{DateTime, Datelike, Timelike, Utc};
use lifeboat_repo::{Id, Snapshot};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};

/// How many snapshots to keep per period; each kept snapshot is the newest of its period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RetentionPolicy {
    pub last: u32,
    pub hourly: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub yearly: u32,
}

impl RetentionPolicy {
    pub fn is_empty(&self) -> bool {
        *self == RetentionPolicy::default()
    }
}

/// The decision for one snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub id: Id,
    pub time: DateTime<Utc>,
    pub group: String,
    pub keep: bool,
    /// Why it is kept ("last", "daily", ...), empty when removed.
    pub reasons: Vec<&'static str>,
}

/// Snapshots are grouped by series (kind, host, paths and, for cluster
/// snapshots, scope: [`series_key`]); each group keeps its own GFS set, so
/// partial snapshots never crowd out the full ones.
fn group_of(s: &Snapshot) -> String {
    series_key(s)
}

/// Apply `policy` to `snapshots` (any order). An empty policy keeps everything.
pub fn apply_policy(policy: &RetentionPolicy, snapshots: &[(Id, Snapshot)]) -> Vec<Decision> {
    let mut groups: BTreeMap<String, Vec<&(Id, Snapshot)>> = BTreeMap::new();
    for s in snapshots {
        groups.entry(group_of(&s.1)).or_default().push(s);
    }
    let mut out = Vec::new();
    for (group, mut list) in groups {
        list.sort_by(|a, b| b.1.time.cmp(&a.1.time).then(b.0.cmp(&a.0)));
        type Bucket = fn(&DateTime<Utc>) -> (i32, u32, u32, u32);
        let rules: [(&'static str, u32, Bucket); 5] = [
            ("hourly", policy.hourly, |t| {
                (t.year(), t.ordinal(), t.hour(), 0)
            }),
            ("daily", policy.daily, |t| (t.year(), t.ordinal(), 0, 0)),
            ("weekly", policy.weekly, |t| {
                let w = t.iso_week();
                (w.year(), w.week(), 0, 0)
            }),
            ("monthly", policy.monthly, |t| (t.year(), t.month(), 0, 0)),
            ("yearly", policy.yearly, |t| (t.year(), 0, 0, 0)),
        ];
        let mut reasons: Vec<Vec<&'static str>> = vec![Vec::new(); list.len()];
        for (i, r) in reasons.iter_mut().enumerate() {
            if (i as u64) < u64::from(policy.last) || policy.is_empty() {
                r.push("last");
            }
        }
        for (name, count, bucket) in rules {
            let mut seen = HashSet::new();
            for (i, s) in list.iter().enumerate() {
                if seen.len() as u32 >= count {
                    break;
                }
                // Newest first: the first snapshot met in a period is that period's newest.
                if seen.insert(bucket(&s.1.time)) {
                    reasons[i].push(name);
                }
            }
        }
        for (s, r) in list.into_iter().zip(reasons) {
            out.push(Decision {
                id: s.0,
                time: s.1.time,
                group: group.clone(),
                keep: !r.is_empty(),
                reasons: r,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};
    use lifeboat_repo::SnapshotSummary;

    fn snap(t: DateTime<Utc>, n: u8) -> (Id, Snapshot) {
        (
            Id([n; 32]),
            Snapshot {
                version: 1,
                kind: "volume".into(),
                time: t,
                hostname: "h".into(),
                paths: vec!["/data".into()],
                tags: Default::default(),
                tree: Id([0; 32]),
                parent: None,
                summary: SnapshotSummary::default(),
                cluster: None,
                repository: None,
            },
        )
    }

    #[test]
    fn gfs_keeps_newest_per_period() {
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        // One snapshot every 6 hours for 60 days.
        let snaps: Vec<_> = (0..240u32)
            .map(|i| snap(start + Duration::hours(6 * i64::from(i)), (i % 250) as u8))
            .collect();
        let policy = RetentionPolicy {
            last: 2,
            daily: 7,
            weekly: 4,
            monthly: 3,
            ..Default::default()
        };
        let d = apply_policy(&policy, &snaps);
        let kept: Vec<_> = d.iter().filter(|d| d.keep).collect();
        // 7 daily (the newest two among them), 4 weekly, 3 monthly, partly overlapping.
        assert!(kept.len() >= 7 && kept.len() <= 13, "{}", kept.len());
        let newest = snaps.iter().map(|s| s.1.time).max().unwrap();
        assert!(kept
            .iter()
            .any(|k| k.time == newest && k.reasons.contains(&"last")));
        let monthly: Vec<_> = kept
            .iter()
            .filter(|k| k.reasons.contains(&"monthly"))
            .collect();
        // Jan 1 to Mar 1: three months.
        assert_eq!(monthly.len(), 3);
        // The January monthly snapshot is January's newest.
        let jan = monthly.iter().map(|k| k.time).min().unwrap();
        assert_eq!(jan, Utc.with_ymd_and_hms(2026, 1, 31, 18, 0, 0).unwrap());
    }

    #[test]
    fn empty_policy_keeps_all() {
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let snaps = vec![snap(start, 1), snap(start + Duration::days(1), 2)];
        assert!(apply_policy(&RetentionPolicy::default(), &snaps)
            .iter()
            .all(|d| d.keep));
    }
}
