//! Series: which snapshots are comparable. Snapshots of one source taken
//! with different scopes (a cluster's scheduled full backup, a CI backup of
//! one namespace) are different series; `latest`, retention groups and
//! anomaly detection look at one series at a time.

use lifeboat_repo::Snapshot;

/// Which snapshots of a source `latest` chooses among.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Series {
    /// Cluster snapshots of the cluster's whole configured scope
    /// (`ClusterSource::is_full`): the default for a restore.
    Full,
    /// Cluster snapshots taken with the scope of this id
    /// (`lifeboat_repo::cluster_scope::scope_id`).
    Scope(String),
    /// Any snapshot of the source, whatever its scope.
    Any,
}

impl Series {
    /// Whether `snap` belongs to this series.
    pub fn contains(&self, snap: &Snapshot) -> bool {
        match self {
            Series::Any => true,
            Series::Full => snap.cluster.as_ref().is_some_and(|c| c.is_full()),
            Series::Scope(id) => snap.cluster.as_ref().is_some_and(|c| c.scope_id() == *id),
        }
    }

    /// For messages: `full-scope`, `scope <id>` or empty.
    pub fn describe(&self) -> String {
        match self {
            Series::Full => "full-scope ".into(),
            Series::Scope(id) => format!("scope-{id} "),
            Series::Any => String::new(),
        }
    }
}

/// The key of `snap`'s series among all snapshots: kind, host, paths, and
/// for a cluster snapshot its scope (`full`, or `scope <id>`). Snapshots
/// with the same key are comparable: one retention group, and the
/// previous snapshot for anomaly detection.
pub fn series_key(snap: &Snapshot) -> String {
    let base = format!("{} {} {}", snap.kind, snap.hostname, snap.paths.join(","));
    match &snap.cluster {
        Some(c) => format!("{base} {}", c.series()),
        None => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{anomalies, previous_in_series};
    use crate::forget::{apply_policy, RetentionPolicy};
    use crate::testing::memory_repo;
    use crate::verify::{latest_verified, Verification, VERIFICATION_KIND};
    use chrono::{DateTime, Duration, TimeZone, Utc};
    use lifeboat_repo::cluster_scope::scope_id;
    use lifeboat_repo::{ClusterSource, FileKind, Id, InitOptions, Repository, SnapshotSummary};
    use serde_json::{json, Value};

    fn t(hours: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap() + Duration::hours(hours)
    }

    /// A snapshot of cluster `prod` with `objects` objects, taken at `time`
    /// with `scope`; `full` as recorded (None: an older snapshot).
    fn cluster_snap(
        time: DateTime<Utc>,
        scope: Value,
        full: Option<bool>,
        objects: u64,
    ) -> Snapshot {
        Snapshot {
            version: 1,
            kind: "cluster".into(),
            time,
            hostname: "prod".into(),
            paths: vec!["https://prod.example:6443".into()],
            tags: Default::default(),
            tree: Id([0; 32]),
            parent: None,
            summary: SnapshotSummary {
                files: objects,
                ..Default::default()
            },
            cluster: Some(ClusterSource {
                name: "prod".into(),
                server: "https://prod.example:6443".into(),
                scope_id: full.map(|_| scope_id(&scope)),
                scope,
                resources: vec![],
                volumes: vec![],
                full,
                volumes_missing: vec![],
                warnings: Vec::new(),
            }),
            repository: None,
        }
    }

    fn everything() -> Value {
        json!({"cluster_resources": "auto"})
    }

    fn shop() -> Value {
        json!({"include_namespaces": ["shop"], "cluster_resources": "auto"})
    }

    async fn save_verified(repo: &Repository, snap: &Snapshot) -> Id {
        let id = repo.save_file(FileKind::Snapshot, snap).await.unwrap();
        let v = Verification {
            kind: VERIFICATION_KIND.into(),
            snapshot: id,
            source: snap.hostname.clone(),
            time: snap.time + Duration::minutes(5),
            repository: repo.store().location(),
            ok: true,
            problem_count: 0,
            problems: vec![],
            packs_read: 0,
            bytes_read: 0,
            objects_lock_checked: 0,
            objects_decoded: 0,
            duration_secs: 0.0,
            fingerprint: None,
        };
        repo.save_file(FileKind::Report, &v).await.unwrap();
        id
    }

    #[tokio::test]
    async fn ci_backup_of_one_namespace_does_not_become_the_failovers_latest() {
        let repo = memory_repo(InitOptions::default()).await;
        let full = save_verified(&repo, &cluster_snap(t(0), everything(), Some(true), 500)).await;
        let ci = save_verified(&repo, &cluster_snap(t(1), shop(), Some(false), 40)).await;
        let (id, _, _) = latest_verified(&repo, "prod", &Series::Full)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(id, full, "the full snapshot, not the newer CI one");
        // Asked for the CI series by its scope, or for any: the CI snapshot.
        let (id, _, _) = latest_verified(&repo, "prod", &Series::Scope(scope_id(&shop())))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(id, ci);
        let (id, _, _) = latest_verified(&repo, "prod", &Series::Any)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(id, ci);
    }

    #[tokio::test]
    async fn older_snapshots_without_full_count_as_full_only_with_an_empty_scope() {
        let repo = memory_repo(InitOptions::default()).await;
        let old_full = save_verified(&repo, &cluster_snap(t(0), everything(), None, 500)).await;
        save_verified(&repo, &cluster_snap(t(1), shop(), None, 40)).await;
        let (id, _, _) = latest_verified(&repo, "prod", &Series::Full)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(id, old_full);
        // A recorded `full` wins over the scope: the fleet's scope may narrow.
        let narrow_fleet = cluster_snap(t(2), shop(), Some(true), 40);
        let id = save_verified(&repo, &narrow_fleet).await;
        let (latest, _, _) = latest_verified(&repo, "prod", &Series::Full)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(latest, id);
    }

    #[test]
    fn keep_last_one_keeps_one_of_each_scope() {
        // Two full backups a day, four CI backups of shop after them.
        let mut snaps = Vec::new();
        for i in 0..2u8 {
            snaps.push((
                Id([i; 32]),
                cluster_snap(t(i64::from(i)), everything(), Some(true), 500),
            ));
        }
        for i in 2..6u8 {
            snaps.push((
                Id([i; 32]),
                cluster_snap(t(i64::from(i)), shop(), Some(false), 40),
            ));
        }
        let policy = RetentionPolicy {
            last: 1,
            ..Default::default()
        };
        let kept: Vec<Id> = apply_policy(&policy, &snaps)
            .into_iter()
            .filter(|d| d.keep)
            .map(|d| d.id)
            .collect();
        assert_eq!(kept.len(), 2, "{kept:?}");
        assert!(
            kept.contains(&Id([1; 32])),
            "the newest full snapshot is kept"
        );
        assert!(
            kept.contains(&Id([5; 32])),
            "the newest CI snapshot is kept"
        );
    }

    #[test]
    fn detection_does_not_compare_full_with_partial() {
        let snaps = vec![
            (
                Id([1; 32]),
                cluster_snap(t(0), everything(), Some(true), 500),
            ),
            (Id([2; 32]), cluster_snap(t(1), shop(), Some(false), 40)),
            (
                Id([3; 32]),
                cluster_snap(t(2), everything(), Some(true), 495),
            ),
        ];
        // The CI snapshot has no earlier snapshot of its own series.
        assert!(previous_in_series(&snaps, Id([2; 32])).is_none());
        // The second full one is judged against the first, not the CI one.
        let prev = previous_in_series(&snaps, Id([3; 32])).unwrap();
        assert_eq!(prev.summary.files, 500);
        assert!(anomalies(Some(prev), &snaps[2].1).is_empty());
        // Handed a full and a partial snapshot anyway: no mass deletion.
        assert!(anomalies(Some(&snaps[0].1), &snaps[1].1).is_empty());
        // Like with like still alerts.
        let gutted = cluster_snap(t(3), everything(), Some(true), 40);
        let kinds: Vec<String> = anomalies(Some(&snaps[2].1), &gutted)
            .into_iter()
            .map(|a| a.kind)
            .collect();
        assert_eq!(kinds, ["mass-deletion"]);
    }
}
